"""Rejection sampling (R1 stage 3): sample a checkpoint, keep what is correct and readable, mix in
general-purpose data, and write an SFT set.

    r1lab sample --model runs/reasoning-rl/model --out runs/rs/data.jsonl
    r1lab sft --model base --data runs/rs/data.jsonl --epochs 2 --out runs/rs-sft   # paper: SFT the *base*

For each training prompt, n samples; a sample is kept when it passes every filter (each a small pure
function below): well formed, correct (rule verifier, or a judge model with --judge where no rule
applies), chain of thought in a single language (the question's), no long paragraph, no code block;
duplicates are dropped and at most `keep_per_prompt` are kept per prompt. General-purpose examples
(no chain of thought for simple queries, kept as they come) and refusals are then mixed in: `general`
and `safety` rows of --general-data and --safety-data (rows {"prompt", "completion"}; JSONL, Parquet
or a save_to_disk folder), or of the embedded world's. "Single language" is judged by the run's
language identifier (--language: the embedded lexicon or lingua for real text). Under torchrun each process samples its
share of the prompts (the seeds depend on the prompt only); rank 0 writes.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .. import dist
from ..config import check_positive, opt
from ..evaluate import EvalConfig, sample_completions
from ..model import load_model, load_tokenizer
from ..rewards.language import consistency, run_identifier, toy_identifier
from ..rewards.parse import MAX_CHARS, parse_response
from ..rewards.verifiers import VERIFIERS, verify
from ..tasks import load_task, rows_task, sources
from ..tasks.files import read_data
from .coldstart import write_jsonl


@dataclass
class SampleConfig:
    model: str = opt("base", "checkpoint to sample (R1: the reasoning-RL model)")
    task: str = opt("toy", "prompt source: 'toy', 'jsonl' (--data) or a library task")
    data: str | None = opt(None, "prompt file for file-backed tasks")
    out: str = opt("runs/rs/data.jsonl", "output JSONL (prompt, completion, provenance, ...)")
    prompts: int = opt(400, "training prompts to sample")
    samples: int = opt(4, "samples per prompt (n)")
    keep_per_prompt: int = opt(2, "kept samples per prompt at most")
    temperature: float = opt(0.7, "sampling temperature")
    top_p: float = opt(0.95, "sampling top-p")
    max_new_tokens: int = opt(160, "token budget per sample")
    max_paragraph_words: int = opt(200, "drop samples with a paragraph of more words (paper: long paragraphs)")
    general: int = opt(300, "general-purpose examples mixed in: the first N of --general-data, or the embedded "
                       "world's (0 = none)")
    general_data: str = opt("", "general-purpose SFT data: rows with prompt and completion (empty: the embedded world's)")
    general_full_share: float = opt(0.2, "embedded world: share of general examples answered with a full sentence")
    safety: int = opt(60, "refusals of harmful requests mixed in: the first N of --safety-data, or the embedded "
                      "world's (0 = none)")
    safety_data: str = opt("", "refusals / safety SFT data: rows with prompt and completion (empty: the embedded world's)")
    language: str = opt("toy", "language identifier of the single-language filter: 'toy' (the embedded lexicon), "
                        "'lingua:en,es' (real text, these languages; rows without 'lang' are in the first; "
                        "r1lab[lang]) or 'lingua' (every language)")
    judge: str = opt("", "local model judging correctness where the example has no rule verifier")
    template: str = opt("r1-zero", "prompt template")
    seed: int = opt(0, "seed of prompts and sampling")


# ---- filters: each takes one completion (and its example) and says whether to keep it -----------

def well_formed(text: str, example: dict) -> bool:
    return parse_response(text).well_formed


def single_language(text: str, example: dict, identifier=None, default_lang: str = "en") -> bool:
    """The chain of thought is entirely in the question's language."""
    return consistency(text, example.get("lang", default_lang), identifier or toy_identifier()) >= 1.0


def no_long_paragraphs(text: str, max_words: int) -> bool:
    return all(len(p.split()) <= max_words for p in re.split(r"\n\s*\n|\n", text[:MAX_CHARS]))


def no_code_blocks(text: str) -> bool:
    return "```" not in text and "<code>" not in text


def dedupe_key(text: str) -> str:
    return " ".join(text.split()).lower()


class Judge:
    """A local model as a correctness judge: compares the probabilities of " yes" and " no" after a
    question that shows the reference and the prediction (for answers no rule can check)."""

    def __init__(self, path: str):
        import torch

        self.torch = torch
        self.tok = load_tokenizer(path)
        self.model = load_model(path).eval()
        self.yes = self.tok(" yes", add_special_tokens=False)["input_ids"][-1]
        self.no = self.tok(" no", add_special_tokens=False)["input_ids"][-1]

    def __call__(self, answer: str, example: dict) -> bool:
        prompt = (f"Question: {example['prompt']}\nReference answer: {example['answer']}\n"
                  f"Predicted answer: {answer.strip()[:2000]}\nIs the prediction correct? Answer yes or no:")
        ids = self.torch.tensor([self.tok(prompt, add_special_tokens=False)["input_ids"][-2048:]])
        with self.torch.no_grad():
            logits = self.model(input_ids=ids).logits[0, -1]
        return bool(logits[self.yes] > logits[self.no])


