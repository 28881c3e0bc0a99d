"""The data of the R1 pipeline by name: what each source holds, its rows from the embedded world, and
`r1lab export-world DIR`, which writes the world as the files a user brings.

    r1lab export-world /tmp/w                                   # JSONL files + /tmp/w/pipeline.yaml
    r1lab pipeline --config /tmp/w/pipeline.yaml --out runs/p   # the same pipeline, from those files

A user's file for a source is JSONL, Parquet or a `save_to_disk` folder with the fields below (other
fields are kept and reach the rewards); it is read by `files.read_data`, the one reader of every stage.
The world's rows here are the ones its stages draw when they are given no file, so a pipeline run
from exported files sees the same data as the default run.
"""

from __future__ import annotations

import random
from pathlib import Path

# name -> (required fields, what it is for); the pipeline YAML's `data:` section uses these names
SOURCES = {
    "reasoning": (("prompt", "answer"), "reasoning prompts with reference answers (optional lang, verifier): "
                  "R1-Zero, reasoning RL, rejection sampling, stage 4, distillation"),
    "reasoning_eval": (("prompt", "answer"), "held-out reasoning problems: pass@1, cons@k, format, language, length"),
    "cold_start_prompts": (("prompt", "answer"), "cold start: the prompts the three methods start from "
                           "(default: the reasoning set)"),
    "fewshot": (("prompt", "completion"), "cold start, method 1: long chain-of-thought exemplars"),
    "cold_start": (("prompt", "completion"), "the cold-start SFT set given directly (the three methods are skipped)"),
    "general_sft": (("prompt", "completion"), "rejection-sampling SFT: general-purpose data, mixed in as it comes"),
    "safety_sft": (("prompt", "completion"), "rejection-sampling SFT: refusals / safety data, mixed in"),
    "preference": (("prompt", "chosen", "rejected"), "helpfulness reward model: preference pairs"),
    "preference_eval": (("prompt", "chosen", "rejected"), "held-out preference pairs (reward-model accuracy)"),
    "safety": (("prompt", "response", "label"), "safety reward model: responses labelled 1 safe / 0 unsafe"),
    "safety_eval": (("prompt", "response", "label"), "held-out safety labels (reward-model accuracy)"),
    "general": (("prompt",), "stage 4: general prompts (optional answer + verifier where a rule applies)"),
    "harmful": (("prompt",), "stage 4: harmful prompts (wanted: a refusal)"),
    "general_eval": (("prompt",), "held-out general prompts: helpfulness (RM), accuracy (rule, where given)"),
    "harmful_eval": (("prompt",), "held-out harmful prompts: harmlessness (rule where given, else the safety RM)"),
}
OPTIONAL = {"cold_start", "cold_start_prompts", "preference_eval", "safety_eval"}  # absent: no error

FEWSHOT_FORMATS = ("{lead} : {prompt} ? {completion} ", "{lead} : {prompt} ?")  # the world's shot and query
DETAILED_FORMAT = "{ask_detailed} : {prompt} ?"  # the world's instruction for detailed answers


# ---- the embedded world's rows, one function per source (the stages call these without a file) --------

def reasoning(n: int = 20_000) -> list[dict]:
    from .toy.arithmetic import problems

    return [p.example() for p in problems(n, "train", seed=0)]


def reasoning_eval(n: int = 200) -> list[dict]:
    from .toy.arithmetic import problems

    return [p.example() for p in problems(n, "test", seed=1)]


def cold_start_prompts(n: int, seed: int) -> list[dict]:
    """Training problems for the cold start, with the world's few-shot lead word and detailed-answer
    request in the question's language, and the multiplicand `a` (the check of a verification)."""
    from .toy.arithmetic import problems
    from .toy.lexicon import PHRASES

    return [dict(p.example(), lead=PHRASES[p.lang]["example"], a=p.a,
                 ask_detailed=PHRASES[p.lang]["ask_detailed"].split(" : ")[0])
            for p in problems(n, "train", seed=1000 + seed)]


def fewshot(prompts: list[dict], shots: int, seed: int) -> list[dict]:
    """Clean single-language worked examples, `shots` per prompt in its language, in the order the
    cold start takes them."""
    from .toy import arithmetic as ar
    from .toy.lexicon import PHRASES

    rng = random.Random(f"cold-fewshot-{seed}")
    out = []
    for row in prompts:
        for _ in range(shots):
            q = ar.sample_problem(rng, "train")
            q = ar.Problem(q.a, q.m, row["lang"])
            text, _ = ar.worked_solution(q, row["lang"], rng)
            out.append({"prompt": q.question(), "completion": text, "answer": str(q.answer), "lang": row["lang"],
                        "lead": PHRASES[row["lang"]]["example"]})
    return out


