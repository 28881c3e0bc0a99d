"""Cold-start data for R1: a small set of readable long chains of thought, by the paper's three methods.

    r1lab coldstart --method fewshot  --model base           --out cold/fewshot.jsonl
    r1lab coldstart --method detailed --model base           --out cold/detailed.jsonl
    r1lab coldstart --method refine   --model runs/zero/model --out cold/refined.jsonl [--teacher DIR]

- fewshot:  the base model is prompted with long worked examples (in the question's language) and
            continues with a worked solution for a new question;
- detailed: the base model is asked to explain step by step and check its answer (reflection and
            verification);
- refine:   R1-Zero samples (temperature 1) that are correct are rewritten into a readable, single-
            language form. In the embedded world the rewriter is a rule (phrase-by-phrase translation
            into the question's language); with --teacher a local model rewrites them (real text).
Every method keeps only correct answers whose chain of thought is in the question's language, and
writes `<think> reasoning </think> <answer> summary </answer>` completions (the paper's
|special_token|<reasoning>|special_token|<summary>, with the think tags as the special tokens and
the answer as the summary), one JSON object per line with a "provenance" field.
"""

from __future__ import annotations

import json
import random
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..config import check_positive, opt
from ..engine import SamplingParams, generate
from ..errors import UserError
from ..evaluate import ar_result
from ..model import decode_completions, load_model, load_tokenizer
from ..rewards.language import consistency, toy_identifier
from ..rewards.parse import MAX_CHARS, last_number, parse_response
from ..tasks.toy import arithmetic as ar
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

def _prompts_fewshot(problems, rng, shots: int) -> list[str]:
    out = []
    for p in problems:
        parts = []
        for _ in range(shots):
            q = ar.sample_problem(rng, "train")
            q = ar.Problem(q.a, q.m, p.lang)
            text, _ = ar.worked_solution(q, p.lang, rng)  # clean, single-language examples
            parts.append(f"{PHRASES[p.lang]['example']} : {q.question()} ? {text}")
        parts.append(f"{PHRASES[p.lang]['example']} : {p.question()} ?")
        out.append(" ".join(parts))
    return out


def _prompts_detailed(problems) -> list[str]:
    return [f"{p.question(detailed=True)} ?" for p in problems]


def _cut(text: str) -> str:
    """A continuation up to where the next example would start."""
    for marker in (" example :", " ejemplo :"):
        i = text.find(marker)
        if i >= 0:
            text = text[:i]
    return text.strip()


def collect(cfg: ColdStartConfig) -> list[dict]:
    """Sample, filter and format; returns the kept rows (also written to cfg.out)."""
    check_positive(cfg, ["problems", "samples", "max_per_problem", "max_new_tokens"])
    if cfg.method not in METHODS:
        raise UserError(f"--method must be one of {', '.join(METHODS)}")
    problems = ar.problems(cfg.problems, "train", seed=1000 + cfg.seed)
    tok = load_tokenizer(cfg.model)
    model = load_model(cfg.model)
    rng = random.Random(f"cold-{cfg.method}-{cfg.seed}")
    if cfg.method == "fewshot":
        prompts = _prompts_fewshot(problems, rng, cfg.shots)
    elif cfg.method == "detailed":
        prompts = _prompts_detailed(problems)
    else:
        prompts = [render_prompt(p.question()) for p in problems]
    temperature = 1.0 if cfg.method == "refine" else cfg.temperature
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in prompts]
    seeds = [zlib.crc32(f"{cfg.seed}|{cfg.method}|{t}".encode()) for t in prompts]
    texts = []
    for s in range(0, len(ids), 32):
        out = generate(model, ids[s:s + 32], cfg.samples, SamplingParams(cfg.max_new_tokens, temperature),
                       seeds[s:s + 32], tok.eos_token_id, tok.pad_token_id)
        texts += decode_completions(tok, out.completions)
    teacher = _Teacher(cfg.teacher) if cfg.teacher else None
    ident = toy_identifier()
    rows = []
    for i, p in enumerate(problems):
        kept = 0
        seen = set()
        for text in texts[i * cfg.samples:(i + 1) * cfg.samples]:
            reasoning = _reasoning(text, cfg.method, p, teacher)
            if cfg.method == "detailed" and reasoning is not None:
                reasoning = _checked(reasoning, p)
            if reasoning is None or reasoning in seen or ar_result(reasoning) != p.answer:
                continue
            completion = r1_completion(reasoning, str(p.answer))
            if consistency(completion, p.lang, ident) < 1.0:
                continue
            seen.add(reasoning)
            rows.append({"prompt": p.question(), "completion": completion, "answer": str(p.answer), "lang": p.lang,
                         "kind": "reasoning", "provenance": {"fewshot": "few-shot long CoT",
                                                             "detailed": "detailed answer with verification",
                                                             "refine": "refined R1-Zero output"}[cfg.method]})
            kept += 1
            if kept >= cfg.max_per_problem:
                break
    write_jsonl(Path(cfg.out), rows)
    print(f"coldstart {cfg.method}: {len(rows)} examples kept from {len(texts)} samples -> {cfg.out}")
    return rows


def _checked(reasoning: str, p: ar.Problem) -> str:
    """A detailed answer keeps its verification only when the verification is right ("N divided by
    m is a" must restate a); a wrong one is cut, so no false check is taught. The embedded base model
    gets this check wrong most of the time: it restates the operand from ~100 tokens back."""
    for marker in (PHRASES["en"]["check"].split(" :")[0], PHRASES["es"]["check"].split(" :")[0]):
        i = reasoning.find(marker)
        if i >= 0 and last_number(reasoning[i:]) != p.a:
            return reasoning[:i].strip()
    return reasoning


def _reasoning(text: str, method: str, p: ar.Problem, teacher) -> str | None:
    if method in ("fewshot", "detailed"):
        return _cut(text) or None
    parsed = parse_response(text)  # refine: a correct R1-Zero answer, its reasoning made readable
    if not parsed.well_formed or ar_result(parsed.think) != p.answer:
        return None
    if teacher is not None:
        return teacher.rewrite(parsed.think, p.lang)
    return translate_reasoning(parsed.think.strip(), p.lang)


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
