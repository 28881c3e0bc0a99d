"""Bad input gets one clear line naming the file, line or field, a non-zero exit, no traceback,
and nothing already written is touched."""

import json
import shutil

import pytest

from r1lab.cli import main

TINY = ["--steps", "1", "--prompts-per-step", "2", "--group-size", "2", "--max-new-tokens", "4", "--eval-problems", "0"]


def run(capsys, *args):
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:  # argparse errors
        code = e.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err.strip()


def write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("content,message", [
    ('{"prompt": "a", "answer": 1}\n{"prompt": "b", "answer": \n', "data.jsonl:2: not valid JSON"),
    ('{"prompt": "a"}\n', "data.jsonl:1: missing field 'answer'"),
    ('{"prompt": 3, "answer": "1"}\n', "data.jsonl:1: field 'prompt' must be a non-empty string"),
    ('{"prompt": "a", "answer": [1]}\n', "data.jsonl:1: field 'answer' must be a string or a number, got list"),
    ('[1, 2]\n', "data.jsonl:1: expected a JSON object, got list"),
    ('', "data.jsonl: no examples (the file is empty)"),
    ('\n\n   \n', "data.jsonl: no examples"),
])
def test_bad_jsonl(tmp_path, capsys, content, message):
    data = write(tmp_path / "data.jsonl", content)
    code, err = run(capsys, "zero", "--task", "jsonl", "--data", data, "--out", tmp_path / "o", *TINY)
    assert code == 2 and message in err
    assert not (tmp_path / "o").exists()


def test_binary_and_undecodable_files(tmp_path, capsys):
    blob = tmp_path / "data.jsonl"
    blob.write_bytes(b"\x00\x01\x02binary")
    code, err = run(capsys, "zero", "--task", "jsonl", "--data", blob, "--out", tmp_path / "o", *TINY)
    assert code == 2 and "looks like a binary file" in err
    blob.write_bytes(b'{"prompt": "a", "answer": 1}\n{"prompt": "\xff\xfe"}\n')
    code, err = run(capsys, "zero", "--task", "jsonl", "--data", blob, "--out", tmp_path / "o", *TINY)
    assert code == 2 and "data.jsonl:2: not valid UTF-8" in err
    code, err = run(capsys, "zero", "--task", "jsonl", "--data", tmp_path, "--out", tmp_path / "o", *TINY)
    assert code == 2 and "not a folder written by datasets' save_to_disk" in err  # a folder must be a saved dataset


def test_missing_model_files(tmp_path, capsys, tiny_model_dir):
    code, err = run(capsys, "zero", "--model", tmp_path / "nope", "--out", tmp_path / "o", *TINY)
    assert code == 2 and "nope' does not exist" in err
    (tmp_path / "empty").mkdir()
    code, err = run(capsys, "zero", "--model", tmp_path / "empty", "--out", tmp_path / "o", *TINY)
    assert code == 2 and "has no config.json" in err
    no_tok = tmp_path / "no_tok"
    no_tok.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_model_dir / name, no_tok / name)
    code, err = run(capsys, "zero", "--model", no_tok, "--out", tmp_path / "o", *TINY)
    assert code == 2 and "could not load a tokenizer" in err


def test_tokenizer_without_eos(tmp_path, capsys, tiny_model_dir):
    model = tmp_path / "m"
    shutil.copytree(tiny_model_dir, model)
    cfg = json.loads((model / "tokenizer_config.json").read_text())
    cfg["eos_token"] = None
    (model / "tokenizer_config.json").write_text(json.dumps(cfg))
    code, err = run(capsys, "zero", "--model", model, "--out", tmp_path / "o", *TINY)
    assert code == 2 and "has no eos token" in err


