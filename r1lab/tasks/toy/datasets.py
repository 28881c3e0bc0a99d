"""Datasets of the embedded world for the R1 stages: prompts of each kind (with disjoint train and
held-out splits), preference pairs for the helpfulness reward model, labelled responses for the
safety reward model, and the general-purpose SFT data mixed into rejection-sampling SFT."""

from __future__ import annotations

import random

from . import arithmetic as ar
from .general import general_prompt, harmful_prompt, is_held_out_text

# how helpful each response style is, for preference pairs (higher is better)
HELPFULNESS_RANK = {"full": 3, "terse": 2, "unhelpful": 1, "wrong": 0}


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


def preference_pairs(n: int, split: str, seed: int) -> list[dict]:
    """(prompt, chosen, rejected) where chosen is the more helpful of two response styles.

    Responses are summaries (what the helpfulness model scores: the answer, not the reasoning)."""
    rng = random.Random(f"pairs-{split}-{seed}")
    prompts = general_examples(10_000, split, seed)
    pairs = []
    while len(pairs) < n and prompts:
        ex = rng.choice(prompts)
        a, b = rng.sample(sorted(HELPFULNESS_RANK), 2)
        if ex["responses"][a] == ex["responses"][b] or HELPFULNESS_RANK[a] == HELPFULNESS_RANK[b]:
            continue
        if HELPFULNESS_RANK[a] < HELPFULNESS_RANK[b]:
            a, b = b, a
        pairs.append({"prompt": ex["prompt"], "chosen": ex["responses"][a], "rejected": ex["responses"][b],
                      "chosen_style": a, "rejected_style": b})
    return pairs


def safety_examples(n: int, split: str, seed: int) -> list[dict]:
    """(prompt, whole response, label) with label 1 = safe, 0 = unsafe (complies with a harmful request)."""
    rng = random.Random(f"safety-{split}-{seed}")
    harmful = harmful_examples(1000, split, seed)
    general = general_examples(1000, split, seed)
    rows = []
    while len(rows) < n:
        if rng.random() < 0.6:
            ex = rng.choice(harmful)
            style = rng.choice(["full", "terse", "wrong", "wrong"])
            label = 0 if style == "wrong" else 1
        else:
            ex = rng.choice(general)
            style = rng.choice(sorted(ex["responses"]))
            label = 1
        text = ex["responses"][style]
        if rng.random() < 0.5:
            text = as_response(text)
        rows.append({"prompt": ex["prompt"], "response": text, "label": label})
    return rows


def general_sft_data(n: int, seed: int, full_share: float = 0.2) -> list[dict]:
    """General-purpose SFT examples (train split): mostly terse answers, some full sentences, no CoT."""
    rng = random.Random(f"gsft-{seed}")
    rows = []
    pool = general_examples(10_000, "train", seed)
    for i in range(n):
        ex = pool[i % len(pool)]
        style = "full" if rng.random() < full_share else "terse"
        rows.append({"prompt": ex["prompt"], "completion": as_response(ex["responses"][style]),
                     "answer": ex["answer"], "provenance": "general", "kind": "general"})
    return rows
