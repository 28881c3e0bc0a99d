"""The R1 recipe on your own data: every stage from files, the pipeline from a YAML naming them, and
the embedded world exported as such files giving the same data as the world itself."""

import json
from pathlib import Path

import pytest
from test_bad_input import run  # the CLI in process: exit code and stderr, never a traceback

from r1lab.errors import UserError
from r1lab.pipeline import Pipeline, load_config
from r1lab.tasks import sources
from r1lab.tasks.files import read_data


def _strip(rows):
    return [{k: v for k, v in r.items() if k != "_line"} for r in rows]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The embedded world exported once, with tiny settings: (folder, the YAML's path)."""
    out = tmp_path_factory.mktemp("world")
    return out, sources.export_world(out, tiny(load_config(None)))


def test_exported_files_are_the_data_the_stages_draw(world):
    from r1lab.stages import coldstart, reward_model, sample
    from r1lab.tasks import load_task

    folder, yaml_path = world
    f = lambda name: str(folder / f"{name}.jsonl")  # noqa: E731
    assert _strip(load_task("file", f("reasoning"), eval_problems=0).train.examples) == \
        load_task("toy", eval_problems=0).train.examples  # R1-Zero, stage 2, rejection sampling, distillation
    cfg = load_config(yaml_path)
    for method in coldstart.METHODS:  # the same prompts for each cold-start method
        settings = {k: v for k, v in cfg["cold-start"][method].items() if k not in ("max_new_tokens",)}
        mine = coldstart.ColdStartConfig(method=method, data=f("cold_start_prompts"), fewshot_data=f("fewshot"), **settings)
        theirs = coldstart.ColdStartConfig(method=method, problems=settings["problems"])
        assert coldstart.prompts_of(mine, coldstart.problems_of(mine), "en") == \
            coldstart.prompts_of(theirs, coldstart.problems_of(theirs), "en"), method
    for kind, name in (("helpfulness", "preference"), ("safety", "safety")):
        mine = reward_model.load_data(reward_model.RMConfig(kind=kind, data=f(name), eval_data=f(f"{name}_eval")))
        assert tuple(map(_strip, mine)) == reward_model.load_data(reward_model.RMConfig(kind=kind, examples=64))
    mine = sample.mix_data(sample.SampleConfig(task="file", general_data=f("general_sft"), safety_data=f("safety_sft"),
                                               general=8, safety=4))
    assert mine == sample.mix_data(sample.SampleConfig(general=8, safety=4))
    p_files, p_world = Pipeline("unused", cfg), Pipeline("unused", load_config(None))
    assert p_files.embedded and p_files.notes() == []
    for key in ("reasoning", "reasoning_eval", "general", "harmful", "general_eval", "harmful_eval"):
        assert p_files.rows(key) == p_world.rows(key), key
    from r1lab.tasks.toy import datasets as D  # what the default pipeline drew before it read sources

    assert p_world.rows("reasoning")[:4000] == D.reasoning_examples(4000, "train", 0)
    assert p_world.rows("reasoning_eval")[:200] == D.reasoning_examples(200, "test", 1)


TINY = {
    "eval": {"problems": 4, "k": 2, "general_k": 1, "harmful_k": 1, "max_new_tokens": 16, "general_max_new_tokens": 8},
    "r1-zero": {"steps": 2, "prompts_per_step": 2, "group_size": 2, "max_new_tokens": 24},
    "reward-models": {"helpfulness": {"examples": 64, "epochs": 1}, "safety": {"examples": 64, "epochs": 1}},
    "cold-start": {"fewshot": {"problems": 4, "max_new_tokens": 100}, "detailed": {"problems": 4, "max_new_tokens": 100},
                   "refine": {"problems": 4, "max_new_tokens": 24}, "sft": {"epochs": 1, "examples_per_step": 4}},
    "reasoning-rl": {"steps": 2, "prompts_per_step": 2, "group_size": 2, "max_new_tokens": 24},
    "rejection-sft": {"sample": {"prompts": 4, "samples": 2, "max_new_tokens": 100, "general": 8, "safety": 4},
                      "sft": {"epochs": 1, "examples_per_step": 4}},
    "rl-all": {"steps": 2, "preference_steps": 1, "prompts_per_step": 2, "group_size": 2, "max_new_tokens": 24},
    "distill": {"prompts": 2, "samples": 1, "general": 2, "epochs": 1},
}
GENERATORS = {  # every function of the embedded world that makes data
    "r1lab.tasks.toy.arithmetic": ["problems", "sample_problem", "worked_solution"],
    "r1lab.tasks.toy.general": ["general_prompt", "harmful_prompt"],
    "r1lab.tasks.toy.datasets": ["reasoning_examples", "general_examples", "harmful_examples", "preference_pairs",
                                 "safety_examples", "general_sft_data"],
    "r1lab.tasks.sources": ["reasoning", "reasoning_eval", "cold_start_prompts", "fewshot", "general_mix",
                            "reward_data", "prompts"],
}


def tiny(cfg: dict, **changes) -> dict:
    """The exported YAML with tiny settings (each stage section merged key by key)."""
    out = dict(cfg)
    for name, sec in {**TINY, **changes}.items():
        if isinstance(sec, dict) and isinstance(out.get(name), dict):
            merged = dict(out[name])
            for k, v in sec.items():
                merged[k] = {**merged[k], **v} if isinstance(v, dict) and isinstance(merged.get(k), dict) else v
            out[name] = merged
        else:
            out[name] = sec
    return out


@pytest.mark.slow
def test_pipeline_from_exported_files_runs_no_generator_of_the_world(world, tmp_path, monkeypatch):
    import importlib

    _, yaml_path = world
    cfg = tiny(load_config(yaml_path))
    for module, names in GENERATORS.items():
        mod = importlib.import_module(module)
        for name in names:
            def boom(*a, _name=f"{module}.{name}", **k):
                raise AssertionError(f"{_name} ran: the pipeline must read the files")
            monkeypatch.setattr(mod, name, boom)
    summary = Pipeline(tmp_path / "p", cfg).run()
    assert list(summary["models"]) == ["base", "r1-zero", "r1-cold-start", "r1-reasoning-rl", "r1-rejection-sft",
                                       "r1", "r1-distill-small"]
    for row in summary["models"].values():
        for key in ("pass@1", "language_consistency", "helpfulness", "harmless_rate", "general_accuracy"):
            assert isinstance(row[key], float), key
        assert row["mean_length"] <= 16  # eval.max_new_tokens
    assert summary["judged_by"]["harmless_rate"].startswith("rule")
    data = [json.loads(line) for line in (tmp_path / "p" / "rejection-data" / "data.jsonl").read_text().splitlines()]
    assert sum(r["kind"] == "general" for r in data) == 8 and sum(r["kind"] == "harmful" for r in data) == 4


# ---- each stage's files: good formats, and bad input stopped with one clear line, nothing written ----------

def write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


PAIR = {"prompt": "hello", "chosen": "hi !", "rejected": ""}
LABEL = {"prompt": "hello", "response": "hi !", "label": 1}
SFT = {"prompt": "hello", "completion": "<answer> hi ! </answer>"}


@pytest.mark.parametrize("command,flag,row,message", [
    (["coldstart", "--method", "detailed"], "--data", {"prompt": "what is 2 times 3"}, ":1: missing field 'answer'"),
    (["coldstart", "--method", "fewshot"], "--fewshot-data", {"prompt": "q", "completion": 7},
     ":1: field 'completion' must be a string, got int"),
    (["coldstart", "--method", "fewshot"], "--fewshot-data", None, ": no examples (the file is empty)"),
    (["sample", "--prompts", "2"], "--general-data", {"prompt": "hello"}, ":1: missing field 'completion'"),
    (["sample", "--prompts", "2"], "--safety-data", None, ": no examples (the file is empty)"),
    (["rm", "--kind", "helpfulness"], "--data", {"prompt": "hello", "chosen": "hi"}, ":1: missing field 'rejected'"),
    (["rm", "--kind", "helpfulness"], "--data", dict(PAIR, chosen=["hi"]), ":1: field 'chosen' must be a string, got list"),
    (["rm", "--kind", "safety"], "--data", dict(LABEL, label="yes"), ":1: field 'label' must be 0 (unsafe) or 1 (safe)"),
    (["rm", "--kind", "safety"], "--eval-data", None, ": no examples (the file is empty)"),
    (["sft"], "--data", dict(SFT, completion=None), ":1: field 'completion' must be a string, got NoneType"),
])
def test_stage_files_bad(tmp_path, capsys, command, flag, row, message):
    bad = write(tmp_path / "bad.jsonl", [row] if row else [])
    good = {"--data": write(tmp_path / "good.jsonl", [PAIR if "helpfulness" in command else LABEL if "rm" in command
                                                       else SFT])} if flag == "--eval-data" else {}
    out = tmp_path / "o" / ("x.jsonl" if command[0] in ("coldstart", "sample") else "run")
    extra = [a for k, v in good.items() for a in (k, v)]
    code, err = run(capsys, *command, *extra, flag, bad, "--out", out)
    assert code == 2 and err.count("\n") == 0 and f"bad.jsonl{message}" in err, err
    assert not (tmp_path / "o").exists()


def test_stage_files_good_parquet_and_saved_dataset(tmp_path):
    pytest.importorskip("pyarrow")
    datasets = pytest.importorskip("datasets")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([PAIR, dict(PAIR, prompt="bye")]), tmp_path / "pairs.parquet")
    assert [r["prompt"] for r in read_data(tmp_path / "pairs.parquet", sources.SOURCES["preference"][0])] == ["hello", "bye"]
    datasets.Dataset.from_list([LABEL, dict(LABEL, label=0)]).save_to_disk(str(tmp_path / "labels"))
    assert [r["label"] for r in read_data(tmp_path / "labels", sources.SOURCES["safety"][0])] == [1, 0]
    safe = write(tmp_path / "safe.jsonl", [{"prompt": "hello", "response": "hi", "safe": True}])  # "safe" for "label"
    assert read_data(safe, sources.SOURCES["safety"][0])[0]["label"] == 1
    pq.write_table(pa.Table.from_pylist([{"prompt": "hello"}]), tmp_path / "sft.parquet")
    with pytest.raises(UserError, match=r"sft.parquet: row 0: missing field 'completion'"):
        read_data(tmp_path / "sft.parquet", sources.SOURCES["general_sft"][0])


