"""Cold-start data for R1: a small set of readable long chains of thought, by the paper's three methods.

    r1lab coldstart --method fewshot  --model base           --out cold/fewshot.jsonl
    r1lab coldstart --method detailed --model base           --out cold/detailed.jsonl
    r1lab coldstart --method refine   --model runs/zero/model --out cold/refined.jsonl [--teacher DIR]
    r1lab coldstart --method fewshot --model DIR --data prompts.jsonl --fewshot-data shots.jsonl --language lingua

Your data (JSONL, Parquet or a save_to_disk folder): --data rows {"prompt", "answer", "lang"?} are the
problems (default: the embedded world's); --fewshot-data rows {"prompt", "completion", "lang"?} are the
exemplars, `shots` per problem in its language, laid out by --shot-format / --query-format;
--instruction asks for a detailed answer with reflection and verification. A continuation is kept
when its reasoning states "so the answer is N" (or "así que la respuesta es N") with N the answer.

- fewshot:  the base model is prompted with long worked examples (in the question's language) and
            continues with a worked solution for a new question;
- detailed: the base model is asked to explain step by step and check its answer (reflection and
            verification);
- refine:   R1-Zero samples (temperature 1) that are correct are rewritten into a readable, single-
            language form. In the embedded world the rewriter is a rule (phrase-by-phrase translation
            into the question's language); with --teacher a local model rewrites them (real text).
Every method keeps only correct answers whose chain of thought is in the question's language (judged
by the run's language identifier, --language), and writes `<think> reasoning </think> <answer> summary
</answer>` completions (the paper's
|special_token|<reasoning>|special_token|<summary>, with the think tags as the special tokens and
the answer as the summary), one JSON object per line with a "provenance" field.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..config import check_positive, opt
from ..engine import SamplingParams, generate
from ..errors import UserError
from ..evaluate import EvalConfig, ar_result, sample_completions
from ..model import decode_completions, load_model, load_tokenizer
from ..rewards.language import consistency, run_identifier
from ..rewards.parse import MAX_CHARS, last_number, parse_number, parse_response
from ..tasks import sources
from ..tasks.files import read_data
from ..tasks.toy.lexicon import PHRASES
from ..template import render_prompt

METHODS = ("fewshot", "detailed", "refine")
LANG_NAMES = {"en": "English", "es": "Spanish"}


@dataclass
class ColdStartConfig:
    method: str = opt("fewshot", "collection method", list(METHODS))
    model: str = opt("base", "model to sample: the base model (fewshot, detailed) or R1-Zero (refine)")
    teacher: str = opt("", "refine with this local model instead of the rule-based rewriter (real text)")
    out: str = opt("runs/cold/fewshot.jsonl", "output JSONL file")
    problems: int = opt(200, "training problems to prompt")
    samples: int = opt(2, "samples per problem")
    max_per_problem: int = opt(1, "examples kept per problem at most")
    temperature: float = opt(0.7, "sampling temperature (refine: R1-Zero samples at 1.0, as in the paper)")
    max_new_tokens: int = opt(160, "token budget per sample")
    shots: int = opt(2, "fewshot: worked examples in the prompt")
    data: str = opt("", "problems: JSONL, Parquet or a save_to_disk folder, rows with prompt, answer (lang optional); "
                    "empty: the embedded world's")
    fewshot_data: str = opt("", "fewshot: exemplars, rows with prompt and completion (lang optional); empty: the "
                            "embedded world's worked examples")
    shot_format: str = opt("", "fewshot: one exemplar, a format over its fields (empty: 'Question: {prompt}\\nAnswer: "
                           "{completion}\\n\\n' with --data, the embedded world's without)")
    query_format: str = opt("", "fewshot: the problem after the exemplars (empty: 'Question: {prompt}\\nAnswer:' "
                            "with --data, the embedded world's without)")
    instruction: str = opt("", "detailed: the prompt asking for a detailed answer with reflection and verification, "
                           "a format over the problem's fields (empty: '" + "{prompt}\\nExplain step by step, "
                           "reflect on each step, then verify your answer.' with --data, the embedded world's without)")
    language: str = opt("toy", "language identifier: 'toy' (the embedded lexicon), 'lingua:en,es' (real text, these "
                        "languages; rows without 'lang' are in the first; r1lab[lang]) or 'lingua' (every language)")
    seed: int = opt(0, "seed of the problems and of sampling")


# ---- the rule-based rewriter of the embedded world -------------------------------------------------

def _clause_pairs() -> list[tuple[str, str]]:
    """(English clause, Spanish clause) templates, aligned role by role from the lexicon."""
    pairs = []
    for role, en in PHRASES["en"].items():
        es = PHRASES["es"][role]
        en_parts, es_parts = re.split(r" [,.:] ", en), re.split(r" [,.:] ", es)
        if len(en_parts) == len(es_parts):
            pairs.extend(zip(en_parts, es_parts))
    return pairs


def _to_regex(template: str) -> re.Pattern:
    pattern = re.escape(template)
    pattern = re.sub(r"\\\{(\w+)\\\}", lambda m: f"(?P<{m.group(1)}>\\d{{1,20}})", pattern)
    return re.compile(pattern)


_PAIRS = [(_to_regex(en), _to_regex(es), en, es) for en, es in _clause_pairs()]


def translate_reasoning(text: str, target: str) -> str:
    """Rewrite a worked solution clause by clause into `target` ("en" or "es"); clauses that match no
    template (numbers being restated, unknown text) are kept as they are."""
    text = text[:MAX_CHARS]
    pieces = re.split(r"( [,.:] ?)", text)
    out = []
    for piece in pieces:
        for en_re, es_re, en, es in _PAIRS:
            m = en_re.fullmatch(piece.strip()) or es_re.fullmatch(piece.strip())
            if m:
                piece = (en if target == "en" else es).format(**m.groupdict())
                break
        out.append(piece)
    return "".join(out)


def r1_completion(reasoning: str, answer: str) -> str:
    return f"<think> {reasoning.strip()} </think> <answer> {answer} </answer>"


# ---- the three methods --------------------------------------------------------------------------

GENERIC = {"shot_format": "Question: {prompt}\nAnswer: {completion}\n\n", "query_format": "Question: {prompt}\nAnswer:",
           "instruction": "{prompt}\nExplain step by step, reflect on each step, then verify your answer."}
WORLD = {"shot_format": sources.FEWSHOT_FORMATS[0], "query_format": sources.FEWSHOT_FORMATS[1],
         "instruction": sources.DETAILED_FORMAT}


def formats(cfg: ColdStartConfig) -> dict:
    """The prompt layouts: as set, else the embedded world's (no --data) or the generic ones."""
    default = GENERIC if cfg.data else WORLD
    return {k: getattr(cfg, k) or default[k] for k in default}


