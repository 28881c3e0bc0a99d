"""The R1 recipe on your own data: every stage from files, the pipeline from a YAML naming them, and
the embedded world exported as such files giving the same data as the world itself."""

import json

import pytest

from r1lab.pipeline import Pipeline, load_config
from r1lab.tasks import sources


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
    "eval": {"problems": 4, "k": 2, "general_k": 1, "harmful_k": 1},
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
    assert summary["judged_by"]["harmless_rate"].startswith("rule")
    data = [json.loads(line) for line in (tmp_path / "p" / "rejection-data" / "data.jsonl").read_text().splitlines()]
    assert sum(r["kind"] == "general" for r in data) == 8 and sum(r["kind"] == "harmful" for r in data) == 4
