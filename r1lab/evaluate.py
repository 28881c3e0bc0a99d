"""Evaluation as the paper does it: k samples per problem at temperature 0.6, top-p 0.95.

Metrics over held-out problems:
  pass@1           mean correctness over all samples (R1's pass@1 = (1/k) sum p_i)
  cons@k           majority vote over the k extracted answers (self-consistency)
  pass@j           unbiased estimator 1 - C(n-c, j) / C(n, j) (Chen et al.), for j in 1..k
  answer_accuracy  right answer with the format ignored (last number of the response)
  format           share of samples in the exact <think>...</think><answer>...</answer> format
  language_consistency  share of target-language words in the chain of thought (when the
                   examples carry a "lang")
  mean_length      completion tokens per sample
  reflection_rate  share of samples whose reasoning checks itself ("wait", "let me check", ...)
  corrected_rate   share where a check changed an intermediate result (rewards/parse.py, `reflection`)
  pass@1_checked, pass@1_unchecked   pass@1 of the samples with and without a check (None: no such sample)
  pass@1_by_level, cons@k_by_level   the same per difficulty level, when the examples carry a "level"
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from dataclasses import dataclass

import torch

from .engine import SamplingParams, generate, sample
from .model import decode_completions
from .rewards.parse import parse_number, parse_response, reflection
from .rewards.rules import answer_accuracy
from .rewards.verifiers import verify
from .template import render_prompt


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct: 1 - C(n-c, k) / C(n, k)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def canonical_answer(answer: str | None) -> str | None:
    """The form answers are voted in: numbers by value, text by its stripped lower-case words."""
    if answer is None:
        return None
    number = parse_number(answer)
    if number is not None:
        return str(number)
    text = " ".join(answer.lower().split())[:200]
    return text or None


def majority_vote(answers: list[str | None]) -> str | None:
    """Most frequent non-empty answer; ties go to the one that appeared first."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(a for a in answers if a is not None and counts[a] == best)


@dataclass
class EvalConfig:
    k: int = 4  # samples per problem
    temperature: float = 0.6
    top_p: float = 0.95
    max_new_tokens: int = 128
    template: str = "r1-zero"
    prompts_per_batch: int = 64  # prompts generated together (x k rows)
    seed: int = 1234  # sampling seed, independent of the training seed


def sample_completions(model, tokenizer, examples: list[dict], cfg: EvalConfig, autocast=None, world=None,
                       sync=None, seed_of=None):
    """k completions per example: (texts [N*k], token counts [N*k], truncated [N*k]).

    `model` is a torch model or an inference engine (see engine.sample). With a `world` of several
    processes, each samples its share of every batch of problems and all get the whole result (the
    seeds depend on the problem only, so the samples do not depend on the number of processes); a
    process whose share of a batch is empty samples a stand-in problem, so every process runs the
    same number of generations (`sync`: a model sharded with FSDP2 needs every process in each forward).
    seed_of(example) -> int: the sampling seed of a problem (default: cfg.seed and its prompt).
    """
    from . import dist

    world = world or dist.World()
    params = SamplingParams(cfg.max_new_tokens, cfg.temperature, cfg.top_p)
    mine: list[tuple[int, list[int], bool]] = []  # (index of the problem, completion ids, truncated)
    step = cfg.prompts_per_batch * world.size
    for start in range(0, len(examples), step):
        indices = dist.strided(list(range(start, min(start + step, len(examples)))), world)
        chunk = [examples[i] for i in indices] or [examples[start]]  # a stand-in when this share is empty
        prompts = [tokenizer(render_prompt(ex["prompt"], cfg.template, tokenizer),
                             add_special_tokens=False)["input_ids"] for ex in chunk]
        seeds = [seed_of(ex) if seed_of else zlib.crc32(f"{cfg.seed}|{ex['prompt']}".encode()) for ex in chunk]
        out = sample(model, prompts, cfg.k, params, seeds, eos_id=tokenizer.eos_token_id,
                     pad_id=tokenizer.pad_token_id, autocast=autocast, sync=sync)
        for r, i in enumerate(indices):
            for j in range(cfg.k):
                mine.append((i, out.completions[r * cfg.k + j], out.truncated[r * cfg.k + j]))
    rows = sorted((row for part in dist.gather(mine, world) for row in part), key=lambda row: row[0])
    # sorted() is stable: the k samples of a problem stay in order
    texts = decode_completions(tokenizer, [ids for _, ids, _ in rows])
    return texts, [len(ids) for _, ids, _ in rows], [trunc for _, _, trunc in rows]


