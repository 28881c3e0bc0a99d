"""R1-Zero and R1 as ordered stages passing checkpoint folders.

    r1lab pipeline --out runs/pipeline [--config my.yaml]

    base --GRPO, rules--------------------------------------------------------------> r1-zero
    base --RMs (helpfulness, safety)
    base --cold-start SFT--> r1-cold-start --GRPO + language--> r1-reasoning-rl
    base --SFT on rejection samples of r1-reasoning-rl + general data--> r1-rejection-sft
    r1-rejection-sft --GRPO, rules + reward models (last steps)--> r1

Every stage writes DIR/<stage>/ (its model, data, metrics) and marks it done last; running the same
command again skips done stages and resumes the unfinished one from its last checkpoint. At the end
every model is evaluated the same way (DIR/<stage>/eval.json) and DIR/summary.json and DIR/report.md
are written.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import config as C
from .checkpoint import write_json
from .errors import UserError
from .model import DEFAULT_MODEL
from .tasks import PromptSet

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "pipeline.yaml"
DONE = "DONE"
MODELS = ["base", "r1-zero", "r1-cold-start", "r1-reasoning-rl", "r1-rejection-sft", "r1"]
DISTILLED = "r1-distill-small"  # with a `distill:` section: the small base SFT'd on R1's samples
SECTIONS = ["seed", "eval", "r1-zero", "reward-models", "cold-start", "reasoning-rl", "rejection-sft", "rl-all",
            "distill"]


@dataclass
class EvalSuite:
    problems: int = C.opt(200, "held-out reasoning problems")
    k: int = C.opt(4, "samples per reasoning problem")
    general_k: int = C.opt(4, "samples per held-out general prompt")
    harmful_k: int = C.opt(8, "samples per held-out harmful prompt")


def load_config(path: str | Path | None) -> dict:
    path = Path(path) if path else DEFAULT_CONFIG
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise UserError(f"{path}: cannot be read ({e.strerror})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise UserError(f"{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of stages")
    for key in data:
        if key not in SECTIONS:
            import difflib

            close = difflib.get_close_matches(str(key), SECTIONS, n=1)
            raise UserError(f"{path}: unknown section {key!r}" + (f"; did you mean {close[0]!r}?" if close else ""))
    data["_path"] = str(path)
    return data


class Pipeline:
    def __init__(self, out: str | Path, config: dict):
        self.out = Path(out)
        self.cfg = config
        self.where = config.get("_path", "config")
        self.seed = int(config.get("seed", 0))

    # ---- bookkeeping ------------------------------------------------------------------------
    def dir(self, stage: str) -> Path:
        return self.out / stage

    def done(self, stage: str) -> bool:
        return (self.dir(stage) / DONE).is_file()

    def mark_done(self, stage: str) -> None:
        (self.dir(stage) / DONE).write_text("ok\n")

    def model(self, stage: str) -> str:
        return str(DEFAULT_MODEL) if stage == "base" else str(self.dir(stage) / "model")

    def section(self, name: str) -> dict:
        value = copy.deepcopy(self.cfg.get(name) or {})
        if not isinstance(value, dict):
            raise UserError(f"{self.where}: section {name!r} must be a mapping")
        return value

    def stage(self, name: str, fn) -> None:
        if self.done(name):
            print(f"[pipeline] {name}: done, skipped")
            return
        print(f"[pipeline] {name}: running")
        self.dir(name).mkdir(parents=True, exist_ok=True)
        fn()
        self.mark_done(name)

    # ---- the run ----------------------------------------------------------------------------
    def run(self) -> dict:
        self.validate()
        self.out.mkdir(parents=True, exist_ok=True)
        self.stage("r1-zero", self.r1_zero)
        self.stage("reward-models", self.reward_models)
        self.stage("cold-start-data", self.cold_start_data)
        self.stage("r1-cold-start", self.cold_start_sft)
        self.stage("r1-reasoning-rl", self.reasoning_rl)
        self.stage("rejection-data", self.rejection_data)
        self.stage("r1-rejection-sft", self.rejection_sft)
        self.stage("r1", self.rl_all)
        models = list(MODELS)
        if "distill" in self.cfg:
            self.stage(DISTILLED, self.distill)
            models.append(DISTILLED)
        for name in models:
            self.stage(f"eval-{name}", lambda n=name: self.evaluate(n))
        from .report import write_report

        return write_report(self.out, models)

    def validate(self) -> None:
        """Check every section against its stage's settings before any work starts."""
        from .stages.coldstart import ColdStartConfig
        from .stages.grpo import GRPOConfig
        from .stages.reward_model import RMConfig
        from .stages.sample import SampleConfig
        from .stages.sft import SFTConfig

        C.from_dict(EvalSuite, self.section("eval"), f"{self.where}: eval")
        for name in ("r1-zero", "reasoning-rl"):
            C.from_dict(GRPOConfig, self.section(name), f"{self.where}: {name}")
        rl_all = self.section("rl-all")
        rl_all.pop("preference_steps", None)
        mix = rl_all.pop("mix", {})
        if not isinstance(mix, dict) or set(mix) - {"reasoning", "general", "harmful"}:
            raise UserError(f"{self.where}: rl-all.mix must map reasoning/general/harmful to shares")
        C.from_dict(GRPOConfig, rl_all, f"{self.where}: rl-all")
        for kind, sec in self.section("reward-models").items():
            if kind not in ("helpfulness", "safety"):
                raise UserError(f"{self.where}: reward-models: unknown model {kind!r} (helpfulness, safety)")
            C.from_dict(RMConfig, sec or {}, f"{self.where}: reward-models.{kind}")
        cold = self.section("cold-start")
        for key, sec in cold.items():
            cls = SFTConfig if key == "sft" else ColdStartConfig
            if key not in ("sft", "fewshot", "detailed", "refine"):
                raise UserError(f"{self.where}: cold-start: unknown key {key!r} (fewshot, detailed, refine, sft)")
            C.from_dict(cls, sec or {}, f"{self.where}: cold-start.{key}")
        if "distill" in self.cfg:
            from .stages.distill import DistillConfig

            C.from_dict(DistillConfig, self.section("distill"), f"{self.where}: distill")
        rs = self.section("rejection-sft")
        for key, sec in rs.items():
            if key not in ("sample", "sft"):
                raise UserError(f"{self.where}: rejection-sft: unknown key {key!r} (sample, sft)")
            C.from_dict(SampleConfig if key == "sample" else SFTConfig, sec or {}, f"{self.where}: rejection-sft.{key}")

    # ---- stages -----------------------------------------------------------------------------
    def _grpo(self, section: dict, model: str, out: Path, **kw):
        from .stages.grpo import GRPOConfig, train

        values = dict(seed=self.seed, save_every=10, keep_last=1, eval_problems=0)
        values.update(section)
        values.update(model=model, out=str(out))
        cfg = C.from_dict(GRPOConfig, values, f"{self.where}")
        return train(cfg, **kw)

    def r1_zero(self):
        self._grpo(self.section("r1-zero"), self.model("base"), self.dir("r1-zero"))

    def reward_models(self):
        from .stages.reward_model import RMConfig, train

        secs = self.section("reward-models")
        for kind in ("helpfulness", "safety"):
            values = dict(seed=self.seed)
            values.update(secs.get(kind) or {})
            values.update(kind=kind, model=self.model("base"), out=str(self.dir("reward-models") / kind))
            train(C.from_dict(RMConfig, values, f"{self.where}: reward-models.{kind}"))

    def cold_start_data(self):
        from .stages.coldstart import ColdStartConfig, collect

        secs = self.section("cold-start")
        rows = []
        for method in ("fewshot", "detailed", "refine"):
            values = dict(seed=self.seed)
            values.update(secs.get(method) or {})
            source = self.model("r1-zero") if method == "refine" else self.model("base")
            values.update(method=method, model=source, out=str(self.dir("cold-start-data") / f"{method}.jsonl"))
            rows += collect(C.from_dict(ColdStartConfig, values, f"{self.where}: cold-start.{method}"))
        _write(self.dir("cold-start-data") / "cold_start.jsonl", rows)

    def cold_start_sft(self):
        self._sft(self.section("cold-start").get("sft") or {}, self.dir("cold-start-data") / "cold_start.jsonl",
                  self.dir("r1-cold-start"))

    def _sft(self, section: dict, data: Path, out: Path):
        from .stages.sft import SFTConfig, train

        values = dict(seed=self.seed, save_every=20)
        values.update(section)
        values.update(model=self.model("base"), data=str(data), out=str(out))
        train(C.from_dict(SFTConfig, values, f"{self.where}: sft"))

    def reasoning_rl(self):
        self._grpo(self.section("reasoning-rl"), self.model("r1-cold-start"), self.dir("r1-reasoning-rl"))

    def rejection_data(self):
        from .stages.sample import SampleConfig, rejection_sample

        values = dict(seed=self.seed)
        values.update(self.section("rejection-sft").get("sample") or {})
        values.update(model=self.model("r1-reasoning-rl"), out=str(self.dir("rejection-data") / "data.jsonl"))
        rejection_sample(C.from_dict(SampleConfig, values, f"{self.where}: rejection-sft.sample"))

    def rejection_sft(self):
        self._sft(self.section("rejection-sft").get("sft") or {}, self.dir("rejection-data") / "data.jsonl",
                  self.dir("r1-rejection-sft"))

    def rl_all(self):
        from .rewards import REWARDS, load_reward_fns, parse_spec
        from .rewards.models import RewardModel, helpfulness_reward, safety_reward
        from .stages.grpo import GRPOConfig
        from .tasks.toy import datasets as D

        sec = self.section("rl-all")
        pref_steps = int(sec.pop("preference_steps", 0))
        mix = sec.pop("mix", {"reasoning": 0.5, "general": 0.3, "harmful": 0.2})
        steps = int(sec.get("steps", 60))
        rms = self.dir("reward-models")
        extra = {"helpfulness": helpfulness_reward(RewardModel(rms / "helpfulness" / "model")),
                 "safety": safety_reward(RewardModel(rms / "safety" / "model"))}
        user_fns = C.from_dict(GRPOConfig, {"reward_fn": sec.get("reward_fn", [])}, f"{self.where}: rl-all").reward_fn
        weights = parse_spec(sec.get("rewards", "accuracy=1,format=0.5,language=1,helpfulness=1,safety=1"),
                             REWARDS | load_reward_fns(user_fns) | extra)
        rule_weights = {k: v for k, v in weights.items() if k not in extra}
        switch = steps - pref_steps
        reasoning = D.reasoning_examples(4000, "train", self.seed)
        mixed = mixed_examples(reasoning, D.general_examples(10_000, "train", self.seed),
                               D.harmful_examples(10_000, "train", self.seed), mix, total=2000, seed=self.seed)
        prompts = Phased(PromptSet(reasoning), PromptSet(mixed), switch)
        self._grpo(sec, self.model("r1-rejection-sft"), self.dir("r1"), extra_rewards=extra,
                   reward_schedule=lambda step: rule_weights if step < switch else weights, prompt_source=prompts)

    def distill(self):
        from .stages.distill import DistillConfig, distill

        values = dict(seed=self.seed)
        values.update(self.section("distill"))
        values.update(teacher=self.model("r1"), out=str(self.dir(DISTILLED)), eval_problems=0)
        distill(C.from_dict(DistillConfig, values, f"{self.where}: distill"))

    def evaluate(self, name: str):
        from .report import evaluate_model

        suite = C.from_dict(EvalSuite, self.section("eval"), f"{self.where}: eval")
        folder = self.dir(name)
        folder.mkdir(parents=True, exist_ok=True)
        result = evaluate_model(self.model(name), self.dir("reward-models") / "helpfulness" / "model", suite, self.seed)
        write_json(folder / "eval.json", result)


class Phased:
    """Prompts of one set before `switch`, of another from then on (R1 stage 4's schedule)."""

    def __init__(self, first: PromptSet, second: PromptSet, switch: int):
        self.first, self.second, self.switch = first, second, switch

    def batch(self, step: int, n: int, seed: int) -> list[dict]:
        return (self.first if step < self.switch else self.second).batch(step, n, seed)


def mixed_examples(reasoning, general, harmful, mix: dict, total: int, seed: int) -> list[dict]:
    """`total` examples drawn with the given shares (small sets are repeated)."""
    import random

    rng = random.Random(f"mix-{seed}")
    out = []
    for name, pool in (("reasoning", reasoning), ("general", general), ("harmful", harmful)):
        n = int(round(total * float(mix.get(name, 0))))
        if n and not pool:
            raise UserError(f"rl-all.mix asks for {name} prompts, but there are none")
        out += [pool[i % len(pool)] for i in range(n)] if n else []
    rng.shuffle(out)
    return out


def _write(path: Path, rows: list[dict]) -> None:
    from .stages.coldstart import write_jsonl

    write_jsonl(path, rows)

