"""Jobs with dependencies, run side by side in worker processes (the pipeline's stages).

Some stages of this project's tiny models are mostly framework overhead, so a second CPU thread
barely speeds them up, while two of them on one thread each run nearly side by side: on the 2-core
machine with AVX512-BF16, 8 steps of `r1lab zero` took 20.8 s on one thread and 20.0 s on two,
and two such runs at once 25.4 s for both (single runs). Others do gain from a second thread (stage
4's GRPO: 189.3 s on one thread, 136.4 s on two, in two runs of the pipeline hours apart).
`run_graph` runs named jobs on `lanes` worker processes: a job
starts once every job it depends on is done, the earliest-listed ready job first; it runs on its
share of the CPU threads beside the others, or, if it is listed to run alone, on all of them with
the other workers idle. Which of the two a job gets is fixed by the job, never by timing, so a
run's numbers do not depend on the order in which jobs happened to finish.

Every worker is a fresh interpreter (spawn: forking a process that has started torch's thread pool
can hang) that lives for the whole run. It dies with the process that started it (Linux:
PR_SET_PDEATHSIG), so a killed pipeline leaves nothing running that could write into the folder a
resumed run then uses. Its output lines are prefixed with the job they come from.
"""

from __future__ import annotations

import io
import multiprocessing as mp
import sys
import traceback
from multiprocessing.connection import wait
from typing import Callable

from .errors import UserError


def ready(order: list[str], deps: dict[str, list[str]], done: set[str], started: set[str]) -> str | None:
    """The first job of `order` not started yet whose dependencies are all done (None: none is)."""
    for name in order:
        if name not in started and all(d in done for d in deps.get(name, ())):
            return name
    return None


def run_graph(order: list[str], deps: dict[str, list[str]], setup: Callable, args: tuple, lanes: int,
              threads: int, alone: set[str] = frozenset(), on_start: Callable[[str, int], None] = lambda name, n: None,
              on_done: Callable[[str, object], None] = lambda name, result: None) -> dict[str, object]:
    """Run every job of `order` on `lanes` workers; returns each job's result by name.

    A job runs on `threads // lanes` CPU threads beside the others, or, if it is in `alone`, on all
    `threads` with every other worker idle (stages that a second thread does speed up); which it is
    depends on the job only, never on timing. setup(*args), called once in each worker, returns
    run(name) -> result (picklable); `setup` must be a module-level function. A dependency outside
    `order` counts as done. on_start(name, threads) and on_done(name, result) are called here. A
    job that fails stops the run: the other workers are killed (what they were doing resumes on the
    next run) and the job's UserError is raised again here, or a RuntimeError with its traceback."""
    deps = {n: [d for d in deps.get(n, ()) if d in order] for n in order}
    share = max(1, threads // lanes)
    ctx = mp.get_context("spawn")
    workers = []  # [process, connection, job it runs or None]
    try:
        for _ in range(max(1, min(lanes, len(order)))):
            here, there = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(there, setup, args))
            proc.start()
            there.close()
            workers.append([proc, here, None])
        done: set[str] = set()
        started: set[str] = set()
        results: dict[str, object] = {}
        while len(done) < len(order):
            for w in workers:
                name = ready(order, deps, done, started) if w[2] is None else None
                if name is None or (name in alone and any(other[2] for other in workers)):
                    continue  # a job that runs alone waits for the others to finish; nothing starts meanwhile
                n = threads if name in alone else share
                started.add(name)
                w[2] = name
                w[1].send((name, n))
                on_start(name, n)
                if name in alone:
                    break
            busy = [w for w in workers if w[2]]
            if not busy:
                raise RuntimeError(f"jobs waiting on each other: {sorted(set(order) - done)}")
            wait([w[1] for w in busy] + [w[0].sentinel for w in busy])
            for w in busy:
                if w[1].poll():
                    kind, name, value = w[1].recv()
                    if kind == "user_error":
                        raise UserError(f"{name}: {value}")
                    if kind == "error":
                        raise RuntimeError(f"{name} failed:\n{value}")
                    results[name] = value
                    done.add(name)
                    w[2] = None
                    on_done(name, value)
                elif not w[0].is_alive():
                    raise RuntimeError(f"the worker running {w[2]} died (exit code {w[0].exitcode})")
        return results
    finally:
        for proc, conn, job in workers:
            if job is None and proc.is_alive():
                try:
                    conn.send(None)  # idle: told to leave
                except OSError:
                    pass
            else:
                proc.kill()  # busy (only after a failure): its job resumes from its last checkpoint next run
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
                proc.join()


def _die_with_parent() -> None:
    """Ask the kernel to kill this process when its parent dies (Linux only; elsewhere a no-op)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
        except OSError:
            pass


class Prefixed(io.TextIOBase):
    """A text stream that writes whole lines to `stream`, each after `prefix()`."""

    def __init__(self, stream, prefix: Callable[[], str]):
        self.stream, self.prefix, self.pending = stream, prefix, ""

    def write(self, text: str) -> int:
        lines = (self.pending + text).split("\n")
        self.pending = lines.pop()
        if lines:
            tag = self.prefix()
            self.stream.write("".join(f"{tag}{line}\n" for line in lines))
            self.stream.flush()
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:  # no progress bars redrawn in place: two workers would garble each other's
        return False


def _worker(conn, setup: Callable, args: tuple) -> None:
    _die_with_parent()
    import torch

    job = [""]
    sys.stdout = Prefixed(sys.__stdout__, lambda: f"[{job[0]}] ")
    sys.stderr = Prefixed(sys.__stderr__, lambda: f"[{job[0]}] ")
    try:
        run = setup(*args)
        while (task := conn.recv()) is not None:
            name, threads = task
            job[0] = name
            torch.set_num_threads(threads)
            try:
                conn.send(("done", name, run(name)))
            except UserError as e:
                conn.send(("user_error", name, str(e)))
            except Exception:  # noqa: BLE001 - reported to the parent, which stops the run
                conn.send(("error", name, traceback.format_exc()))
            sys.stdout.flush()
    except (KeyboardInterrupt, EOFError):  # Ctrl-C reaches every process; the parent reports it
        pass
