"""r1lab: train language models the way DeepSeek-R1 was trained.

The Python API (r1lab/api.py): each stage is a config dataclass and a function over it.

    r1lab.GRPOConfig, r1lab.grpo (= r1lab.zero)     GRPO with your data and reward functions
    r1lab.SFTConfig, r1lab.sft                      supervised fine-tuning
    r1lab.SampleConfig, r1lab.sample                rejection sampling
    r1lab.RMConfig, r1lab.reward_model              reward models
    r1lab.run_pipeline                              R1-Zero and the four-stage R1 pipeline
    r1lab.export_world                              the embedded world as data files + a pipeline YAML
    r1lab.REWARDS, r1lab.score                      the built-in rewards and the weighted sum

Names are imported on first use, so `import r1lab` (and a reward worker process) stays light.
"""

__version__ = "0.1.0"

_EXPORTS = {
    "GRPOConfig": "stages.grpo", "SFTConfig": "stages.sft", "SampleConfig": "stages.sample",
    "RMConfig": "stages.reward_model", "grpo": "api", "zero": "api", "sft": "api", "sample": "api",
    "reward_model": "api", "run_pipeline": "api", "export_world": "api", "REWARDS": "rewards", "score": "rewards",
    "load_task": "tasks",
    "UserError": "errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'r1lab' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
