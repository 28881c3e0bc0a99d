"""Metrics: one line per step on the terminal (under a progress bar), the same dict appended to
`OUT/metrics.jsonl` (one JSON object per line, with `step`), written as TensorBoard events in OUT and,
when asked, logged to Weights & Biases. `report_to` ("terminal,jsonl,tensorboard,wandb" or "none")
picks among them, as TRL's `report_to` does."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

from .errors import UserError

# Shown first, in this order, when present; everything else follows alphabetically.
_FIRST = ["reward", "loss", "accuracy", "format", "language", "len_mean", "kl", "clip_frac", "entropy",
          "grad_norm", "lr", "t_gen", "t_reward", "t_train"]
REPORTERS = ("terminal", "jsonl", "tensorboard", "wandb")


def check_report_to(spec: str) -> set[str]:
    """"terminal,jsonl" -> {"terminal", "jsonl"}; "none" -> set(). Unknown names and a missing wandb
    are errors now, before any work."""
    chosen = {p.strip() for p in str(spec).split(",") if p.strip()}
    if chosen == {"none"}:
        return set()
    unknown = sorted(chosen - set(REPORTERS))
    if unknown:
        raise UserError(f"--report-to: unknown {', '.join(map(repr, unknown))}; choose from {', '.join(REPORTERS)} or none")
    if "wandb" in chosen:
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise UserError("--report-to wandb needs Weights & Biases: pip install 'r1lab[wandb]' "
                            "(set WANDB_MODE=offline to log without an account)") from None
    return chosen


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
                 tensorboard: bool = True, quiet: bool = False, keys: list[str] | None = None,
                 report_to: str | None = None, config: dict | None = None):
        """`report_to` chooses the destinations (default: terminal unless quiet, metrics.jsonl, and
        TensorBoard unless tensorboard=False); `config` is shown to W&B with the run."""
        chosen = (check_report_to(report_to) if report_to is not None else
                  {"jsonl"} | ({"tensorboard"} if tensorboard else set()) | (set() if quiet else {"terminal"}))
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.path = self.out / "metrics.jsonl"
        self.name = name
        self.keys = keys
        self.quiet = "terminal" not in chosen
        quiet = self.quiet
        tensorboard = "tensorboard" in chosen
        self._file = None
        if "jsonl" in chosen:
            self._open_jsonl(resume_step)
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.out), purge_step=resume_step)
            except ImportError:  # tensorboard is a dependency, but a missing one must not stop training
                self._tb = None
        self._wandb = None
        if "wandb" in chosen:
            import wandb

            self._wandb = wandb.init(project=os.environ.get("WANDB_PROJECT", "r1lab"), name=self.out.name,
                                     dir=str(self.out), config=config or {}, reinit="finish_previous")
        self._bar = None
        if total is not None and not quiet:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=resume_step or 0, desc=name, unit="step",
                             file=sys.stderr, dynamic_ncols=True, leave=False, disable=None)

    def _open_jsonl(self, resume_step: int | None) -> None:
        if resume_step is not None and self.path.exists():
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", -1) < resume_step]
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text("".join(line + "\n" for line in kept))
            os.replace(tmp, self.path)
        elif resume_step is None and self.path.exists():
            self.path.unlink()
        self._file = open(self.path, "a")

    def log(self, step: int, metrics: dict) -> None:
        row = {"step": step, **{k: v for k, v in metrics.items()}}
        if self._file is not None:
            self._file.write(json.dumps(row, allow_nan=True) + "\n")
            self._file.flush()
        if self._wandb is not None:
            self._wandb.log({f"{self.name}/{k}": v for k, v in metrics.items()
                             if isinstance(v, (int, float)) and not isinstance(v, bool)}, step=step)
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
        if self._file is not None:
            self._file.close()
        if self._wandb is not None:
            self._wandb.finish()
        if self._tb is not None:
            self._tb.close()
        if self._bar is not None:
            self._bar.close()


def read_metrics(path: Path) -> list[dict]:
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