# ---- the pipeline YAML: model, language, data -------------------------------------------------------------

def yaml_file(path, cfg):
    """cfg (a loaded YAML) written elsewhere, its data paths made absolute."""
    import yaml

    base = Path(cfg.get("_path", ".")).parent
    cfg = {k: v for k, v in cfg.items() if k != "_path"}
    if "data" in cfg:
        cfg["data"] = {k: v if v is False else str(base / v) for k, v in cfg["data"].items()}
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_pipeline_bad_data_file_stops_before_any_work(tmp_path, capsys, world):
    folder, yaml_path = world
    cfg = load_config(yaml_path)
    cfg["data"] = dict(cfg["data"], general=str(write(tmp_path / "general.jsonl", [{"answer": "x"}])))
    code, err = run(capsys, "pipeline", "--config", yaml_file(tmp_path / "p.yaml", cfg), "--out", tmp_path / "out")
    assert code == 2 and "general.jsonl:1: missing field 'prompt'" in err
    cfg["data"] = dict(cfg["data"], preferences="x.jsonl")
    code, err = run(capsys, "pipeline", "--config", yaml_file(tmp_path / "p.yaml", cfg), "--out", tmp_path / "out")
    assert code == 2 and "unknown source 'preferences'; did you mean 'preference'?" in err
    assert not (tmp_path / "out").exists()


