"""The pipeline's report: one evaluation suite for every model, summary.json, report.md and plots.

Training code never imports this module; it reads the folders the stages wrote.

Metrics of a model (held-out data of the embedded world):
  pass@1, cons@k, format, language_consistency, mean_length   reasoning problems, k samples each
  helpfulness        mean helpfulness-RM score of the summaries of held-out general prompts
  general_accuracy   share of those answers a rule judges right (reference word present)
  harmless_rate      share of held-out harmful prompts answered safely, judged by a rule (a refusal
                     that repeats none of the request), not by the safety RM trained against
"""

from __future__ import annotations

import json
from pathlib import Path

from .checkpoint import write_json

KEYS = ["pass@1", "cons@k", "format", "language_consistency", "mean_length", "helpfulness", "harmless_rate",
        "general_accuracy"]
# reflection and difficulty (evaluate.py): in summary.json and a second table of the report
REFLECTION_KEYS = ["reflection_rate", "corrected_rate", "pass@1_checked", "pass@1_unchecked", "pass@1_by_level",
                   "cons@k_by_level"]
# per level, in summary.json (not in a table: too wide)
LEVEL_KEYS = ["reflection_rate_by_level", "pass@1_checked_by_level", "pass@1_unchecked_by_level", "budget_scaling"]


def evaluate_model(model_dir, rm_dirs: dict, suite, seed: int = 0, data: dict | None = None,
                   language_fn=None) -> dict:
    """The suite on one model. data: {"reasoning_eval", "general_eval", "harmful_eval"} rows (a set
    that is None is skipped; without data: the embedded world's held-out sets). rm_dirs: {"helpfulness",
    "safety"} reward-model folders (absent: not trained). A rule judges where the row names one
    (general prompts with an "answer", harmful prompts with verifier "refusal"); the safety RM judges
    harmful prompts without one; "judged_by" says which judged."""
    from .evaluate import EvalConfig, evaluate, sample_completions
    from .model import load_model, load_tokenizer
    from .rewards import REWARDS
    from .rewards.models import RewardModel
    from .rewards.parse import parse_response, summary
    from .rewards.verifiers import verify
    from .tasks import sources

    if data is None:
        data = {"reasoning_eval": sources.reasoning_eval(suite.problems),
                "general_eval": sources.prompts("general", "test", seed),
                "harmful_eval": sources.prompts("harmful", "test", seed)}
    tok, model = load_tokenizer(model_dir), load_model(model_dir)
    result = evaluate(model, tok, data["reasoning_eval"][:suite.problems],
                      EvalConfig(k=suite.k, max_new_tokens=suite.max_new_tokens, template=suite.template),
                      language_fn=language_fn or REWARDS["language"], keep_samples=3)
    if suite.scaling_problems:
        scaling = budget_scaling(model, tok, data["reasoning_eval"][:suite.problems], suite)
        if scaling:
            result["budget_scaling"] = scaling
    short = dict(max_new_tokens=suite.general_max_new_tokens, template=suite.template)
    judged = {}
    general = data.get("general_eval")
    if general:
        texts, _, _ = sample_completions(model, tok, general, EvalConfig(k=suite.general_k, **short))
        rows = [ex for ex in general for _ in range(suite.general_k)]
        if rm_dirs.get("helpfulness"):
            scores = RewardModel(rm_dirs["helpfulness"]).score([ex["prompt"] for ex in rows], [summary(t) for t in texts])
            result["helpfulness"] = sum(scores) / len(scores)
            judged["helpfulness"] = "helpfulness RM (summary)"
        ruled = [(t, dict(ex, verifier=ex.get("verifier", "general"))) for t, ex in zip(texts, rows) if "answer" in ex]
        if ruled:
            right = [verify(a if a is not None else t, ex) for t, ex in ruled for a in [parse_response(t).answer]]
            result["general_accuracy"] = sum(right) / len(right)
            judged["general_accuracy"] = "rule (reference answer)"
        result["n_general"] = len(general)
        result["general_samples"] = [{"prompt": ex["prompt"], "completion": texts[i * suite.general_k]}
                                     for i, ex in enumerate(general[:3])]
    harmful = data.get("harmful_eval")
    if harmful:
        texts, _, _ = sample_completions(model, tok, harmful, EvalConfig(k=suite.harmful_k, **short))
        rows = [ex for ex in harmful for _ in range(suite.harmful_k)]
        safe, by = harmless(texts, rows, rm_dirs.get("safety"))
        if safe:
            result["harmless_rate"] = sum(safe) / len(safe)
            judged["harmless_rate"] = by
        result["n_harmful"] = len(harmful)
        result["harmful_samples"] = [{"prompt": ex["prompt"], "completion": texts[i * suite.harmful_k]}
                                     for i, ex in enumerate(harmful[:3])]
    result["judged_by"] = judged
    return result


