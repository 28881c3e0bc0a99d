"""The R1 pipeline with tiny settings, run as a user runs it, killed and resumed."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TINY = """
seed: 0
eval: {problems: 4, k: 2, general_k: 1, harmful_k: 1, scaling_problems: 2, scaling_models: [r1-zero, r1],
       scaling_budgets: [8, 16, 48]}
r1-zero: {steps: 2, prompts_per_step: 2, group_size: 2, max_new_tokens: 24}
reward-models:
  helpfulness: {examples: 64, epochs: 1}
  safety: {examples: 64, epochs: 1}
cold-start:
  fewshot: {problems: 6, max_new_tokens: 120}
  detailed: {problems: 6, max_new_tokens: 120}
  refine: {problems: 6, max_new_tokens: 24}
  sft: {epochs: 1, examples_per_step: 4}
reasoning-rl: {steps: 4, prompts_per_step: 2, group_size: 2, max_new_tokens: 24, save_every: 1,
               rewards: "accuracy=1,format=0.5,language=1"}
rejection-sft:
  sample: {prompts: 6, samples: 2, max_new_tokens: 120, general: 8}
  sft: {epochs: 1, examples_per_step: 4}
rl-all: {steps: 3, preference_steps: 2, prompts_per_step: 2, group_size: 2, max_new_tokens: 24, temperature: 0.7,
         mix: {reasoning: 0.4, general: 0.3, harmful: 0.3}}
distill: {prompts: 4, samples: 1, general: 4, epochs: 1}
"""


def _cmd(out, cfg, jobs=2):
    return [sys.executable, "-m", "r1lab", "pipeline", "--out", str(out), "--config", str(cfg), "--jobs", str(jobs)]


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _env():
    return dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")


def test_pipeline_killed_and_resumed(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    out = tmp_path / "p"
    # first run, two stages at a time: killed as soon as the reasoning-RL stage has a checkpoint past
    # its first step
    proc = subprocess.Popen(_cmd(out, cfg), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
    seen = []
    deadline = time.time() + 600
    for line in proc.stdout:
        seen.append(line)
        if (out / "r1-reasoning-rl" / "checkpoints" / "step-000001" / "COMPLETE").exists():
            workers = _children(proc.pid)
            proc.send_signal(signal.SIGKILL)
            break
        assert time.time() < deadline, "".join(seen[-30:])
    proc.wait(timeout=60)
    assert workers, "the pipeline ran its stages in worker processes"
    for _ in range(100):  # the workers die with the pipeline: none keeps writing into `out`
        if not any(_alive(pid) for pid in workers):
            break
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers)
    assert (out / "r1-cold-start" / "DONE").exists()
    assert not (out / "r1-reasoning-rl" / "DONE").exists()
    finished = [p.parent.name for p in out.glob("*/DONE")]
    mtime = (out / "r1-zero" / "model" / "model.safetensors").stat().st_mtime
    # second run: skips finished stages, resumes the interrupted one, completes
    done = subprocess.run(_cmd(out, cfg), capture_output=True, text=True, env=_env(), timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    log = done.stdout
    assert {"r1-zero", "cold-start-data", "r1-cold-start"} <= set(finished)
    for stage in finished:  # what was done before the kill (the side lane's stages vary with timing)
        assert f"[pipeline] {stage}: done, skipped" in log
    assert "resuming from" in log and "step 1)" in log
    assert (out / "r1-zero" / "model" / "model.safetensors").stat().st_mtime == mtime  # not redone
    rows = [json.loads(line) for line in (out / "r1-reasoning-rl" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2, 3]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["jobs"] == 2 and summary["run"]["wall_seconds"] > 0
    assert list(summary["models"]) == ["base", "r1-zero", "r1-cold-start", "r1-reasoning-rl", "r1-rejection-sft", "r1",
                                       "r1-distill-small"]
    for row in summary["models"].values():
        for key in ["pass@1", "cons@k", "format", "language_consistency", "mean_length", "helpfulness",
                    "harmless_rate", "general_accuracy", "reflection_rate", "corrected_rate"]:
            assert isinstance(row[key], float), key
        assert row["pass@1_by_level"] and set(row["pass@1_by_level"]) <= {"3", "4"}  # digits to multiply
    for name, row in summary["models"].items():
        if name not in ("r1-zero", "r1"):  # eval.scaling_models
            assert row["budget_scaling"] is None, name
            continue
        scaling = row["budget_scaling"]  # the hardest level again at each budget
        assert scaling["level"] == max(row["pass@1_by_level"], key=int) and 1 <= scaling["n_problems"] <= 2
        assert list(scaling["budgets"]) == ["8", "16", "48"]  # eval.scaling_budgets
        assert all(isinstance(v["pass@1"], float) for v in scaling["budgets"].values())
    # wall seconds of every stage, in the pipeline's order (the resumed stage: the run that finished it)
    seconds = summary["stage_seconds"]
    assert list(seconds)[:8] == ["r1-zero", "reward-models", "cold-start-data", "r1-cold-start", "r1-reasoning-rl",
                                 "rejection-data", "r1-rejection-sft", "r1"]
    assert list(seconds)[-1] == "eval-r1-distill-small" and len(seconds) == 16
    assert all(isinstance(v, float) and v > 0 for v in seconds.values())
    report = (out / "report.md").read_text()
    assert "| r1 |" in report and "r1-zero-curves.png" in report and "| reflection_rate |" in report
    assert "Test-time scaling" in report
    assert "| eval-r1 | " in report and "| total | " in report
    assert (out / "r1-reasoning-rl-curves.png").stat().st_size > 1000
    data = [json.loads(line) for line in (out / "cold-start-data" / "cold_start.jsonl").read_text().splitlines()]
    assert "few-shot long CoT" in {d["provenance"] for d in data}
    # each method ran; a 2-step R1-Zero rarely yields a correct, well-formed sample to refine, so the
    # refine output may be empty here (its filter is unit-tested in test_r1_stages)
    for method in ("fewshot", "detailed", "refine"):
        assert (out / "cold-start-data" / f"{method}.jsonl").exists(), method
    # a third run, one stage at a time in this process, does nothing but report
    again = subprocess.run(_cmd(out, cfg, jobs=1), capture_output=True, text=True, env=_env(), timeout=600)
    assert again.returncode == 0 and "r1: done, skipped" in again.stdout and "r1-distill-small: done, skipped" in again.stdout


def test_pipeline_rejects_unknown_settings(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(TINY.replace("r1-zero: {steps: 2,", "r1-zero: {stepz: 2,"))
    done = subprocess.run(_cmd(tmp_path / "p", cfg), capture_output=True, text=True, env=_env(), timeout=120)
    assert done.returncode == 2
    assert "unknown setting 'stepz'; did you mean 'steps'?" in done.stderr
    assert not (tmp_path / "p").exists()
