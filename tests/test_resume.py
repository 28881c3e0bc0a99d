"""Exact resume: kill -9 a run after its 7th step, run the same command again, and the metrics
match an uninterrupted run step for step."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

# the acceptance command, with a smaller batch so that the test stays quick
ARGS = ["--steps", "12", "--save-every", "3", "--seed", "3", "--eval-problems", "0",
        "--prompts-per-step", "4", "--group-size", "4", "--max-new-tokens", "48"]


def _cmd(out):
    return [sys.executable, "-m", "r1lab", "zero", *ARGS, "--out", str(out)]


def _env():
    return dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")


def _rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_kill_and_resume_matches_uninterrupted_run(tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    done = subprocess.run(_cmd(a), capture_output=True, text=True, env=_env(), timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]

    proc = subprocess.Popen(_cmd(b), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    deadline = time.time() + 600
    while not ((b / "metrics.jsonl").exists() and len(_rows(b)) >= 7):
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(_rows(b)) < 12
    resumed = subprocess.run(_cmd(b), capture_output=True, text=True, env=_env(), timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from" in resumed.stdout

    ra, rb = _rows(a), _rows(b)
    assert [r["step"] for r in rb] == list(range(12))
    for x, y in zip(ra, rb):
        for key in ("loss", "reward", "accuracy", "kl", "len_mean", "grad_norm"):
            assert abs(x[key] - y[key]) <= 1e-6 * max(1.0, abs(x[key])), (x["step"], key, x[key], y[key])
    from safetensors.torch import load_file

    wa, wb = load_file(a / "model" / "model.safetensors"), load_file(b / "model" / "model.safetensors")
    assert all((wa[k] == wb[k]).all() for k in wa)


def test_json_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    """A kill while a JSON file is written leaves the previous file; every JSON file the package
    writes (configs, eval.json, rm.json, diagnostic.json, DONE marks, checkpoint state) goes through
    checkpoint.write_json."""
    import r1lab
    from r1lab.checkpoint import write_json

    target = tmp_path / "eval.json"
    write_json(target, {"pass@1": 0.5})
    real = Path.write_text

    def killed_midway(self, text, *args, **kwargs):
        real(self, text[: len(text) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        write_json(target, {"pass@1": 0.75})
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"pass@1": 0.5}
    direct = [f"{p.name}:{i}" for p in Path(r1lab.__file__).parent.rglob("*.py")
              for i, line in enumerate(p.read_text().splitlines(), 1) if "write_text(json.dumps" in line]
    assert direct == ["checkpoint.py:31"], direct  # write_json's own write, to its temporary file
