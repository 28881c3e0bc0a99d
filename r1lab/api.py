"""The Python API: each command is a function over its config dataclass, importable from `r1lab`.

    import r1lab

    def short_and_right(completions, examples):          # the reward contract, also for built-ins
        return [1.0 if e["answer"] in c and len(c) < 400 else 0.0 for c, e in zip(completions, examples)]

    cfg = r1lab.GRPOConfig(out="runs/mine", steps=20, rewards="accuracy=1,format=0.5,short=1")
    result = r1lab.grpo(cfg, data=[{"prompt": "what is 12 times 3", "answer": "36"}, ...],
                        rewards={"short": short_and_right})
    result["model"], result["eval"]                       # the model folder, before/after evaluation

The command line parses flags into the same dataclasses and calls these functions. None of them
reads globals or sys.argv; each returns what it produced.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from .errors import UserError


def grpo(cfg, data=None, eval_data=None, rewards: dict[str, Callable] | None = None) -> dict:
    """GRPO (R1-Zero's RL and the R1 RL stages) as `cfg` (a GRPOConfig) says.

    data / eval_data: a list of dicts, a `datasets.Dataset` or a path (JSONL, Parquet, a save_to_disk
    folder); each row needs "prompt" and "answer", and every other column reaches the rewards.
    Without data, cfg.task and cfg.data choose the prompts (the embedded world by default).
    rewards: your reward functions by name, fn(completions, examples) -> list[float | None], sync or
    async; cfg.rewards weighs them like the built-ins ("accuracy=1,format=0.5,mine=1").
    Returns {"out", "model", "metrics", "eval"}: folders, the metrics file and the evaluations.
    """
    from .rewards import REWARDS
    from .stages.grpo import train
    from .tasks import rows_task
    from .tasks.files import check_rows, rows_of

    rewards = dict(rewards or {})
    taken = set(REWARDS) | {spec.rpartition(":")[2] for spec in cfg.reward_fn}
    for name, fn in rewards.items():
        if not callable(fn):
            raise UserError(f"rewards[{name!r}] is a {type(fn).__name__}, not a function")
        if name in taken:  # as --reward-fn: a built-in is never replaced behind the user's back
            raise UserError(f"rewards[{name!r}]: the name is taken (a built-in reward or a cfg.reward_fn); "
                            "give your function another name and weigh it in cfg.rewards")
    weighted = {p.partition("=")[0].strip() for p in cfg.rewards.split(",")}
    unweighted = sorted(set(rewards) - weighted)
    if unweighted:
        raise UserError(f"rewards {unweighted} are given but cfg.rewards ({cfg.rewards!r}) does not weigh them; "
                        f"add e.g. ',{unweighted[0]}=1'")
    task = None
    if isinstance(data, (str, Path)) and (eval_data is None or isinstance(eval_data, (str, Path))):
        cfg = dataclasses.replace(cfg, data=str(data), eval_data=str(eval_data) if eval_data else None,
                                  task="file" if cfg.task == "toy" else cfg.task)
    elif data is not None:
        held = check_rows(rows_of(eval_data, "eval_data", "test"), "eval_data") if eval_data is not None else None
        task = rows_task("data", check_rows(rows_of(data, "data"), "data"), held, cfg.eval_problems)
    results = train(cfg, extra_rewards=rewards, task=task)
    out = Path(cfg.out)
    return {"out": out, "model": out / "model", "metrics": out / "metrics.jsonl", "eval": results}


zero = grpo  # `r1lab zero` on the command line


def sft(cfg, data=None) -> Path:
    """Supervised fine-tuning as `cfg` (an SFTConfig) says; data: rows with "prompt" and "completion"
    (a list of dicts, a datasets.Dataset or a path), default cfg.data. Returns the model folder."""
    from .stages.sft import train

    if data is None or isinstance(data, (str, Path)):
        return train(cfg if data is None else dataclasses.replace(cfg, data=str(data)))
    from .tasks.files import rows_of

    return train(cfg, examples=rows_of(data, "data"))


def sample(cfg, data=None) -> list[dict]:
    """Rejection sampling as `cfg` (a SampleConfig) says; data: the prompts, rows with "prompt" and
    "answer" (a list of dicts, a datasets.Dataset or a path), default cfg.task/cfg.data. Returns the
    kept rows (also written to cfg.out)."""
    from .stages.sample import rejection_sample
    from .tasks.files import check_rows, rows_of

    if data is None or isinstance(data, (str, Path)):  # a path as in r1lab.grpo: the user's file
        return rejection_sample(cfg if data is None else dataclasses.replace(
            cfg, data=str(data), task="file" if cfg.task == "toy" else cfg.task))
    return rejection_sample(cfg, examples=check_rows(rows_of(data, "data"), "data"))


def reward_model(cfg, data=None, eval_data=None):
    """A reward model (helpfulness: pairwise, safety: pointwise) as `cfg` (an RMConfig) says; data /
    eval_data: rows with prompt, chosen, rejected (helpfulness) or prompt, response, label (safety),
    as a list of dicts, a datasets.Dataset or a path; default cfg.data / cfg.eval_data. Returns its
    folder (OUT/model), which scores with r1lab.rewards.models.RewardModel."""
    from .stages.reward_model import train
    from .tasks.files import rows_of

    if data is None or isinstance(data, (str, Path)) and (eval_data is None or isinstance(eval_data, (str, Path))):
        return train(cfg if data is None else dataclasses.replace(
            cfg, data=str(data), eval_data=str(eval_data) if eval_data is not None else cfg.eval_data))
    held = rows_of(eval_data, "eval_data", "test") if eval_data is not None else None
    return train(cfg, examples=rows_of(data, "data"), eval_examples=held)


def export_world(out: str | Path) -> Path:
    """The embedded world as the data files a user brings, and OUT/pipeline.yaml naming them and the
    base model's folder (`r1lab export-world OUT`). Returns the YAML's path."""
    from .tasks.sources import export_world as export

    return export(out)


def run_pipeline(out: str | Path, config: str | Path | dict | None = None, jobs: int = 0) -> dict:
    """R1-Zero and the four-stage R1 pipeline into `out`; config: a YAML path, a dict of sections
    (as in r1lab/configs/pipeline.yaml, plus `model`, `language` and `data` for your model and data
    files) or None for the embedded world's defaults; jobs: stages at a time (0: automatic, as
    `r1lab pipeline --jobs`). Returns the summary."""
    from .pipeline import Pipeline, load_config

    cfg = dict(config, _path="config") if isinstance(config, dict) else load_config(config)
    return Pipeline(out, cfg).run(jobs)
