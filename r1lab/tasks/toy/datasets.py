"""Datasets of the embedded world for the R1 stages: prompts of each kind (with disjoint train and
held-out splits), preference pairs for the helpfulness reward model, labelled responses for the
safety reward model, and the general-purpose SFT data mixed into rejection-sampling SFT."""

from __future__ import annotations

import random

from . import arithmetic as ar
from .general import general_prompt, harmful_prompt, is_held_out_text

# how helpful each response style is, for preference pairs (higher is better). "off_topic" answers
# another question (or rambles through a multiplication); "empty" says nothing.
HELPFULNESS_RANK = {"full": 3, "terse": 2, "unhelpful": 1, "wrong": 0, "wrong_full": 0, "off_topic": 0, "empty": 0}


def reasoning_examples(n: int, split: str, seed: int) -> list[dict]:
    return [p.example() for p in ar.problems(n, split, seed)]


def _distinct(make, n: int, split: str, seed: int, salt: str, max_tries: int = 20_000) -> list[dict]:
    """Up to n distinct prompts of one split drawn by `make(rng)` (the world is small: fewer if exhausted)."""
    rng = random.Random(f"{salt}-{split}-{seed}")
    seen, out = set(), []
    for _ in range(max_tries):
        ex = make(rng)
        if ex["prompt"] in seen or is_held_out_text(ex["prompt"]) != (split == "test"):
            continue
        seen.add(ex["prompt"])
        out.append(ex)
        if len(out) == n:
            break
    return out


def general_examples(n: int, split: str, seed: int) -> list[dict]:
    """General-purpose prompts (translation, facts, greetings, lists, benign how-tos)."""
    def make(rng):
        if rng.random() < 0.15:
            ex = harmful_prompt(rng, benign_share=1.0)
        else:
            ex = general_prompt(rng)
        return ex
    return _distinct(make, n, split, seed, "general")


def harmful_examples(n: int, split: str, seed: int) -> list[dict]:
    """Requests to do harm; the wanted response is a refusal."""
    return _distinct(lambda rng: harmful_prompt(rng, benign_share=0.0), n, split, seed, "harmful")


def as_response(text: str) -> str:
    """A general-purpose response in the R1 format of the world: no chain of thought, one answer block."""
    return f"<answer> {text} </answer>"


def _off_topic(rng: random.Random, pool: list[dict], prompt: str) -> str:
    if rng.random() < 0.3:
        p = ar.sample_problem(rng, "train")
        text, _ = ar.worked_solution(p, p.lang, rng)
        return text
    other = rng.choice([ex for ex in pool[:50] if ex["prompt"] != prompt] or pool)
    return other["responses"][rng.choice(["full", "terse"])]


def _styled(ex: dict, style: str, rng: random.Random, pool: list[dict]) -> str:
    if style == "off_topic":
        return _off_topic(rng, pool, ex["prompt"])
    if style == "empty":
        return ""
    return ex["responses"][style]


def preference_pairs(n: int, split: str, seed: int) -> list[dict]:
    """(prompt, chosen, rejected) where chosen is the more helpful of two responses.

    Responses are summaries (what the helpfulness model scores: the answer, not the reasoning).
    Off-topic and empty responses are among the rejected ones, so that a policy cannot please the
    model by answering something else."""
    rng = random.Random(f"pairs-{split}-{seed}")
    prompts = general_examples(10_000, split, seed)
    pairs = []
    while len(pairs) < n and prompts:
        ex = rng.choice(prompts)
        a, b = rng.sample(sorted(HELPFULNESS_RANK), 2)
        if HELPFULNESS_RANK[a] == HELPFULNESS_RANK[b]:
            continue
        if HELPFULNESS_RANK[a] < HELPFULNESS_RANK[b]:
            a, b = b, a
        chosen, rejected = _styled(ex, a, rng, prompts), _styled(ex, b, rng, prompts)
        if chosen == rejected:
            continue
        pairs.append({"prompt": ex["prompt"], "chosen": chosen, "rejected": rejected,
                      "chosen_style": a, "rejected_style": b})
    return pairs


def safety_examples(n: int, split: str, seed: int) -> list[dict]:
    """(prompt, whole response, label): 1 = safe, 0 = unsafe.

    The world's notion of harm: a harmful request must be refused; any other response to it (doing
    it, answering something else, or a refusal whose reasoning spells the harm out) is unsafe.
    Every response to a general prompt is safe (refusing one is unhelpful, not unsafe)."""
    rng = random.Random(f"safety-{split}-{seed}")
    harmful = harmful_examples(1000, split, seed)
    general = general_examples(1000, split, seed)
    rows = []
    while len(rows) < n:
        if rng.random() < 0.6:
            ex = rng.choice(harmful)
            kind = rng.choice(["refuse", "refuse", "comply", "other", "hidden"])
            refusal = ex["responses"][rng.choice(["full", "terse"])]
            if kind == "refuse":
                text, label = refusal, 1
            elif kind == "comply":
                text, label = ex["responses"]["wrong"], 0
            elif kind == "other":
                text, label = _off_topic(rng, general, ex["prompt"]), 0
            else:
                text, label = f"<think> {ex['responses']['wrong']} </think> {as_response(refusal)}", 0
        else:
            ex = rng.choice(general)
            text, label = _styled(ex, rng.choice(sorted(ex["responses"])), rng, general), 1
        if rng.random() < 0.5 and not text.startswith("<think>"):
            text = as_response(text)
        rows.append({"prompt": ex["prompt"], "response": text, "label": label})
    return rows


def general_sft_data(n: int, seed: int, full_share: float = 0.2, safety: int = 60) -> list[dict]:
    """General-purpose SFT examples (train split): mostly terse answers, some full sentences, no chain
    of thought; plus `safety` refusals of harmful requests."""
    rng = random.Random(f"gsft-{seed}")
    rows = []
    pool = general_examples(10_000, "train", seed)
    for i in range(n):
        ex = pool[i % len(pool)]
        style = "full" if rng.random() < full_share else "terse"
        rows.append({"prompt": ex["prompt"], "completion": as_response(ex["responses"][style]),
                     "answer": ex["answer"], "provenance": "general", "kind": "general"})
    harmful = harmful_examples(10_000, "train", seed)
    for i in range(safety if harmful else 0):
        ex = harmful[i % len(harmful)]
        rows.append({"prompt": ex["prompt"], "completion": as_response(ex["responses"][rng.choice(["full", "terse"])]),
                     "answer": ex["answer"], "provenance": "safety", "kind": "harmful"})
    return rows
