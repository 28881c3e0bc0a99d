"""Tasks: a task is prompts with reference answers plus a verifier (named by each example's
"verifier" field, see rewards/verifiers.py).

Every task gives a training `PromptSet` (a fixed list of examples read in a seeded order, epoch by
epoch) and held-out evaluation examples, disjoint from training.

    task = load_task("toy")                                   # the embedded world (default)
    task = load_task(data="train.jsonl")                      # your data: {"prompt", "answer", ...} per row
    task = load_task("my_task.py:task")                       # your task: prompts, references, verifier
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
    """A task by name. `data`/`eval_data` are files for file-backed tasks; `data` with the default
    task means the user's file (JSONL, Parquet or a `save_to_disk` folder)."""
    if ":" in name:
        return user_task(name, data, eval_data, eval_problems)
    if name == "toy" and data:
        name = "file"
    if name == "toy":
        from .toy.arithmetic import problems

        train = [p.example() for p in problems(train_size, "train", seed=0)]
        held = [p.example() for p in problems(eval_problems, "test", seed=1)] if eval_problems else []
        return Task("toy", PromptSet(train), held)
    if name in ("file", "jsonl"):
        from .files import check_rows, rows_of

        if not data:
            raise UserError(f"--task {name} needs --data FILE (JSONL, Parquet or a save_to_disk folder; "
                            "one {\"prompt\": ..., \"answer\": ...} per row)")
        held = check_rows(rows_of(eval_data, eval_data, "test"), eval_data) if eval_data else None
        return rows_task(name, check_rows(rows_of(data), data), held, eval_problems)
    from . import library

    return library.load(name, data=data, eval_data=eval_data, eval_problems=eval_problems)


def rows_task(name: str, train: list[dict], held: list[dict] | None, eval_problems: int) -> Task:
    """A task from checked rows; without `held`, the last fifth (at most eval_problems) is held out
    for evaluation and never trained on."""
    if held is None:
        n_held = min(eval_problems, len(train) // 5)
        held, train = train[len(train) - n_held:] if n_held else [], train[:len(train) - n_held]
    return Task(name, PromptSet(train), held[:eval_problems])


def user_task(spec: str, data: str | None, eval_data: str | None, eval_problems: int) -> Task:
    """`--task PATH.py:NAME`: NAME(data) returns {"train": rows, "eval": rows (optional), "verify":
    fn(answer, example) -> bool (optional)}. `data` is --data (None without it). The verifier is
    registered under its own PATH.py:NAME, so worker processes find it too; each row names it in
    its "verifier" field (rows that already name one keep theirs)."""
    from ..rewards import load_function
    from ..rewards.verifiers import VERIFIERS, function_key
    from .files import check_rows, rows_of

    _, fn = load_function(spec, "--task")
    try:
        got = fn(data)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - the user's code: say where it failed, not a traceback
        raise UserError(f"--task {spec}: failed ({type(e).__name__}: {e})") from None
    if not isinstance(got, dict) or "train" not in got:
        raise UserError(f"--task {spec}: returned a {type(got).__name__}; expected a dict with 'train' (rows) and "
                        "optionally 'eval' (rows) and 'verify' (fn(answer, example) -> bool)")
    unknown = sorted(set(got) - {"train", "eval", "verify"})
    if unknown:
        raise UserError(f"--task {spec}: unknown keys {unknown} (train, eval, verify)")
    train = check_rows(rows_of(got["train"]), f"--task {spec}: train")
    held = check_rows(rows_of(got["eval"]), f"--task {spec}: eval") if got.get("eval") is not None else None
    if eval_data:
        held = check_rows(rows_of(eval_data, eval_data, "test"), eval_data)
    verify = got.get("verify")
    if verify is not None:
        if not callable(verify):
            raise UserError(f"--task {spec}: 'verify' is a {type(verify).__name__}, not a function")
        key = function_key(verify) or f"{spec}#verify"
        VERIFIERS[key] = verify
        for row in train + (held or []):
            row.setdefault("verifier", key)
    return rows_task(spec, train, held, eval_problems)