def is_correct(text: str, example: dict, judge: Judge | None = None) -> bool:
    answer = parse_response(text).answer
    if example.get("verifier", "number") not in VERIFIERS and judge is not None:
        return answer is not None and judge(answer, example)
    return verify(answer, example)


def rejection_sample(cfg: SampleConfig, examples: list[dict] | None = None) -> list[dict]:
    """Sample, filter, dedupe, mix; writes and returns the SFT rows. `examples`: the prompts' rows
    (r1lab.sample's data) instead of cfg.task/cfg.data."""
    check_positive(cfg, ["prompts", "samples", "keep_per_prompt", "max_new_tokens", "max_paragraph_words"])
    task = load_task(cfg.task, cfg.data, eval_problems=0) if examples is None else rows_task("data", examples, [], 0)
    general, refusals = mix_data(cfg)  # read before sampling: a bad file stops before any work
    language = run_identifier(cfg.language)
    examples = task.train.batch(0, min(cfg.prompts, len(task.train.examples)), cfg.seed + 500)
    world, device = dist.init("auto")
    tok = load_tokenizer(cfg.model)
    model = load_model(cfg.model, device=device)
    judge = Judge(cfg.judge) if cfg.judge else None
    texts, _, _ = sample_completions(
        model, tok, examples, EvalConfig(k=cfg.samples, temperature=cfg.temperature, top_p=cfg.top_p,
                                         max_new_tokens=cfg.max_new_tokens, template=cfg.template, prompts_per_batch=32),
        world=world, seed_of=lambda e: zlib.crc32(f"rs|{cfg.seed}|{e['prompt']}".encode()))
    stats = Counter()
    rows = []
    for i, ex in enumerate(examples):
        kept, seen = 0, set()
        for text in texts[i * cfg.samples:(i + 1) * cfg.samples]:
            reason = _rejected_by(text, ex, cfg, judge, seen, language)
            stats[reason or "kept"] += 1
            if reason:
                continue
            seen.add(dedupe_key(text))
            rows.append({"prompt": ex["prompt"], "completion": text.strip(), "answer": ex["answer"],
                         "lang": ex.get("lang", "en"), "kind": "reasoning", "provenance": "rejection-sampled"})
            kept += 1
            if kept >= cfg.keep_per_prompt:
                break
    n_reasoning = len(rows)
    rows += general + refusals
    if world.main:
        write_jsonl(Path(cfg.out), rows)
        print(f"sample: {len(texts)} samples -> {n_reasoning} kept ({dict(stats)}); "
              f"+{len(rows) - n_reasoning} general -> {cfg.out}")
    dist.barrier(world)
    return rows


def mix_data(cfg: SampleConfig) -> tuple[list[dict], list[dict]]:
    """(general rows, refusal rows) to mix in: the first `general` / `safety` rows of the files (round
    and round if fewer), or the embedded world's when no file is given and the task is the world's."""
    def first(path: str, n: int) -> list[dict]:
        rows = read_data(path, ("prompt", "completion"))
        return [{k: v for k, v in rows[i % len(rows)].items() if k != "_line"} for i in range(n)]

    general = first(cfg.general_data, cfg.general) if cfg.general_data and cfg.general else []
    refusals = first(cfg.safety_data, cfg.safety) if cfg.safety_data and cfg.safety else []
    if cfg.task == "toy" and cfg.general and not cfg.general_data:  # the world draws both from one stream
        world_general, world_refusals = sources.general_mix(cfg.general, cfg.seed, cfg.general_full_share, cfg.safety)
        general, refusals = world_general, refusals if cfg.safety_data else world_refusals
    for row in general:
        row.setdefault("kind", "general")
        row.setdefault("provenance", "general")
    for row in refusals:
        row.setdefault("kind", "harmful")
        row.setdefault("provenance", "safety")
    return general, refusals


def _rejected_by(text: str, ex: dict, cfg: SampleConfig, judge, seen: set, language=None) -> str | None:
    """The first filter a sample fails, or None when it is kept (language: the run's identifier and
    the language of rows without "lang"; with a run-level language every row is checked)."""
    identifier, default_lang = language or run_identifier(cfg.language)
    if not well_formed(text, ex):
        return "malformed"
    if not is_correct(text, ex, judge):
        return "wrong"
    if (ex.get("lang") or ":" in cfg.language) and not single_language(text, ex, identifier, default_lang):
        return "mixed_language"
    if not no_long_paragraphs(text, cfg.max_paragraph_words):
        return "long_paragraph"
    if not no_code_blocks(text):
        return "code_block"
    if dedupe_key(text) in seen:
        return "duplicate"
    return None