def test_prompt_longer_than_context(tmp_path, capsys, tiny_model_dir):
    rows = [{"prompt": "what is 12 times 3", "answer": "36"}] * 5 + [{"prompt": "times " * 300, "answer": "1"}]
    data = write(tmp_path / "data.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    code, err = run(capsys, "zero", "--model", tiny_model_dir, "--task", "jsonl", "--data", data,
                    "--out", tmp_path / "o", *TINY)
    assert code == 2 and "data.jsonl:6: prompt is" in err and "exceeds the model's context of 256" in err


@pytest.mark.parametrize("flag,value,message", [
    ("--steps", "0", "--steps must be > 0, got 0"),
    ("--group-size", "-2", "--group-size must be > 0, got -2"),
    ("--lr", "-1e-4", "--lr must be > 0"),
    ("--group-size", "1", "--group-size must be >= 2"),
    ("--top-p", "1.5", "--top-p and --eval-top-p must be in (0, 1]"),
    ("--temperature", "0", "--temperature must be > 0 for GRPO rollouts"),
    ("--temperature", "-1", "--temperature must be > 0 for GRPO rollouts"),
    ("--steps", "many", "expected an integer, got 'many'"),
])
def test_bad_sizes(tmp_path, capsys, flag, value, message):
    args = [a for a in TINY]
    if flag in args:
        i = args.index(flag)
        del args[i:i + 2]
    code, err = run(capsys, "zero", "--out", tmp_path / "o", *args, f"{flag}={value}")
    assert code == 2 and message in err


def test_unknown_flag_gets_a_suggestion(capsys):
    code, err = run(capsys, "zero", "--stepz", "3")
    assert code == 2 and "did you mean --steps?" in err


@pytest.mark.parametrize("name,yaml_text,messages", [
    ("p.yaml", "r1-zero: {steps: 2}\nrl-al: {steps: 3}\n", ["unknown section 'rl-al'; did you mean 'rl-all'?"]),
    ("q.yaml", "r1-zero: {stepz: 2}\n", ["unknown setting 'stepz'; did you mean 'steps'?"]),
    ("r.yaml", "r1-zero: {steps: two}\n", ["r1-zero.steps: expected an integer, got 'two'"]),
    ("s.yaml", "r1-zero: [steps\n", ["s.yaml:", "not valid YAML"]),
    ("t.yaml", "eval: {scaling_budgets: [256, 128]}\n", ["eval.scaling_budgets must be increasing", "[256, 128]"]),
    ("u.yaml", "eval: {scaling_budgets: [0, 128]}\n", ["eval.scaling_budgets must be increasing positive"]),
    ("v.yaml", "eval: {scaling_budgets: [128, many]}\n", ["eval.scaling_budgets[1]: expected an integer, got 'many'"]),
    ("w.yaml", "eval: {scaling_budgets: 128}\n", ["eval.scaling_budgets: expected a list of integers, got 128"]),
])
def test_bad_pipeline_config_gets_a_clear_message(tmp_path, capsys, name, yaml_text, messages):
    cfg = write(tmp_path / name, yaml_text)
    code, err = run(capsys, "pipeline", "--out", tmp_path / "p", "--config", cfg)
    assert code == 2 and all(m in err for m in messages)


def test_out_holding_another_run_is_left_alone(tmp_path, capsys, tiny_model_dir):
    out = tmp_path / "o"
    assert main(["zero", "--model", str(tiny_model_dir), "--out", str(out), *TINY]) == 0
    ckpt = out / "checkpoints" / "step-000000" / "model.safetensors"
    before = (ckpt.stat().st_mtime, ckpt.read_bytes(), (out / "metrics.jsonl").read_text())
    capsys.readouterr()
    code, err = run(capsys, "zero", "--model", tiny_model_dir, "--out", out, *TINY, "--lr", "0.5")
    assert code == 2 and "holds checkpoints of a different run (settings differ: lr)" in err
    assert (ckpt.stat().st_mtime, ckpt.read_bytes(), (out / "metrics.jsonl").read_text()) == before


def test_debug_shows_the_traceback(tmp_path):
    from r1lab.errors import UserError

    with pytest.raises(UserError):
        main(["--debug", "zero", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), *TINY])