def level_order(level) -> tuple[int, str]:
    """Sort key of difficulty levels, keyed as strings: numeric levels in numeric order ("3" < "10")."""
    return len(str(level)), str(level)


def score_samples(texts: list[str], lengths: list[int], examples: list[dict], k: int,
                  language_fn=None) -> dict:
    """All metrics from k samples per example (texts grouped by example)."""
    n = len(examples)
    correct, fmt, loose, langs, looks = [], [], [], [], []
    pass_k = {j: 0.0 for j in sorted({1, k} | {2 ** i for i in range(1, 7) if 2 ** i < k})}
    cons = 0
    by_level: dict[str, list[float]] = {}  # level -> [right samples, samples, right votes, problems,
    #                                              right checked samples, checked samples]
    for i, ex in enumerate(examples):
        group = texts[i * k:(i + 1) * k]
        parsed = [parse_response(t) for t in group]
        ok = [verify(p.answer, ex) for p in parsed]
        correct.extend(ok)
        group_looks = [reflection(t) for t in group]
        looks.extend(group_looks)
        fmt.extend(p.well_formed for p in parsed)
        loose.extend(answer_accuracy(t, ex) for t in group)
        for j in pass_k:
            pass_k[j] += pass_at_k(k, sum(ok), j)
        voted = majority_vote([canonical_answer(p.answer) for p in parsed])
        voted_right = False
        if voted is not None:
            winner = next(p.answer for p in parsed if canonical_answer(p.answer) == voted)
            voted_right = verify(winner, ex)
            cons += voted_right
        if ex.get("level") is not None:
            tally = by_level.setdefault(str(ex["level"]), [0, 0, 0, 0, 0, 0])
            tally[0] += sum(ok)
            tally[1] += k
            tally[2] += voted_right
            tally[3] += 1
            tally[4] += sum(o for o, look in zip(ok, group_looks) if look.checked)
            tally[5] += sum(look.checked for look in group_looks)
        if language_fn is not None and ex.get("lang"):
            langs.extend(v for v in language_fn(group, [ex] * k) if v is not None)
    metrics = {
        "pass@1": sum(correct) / max(1, len(correct)),
        f"cons@{k}": cons / max(1, n),
        "cons@k": cons / max(1, n),
        "answer_accuracy": sum(loose) / max(1, len(loose)),
        "format": sum(fmt) / max(1, len(fmt)),
        "mean_length": sum(lengths) / max(1, len(lengths)),
        "k": k,
        "n_problems": n,
    }
    metrics.update({f"pass@{j}": v / max(1, n) for j, v in pass_k.items() if j > 1})
    checked = [ok for ok, look in zip(correct, looks) if look.checked]
    unchecked = [ok for ok, look in zip(correct, looks) if not look.checked]
    metrics.update({
        "reflection_rate": len(checked) / max(1, len(looks)),
        "corrected_rate": sum(look.corrected for look in looks) / max(1, len(looks)),
        "pass@1_checked": sum(checked) / len(checked) if checked else None,
        "pass@1_unchecked": sum(unchecked) / len(unchecked) if unchecked else None,
    })
    if by_level:
        levels = sorted(by_level, key=level_order)
        metrics["pass@1_by_level"] = {v: by_level[v][0] / by_level[v][1] for v in levels}
        metrics["cons@k_by_level"] = {v: by_level[v][2] / by_level[v][3] for v in levels}
        metrics["reflection_rate_by_level"] = {v: by_level[v][5] / by_level[v][1] for v in levels}
        metrics["pass@1_checked_by_level"] = {v: by_level[v][4] / by_level[v][5] if by_level[v][5] else None
                                              for v in levels}
        metrics["pass@1_unchecked_by_level"] = {
            v: (by_level[v][0] - by_level[v][4]) / (by_level[v][1] - by_level[v][5])
            if by_level[v][1] > by_level[v][5] else None for v in levels}
    if langs:
        metrics["language_consistency"] = sum(langs) / len(langs)
    return metrics


