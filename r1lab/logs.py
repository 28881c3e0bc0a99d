"""Metrics: one line per step on the terminal (under a progress bar), the same dict appended to
`OUT/metrics.jsonl` (one JSON object per line, with `step`) and written as TensorBoard events in OUT."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

# Shown first, in this order, when present; everything else follows alphabetically.
_FIRST = ["reward", "loss", "accuracy", "format", "language", "len_mean", "kl", "clip_frac", "entropy",
          "grad_norm", "lr", "t_gen", "t_reward", "t_train"]


def _fmt(v) -> str:
    if isinstance(v, float):
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.2e}"
        return f"{v:.4g}"
    return str(v)


class MetricsLog:
    """Append-only metrics for one run. `resume_step` drops rows at or after it (a resumed run
    rewrites them), so the file always reads as one uninterrupted run."""

    def __init__(self, out: Path, name: str, total: int | None = None, resume_step: int | None = None,
                 tensorboard: bool = True, quiet: bool = False, keys: list[str] | None = None):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.path = self.out / "metrics.jsonl"
        self.name = name
        self.keys = keys
        self.quiet = quiet
        if resume_step is not None and self.path.exists():
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", -1) < resume_step]
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text("".join(line + "\n" for line in kept))
            os.replace(tmp, self.path)
        elif resume_step is None and self.path.exists():
            self.path.unlink()
        self._file = open(self.path, "a")
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.out), purge_step=resume_step)
            except ImportError:  # tensorboard is a dependency, but a missing one must not stop training
                self._tb = None
        self._bar = None
        if total is not None and not quiet:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=resume_step or 0, desc=name, unit="step",
                             file=sys.stderr, dynamic_ncols=True, leave=False, disable=None)

    def log(self, step: int, metrics: dict) -> None:
        row = {"step": step, **{k: v for k, v in metrics.items()}}
        self._file.write(json.dumps(row, allow_nan=True) + "\n")
        self._file.flush()
        if self._tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    self._tb.add_scalar(f"{self.name}/{k}", v, step)
        if not self.quiet:
            keys = self.keys or ([k for k in _FIRST if k in metrics] +
                                 sorted(k for k in metrics if k not in _FIRST))
            line = f"{self.name} {step:>5} " + " ".join(f"{k}={_fmt(metrics[k])}" for k in keys if k in metrics)
            if self._bar is not None and not self._bar.disable:
                self._bar.write(line)
                self._bar.update(1)
            else:  # no terminal: plain lines, flushed so that a log file follows the run
                print(line, flush=True)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()
        if self._bar is not None:
            self._bar.close()


def read_metrics(path: Path) -> list[dict]:
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
