"""Tasks: a task is prompts with reference answers plus a verifier (named by each example's
"verifier" field, see rewards/verifiers.py).

Every task gives a training `PromptSet` (a fixed list of examples read in a seeded order, epoch by
epoch) and held-out evaluation examples, disjoint from training.

    task = load_task("toy")                                   # the embedded world (default)
    task = load_task("jsonl", data="train.jsonl")             # your data: {"prompt", "answer"} per line
    batch = task.train.batch(step=0, n=16, seed=0)            # the 16 prompts of step 0
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..errors import UserError


@dataclass
class PromptSet:
    """A list of examples read in a seeded order: step s takes examples [s*n, (s+1)*n) of the
    concatenated per-epoch permutations. The order depends only on (seed, step, n)."""

    examples: list[dict]

    def __post_init__(self):
        if not self.examples:
            raise UserError("the training set is empty")

    def indices(self, step: int, n: int, seed: int) -> list[int]:
        size = len(self.examples)
        out = []
        for pos in range(step * n, (step + 1) * n):
            epoch, offset = divmod(pos, size)
            out.append(self._perm(epoch, seed)[offset])
        return out

    def batch(self, step: int, n: int, seed: int) -> list[dict]:
        return [self.examples[i] for i in self.indices(step, n, seed)]

    def _perm(self, epoch: int, seed: int) -> list[int]:
        cache = self.__dict__.setdefault("_perms", {})
        key = (epoch, seed)
        if key not in cache:
            order = list(range(len(self.examples)))
            random.Random(f"order-{seed}-{epoch}").shuffle(order)
            cache.clear()
            cache[key] = order
        return cache[key]


@dataclass
class Task:
    name: str
    train: PromptSet
    eval_examples: list[dict]  # held out, at most what was asked for


def load_task(name: str = "toy", data: str | None = None, eval_data: str | None = None,
              eval_problems: int = 200, train_size: int = 20_000) -> Task:
    """A task by name. `data`/`eval_data` are files for file-backed tasks."""
    if name == "toy":
        if data:
            raise UserError("--data is for your own data: use it with --task jsonl (or another file task)")
        from .toy.arithmetic import problems

        train = [p.example() for p in problems(train_size, "train", seed=0)]
        held = [p.example() for p in problems(eval_problems, "test", seed=1)] if eval_problems else []
        return Task("toy", PromptSet(train), held)
    if name == "jsonl":
        from .files import load_examples

        if not data:
            raise UserError("--task jsonl needs --data FILE.jsonl (one {\"prompt\": ..., \"answer\": ...} per line)")
        train = load_examples(data)
        if eval_data:
            held = load_examples(eval_data)[:eval_problems]
        else:
            # no separate eval file: hold out the last examples of the data file (never trained on)
            n_held = min(eval_problems, len(train) // 5)
            held, train = train[len(train) - n_held:] if n_held else [], train[:len(train) - n_held]
        return Task("jsonl", PromptSet(train), held)
    from . import library

    return library.load(name, data=data, eval_data=eval_data, eval_problems=eval_problems)
