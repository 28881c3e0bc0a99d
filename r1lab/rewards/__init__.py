"""Rewards: rule-based functions (rules.py), language consistency (language.py), learned reward
models (models.py) and the user's own, combined with weights. Every part is logged under its own name.

The contract, one for built-in and user rewards:

    fn(completions: list[str], examples: list[dict]) -> list[float | None]

`examples[i]` is the whole data row that completion i answers (every column: "answer", "tests",
"lang", ...). None means "does not apply to this sample": it adds nothing to the total and is left
out of that part's logged mean. An `async def` reward is awaited together with the other async ones.

A reward spec is "name=weight,name=weight", e.g. "accuracy=1,format=0.5" (R1-Zero's rule reward);
`--reward-fn PATH.py:NAME` (or `module:NAME`) adds a user function to the names it may use.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import hashlib
import importlib
import importlib.util
import inspect
import logging
import math
import multiprocessing
import numbers
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import UserError
from .language import language_reward, lingua_language_reward
from .rules import accuracy_reward, format_reward

RewardFn = Callable[[list[str], list[dict]], list[float | None]]
REWARDS: dict[str, RewardFn] = {"accuracy": accuracy_reward, "format": format_reward, "language": language_reward,
                                "language_lingua": lingua_language_reward}
log = logging.getLogger("r1lab")


# ---------------------------------------------------------------- user functions by name


_MODULES: dict[str, object] = {}  # resolved file path -> its module, loaded once per process


class FileFunction:
    """A function defined in a Python file, called by (path, name). It pickles as the pair, so a
    worker process loads the file itself (a file is not an importable module)."""

    def __init__(self, path: str, name: str, flag: str = "--reward-fn"):
        self.path, self.name, self.flag = str(Path(path).resolve()), name, flag
        self.__name__ = name

    def load(self):
        module = _MODULES.get(self.path)
        if module is None:
            digest = hashlib.sha1(self.path.encode()).hexdigest()[:8]
            spec = importlib.util.spec_from_file_location(f"r1lab_user_{Path(self.path).stem}_{digest}", self.path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module  # dataclasses and pickling inside the file need it
            try:
                spec.loader.exec_module(module)
            except Exception as e:  # noqa: BLE001 - any error in the user's file stops the run here
                del sys.modules[spec.name]
                raise UserError(f"{self.flag} {self.path}: the file fails to load ({type(e).__name__}: {e})") from None
            _MODULES[self.path] = module
        fn = getattr(module, self.name, None)
        if fn is None:
            raise UserError(f"{self.flag} {self.path}:{self.name}: the file defines no {self.name!r}")
        if not callable(fn):
            raise UserError(f"{self.flag} {self.path}:{self.name}: {self.name!r} is a {type(fn).__name__}, "
                            "not a function")
        return fn

    def __call__(self, *args, **kwargs):
        return self.load()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"{self.path}:{self.name}"


def load_function(spec: str, flag: str = "--reward-fn") -> tuple[str, Callable]:
    """"PATH.py:NAME" or "module:NAME" -> (NAME, the function), checked now: a missing file, module
    or name, or a name that is not callable, is a UserError naming the file and the name."""
    target, sep, name = str(spec).rpartition(":")
    if not sep or not target.strip() or not name.isidentifier():
        raise UserError(f"{flag} {spec!r}: expected PATH.py:NAME or module:NAME (NAME a Python name)")
    if target.endswith(".py") or "/" in target or "\\" in target:
        if not Path(target).is_file():
            raise UserError(f"{flag} {spec}: no such file {target!r}")
        fn = FileFunction(target, name, flag)
        fn.load()
        return name, fn
    try:
        module = importlib.import_module(target)
    except ImportError as e:
        raise UserError(f"{flag} {spec}: cannot import module {target!r} ({e})") from None
    fn = getattr(module, name, None)
    if fn is None:
        raise UserError(f"{flag} {spec}: module {target!r} defines no {name!r}")
    if not callable(fn):
        raise UserError(f"{flag} {spec}: {name!r} is a {type(fn).__name__}, not a function")
    return name, fn


def load_reward_fns(specs: list[str]) -> dict[str, RewardFn]:
    """Each `--reward-fn` spec registered under its NAME (a name given twice is an error)."""
    fns: dict[str, RewardFn] = {}
    for spec in specs:
        name, fn = load_function(spec, "--reward-fn")
        if name in fns or name in REWARDS:
            raise UserError(f"--reward-fn {spec}: the name {name!r} is taken (a built-in or another --reward-fn)")
        fns[name] = fn
    return fns


def parse_spec(spec: str, known: dict[str, RewardFn] | None = None) -> dict[str, float]:
    """"accuracy=1,format=0.2" -> {"accuracy": 1.0, "format": 0.2}, names checked."""
    known = REWARDS if known is None else known
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, weight = part.partition("=")
        name = name.strip()
        if name not in known:
            raise UserError(f"--rewards: unknown reward {name!r}; known: {', '.join(sorted(known))} "
                            "(add your own with --reward-fn PATH.py:NAME)")
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


# ---------------------------------------------------------------- calling rewards


ALL_RAISED = "raised on every sample"


@dataclass
class Part:
    """One reward's values on a batch, after containment."""

    values: list[float | None]  # None: does not apply; 0.0 where the reward failed
    failed: list[bool]  # the reward raised, timed out or returned something unusable for this sample
    problem: str | None = None  # what broke the contract (wrong length, type, NaN), if anything
    message: str | None = None  # the first error, for the log