def fill(fmt: str, row: dict, where: str) -> str:
    """`fmt` filled with a row's fields; a field the row lacks is an error naming it."""
    try:
        return fmt.format_map(row)
    except KeyError as e:
        raise UserError(f"{where}: the format {fmt!r} names field {e.args[0]!r}, which the row has not") from None
    except (ValueError, IndexError) as e:
        raise UserError(f"{where}: the format {fmt!r} is not a valid format string ({e})") from None


def fewshot_prompts(problems: list[dict], exemplars: list[dict], shots: int, shot_format: str, query_format: str,
                    default_lang: str = "en") -> list[str]:
    """Method 1: `shots` exemplars in the problem's language (the next ones of that language, in file
    order, round and round), then the problem. Exemplars without "lang" fit every problem."""
    by_lang: dict[str, list[dict]] = {}
    for ex in exemplars:
        by_lang.setdefault(ex.get("lang", ""), []).append(ex)
    cursor: dict[str, int] = {}
    out = []
    for i, p in enumerate(problems):
        lang = p.get("lang", default_lang)
        pool = by_lang.get(lang) or [ex for ex in exemplars if "lang" not in ex]
        if shots and not pool:
            raise UserError(f"fewshot data: no exemplar in language {lang!r} (problem {i}: {p['prompt'][:60]!r})")
        parts = []
        for _ in range(shots):
            k = cursor.get(lang, 0)
            parts.append(fill(shot_format, pool[k % len(pool)], "fewshot data"))
            cursor[lang] = k + 1
        out.append("".join(parts) + fill(query_format, p, "cold-start problems"))
    return out


def _cut(text: str, markers: list[str]) -> str:
    """A continuation up to where the next example would start."""
    for marker in markers:
        i = text.find(marker)
        if i >= 0:
            text = text[:i]
    return text.strip()


def _markers(problems: list[dict], query_format: str) -> list[str]:
    """Where a new example starts: the query layout's text before the problem, for each lead seen."""
    head = query_format.split("{prompt}")[0]
    seen = []
    for p in problems:
        lead = fill(head, p, "cold-start problems").strip()
        for m in (f" {lead}", f"\n{lead}"):
            if lead and m not in seen:
                seen.append(m)
    return seen


def problems_of(cfg: ColdStartConfig) -> list[dict]:
    """The problems: the first cfg.problems rows of --data, or the embedded world's."""
    if cfg.data:
        return read_data(cfg.data, ("prompt", "answer"))[:cfg.problems]
    return sources.cold_start_prompts(cfg.problems, cfg.seed)


def prompts_of(cfg: ColdStartConfig, problems: list[dict], default_lang: str) -> list[str]:
    fmt = formats(cfg)
    if cfg.method == "fewshot":
        shots = (read_data(cfg.fewshot_data, ("prompt", "completion")) if cfg.fewshot_data
                 else sources.fewshot(problems, cfg.shots, cfg.seed))
        return fewshot_prompts(problems, shots, cfg.shots, fmt["shot_format"], fmt["query_format"], default_lang)
    if cfg.method == "detailed":
        return [fill(fmt["instruction"], p, f"{cfg.data or 'cold-start problems'}: row {i}")
                for i, p in enumerate(problems)]
    return [render_prompt(p["prompt"]) for p in problems]


