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


# A gloo worker that aborts in C++ with no Python error ("terminate called without an active
# exception", SIGABRT) was seen once in a full run of the test command on a loaded 2-core machine and
# never in reruns: a race in the process group's C++ threads, not in r1lab's computation. Such a launch
# runs once more; any other failure, or the same one twice, fails the test.
GLOO_ABORT = "terminate called without an active exception"


def _run(cmd, cwd, port=None):
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port)]
    for _ in range(2 if port else 1):
        done = subprocess.run([*(launch if port else [sys.executable]), *cmd], capture_output=True, text=True,
                              env=env, timeout=600, cwd=cwd)
        if done.returncode == 0 or GLOO_ABORT not in done.stderr:
            break
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


def _rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _weights(folder, cls):
    return torch.cat([p.detach().reshape(-1) for p in cls.from_pretrained(folder).parameters()])


def _same_training(one, two, start, cls):
    """Two runs of the same data parallel training: the same losses and final weights. Losses are O(1)
    means of float32 sums over a few hundred tokens, rounded in another order on 2 processes (~1e-6);
    the weights differ by rounding carried through AdamW. (CPU seconds are logged as cpu_s but not
    compared: a timing bound failed on a busy machine; how rows are shared is tested in test_dist.)"""
    a, b = _rows(one), _rows(two)
    assert [r["step"] for r in a] == [r["step"] for r in b] and len(a) >= 4  # rank 0 alone logs
    for x, y in zip(a, b):
        assert abs(x["loss"] - y["loss"]) <= 1e-4 * max(1.0, abs(x["loss"])), (x, y)
        assert x.get("tokens") == y.get("tokens")
    w1, w2, w0 = _weights(one / "model", cls), _weights(two / "model", cls), _weights(start, cls)
    assert float((w1 - w0).abs().max()) > 1e-3  # training moved the weights
    assert float((w1 - w2).abs().max()) <= 1e-4
    assert float(((w1 - w0) - (w2 - w0)).norm() / (w1 - w0).norm()) <= 1e-3
    assert all(r["cpu_s"] > 0 for r in a + b)  # logged by every run


def test_sft_is_data_parallel(tmp_path):
    from transformers import AutoModelForCausalLM

    from r1lab.model import resolve_model_path

    with open(tmp_path / "d.jsonl", "w") as f:
        for i in range(26):
            a, b = 12 + i, 3 + i % 5
            f.write(json.dumps({"prompt": f"what is {a} times {b}",
                                "completion": f"<think> {a} times {b} is {a * b} </think> <answer> {a * b} </answer>"})
                    + "\n")
    args = ["-m", "r1lab", "sft", "--data", "d.jsonl", "--epochs", "2", "--examples-per-step", "8", "--log-every", "1",
            "--lr", "3e-4", "--precision", "fp32", "--seed", "3"]
    _run([*args, "--out", "A"], tmp_path)
    _run([*args, "--out", "B"], tmp_path, port=29521)
    _same_training(tmp_path / "A", tmp_path / "B", resolve_model_path("base"), AutoModelForCausalLM)


def test_reward_model_is_data_parallel(tmp_path):
    from transformers import AutoModelForSequenceClassification

    args = ["-m", "r1lab", "rm", "--kind", "helpfulness", "--examples", "96", "--batch", "16", "--epochs", "1",
            "--log-every", "1", "--seed", "1"]
    _run([*args, "--out", "A"], tmp_path)
    _run([*args, "--out", "B"], tmp_path, port=29522)
    torch.manual_seed(1)  # the new score head is drawn from the run's seed
    start = tmp_path / "start"
    from r1lab.model import resolve_model_path

    AutoModelForSequenceClassification.from_pretrained(resolve_model_path("base"), num_labels=1).save_pretrained(start)
    _same_training(tmp_path / "A", tmp_path / "B", start, AutoModelForSequenceClassification)
    one, two = (json.loads((tmp_path / x / "rm.json").read_text()) for x in "AB")
    # held-out accuracy is a count of hits over 200 pairs; a pair whose two scores tie within float
    # rounding (other batch shapes on 2 processes) could flip, so one hit either way is allowed
    for key in ("held_out_accuracy", "held_out_accuracy_before"):
        assert abs(one[key] - two[key]) <= 1 / one["n_held_out"] + 1e-12, (key, one[key], two[key])
    assert {k: v for k, v in one.items() if "accuracy" not in k} == {k: v for k, v in two.items() if "accuracy" not in k}


def test_distillation_runs_data_parallel(tmp_path):
    """Under torchrun the teacher's prompts are sampled once in all (each process its share), rank 0
    writes the data, the student trains data parallel and the evaluation is written once."""
    done = _run(["-m", "r1lab", "distill", "--teacher", "base", "--prompts", "6", "--samples", "2", "--general", "10",
                 "--epochs", "1", "--eval-problems", "3", "--eval-k", "2", "--out", "D"], tmp_path, port=29523)
    assert "sample: 12 samples" in done.stdout  # 6 prompts x 2, gathered from both processes
    assert done.stdout.count("sample: ") == 1
    rows = [json.loads(line) for line in (tmp_path / "D" / "data.jsonl").read_text().splitlines()]
    assert sum(r.get("kind") != "reasoning" for r in rows) == 10 + 60  # --general 10, 60 refusals (default)
    assert sum(r.get("kind") == "reasoning" for r in rows) <= 6  # at most one kept per prompt
    steps = [r["step"] for r in _rows(tmp_path / "D")]
    assert steps == sorted(set(steps))
    results = json.loads((tmp_path / "D" / "eval.json").read_text())
    assert set(results) == {"student (before)", "student (distilled)", "teacher"}
    assert all(r["n_problems"] == 3 for r in results.values())


def test_uneven_split_is_refused(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    args = ["zero", "--steps", "1", "--eval-problems", "0", "--prompts-per-step", "3", "--group-size", "2"]
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           "29518", "-m", "r1lab", *args, "--out", str(tmp_path / "C")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode != 0
    assert "cannot be split evenly over 2 processes" in done.stderr + done.stdout