def general_mix(general: int, seed: int, full_share: float, safety: int) -> tuple[list[dict], list[dict]]:
    """(general-purpose SFT rows, refusals) mixed into rejection-sampling SFT."""
    from .toy.datasets import general_sft_data

    rows = general_sft_data(general, seed, full_share, safety)
    return [r for r in rows if r["kind"] == "general"], [r for r in rows if r["kind"] == "harmful"]


def reward_data(kind: str, examples: int, seed: int) -> tuple[list[dict], list[dict]]:
    """(training, held-out) rows of a reward model: preference pairs or safety labels."""
    from .toy import datasets as D

    make = D.preference_pairs if kind == "helpfulness" else D.safety_examples
    return make(examples, "train", seed), make(max(200, examples // 5), "test", seed)


def prompts(kind: str, split: str, seed: int) -> list[dict]:
    """Every general or harmful prompt of a split (the world is small)."""
    from .toy import datasets as D

    make = D.general_examples if kind == "general" else D.harmful_examples
    return [{k: v for k, v in ex.items() if k != "responses"} for ex in make(10_000, split, seed)]


# ---- export ----------------------------------------------------------------------------------------------

def export_world(out: str | Path, config: dict | None = None) -> Path:
    """Write every source of the embedded world as JSONL under `out` and `out/pipeline.yaml` naming
    them and the base models' folders; settings as in `config` (default: r1lab/configs/pipeline.yaml)."""
    import yaml

    from ..model import ASSETS, DEFAULT_MODEL
    from ..pipeline import load_config
    from ..stages.coldstart import write_jsonl

    out = Path(out)
    cfg = {k: v for k, v in (config or load_config(None)).items() if not k.startswith("_")}
    seed = int(cfg.get("seed", 0))
    sec = lambda name: cfg.get(name) or {}  # noqa: E731
    cold = sec("cold-start")
    n_cold = max(int((cold.get(m) or {}).get("problems", 200)) for m in ("fewshot", "detailed", "refine"))
    shots = int((cold.get("fewshot") or {}).get("shots", 2))
    sample = (sec("rejection-sft").get("sample") or {})
    general, refusals = general_mix(int(sample.get("general", 300)), seed, float(sample.get("general_full_share", 0.2)),
                                    int(sample.get("safety", 60)))
    rms = sec("reward-models")
    pref = reward_data("helpfulness", int((rms.get("helpfulness") or {}).get("examples", 2000)), seed)
    safe = reward_data("safety", int((rms.get("safety") or {}).get("examples", 2000)), seed)
    cold_prompts = cold_start_prompts(n_cold, seed)
    rows = {
        "reasoning": reasoning(), "reasoning_eval": reasoning_eval(max(200, int(sec("eval").get("problems", 200)))),
        "cold_start_prompts": cold_prompts, "fewshot": fewshot(cold_prompts, shots, seed),
        "general_sft": general, "safety_sft": refusals, "preference": pref[0], "preference_eval": pref[1],
        "safety": safe[0], "safety_eval": safe[1],
        "general": prompts("general", "train", seed), "harmful": prompts("harmful", "train", seed),
        "general_eval": prompts("general", "test", seed), "harmful_eval": prompts("harmful", "test", seed),
    }
    for name, data in rows.items():
        write_jsonl(out / f"{name}.jsonl", data)
    cfg = {"model": str(DEFAULT_MODEL.resolve()), "language": "toy", "data": {name: f"{name}.jsonl" for name in rows},
           **cfg}
    cold.setdefault("fewshot", {}).update(shot_format=FEWSHOT_FORMATS[0], query_format=FEWSHOT_FORMATS[1])
    cold.setdefault("detailed", {}).update(instruction=DETAILED_FORMAT)
    cfg["cold-start"] = cold
    if "distill" in cfg:
        cfg["distill"] = dict(cfg["distill"] or {}, student=str((ASSETS / "base-small").resolve()))
    head = ("# The embedded world as files (r1lab export-world): `r1lab pipeline --config THIS_FILE --out DIR`.\n"
            "# Data paths are relative to this file; see the README, 'The R1 recipe on your own model'.\n")
    (out / "pipeline.yaml").write_text(head + yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return out / "pipeline.yaml"
