"""The commands run end to end as a user runs them: as subprocesses."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def r1lab(*args, cwd=None, check=True):
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, "-m", "r1lab", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"r1lab {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_help_for_every_command():
    for cmd in ["zero", "eval", "pretrain"]:
        out = r1lab(cmd, "--help").stdout
        assert "--out" in out or "--model" in out


def test_zero_end_to_end_tiny(tmp_path, tiny_model_dir):
    out = tmp_path / "run"
    r1lab("zero", "--model", tiny_model_dir, "--steps", 2, "--prompts-per-step", 2, "--group-size", 2,
          "--max-new-tokens", 8, "--eval-problems", 3, "--eval-k", 2, "--eval-max-new-tokens", 8,
          "--out", out, "--save-every", 1)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1]
    for key in ["reward", "reward_accuracy", "reward_format", "loss", "accuracy", "format", "len_mean", "len_max",
                "truncated", "zero_std", "kl", "clip_frac", "entropy", "grad_norm", "lr", "t_gen", "t_reward", "t_train",
                "reflection_rate"]:
        assert key in rows[0], key
    ev = json.loads((out / "eval.json").read_text())
    for name in ["base", "final"]:
        for key in ["pass@1", "cons@k", "answer_accuracy", "format", "mean_length", "k", "n_problems"]:
            assert key in ev[name], (name, key)
        assert ev[name]["n_problems"] == 3 and ev[name]["k"] == 2
    assert any(p.name.startswith("events.out.tfevents") for p in out.iterdir())
    from transformers import AutoModelForCausalLM

    for folder in [out / "model", out / "checkpoints" / "step-000001"]:
        AutoModelForCausalLM.from_pretrained(folder)
        assert (folder / "tokenizer.json").exists()


def test_eval_command(tmp_path, tiny_model_dir):
    res = tmp_path / "m.json"
    r1lab("eval", "--model", tiny_model_dir, "--problems", 3, "--k", 2, "--max-new-tokens", 6, "--out", res)
    m = json.loads(res.read_text())
    assert m["n_problems"] == 3 and 0 <= m["pass@1"] <= 1
