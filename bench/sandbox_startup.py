"""Sandbox start-up cost per program: the wall time of `run_python("pass")`, from the launcher's
start to the program's exit status, i.e. what every code-task reward pays before the code runs.

    python bench/sandbox_startup.py                          # this checkout's sandbox
    python bench/sandbox_startup.py --baseline b47302d -n 40 # and an older commit's, side by side

With --baseline, each round runs one trivial program with each version in turn, so both see the
same machine load (other processes on a shared machine move the absolute figures; the ratio moves
much less). Prints the median and 90th percentile in ms per version and the ratio of medians. The
first program of a process also pays one-off costs (the new sandbox asks the interpreter once what
it needs); they are timed apart and not in the medians.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def load_baseline(rev: str, folder: str):
    """r1lab/sandbox.py as it was at `rev`, imported from a file of its own (its launcher runs that
    file as a script, so it has to exist on disk)."""
    source = subprocess.run(["git", "show", f"{rev}:r1lab/sandbox.py"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout
    path = os.path.join(folder, "sandbox_baseline.py")
    with open(path, "w", encoding="utf-8") as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location("sandbox_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


def time_one(module) -> float:
    start = time.perf_counter()
    result = module.run_python("pass", timeout_s=10)
    elapsed = (time.perf_counter() - start) * 1000
    assert result.ok, result
    return elapsed


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    except OSError:
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=30, help="programs per version (after the first)")
    parser.add_argument("--baseline", help="git revision whose r1lab/sandbox.py to time alongside")
    args = parser.parse_args()

    from r1lab import sandbox

    print(f"machine: {platform.platform()}, {cpu_model()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.2f}, python {platform.python_version()}, euid {os.geteuid()}")
    with tempfile.TemporaryDirectory() as folder:
        versions = {"current": sandbox}
        if args.baseline:
            versions = {f"baseline {args.baseline}": load_baseline(args.baseline, folder), **versions}
        times: dict[str, list[float]] = {name: [] for name in versions}
        for name, module in versions.items():
            print(f"{name:>20}: first program {time_one(module):7.1f} ms (includes one-off set-up)")
        for _ in range(args.n):
            for name, module in versions.items():
                times[name].append(time_one(module))
    for name, ts in times.items():
        ts.sort()
        print(f"{name:>20}: median {statistics.median(ts):7.1f} ms, p90 {ts[int(0.9 * (len(ts) - 1))]:7.1f} ms,"
              f" min {ts[0]:7.1f} ms over {len(ts)} programs")
    if args.baseline:
        old, new = (statistics.median(ts) for ts in times.values())
        print(f"ratio current / baseline (medians): {new / old:.2f}")
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