def collect(cfg: ColdStartConfig) -> list[dict]:
    """Sample, filter and format; returns the kept rows (also written to cfg.out)."""
    check_positive(cfg, ["problems", "samples", "max_per_problem", "max_new_tokens"])
    if cfg.method not in METHODS:
        raise UserError(f"--method must be one of {', '.join(METHODS)}")
    ident, default_lang = run_identifier(cfg.language)
    problems = problems_of(cfg)
    prompts = prompts_of(cfg, problems, default_lang)
    markers = _markers(problems, formats(cfg)["query_format"])
    tok = load_tokenizer(cfg.model)
    model = load_model(cfg.model)
    temperature = 1.0 if cfg.method == "refine" else cfg.temperature
    # the prompts are already rendered (few-shot / instruction), hence the "plain" template
    texts, _, _ = sample_completions(
        model, tok, [{"prompt": t} for t in prompts],
        EvalConfig(k=cfg.samples, temperature=temperature, top_p=1.0, max_new_tokens=cfg.max_new_tokens,
                   template="plain", prompts_per_batch=32),
        seed_of=lambda e: zlib.crc32(f"{cfg.seed}|{cfg.method}|{e['prompt']}".encode()))
    teacher = _Teacher(cfg.teacher) if cfg.teacher else None
    rows = []
    for i, p in enumerate(problems):
        kept = 0
        seen = set()
        lang, answer = p.get("lang", default_lang), parse_number(p["answer"])
        for text in texts[i * cfg.samples:(i + 1) * cfg.samples]:
            reasoning = _reasoning(text, cfg.method, p, lang, answer, teacher, markers)
            if cfg.method == "detailed" and reasoning is not None:
                reasoning = _checked(reasoning, p)
            if reasoning is None or reasoning in seen or answer is None or ar_result(reasoning) != answer:
                continue
            completion = r1_completion(reasoning, p["answer"])
            if consistency(completion, lang, ident) < 1.0:
                continue
            seen.add(reasoning)
            rows.append({"prompt": p["prompt"], "completion": completion, "answer": p["answer"], "lang": lang,
                         "kind": "reasoning", "provenance": {"fewshot": "few-shot long CoT",
                                                             "detailed": "detailed answer with verification",
                                                             "refine": "refined R1-Zero output"}[cfg.method]})
            kept += 1
            if kept >= cfg.max_per_problem:
                break
    write_jsonl(Path(cfg.out), rows)
    print(f"coldstart {cfg.method}: {len(rows)} examples kept from {len(texts)} samples -> {cfg.out}")
    return rows


def _checked(reasoning: str, p: dict) -> str:
    """A detailed answer keeps its verification only when the verification is right ("N divided by
    m is a" must restate a); a wrong one is cut, so no false check is taught. The embedded base model
    gets this check wrong most of the time: it restates the operand from ~100 tokens back. Only rows
    that carry the multiplicand `a` (the embedded world's) are checked this way."""
    if "a" not in p:
        return reasoning
    for marker in (PHRASES["en"]["check"].split(" :")[0], PHRASES["es"]["check"].split(" :")[0]):
        i = reasoning.find(marker)
        if i >= 0 and last_number(reasoning[i:]) != int(p["a"]):
            return reasoning[:i].strip()
    return reasoning


def _reasoning(text: str, method: str, p: dict, lang: str, answer, teacher, markers: list[str]) -> str | None:
    if method in ("fewshot", "detailed"):
        return _cut(text, markers) or None
    parsed = parse_response(text)  # refine: a correct R1-Zero answer, its reasoning made readable
    if not parsed.well_formed or answer is None or ar_result(parsed.think) != answer:
        return None
    if teacher is not None:
        return teacher.rewrite(parsed.think, lang)
    return translate_reasoning(parsed.think.strip(), lang)


class _Teacher:
    """A local model that rewrites reasoning into one language (for real text; greedy decoding)."""

    def __init__(self, path: str):
        self.tok = load_tokenizer(path)
        self.model = load_model(path)

    def rewrite(self, reasoning: str, lang: str) -> str:
        prompt = (f"Rewrite the following reasoning so that it is written only in {LANG_NAMES.get(lang, lang)}, "
                  f"clearly and step by step, keeping every number.\nReasoning: {reasoning}\nRewritten:")
        ids = self.tok(prompt, add_special_tokens=False)["input_ids"]
        out = generate(self.model, [ids], 1, SamplingParams(512, 0.0), [0], self.tok.eos_token_id, self.tok.pad_token_id)
        return decode_completions(self.tok, out.completions)[0].strip()


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    tmp.replace(path)
