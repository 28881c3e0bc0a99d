"""World-size invariance: the same seed and global batch give the same loss and reward at every
step on 1 process and on 2 (torchrun, gloo on CPU)."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

ARGS = ["zero", "--steps", "3", "--seed", "7", "--eval-problems", "0",
        "--prompts-per-step", "4", "--group-size", "4", "--max-new-tokens", "48", "--micro-batch", "8"]


def _run(cmd, tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]


def _rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_one_and_two_processes_agree(tmp_path):
    _run([sys.executable, "-m", "r1lab", *ARGS, "--out", str(tmp_path / "A")], tmp_path)
    _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
          "-m", "r1lab", *ARGS, "--out", str(tmp_path / "B")], tmp_path)
    a, b = _rows(tmp_path / "A"), _rows(tmp_path / "B")
    assert [r["step"] for r in a] == [r["step"] for r in b] == [0, 1, 2]
    for x, y in zip(a, b):
        for key in ("loss", "reward", "kl", "len_mean"):
            assert abs(x[key] - y[key]) <= 1e-4 * max(abs(x[key]), abs(y[key]), 1e-12), (x["step"], key, x[key], y[key])
    assert a[-1]["kl"] > 0  # the policy moved, identically


def test_uneven_split_is_refused(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           "29518", "-m", "r1lab", *ARGS[:-2], "--prompts-per-step", "3", "--out", str(tmp_path / "C")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode != 0
    assert "cannot be split evenly over 2 processes" in done.stderr + done.stdout
