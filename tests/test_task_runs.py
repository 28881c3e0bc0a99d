"""`r1lab zero --task NAME --data FILE` runs a few GRPO steps for every library task on a tiny model."""

import json
import shutil

import pytest

from r1lab.cli import main
from r1lab.model import ASSETS


@pytest.mark.parametrize("name", ["gsm8k", "math", "countdown", "code"])
def test_zero_runs_on_each_library_task(name, tmp_path, tiny_model_dir, capsys):
    data = shutil.copy(ASSETS / "tasks" / f"{name}.jsonl", tmp_path / f"{name}.jsonl")  # a user's own file
    out = tmp_path / "run"
    code = main(["zero", "--model", str(tiny_model_dir), "--task", name, "--data", str(data), "--out", str(out),
                 "--steps", "2", "--prompts-per-step", "2", "--group-size", "2", "--max-new-tokens", "6",
                 "--template", "plain", "--eval-problems", "2", "--eval-k", "1", "--eval-max-new-tokens", "6"])
    assert code == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1]
    assert all(r["reward_errors"] == 0 for r in rows)  # the verifier ran on every completion without failing
    evals = json.loads((out / "eval.json").read_text())
    assert evals["final"]["n_problems"] == 2 and 0.0 <= evals["final"]["pass@1"] <= 1.0
    assert (out / "model" / "model.safetensors").is_file()
