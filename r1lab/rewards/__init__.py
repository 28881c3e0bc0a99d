"""Rewards: rule-based functions (rules.py), language consistency (language.py) and learned reward
models (models.py), combined with weights. Every part is logged under its own name.

A reward spec is "name=weight,name=weight", e.g. "accuracy=1,format=0.2" (R1-Zero's rule reward).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

from ..errors import UserError
from .language import language_reward, lingua_language_reward
from .rules import accuracy_reward, format_reward

RewardFn = Callable[[list[str], list[dict]], list[float]]
REWARDS: dict[str, RewardFn] = {"accuracy": accuracy_reward, "format": format_reward, "language": language_reward,
                                "language_lingua": lingua_language_reward}
log = logging.getLogger("r1lab")


def parse_spec(spec: str, known: dict[str, RewardFn] | None = None) -> dict[str, float]:
    """"accuracy=1,format=0.2" -> {"accuracy": 1.0, "format": 0.2}, names checked."""
    known = REWARDS if known is None else known
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, weight = part.partition("=")
        name = name.strip()
        if name not in known:
            raise UserError(f"--rewards: unknown reward {name!r}; known: {', '.join(sorted(known))}")
        try:
            weights[name] = float(weight) if weight else 1.0
        except ValueError:
            raise UserError(f"--rewards: weight of {name!r} must be a number, got {weight!r}") from None
    if not weights:
        raise UserError("--rewards: give at least one reward, e.g. 'accuracy=1,format=0.2'")
    for name in weights:  # a reward that needs an optional package says so now, not at the first batch
        check = getattr(known[name], "check", None)
        if check is not None:
            check()
    return weights


@dataclass
class Scores:
    total: list[float]  # weighted sum per completion
    parts: dict[str, list[float]]  # unweighted value of each reward per completion
    errors: int = 0  # completions for which some reward raised (scored 0 for that reward)
    error_messages: list[str] = field(default_factory=list)


def score(completions: list[str], examples: list[dict], weights: dict[str, float],
          fns: dict[str, RewardFn] | None = None) -> Scores:
    """Weighted sum of rewards. A reward that raises scores 0 for that completion and is counted,
    never crashing the run; a batch that raises is retried one completion at a time."""
    fns = REWARDS if fns is None else fns
    parts, errors, messages = {}, [False] * len(completions), []
    for name in weights:
        fn = fns[name]
        try:
            values = [float(v) for v in fn(completions, examples)]
            if len(values) != len(completions):
                raise ValueError(f"reward {name!r} returned {len(values)} values for {len(completions)} completions")
        except Exception as batch_error:  # noqa: BLE001 - contain it, then find which completion failed
            values = []
            for i, (c, ex) in enumerate(zip(completions, examples)):
                try:
                    values.append(float(fn([c], [ex])[0]))
                except Exception as e:  # noqa: BLE001
                    values.append(0.0)
                    errors[i] = True
                    messages.append(f"{name}: {type(e).__name__}: {e}")
            if not messages:
                messages.append(f"{name}: {type(batch_error).__name__}: {batch_error}")
        values = [v if v == v and abs(v) != float("inf") else 0.0 for v in values]  # NaN/inf -> 0
        parts[name] = values
    total = [sum(weights[n] * parts[n][i] for n in weights) for i in range(len(completions))]
    if messages:
        log.warning("reward errors: %s", messages[0])
    return Scores(total, parts, sum(errors), messages)


from . import tasks  # noqa: E402,F401 - registers the task library's verifiers (math, countdown, code, gsm8k)
