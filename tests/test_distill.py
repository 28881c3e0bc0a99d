"""`r1lab distill` end to end with tiny models: teacher samples -> filtered data -> student SFT -> eval."""

import json
import subprocess
import sys


def test_distill_trains_the_student_on_filtered_teacher_samples(tmp_path, tiny_model_dir):
    out = tmp_path / "d"
    done = subprocess.run([sys.executable, "-m", "r1lab", "distill", "--teacher", str(tiny_model_dir),
                           "--student", str(tiny_model_dir), "--out", str(out), "--prompts", "4", "--samples", "2",
                           "--general", "8", "--epochs", "1", "--eval-problems", "4", "--eval-k", "1"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = [json.loads(line) for line in (out / "data.jsonl").read_text().splitlines()]
    assert sum(r["provenance"] == "general" for r in rows) == 8
    # a random teacher is never right: none of its reasoning samples may pass the filter
    assert all(r["kind"] != "reasoning" for r in rows)
    assert (out / "model" / "model.safetensors").is_file()
    results = json.loads((out / "eval.json").read_text())
    assert list(results) == ["student (before)", "student (distilled)", "teacher"]
    assert all(0.0 <= r["pass@1"] <= 1.0 and r["n_problems"] == 4 for r in results.values())
    assert "| pass@1 |" in done.stdout