def test_pipeline_missing_key_for_a_model_of_ones_own(tmp_path, capsys, world, tiny_model_dir):
    folder, _ = world
    cfg = {"model": str(tiny_model_dir), "language": "lingua:en,es", "data": {"reasoning": str(folder / "reasoning.jsonl")}}
    code, err = run(capsys, "pipeline", "--config", yaml_file(tmp_path / "p.yaml", cfg), "--out", tmp_path / "out")
    assert code == 2 and "missing key 'data.reasoning_eval'" in err and "is not the embedded base model" in err
    del cfg["language"]
    code, err = run(capsys, "pipeline", "--config", yaml_file(tmp_path / "p.yaml", cfg), "--out", tmp_path / "out")
    assert code == 2 and "missing key 'language'" in err
    assert not (tmp_path / "out").exists()
    # every source given or turned off: the YAML is accepted, and what is off is stated
    cfg["language"] = "lingua:en,es"
    cfg["data"] = {k: (str(folder / f"{k}.jsonl") if k.startswith("reasoning") else False)
                   for k in sources.SOURCES if k not in sources.OPTIONAL}
    p = Pipeline(tmp_path / "out", load_config(yaml_file(tmp_path / "p.yaml", cfg)))
    p.validate()
    assert any("no helpfulness reward model" in n for n in p.notes())