def _run_async(awaitable):
    """Await from synchronous code, also when the caller already runs an event loop (a notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(awaitable)
    with cf.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, awaitable).result()


async def _gather(awaitables):
    return await asyncio.gather(*awaitables, return_exceptions=True)


def _call(fns: dict[str, RewardFn], completions, examples) -> dict:
    """Every reward on the batch: its raw result or the exception it raised. Async rewards run
    concurrently, in one event loop."""
    results, pending = {}, {}
    for name, fn in fns.items():
        try:
            out = fn(completions, examples)
        except Exception as e:  # noqa: BLE001 - contained below
            results[name] = e
            continue
        if inspect.isawaitable(out):
            pending[name] = out
        else:
            results[name] = out
    if pending:
        results.update(zip(pending, _run_async(_gather(list(pending.values())))))
    return results


def _problem(out, n: int) -> str | None:
    """Why a raw result breaks the contract, or None when it is n numbers-or-None, all finite."""
    if isinstance(out, (str, bytes, dict)) or not hasattr(out, "__len__"):
        return f"returned a {type(out).__name__}, expected a list of {n} numbers or None"
    if len(out) != n:
        return f"returned {len(out)} values for {n} completions"
    for i, v in enumerate(out):
        if v is None:
            continue
        if not isinstance(v, numbers.Real):
            return f"returned a {type(v).__name__} at position {i}, expected a number or None"
        if not math.isfinite(float(v)):
            return f"returned {float(v)} at position {i}"
    return None


def _contain(name: str, fn: RewardFn, out, completions, examples) -> Part:
    """A batch result made safe: when the batch raised or broke the contract, every completion is
    scored alone, and the ones that still fail score 0 and are counted."""
    problem = None if isinstance(out, Exception) else _problem(out, len(completions))
    if not isinstance(out, Exception) and problem is None:
        return Part([None if v is None else float(v) for v in out], [False] * len(completions))
    first = f"{type(out).__name__}: {out}" if isinstance(out, Exception) else problem
    values, failed = [], []
    for c, ex in zip(completions, examples):
        one = _call({name: fn}, [c], [ex])[name]
        bad = one if isinstance(one, Exception) else _problem(one, 1)
        values.append(0.0 if bad else (None if one[0] is None else float(one[0])))
        failed.append(bool(bad))
    if problem is None and all(failed):  # no sample scored: on a first batch that is a bug, not bad luck
        problem = f"{ALL_RAISED} ({first})"
    return Part(values, failed, problem, f"{name}: {first}")


def evaluate_parts(fns: dict[str, RewardFn], completions: list[str], examples: list[dict]) -> dict[str, Part]:
    """Every reward on a batch, contained (this runs in a worker process with --reward-workers)."""
    raw = _call(fns, completions, examples)
    return {name: _contain(name, fns[name], raw[name], completions, examples) for name in fns}


@dataclass
class Scores:
    total: list[float]  # weighted sum per completion (rewards that return None add nothing)
    parts: dict[str, list[float | None]]  # unweighted value of each reward per completion, None = n/a
    errors: int = 0  # completions for which some reward raised, hung or broke the contract (scored 0)
    error_messages: list[str] = field(default_factory=list)


def combine(parts: dict[str, Part], weights: dict[str, float]) -> Scores:
    n = len(next(iter(parts.values())).values)
    total = [sum(weights[k] * p.values[i] for k, p in parts.items() if p.values[i] is not None) for i in range(n)]
    errors = sum(any(p.failed[i] for p in parts.values()) for i in range(n))
    messages = [p.message for p in parts.values() if p.message]
    if messages:
        log.warning("reward errors: %s", messages[0])
    return Scores(total, {k: p.values for k, p in parts.items()}, errors, messages)


def score(completions: list[str], examples: list[dict], weights: dict[str, float],
          fns: dict[str, RewardFn] | None = None) -> Scores:
    """Weighted sum of rewards, in this process. A reward that raises scores 0 for that completion
    and is counted, never crashing the run; a batch that fails is retried one completion at a time."""
    fns = REWARDS if fns is None else fns
    return combine(evaluate_parts({k: fns[k] for k in weights}, completions, examples), weights)


class RewardRunner:
    """Scores batches for a training run: the first batch of each reward is checked strictly (a
    broken contract, or an exception on every sample, stops the run with the reward's name), later
    ones are contained. With `workers` > 0 the rewards run in that many processes, each reward's
    call bounded by `timeout` seconds; a call that hangs or kills its process scores 0 for that
    reward's samples only, and the pool is replaced.

    Workers get the functions by name (`verifiers.function_key`) through their initializer, with
    the verifiers registered here; a reward that no other process can load runs here, and so does
    every reward when a registered verifier is a closure (accuracy, or a user reward, may route
    to it, and a worker could not)."""

    def __init__(self, fns: dict[str, RewardFn], workers: int = 0, timeout: float = 0.0):
        from .verifiers import function_key, shippable

        self.fns, self.workers, self.timeout = fns, workers, timeout
        self.checked: set[str] = set()
        self._pool = None
        self.verifiers, stuck = shippable()
        keys = {k: function_key(fn) for k, fn in fns.items()} if workers and not stuck else {}
        self.keys = {k: key for k, key in keys.items() if key}
        local = sorted(set(fns) - set(self.keys))
        if workers and stuck:
            log.warning("verifiers %s cannot be loaded by a worker process (closures); every reward runs here",
                        ", ".join(stuck))
        elif workers and local:
            log.warning("rewards %s cannot be sent to a worker process (not importable by name); they run here",
                        ", ".join(local))

    def score(self, completions: list[str], examples: list[dict], weights: dict[str, float]) -> Scores:
        remote = [k for k in weights if k in self.keys]
        parts = evaluate_parts({k: self.fns[k] for k in weights if k not in remote}, completions, examples)
        for name in remote:
            parts[name] = self._in_workers(name, completions, examples)
        for name in weights:
            if name not in self.checked and parts[name].problem:
                raise UserError(f"reward {name!r} {parts[name].problem} (first batch; the contract is "
                                "fn(completions, examples) -> list[float | None], one value per completion)")
            self.checked.add(name)
        return combine({k: parts[k] for k in weights}, weights)

    def _in_workers(self, name: str, completions, examples) -> Part:
        """One reward on the batch, split into one chunk per worker. One reward at a time, so that a
        chunk that times out or crashes fails only that reward's samples: the others' calls are
        never queued behind it nor killed with it. A worker that dies fails every call still in
        flight, its own and the other workers': those run again one at a time in a fresh pool, so
        that only the chunk that kills its worker scores 0."""
        n = len(completions)
        size = -(-n // self.workers)
        chunks = [(s, min(n, s + size)) for s in range(0, n, size)]
        got = self._run_chunks(name, chunks, completions, examples)
        if len(chunks) > 1:
            for i, g in enumerate(got):
                if isinstance(g, cf.process.BrokenProcessPool):
                    got[i] = self._run_chunks(name, [chunks[i]], completions, examples)[0]
        part = Part([], [], None, None)
        for (a, b), g in zip(chunks, got):
            if isinstance(g, Exception):
                why = (f"no result within --reward-timeout {self.timeout:g} s" if isinstance(g, cf.TimeoutError)
                       else f"{type(g).__name__}: {g}")
                g = Part([0.0] * (b - a), [True] * (b - a), None, f"{name}: {why}")
            part.values += g.values
            part.failed += g.failed
            part.message = part.message or g.message
            if g.problem and not part.problem:
                part.problem = g.problem
        if part.problem and part.problem.startswith(ALL_RAISED) and not all(part.failed):
            part.problem = None  # one chunk's samples all raised, another's did not: contained
        return part

    def _run_chunks(self, name: str, chunks, completions, examples) -> list:
        """Each chunk's Part, or the exception its call ended with (a timeout, a dead worker,
        unpicklable data); after any such failure the pool is ended, to start afresh next call."""
        pool = self._get_pool()
        futures = [pool.submit(_score_here, name, completions[a:b], examples[a:b]) for a, b in chunks]
        deadline = time.monotonic() + self.timeout if self.timeout else None
        got = []
        for fut in futures:
            try:
                got.append(fut.result(timeout=None if deadline is None else max(0.0, deadline - time.monotonic())))
            except Exception as e:  # noqa: BLE001 - contained: that chunk scores 0
                got.append(e)
        if any(isinstance(g, Exception) for g in got):
            self._kill_pool()
        return got

    def _get_pool(self):
        if self._pool is None:
            self._pool = cf.ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                                initializer=_init_worker, initargs=(self.keys, self.verifiers))
            # start every worker now, so that starting a process is not charged to a call's timeout:
            # warm-up calls until each worker has answered one (a worker still importing answers none)
            seen: set[int] = set()
            for _ in range(200):
                seen.update(f.result() for f in [self._pool.submit(_ready) for _ in range(self.workers)])
                if len(seen) >= self.workers:
                    break
        return self._pool

    def _kill_pool(self) -> None:
        """A hung call cannot be cancelled: end the pool's processes and start afresh next batch."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            proc.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _ready() -> int:
    time.sleep(0.05)  # long enough that the warm-up calls of one round spread over the started workers
    return os.getpid()


_WORKER_FNS: dict[str, RewardFn] = {}  # in a worker process: the rewards its parent sent by name


def _init_worker(rewards: dict[str, str], verifiers: dict[str, str]) -> None:
    """A worker's start: load the parent's rewards and verifiers by their function keys."""
    from .verifiers import install

    install(verifiers)
    for name, key in rewards.items():
        _WORKER_FNS[name] = load_function(key)[1]


def _score_here(name: str, completions: list[str], examples: list[dict]) -> Part:
    """One reward on a chunk, in a worker process, contained as in the training process."""
    return evaluate_parts({name: _WORKER_FNS[name]}, completions, examples)[name]


from . import tasks  # noqa: E402,F401 - registers the task library's verifiers (math, countdown, code, gsm8k)
