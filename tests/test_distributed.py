"""World-size invariance on CPU (gloo): 1 process and 2 processes under torchrun compute the same
step. What is compared is what is exactly comparable: gradients and weights after updates on one
fixed batch (GRPO), and whole deterministic runs (SFT, reward models) with the same seed and global
batch. Sampled trajectories are not compared: one token drawn differently (float noise of a
different batch shape, or another CPU's kernels) parts two runs for good."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow
HERE = Path(__file__).parent


def _run(cmd, cwd, port=None):
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port)]
    done = subprocess.run([*(launch if port else [sys.executable]), *cmd], capture_output=True, text=True, env=env,
                          timeout=600, cwd=cwd)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def test_grpo_gradients_and_weights_agree_on_one_and_two_processes(tmp_path):
    script = str(HERE / "dp_grpo_updates.py")
    _run([script, str(tmp_path / "one.pt")], tmp_path)
    _run([script, str(tmp_path / "two.pt")], tmp_path, port=29517)
    one, two = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    # The gradient is a float32 sum over 16 rows of ~20 tokens: two partial sums added by all_reduce
    # instead of one running sum changes the rounding only, ~n * 2^-24 of the terms' magnitude
    # (n ~ 300 terms: ~2e-5). 1e-4 of the largest component allows that and nothing else: a gradient
    # summed twice, averaged over processes or missing a process's rows is off by O(1).
    scale = float(one["grads"].abs().max())
    assert scale > 0
    assert float((one["grads"] - two["grads"]).abs().max()) <= 1e-4 * scale
    # the loss is a mean of advantage-weighted ratios whose terms are O(1) (advantages are
    # standardised) and cancel to ~0 at the first update, so its rounding is absolute, ~1e-6
    for a, b in zip(one["losses"], two["losses"]):
        assert abs(a - b) <= 1e-4 * max(abs(a), abs(b), 1.0), (one["losses"], two["losses"])
    # AdamW moves a weight by about lr per update whatever the gradient's scale (a wrongly scaled
    # gradient hides here; the check above catches it), and a component whose gradient is within
    # rounding of zero may step either way; so compare the whole update: the two runs' weight changes
    # must agree to 1e-3 of their norm (one process's rows missing, or another batch, is O(1) off)
    start = one["start"]
    moved_one, moved_two = one["weights"] - start, two["weights"] - start
    assert float((moved_one - moved_two).norm() / moved_one.norm()) <= 1e-3
    assert one["kl"] > 0  # the policy moved away from the reference


def test_uneven_split_is_refused(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    args = ["zero", "--steps", "1", "--eval-problems", "0", "--prompts-per-step", "3", "--group-size", "2"]
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           "29518", "-m", "r1lab", *args, "--out", str(tmp_path / "C")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode != 0
    assert "cannot be split evenly over 2 processes" in done.stderr + done.stdout