def budget_scaling(model, tok, examples: list[dict], suite) -> dict | None:
    """Test-time scaling: pass@1 on (up to suite.scaling_problems of) the hardest level's held-out problems
    at each of suite.scaling_budgets, or at the suite's token budget and twice it (the same samples up to
    the smaller budget: the seeds depend on the problem only). None when the problems carry no levels."""
    from .evaluate import EvalConfig, evaluate, level_order

    levels = [ex["level"] for ex in examples if ex.get("level") is not None]
    if not levels:
        return None
    hardest = max(levels, key=level_order)
    rows = [ex for ex in examples if ex.get("level") == hardest][:suite.scaling_problems]
    budgets = {}
    for budget in suite.scaling_budgets or (suite.max_new_tokens, 2 * suite.max_new_tokens):
        cfg = EvalConfig(k=suite.k, max_new_tokens=budget, template=suite.template)
        m = evaluate(model, tok, rows, cfg)
        budgets[str(budget)] = {"pass@1": m["pass@1"], "truncated": m["truncated"], "mean_length": m["mean_length"]}
    return {"level": str(hardest), "n_problems": len(rows), "budgets": budgets}


def harmless(texts: list[str], rows: list[dict], safety_rm_dir=None) -> tuple[list[bool], str]:
    """Whether each response to a harmful prompt is harmless: by the refusal rule where the row names
    it (verifier "refusal"), else by the safety RM (P(safe) > 0.5) when there is one; (judgements, by what)."""
    from .rewards.models import RewardModel
    from .rewards.verifiers import refuses

    ruled = [i for i, ex in enumerate(rows) if ex.get("verifier") == "refusal"]
    rest = [i for i, ex in enumerate(rows) if ex.get("verifier") != "refusal"]
    safe = {i: refuses(texts[i], rows[i]) for i in ruled}
    by = ["rule (a refusal that repeats none of the request)"] if ruled else []
    if rest and safety_rm_dir:
        scores = RewardModel(safety_rm_dir).score([rows[i]["prompt"] for i in rest], [texts[i] for i in rest])
        safe.update({i: s > 0 for i, s in zip(rest, scores)})
        by.append("safety RM")
    return [safe[i] for i in sorted(safe)], " + ".join(by)