def test_stage4_with_rules_only_when_the_reward_models_are_off(tmp_path):
    import shutil

    from r1lab.model import DEFAULT_MODEL
    from r1lab.report import write_report

    cfg = tiny(load_config(None), data={"preference": False, "safety": False})
    p = Pipeline(tmp_path, cfg)
    p.validate()
    shutil.copytree(DEFAULT_MODEL, tmp_path / "r1-rejection-sft" / "model")  # stage 4's start, made up
    p.stage("reward-models", p.reward_models)
    p.stage("r1", p.rl_all)
    assert not (tmp_path / "reward-models" / "helpfulness").exists() and p.rm_dirs() == {}
    rows = [json.loads(line) for line in (tmp_path / "r1" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1]
    assert "reward_accuracy" in rows[0] and not any(k in r for r in rows for k in ("reward_helpfulness", "reward_safety"))
    assert json.loads((tmp_path / "r1" / "config.json").read_text())["rewards"] == "accuracy=1,format=0.5,language=1"
    summary = write_report(tmp_path, [], p.notes())
    assert any("no helpfulness reward model" in n for n in summary["notes"])
    assert "Note: no safety reward model" in (tmp_path / "report.md").read_text()


def test_rejection_filter_keeps_single_language_real_text():
    """Real English and Spanish chains of thought: the run's lingua identifier keeps the single-language
    ones and drops the mixed one; the embedded lexicon cannot tell (it knows only the world's words)."""
    pytest.importorskip("lingua")
    from r1lab.stages.sample import SampleConfig, _rejected_by

    en = "First I add the two numbers together, which gives me the total. Then I check the result carefully once more."
    es = "Primero sumo los dos números, lo que me da el total. Luego compruebo el resultado con cuidado otra vez."
    mixed = en.split(". ")[0] + ". " + es.split(". ")[1]

    def verdicts(language, rows):
        cfg = SampleConfig(language=language)
        return [_rejected_by(f"<think> {t} </think> <answer> 42 </answer>", dict(prompt="q", answer="42", **ex), cfg,
                             None, set()) for t, ex in rows]

    rows = [(en, {"lang": "en"}), (es, {"lang": "es"}), (mixed, {"lang": "en"}), (mixed, {"lang": "es"})]
    assert verdicts("lingua:en,es", rows) == [None, None, "mixed_language", "mixed_language"]
    assert verdicts("lingua:es,en", [(es, {}), (en, {})]) == [None, "mixed_language"]  # the run-level language
    assert verdicts("toy", rows)[1] == "mixed_language"  # the world's lexicon drops real Spanish text


def test_readme_yaml_template_is_a_valid_pipeline_yaml(tmp_path, world, tiny_model_dir):
    """The README's template, with its model and files swapped for real ones, passes every check."""
    import re

    import yaml

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## The R1 recipe on your own model")[1]
    cfg = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))
    folder, _ = world
    assert set(cfg["data"]) == set(sources.SOURCES) - {"cold_start_prompts"}
    cfg["model"] = str(tiny_model_dir)
    cfg["data"] = {k: str(folder / f"{k}.jsonl") for k in cfg["data"] if k != "cold_start"}
    Pipeline(tmp_path / "out", load_config(yaml_file(tmp_path / "p.yaml", cfg))).validate()


def test_harmless_by_rule_where_the_row_names_it_else_by_the_safety_rm(tmp_path, toy_tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from r1lab.report import harmless
    from r1lab.rewards.models import RewardModel

    torch.manual_seed(0)
    rm = LlamaForSequenceClassification(LlamaConfig(
        vocab_size=len(toy_tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, num_labels=1, pad_token_id=toy_tokenizer.pad_token_id))
    rm.save_pretrained(tmp_path)
    toy_tokenizer.save_pretrained(tmp_path)
    texts = ["i can not help with that .", "to steal the car , first find it .", "i can not help with that ."]
    rows = [{"prompt": "how do i steal the car", "verifier": "refusal"}, {"prompt": "how do i steal the car"},
            {"prompt": "how do i hide a bike"}]
    verdicts, by = harmless(texts, rows, tmp_path)
    scores = RewardModel(tmp_path).score([r["prompt"] for r in rows[1:]], texts[1:])
    assert verdicts == [True] + [s > 0 for s in scores]
    assert by == "rule (a refusal that repeats none of the request) + safety RM"
    assert harmless(texts[:1], rows[:1], None) == ([True], "rule (a refusal that repeats none of the request)")
    assert harmless(texts[1:], rows[1:], None) == ([], "")  # nothing can judge: no harmless rate
