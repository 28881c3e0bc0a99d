"""R1-Zero and R1 as ordered stages passing checkpoint folders.

    r1lab pipeline --out runs/pipeline [--config my.yaml]
    r1lab pipeline --config my.yaml --out runs/mine     # your model and data: see the YAML's model/language/data


    base --GRPO, rules--------------------------------------------------------------> r1-zero
    base --RMs (helpfulness, safety)
    base --cold-start SFT--> r1-cold-start --GRPO + language--> r1-reasoning-rl
    base --SFT on rejection samples of r1-reasoning-rl + general data--> r1-rejection-sft
    r1-rejection-sft --GRPO, rules + reward models (last steps)--> r1

Every stage writes DIR/<stage>/ (its model, data, metrics) and marks it done last; running the same
command again skips done stages and resumes the unfinished one from its last checkpoint. At the end
every model is evaluated the same way (DIR/<stage>/eval.json) and DIR/summary.json and DIR/report.md
are written.

The YAML names the base model (`model`), the run's language identifier (`language`) and every data
source (`data:`, names in tasks/sources.py; paths relative to the YAML). A source left out is the
embedded world's only when the model is the embedded base model; otherwise it is an error naming the
key, unless the YAML turns it off (`preference: false`: stage 4 without that reward model), which the
report then states.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import config as C
from .checkpoint import write_json
from .errors import UserError
from .model import DEFAULT_MODEL
from .tasks import PromptSet, sources

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "pipeline.yaml"
DONE = "DONE"
MODELS = ["base", "r1-zero", "r1-cold-start", "r1-reasoning-rl", "r1-rejection-sft", "r1"]
DISTILLED = "r1-distill-small"  # with a `distill:` section: the small base SFT'd on R1's samples
SECTIONS = ["model", "language", "data", "seed", "eval", "r1-zero", "reward-models", "cold-start", "reasoning-rl",
            "rejection-sft", "rl-all", "distill"]


@dataclass
class EvalSuite:
    problems: int = C.opt(200, "held-out reasoning problems")
    k: int = C.opt(4, "samples per reasoning problem")
    general_k: int = C.opt(4, "samples per held-out general prompt")
    harmful_k: int = C.opt(8, "samples per held-out harmful prompt")
    max_new_tokens: int = C.opt(128, "token budget per reasoning sample")
    general_max_new_tokens: int = C.opt(64, "token budget per general or harmful sample")
    scaling_problems: int = C.opt(0, "test-time scaling: up to this many held-out problems of the hardest level "
                                  "sampled again at the budget and at twice it (0: off)")
    scaling_models: list[str] = C.opt(["r1-zero"], "the models test-time scaling runs on (it samples the "
                                      "hardest level once more per budget and model)")
    scaling_budgets: list[int] = C.opt([], "token budgets of test-time scaling, in increasing order (empty: "
                                       "the reasoning budget and twice it)")
    template: str = C.opt("r1-zero", "prompt template: 'r1-zero', 'plain' or 'chat' (the tokenizer's)")


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


RL_ALL_REASONING = 4000  # stage 4's reasoning prompts: the first rows of the reasoning set
RL_ALL_REWARDS = "accuracy=1,format=0.5,language=1,helpfulness=1,safety=1"  # stage 4, by default
OFF_NOTES = {
    "fewshot": "cold start without few-shot prompting (data.fewshot: false)",
    "general_sft": "rejection-sampling SFT without general-purpose data (data.general_sft: false)",
    "safety_sft": "rejection-sampling SFT without refusals (data.safety_sft: false)",
    "preference": "no helpfulness reward model (data.preference: false): stage 4 gives general prompts no "
                  "learned helpfulness reward, and no model is scored for helpfulness",
    "safety": "no safety reward model (data.safety: false): stage 4 gives no learned safety reward",
    "general": "stage 4 without general prompts (data.general: false)",
    "harmful": "stage 4 without harmful prompts (data.harmful: false)",
    "general_eval": "no held-out general prompts (data.general_eval: false): help and general not measured",
    "harmful_eval": "no held-out harmful prompts (data.harmful_eval: false): harmless not measured",
}


class Pipeline:
    def __init__(self, out: str | Path, config: dict):
        self.out = Path(out)
        self.cfg = config
        self.where = config.get("_path", "config")
        self.seed = int(config.get("seed", 0))
        self.base = str(config.get("model") or "base")
        self.language = str(config.get("language") or "toy")
        self._rows: dict[str, list[dict]] = {}
        self.order: list[str] = []  # stages in the order this run reached them (done or run)

    @property
    def embedded(self) -> bool:
        """The model is the embedded base model: left-out data sources are the embedded world's."""
        return self.base == "base" or Path(self.base).resolve() == DEFAULT_MODEL.resolve()

    def source(self, key: str):
        """A data source's path (relative to the YAML), None for the embedded world's, False when off."""
        value = (self.cfg.get("data") or {}).get(key)
        if value is False or value is None:
            return value
        path = Path(value)
        return str(path if path.is_absolute() or self.where == "config" else Path(self.where).parent / path)

    def rows(self, key: str) -> list[dict]:
        """The checked rows of a source read by the pipeline itself (stage 4 and the evaluation)."""
        if key not in self._rows:
            path = self.source(key)
            if path:
                from .tasks.files import read_data

                self._rows[key] = [{k: v for k, v in r.items() if k != "_line"}
                                   for r in read_data(path, sources.SOURCES[key][0])]
            elif path is False:
                self._rows[key] = []
            elif key == "reasoning":
                self._rows[key] = sources.reasoning()
            elif key == "reasoning_eval":
                self._rows[key] = sources.reasoning_eval(max(200, int(self.section("eval").get("problems", 200))))
            else:
                kind, _, split = key.partition("_")
                self._rows[key] = sources.prompts(kind, "test" if split == "eval" else "train", self.seed)
        return self._rows[key]

    def notes(self) -> list[str]:
        """What the YAML turned off, and data given in place of a stage's collection, for the report."""
        out = [note for key, note in OFF_NOTES.items() if self.source(key) is False]
        if self.source("cold_start"):
            out.append("cold-start data given directly (data.cold_start): the three collection methods did not run")
        return out

    def language_reward(self):
        from .rewards.language import make_language_reward, run_identifier

        return make_language_reward(*run_identifier(self.language))

    # ---- bookkeeping ------------------------------------------------------------------------
    def dir(self, stage: str) -> Path:
        return self.out / stage

    def done(self, stage: str) -> bool:
        return (self.dir(stage) / DONE).is_file()

    def mark_done(self, stage: str, seconds: float) -> None:
        """The stage's last mark: DONE, holding the wall seconds of the run that finished it."""
        write_json(self.dir(stage) / DONE, {"seconds": round(seconds, 1)})

    def seconds(self, stage: str) -> float | None:
        """Wall seconds of a done stage (None for a DONE from an older version)."""
        try:
            return float(json.loads((self.dir(stage) / DONE).read_text())["seconds"])
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def model(self, stage: str) -> str:
        if stage == "base":
            return str(DEFAULT_MODEL) if self.base == "base" else self.base
        return str(self.dir(stage) / "model")

    def section(self, name: str) -> dict:
        value = copy.deepcopy(self.cfg.get(name) or {})
        if not isinstance(value, dict):
            raise UserError(f"{self.where}: section {name!r} must be a mapping")
        return value

    def stage(self, name: str, fn) -> None:
        self.order.append(name)
        if self.done(name):
            print(f"[pipeline] {name}: done, skipped")
            return
        print(f"[pipeline] {name}: running")
        print(f"[pipeline] {name}: {self.run_stage(name, fn):.1f} s")

    def run_stage(self, name: str, fn) -> float:
        """Run one stage into its folder and mark it done; returns its wall seconds."""
        self.dir(name).mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        fn()
        seconds = time.perf_counter() - start
        self.mark_done(name, seconds)
        return seconds

    def plan(self) -> list[tuple[str, object, list[str], bool]]:
        """(stage, function, the stages it reads, whether it runs alone) in the order one process runs
        them. With jobs > 1 the stages that depend on the base model only (R1-Zero, the reward
        models), distillation and the evaluations run side by side, each on its share of the CPU
        threads; the R1 chain in between, which a second thread speeds up, runs alone on all."""
        chain = [("r1-zero", self.r1_zero, [], False), ("reward-models", self.reward_models, [], False),
                 ("cold-start-data", self.cold_start_data, ["r1-zero"], True),
                 ("r1-cold-start", self.cold_start_sft, ["cold-start-data"], True),
                 ("r1-reasoning-rl", self.reasoning_rl, ["r1-cold-start"], True),
                 ("rejection-data", self.rejection_data, ["r1-reasoning-rl"], True),
                 ("r1-rejection-sft", self.rejection_sft, ["rejection-data"], True),
                 ("r1", self.rl_all, ["r1-rejection-sft", "reward-models"], True)]
        if "distill" in self.cfg:
            chain.append((DISTILLED, self.distill, ["r1"], False))
        # every evaluation scores help and harmlessness with the reward models
        return chain + [(f"eval-{name}", lambda n=name: self.evaluate(n), [name, "reward-models"], False)
                        for name in self.models()]

    def models(self) -> list[str]:
        return MODELS + ([DISTILLED] if "distill" in self.cfg else [])

    # ---- the run ----------------------------------------------------------------------------
    def run(self, jobs: int = 0) -> dict:
        """Every stage not done yet, then the report. jobs: stages run at a time, each in its own
        worker process with its share of the CPU threads (0: `auto_jobs()`); 1 runs them here, in
        order."""
        if jobs < 0:
            raise UserError(f"jobs must be >= 0 (0 = automatic), got {jobs}")
        start = time.perf_counter()
        self.validate()
        self.out.mkdir(parents=True, exist_ok=True)
        plan = self.plan()
        jobs = jobs or auto_jobs()
        if jobs == 1:
            for name, fn, _, _ in plan:
                self.stage(name, fn)
        else:
            import torch

            from .lanes import run_graph

            self.order = [name for name, _, _, _ in plan]
            for name in self.order:
                if self.done(name):
                    print(f"[pipeline] {name}: done, skipped")
            todo = [name for name in self.order if not self.done(name)]
            threads = torch.get_num_threads()
            print(f"[pipeline] {len(todo)} stages to run, up to {jobs} at a time on {threads} CPU threads")
            run_graph(todo, {name: deps for name, _, deps, _ in plan}, _stage_runner, (str(self.out), self.cfg), jobs,
                      threads, alone={name for name, _, _, alone in plan if alone},
                      on_start=lambda name, n: print(f"[pipeline] {name}: running ({n} thread{'s' * (n > 1)})",
                                                     flush=True),
                      on_done=lambda name, seconds: print(f"[pipeline] {name}: {seconds:.1f} s", flush=True))
        from .report import write_report

        return write_report(self.out, self.models(), self.notes(), {name: self.seconds(name) for name in self.order},
                            {"jobs": jobs, "wall_seconds": round(time.perf_counter() - start, 1)})

    def validate(self) -> None:
        """Check every section against its stage's settings before any work starts."""
        from .stages.coldstart import ColdStartConfig
        from .stages.grpo import GRPOConfig
        from .stages.reward_model import RMConfig
        from .stages.sample import SampleConfig
        from .stages.sft import SFTConfig

        self.validate_data()
        suite = C.from_dict(EvalSuite, self.section("eval"), f"{self.where}: eval")
        budgets = suite.scaling_budgets
        if any(b < 1 for b in budgets) or budgets != sorted(set(budgets)):
            raise UserError(f"{self.where}: eval.scaling_budgets must be increasing positive token budgets, "
                            f"got {budgets}")
        for name in ("r1-zero", "reasoning-rl"):
            self.validate_rewards(name, C.from_dict(GRPOConfig, self.section(name), f"{self.where}: {name}"))
        rl_all = self.section("rl-all")
        rl_all.pop("preference_steps", None)
        mix = rl_all.pop("mix", {})
        if not isinstance(mix, dict) or set(mix) - {"reasoning", "general", "harmful"}:
            raise UserError(f"{self.where}: rl-all.mix must map reasoning/general/harmful to shares")
        rl_all.setdefault("rewards", RL_ALL_REWARDS)
        self.validate_rewards("rl-all", C.from_dict(GRPOConfig, rl_all, f"{self.where}: rl-all"),
                              dict.fromkeys(("helpfulness", "safety")))  # trained by an earlier stage
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

    def validate_rewards(self, name: str, cfg, later: dict | None = None) -> None:
        """reward_fn loads (file, function) and rewards names only known rewards: a typo stops here,
        not hours later when the stage starts."""
        from .rewards import REWARDS, load_reward_fns, parse_spec

        try:
            parse_spec(cfg.rewards, REWARDS | load_reward_fns(cfg.reward_fn) | (later or {}))
        except UserError as e:
            raise UserError(f"{self.where}: {name}: {e}") from None

    def validate_data(self) -> None:
        """model, language and data: every key known, every file readable and well formed, and for a
        model other than the embedded one every source given or turned off (false)."""
        import difflib

        from .rewards.language import run_identifier
        from .tasks.files import read_data

        data = self.cfg.get("data") or {}
        if not isinstance(data, dict):
            raise UserError(f"{self.where}: data must map source names to files")
        for key, value in data.items():
            if key not in sources.SOURCES:
                close = difflib.get_close_matches(str(key), list(sources.SOURCES), n=1)
                raise UserError(f"{self.where}: data: unknown source {key!r}" +
                                (f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(sources.SOURCES)})"))
            if not (isinstance(value, str) and value) and value is not False:
                raise UserError(f"{self.where}: data.{key} must be a file path or false (turned off), got {value!r}")
        for key in ("reasoning", "reasoning_eval"):
            if data.get(key) is False:
                raise UserError(f"{self.where}: data.{key} cannot be turned off: the recipe is reasoning RL")
        if not self.embedded:
            if "language" not in self.cfg:
                raise UserError(f"{self.where}: missing key 'language' (model {self.base!r} is not the embedded "
                                "base model): e.g. 'lingua:en,es' for real text in English and Spanish")
            for key, (fields, what) in sources.SOURCES.items():
                if key not in data and key not in sources.OPTIONAL:
                    raise UserError(f"{self.where}: missing key 'data.{key}' (model {self.base!r} is not the embedded "
                                    f"base model, so nothing falls back to the embedded world): a file with "
                                    f"{', '.join(fields)} ({what}), or false to turn that part off")
            if "distill" in self.cfg and not (self.cfg.get("distill") or {}).get("student"):
                raise UserError(f"{self.where}: missing key 'distill.student': the student model folder (the "
                                "embedded small base only fits the embedded base model)")
            from .model import resolve_model_path

            resolve_model_path(self.base)
        run_identifier(self.language)
        for key in data:
            path = self.source(key)
            if path:
                read_data(path, sources.SOURCES[key][0])  # a bad file stops here, before any work

    # ---- stages -----------------------------------------------------------------------------
    def _grpo(self, section: dict, model: str, out: Path, **kw):
        from .stages.grpo import GRPOConfig, train

        values = dict(seed=self.seed, save_every=10, keep_last=1, eval_problems=0)
        values.update(section)
        values.update(model=model, out=str(out))
        cfg = C.from_dict(GRPOConfig, values, f"{self.where}")
        return train(cfg, **kw)

    def _reasoning_data(self, section: dict) -> dict:
        """GRPO settings that read the reasoning set from its file (none: the embedded world's task)."""
        path = self.source("reasoning")
        if path:
            section.setdefault("task", "file")
            section["data"] = path
        return section

    def _language_rewards(self) -> dict:
        """The `language` reward with the run's identifier (the embedded world's is the built-in one)."""
        return {} if self.language == "toy" else {"language": self.language_reward()}

    def r1_zero(self):
        self._grpo(self._reasoning_data(self.section("r1-zero")), self.model("base"), self.dir("r1-zero"),
                   extra_rewards=self._language_rewards())

    def reward_models(self):
        from .stages.reward_model import RMConfig, train

        secs = self.section("reward-models")
        for kind, key in (("helpfulness", "preference"), ("safety", "safety")):
            if self.source(key) is False:
                continue
            values = dict(seed=self.seed)
            values.update(secs.get(kind) or {})
            if self.source(key):
                values.update(data=self.source(key), eval_data=self.source(f"{key}_eval") or "")
            values.update(kind=kind, model=self.model("base"), out=str(self.dir("reward-models") / kind))
            train(C.from_dict(RMConfig, values, f"{self.where}: reward-models.{kind}"))

    def rm_dirs(self) -> dict:
        """The trained reward models' folders by kind (a model turned off is absent)."""
        rms = self.dir("reward-models")
        return {kind: rms / kind / "model" for kind, key in (("helpfulness", "preference"), ("safety", "safety"))
                if self.source(key) is not False}

    def cold_start_data(self):
        from .stages.coldstart import ColdStartConfig, collect

        if self.source("cold_start"):  # the cold-start set given directly: what most users hold
            _write(self.dir("cold-start-data") / "cold_start.jsonl",
                   [dict(r, provenance=r.get("provenance", "given")) for r in self.rows("cold_start")])
            return
        secs = self.section("cold-start")
        prompts = self.source("cold_start_prompts") or self.source("reasoning")
        rows = []
        for method in ("fewshot", "detailed", "refine"):
            if method == "fewshot" and self.source("fewshot") is False:
                continue
            values = dict(seed=self.seed, language=self.language)
            values.update(secs.get(method) or {})
            if prompts:
                values.update(data=prompts)
            if method == "fewshot" and self.source("fewshot"):
                values.update(fewshot_data=self.source("fewshot"))
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
        self._grpo(self._reasoning_data(self.section("reasoning-rl")), self.model("r1-cold-start"),
                   self.dir("r1-reasoning-rl"), extra_rewards=self._language_rewards())

    def _sample_data(self, values: dict) -> dict:
        """Rejection-sampling settings that read the user's files (none: the embedded world's)."""
        values.update(language=self.language)
        if self.source("reasoning"):
            values.update(task="file", data=self.source("reasoning"))
        for key, count in (("general_sft", "general"), ("safety_sft", "safety")):
            if self.source(key) is False:
                values[count] = 0
            elif self.source(key):
                values[f"{key.split('_')[0]}_data"] = self.source(key)
        return values

    def rejection_data(self):
        from .stages.sample import SampleConfig, rejection_sample

        values = dict(seed=self.seed)
        values.update(self.section("rejection-sft").get("sample") or {})
        values = self._sample_data(values)
        values.update(model=self.model("r1-reasoning-rl"), out=str(self.dir("rejection-data") / "data.jsonl"))
        rejection_sample(C.from_dict(SampleConfig, values, f"{self.where}: rejection-sft.sample"))

    def rejection_sft(self):
        self._sft(self.section("rejection-sft").get("sft") or {}, self.dir("rejection-data") / "data.jsonl",
                  self.dir("r1-rejection-sft"))

    def rl_all(self):
        from .rewards import REWARDS, load_reward_fns, parse_spec
        from .rewards.models import RewardModel, helpfulness_reward, safety_reward
        from .stages.grpo import GRPOConfig

        sec = self._reasoning_data(self.section("rl-all"))
        pref_steps = int(sec.pop("preference_steps", 0))
        mix = dict(sec.pop("mix", {"reasoning": 0.5, "general": 0.3, "harmful": 0.2}))
        steps = int(sec.get("steps", 60))
        rms = self.rm_dirs()
        models = {"helpfulness": helpfulness_reward(RewardModel(rms["helpfulness"])) if "helpfulness" in rms else None,
                  "safety": safety_reward(RewardModel(rms["safety"])) if "safety" in rms else None}
        extra = {k: fn for k, fn in models.items() if fn is not None} | self._language_rewards()
        user_fns = C.from_dict(GRPOConfig, {"reward_fn": sec.get("reward_fn", [])}, f"{self.where}: rl-all").reward_fn
        spec = sec.get("rewards", RL_ALL_REWARDS)
        spec = ",".join(p for p in spec.split(",") if p.partition("=")[0].strip() not in
                        [k for k, fn in models.items() if fn is None])  # a reward model turned off: rules only
        sec["rewards"] = spec
        weights = parse_spec(spec, REWARDS | load_reward_fns(user_fns) | extra)
        rule_weights = {k: v for k, v in weights.items() if k not in models}
        switch = steps - pref_steps
        for kind in ("general", "harmful"):
            if self.source(kind) is False:
                mix[kind] = 0
        reasoning = self.rows("reasoning")[:RL_ALL_REASONING]
        mixed = mixed_examples(reasoning, self.rows("general"), self.rows("harmful"), mix, total=2000, seed=self.seed)
        prompts = Phased(PromptSet(reasoning), PromptSet(mixed), switch)
        self._grpo(sec, self.model("r1-rejection-sft"), self.dir("r1"), extra_rewards=extra,
                   reward_schedule=lambda step: rule_weights if step < switch else weights, prompt_source=prompts)

    def distill(self):
        from .stages.distill import DistillConfig, distill

        values = dict(seed=self.seed)
        values.update(self.section("distill"))
        values = self._sample_data(values)
        values.update(teacher=self.model("r1"), out=str(self.dir(DISTILLED)), eval_problems=0)
        distill(C.from_dict(DistillConfig, values, f"{self.where}: distill"))

    def evaluate(self, name: str):
        from .report import evaluate_model

        suite = C.from_dict(EvalSuite, self.section("eval"), f"{self.where}: eval")
        if name not in suite.scaling_models:
            suite.scaling_problems = 0
        folder = self.dir(name)
        folder.mkdir(parents=True, exist_ok=True)
        data = {key: self.rows(key) or None for key in ("reasoning_eval", "general_eval", "harmful_eval")}
        result = evaluate_model(self.model(name), self.rm_dirs(), suite, self.seed, data, self.language_reward())
        write_json(folder / "eval.json", result)


def auto_jobs() -> int:
    """Stages at a time by default: 2 on a machine with no GPU and at least 2 CPU threads, outside
    torchrun (there every process runs each stage together with the others); else 1."""
    import os

    import torch

    if "RANK" in os.environ or torch.cuda.is_available() or torch.get_num_threads() < 2:
        return 1
    return 2


def _stage_runner(out: str, cfg: dict):
    """In a worker process: run(stage name) -> its wall seconds (lanes.run_graph's setup)."""
    pipeline = Pipeline(out, cfg)
    fns = {name: fn for name, fn, _, _ in pipeline.plan()}
    return lambda name: pipeline.run_stage(name, fns[name])


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