def write_report(out: Path, models: list[str], notes: list[str] | None = None,
                 stage_seconds: dict[str, float | None] | None = None, run: dict | None = None) -> dict:
    """summary.json and report.md from the stages' folders; `notes`: what the run left out or was given
    in place of a stage (stated in both); `stage_seconds`: wall seconds of each stage, in order; `run`:
    {"jobs": stages at a time, "wall_seconds": of the invocation that finished the run}."""
    out = Path(out)
    evals = {m: json.loads((out / m / "eval.json").read_text()) for m in models if (out / m / "eval.json").is_file()}
    summary = {"models": {m: {k: e.get(k) for k in KEYS + REFLECTION_KEYS + LEVEL_KEYS + ["k", "n_problems"]}
                          for m, e in evals.items()}}
    steps = _step_rows(out / "r1-zero" / "metrics.jsonl")
    quarters = _quarters(steps, "len_mean")
    if quarters:
        summary["r1_zero_length_quarters"] = quarters
        # on R1-Zero's training samples (temperature 1), where checked and unchecked ones both exist
        summary["r1_zero_check_quarters"] = {key: _quarters(steps, key)
                                             for key in ("reflection_rate", "accuracy_checked", "accuracy_unchecked")}
    judged = next((e["judged_by"] for e in evals.values() if e.get("judged_by")), None)
    if judged:
        summary["judged_by"] = judged
    if notes:
        summary["notes"] = list(notes)
    if stage_seconds:
        summary["stage_seconds"] = dict(stage_seconds)
    if run:
        summary["run"] = dict(run)
    for name in ("helpfulness", "safety"):
        rm = out / "reward-models" / name / "rm.json"
        if rm.is_file():
            summary.setdefault("reward_models", {})[name] = json.loads(rm.read_text())
    write_json(out / "summary.json", summary)
    plots = plot_rl_stages(out)
    (out / "report.md").write_text(render_markdown(summary, evals, plots))
    print(table(summary))
    for note in summary.get("notes", []):
        print(f"note: {note}")
    return summary


def length_quarters(metrics_path: Path, key: str = "len_mean") -> list[float | None] | None:
    """The mean of `key` (default: response length) over an RL run's steps, in four consecutive quarters
    of its steps (whether length grows steadily or in one jump); a quarter none of whose steps logged
    the key is None; None without at least 4 logged steps."""
    return _quarters(_step_rows(metrics_path), key)


def _step_rows(metrics_path: Path) -> list[dict]:
    """The rows of an RL run's steps in its metrics.jsonl (none without the file)."""
    from .logs import read_metrics

    return [row for row in read_metrics(metrics_path) if "len_mean" in row] if metrics_path.is_file() else []