def evaluate(model, tokenizer, examples: list[dict], cfg: EvalConfig, autocast=None, language_fn=None,
             keep_samples: int = 0, world=None, sync=None) -> dict:
    """Sample, score and summarise; `keep_samples` completions are returned for reading. Under
    torchrun every process must call it (see sample_completions); all get the same metrics."""
    texts, lengths, truncated = sample_completions(model, tokenizer, examples, cfg, autocast, world, sync)
    metrics = score_samples(texts, lengths, examples, cfg.k, language_fn)
    metrics["truncated"] = sum(truncated) / max(1, len(truncated))
    if keep_samples:
        metrics["samples"] = [{"prompt": ex["prompt"], "answer": ex["answer"], "completion": texts[i * cfg.k]}
                              for i, ex in enumerate(examples[:keep_samples])]
        aha = aha_sample(texts, examples, cfg.k)
        if aha:
            metrics["aha_sample"] = aha
    return metrics


def aha_sample(texts: list[str], examples: list[dict], k: int) -> dict | None:
    """The first right sample whose reasoning caught an error and corrected it (None: there is none)."""
    for i, text in enumerate(texts):
        ex = examples[i // k]
        if reflection(text).corrected and verify(parse_response(text).answer, ex):
            return {"prompt": ex["prompt"], "answer": ex["answer"], "completion": text, "level": ex.get("level")}
    return None


def evaluate_folders(models: dict[str, str], task, cfg: EvalConfig, keep_samples: int = 0) -> dict:
    """`evaluate` for each named model folder on the task's held-out examples (language consistency
    with the embedded world's lexicon when the task is the embedded one). Under torchrun every
    process samples its share and gets every result."""
    from . import dist
    from .model import load_model, load_tokenizer
    from .rewards import REWARDS

    world, device = dist.init("auto")
    language_fn = REWARDS["language"] if task.name == "toy" else None
    return {name: evaluate(load_model(path, device=device), load_tokenizer(path), task.eval_examples, cfg,
                           language_fn=language_fn, keep_samples=keep_samples, world=world)
            for name, path in models.items()}


@torch.no_grad()
def diagnose_base(model, tokenizer, n: int = 200, device=None) -> dict:
    """What a pretrained base model of the embedded world can do, on held-out problems:
    - direct: greedy continuation of "4821 times 7 is" (the answer without reasoning),
    - worked: greedy continuation of "example : what is 4821 times 7 ?" (the worked solution),
    - template: k=4 samples under the R1-Zero template at the evaluation settings."""
    from .tasks.toy import arithmetic as ar
    from .tasks.toy.lexicon import PHRASES

    probs = ar.problems(n, "test", seed=99)
    examples = [p.example() for p in probs]
    greedy = EvalConfig(k=1, temperature=0.0, max_new_tokens=120)

    def continue_greedy(prefixes):
        out = []
        for s in range(0, len(prefixes), 64):
            ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in prefixes[s:s + 64]]
            r = generate(model, ids, 1, SamplingParams(greedy.max_new_tokens, 0.0), [0] * len(ids),
                         eos_id=tokenizer.eos_token_id, pad_id=tokenizer.pad_token_id)
            out += decode_completions(tokenizer, r.completions)
        return out

    direct = continue_greedy([PHRASES[p.lang]["fact"].format(a=p.a, m=p.m, n="").rstrip() for p in probs])
    direct_ok = [parse_number(t.split(".")[0]) == p.answer for t, p in zip(direct, probs)]
    worked = continue_greedy([f"{PHRASES[p.lang]['example']} : {p.question()} ?" for p in probs])
    worked_ok = [ar_result(t) == p.answer for t, p in zip(worked, probs)]
    template = evaluate(model, tokenizer, examples, EvalConfig(k=4))
    return {"direct_accuracy": sum(direct_ok) / n, "worked_accuracy": sum(worked_ok) / n,
            "template": template, "n_problems": n}


def ar_result(text: str):
    """The number a worked solution ends with ("so the answer is N", first sentence that says it)."""
    from .rewards.parse import last_number

    for marker in ("so the answer is", "así que la respuesta es"):
        i = text.find(marker)
        if i >= 0:
            return last_number(text[i:i + len(marker) + 20])
    return None