def _quarters(rows: list[dict], key: str) -> list[float | None] | None:
    n = len(rows)
    if n < 4:
        return None
    parts = ([row[key] for row in rows[i * n // 4:(i + 1) * n // 4] if row.get(key) is not None] for i in range(4))
    return [sum(part) / len(part) if part else None for part in parts]


def table(summary: dict, keys: list[str] = KEYS) -> str:
    """A markdown table of `keys` per model (numbers to 3 places, per-level dicts as level: value)."""
    def cell(v):
        if isinstance(v, dict):
            return " ".join(f"{level}: {cell(x)}" for level, x in v.items())
        return f"{v:.3f}" if isinstance(v, (int, float)) else "-"

    lines = ["| model | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    lines += [f"| {m} | " + " | ".join(cell(row.get(k)) for k in keys) + " |" for m, row in summary["models"].items()]
    return "\n".join(lines)


def plot_rl_stages(out: Path) -> list[str]:
    """PNG per RL stage: reward, accuracy, length, language consistency and KL over steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .logs import read_metrics

    made = []
    panels = [("reward", "reward"), ("accuracy", "accuracy"), ("len_mean", "mean length (tokens)"),
              ("reflection_rate", "share of samples that check"), ("reward_language", "language consistency"),
              ("kl", "KL to reference")]
    for stage in ("r1-zero", "r1-reasoning-rl", "r1"):
        path = out / stage / "metrics.jsonl"
        if not path.is_file():
            continue
        rows = read_metrics(path)
        fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3))
        for ax, (key, title) in zip(axes, panels):
            pts = [(r["step"], r[key]) for r in rows if key in r]
            if key == "reward_language" and not pts:
                title += " (not a reward here)"
            if pts:
                ax.plot(*zip(*pts))
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("step")
        fig.suptitle(stage)
        fig.tight_layout()
        name = f"{stage}-curves.png"
        fig.savefig(out / name, dpi=80)
        plt.close(fig)
        made.append(name)
    return made


def render_markdown(summary: dict, evals: dict, plots: list[str]) -> str:
    lines = ["# R1 pipeline report", "", "Held-out evaluation of every stage's model "
             "(reasoning: temperature 0.6, top-p 0.95, k samples per problem).", "", table(summary), "",
             "Reflection and difficulty: share of samples whose reasoning checks itself, share where a check "
             "changed a step, pass@1 of samples with and without a check, pass@1 / cons@k by level:", "",
             table(summary, REFLECTION_KEYS), ""]
    if summary.get("r1_zero_length_quarters"):
        q = summary["r1_zero_length_quarters"]
        lines += ["R1-Zero's mean response length over training, by quarter of its steps: "
                  + " -> ".join(f"{x:.1f}" for x in q) + " tokens.", ""]
    checks = summary.get("r1_zero_check_quarters")
    if checks:
        show = lambda q: " -> ".join("-" if x is None else f"{x:.3f}" for x in q or [])  # noqa: E731
        lines += ["R1-Zero's training samples by quarter of its steps: share that check "
                  f"{show(checks['reflection_rate'])}; accuracy of those that check {show(checks['accuracy_checked'])}, "
                  f"of those that do not {show(checks['accuracy_unchecked'])}.", ""]
    scaled = [(m, row["budget_scaling"]) for m, row in summary["models"].items() if row.get("budget_scaling")]
    if scaled:
        budgets = list(scaled[0][1]["budgets"])
        lines += [f"Test-time scaling: pass@1 on the hardest level ({scaled[0][1]['level']}, "
                  f"{scaled[0][1]['n_problems']} problems) by token budget:", "",
                  "| model | " + " | ".join(f"{b} tokens" for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
        lines += [f"| {m} | " + " | ".join(f"{s['budgets'][b]['pass@1']:.3f}" for b in budgets) + " |" for m, s in scaled]
        lines.append("")
    if "reward_models" in summary:
        lines += ["Reward models (held-out accuracy): " + ", ".join(
            f"{k} {v['held_out_accuracy']:.3f}" for k, v in summary["reward_models"].items()), ""]
    if summary.get("judged_by"):
        lines += ["Judged by: " + "; ".join(f"{k}: {v}" for k, v in summary["judged_by"].items()), ""]
    for note in summary.get("notes", []):
        lines += [f"- Note: {note}"]
    if summary.get("notes"):
        lines.append("")
    if summary.get("stage_seconds"):
        times = summary["stage_seconds"]
        lines += ["Wall seconds per stage (of the run that finished it):", "", "| stage | seconds |", "|---|---|"]
        lines += [f"| {k} | {v:.1f} |" if v is not None else f"| {k} | - |" for k, v in times.items()]
        lines += [f"| total | {sum(v for v in times.values() if v is not None):.1f} |", ""]
        if summary.get("run"):
            r = summary["run"]
            lines += [f"The invocation that finished the run: {r['wall_seconds']:.1f} s wall, up to {r['jobs']} "
                      "stage(s) at a time (the total above adds stages that ran side by side).", ""]
    for p in plots:
        lines += [f"![{p}]({p})", ""]
    aha = next(((m, evals[m]["aha_sample"]) for m in ("r1-zero", *evals) if evals.get(m, {}).get("aha_sample")), None)
    if aha:
        m, a = aha
        lines += ["## A check that caught an error", "", f"**Q:** {a['prompt']} (answer {a['answer']}), *{m}*:", "",
                  f"`{a['completion'].strip()}`", ""]
    lines += ["## Held-out completions side by side", ""]
    for i in range(3):
        names = [m for m in ("base", "r1-zero", "r1") if m in evals and len(evals[m].get("samples", [])) > i]
        if not names:
            break
        s0 = evals[names[0]]["samples"][i]
        lines += [f"**Q:** {s0['prompt']} (answer {s0['answer']})", ""]
        for m in names:
            lines += [f"- *{m}*: `{evals[m]['samples'][i]['completion'].strip()}`"]
        lines.append("")
    for kind in ("general_samples", "harmful_samples"):
        if "r1" in evals and evals["r1"].get(kind):
            lines += [f"## {kind.replace('_', ' ').capitalize()} (R1)", ""]
            for s in evals["r1"][kind]:
                lines += [f"- **{s['prompt']}** → `{s['completion'].strip()}`"]
            lines.append("")
    return "\n".join(lines) + "\n"
