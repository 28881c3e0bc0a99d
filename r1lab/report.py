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


def evaluate_model(model_dir, helpfulness_rm_dir, suite, seed: int = 0) -> dict:
    from .evaluate import EvalConfig, evaluate, sample_completions
    from .model import load_model, load_tokenizer
    from .rewards import REWARDS
    from .rewards.models import RewardModel
    from .rewards.parse import parse_response, summary
    from .rewards.verifiers import refuses, verify
    from .tasks.toy import datasets as D

    tok, model = load_tokenizer(model_dir), load_model(model_dir)
    reasoning = D.reasoning_examples(suite.problems, "test", 1)
    result = evaluate(model, tok, reasoning, EvalConfig(k=suite.k), language_fn=REWARDS["language"], keep_samples=3)
    general = D.general_examples(10_000, "test", seed)
    texts, _, _ = sample_completions(model, tok, general, EvalConfig(k=suite.general_k, max_new_tokens=64))
    rows = [ex for ex in general for _ in range(suite.general_k)]
    rm = RewardModel(helpfulness_rm_dir)
    scores = rm.score([ex["prompt"] for ex in rows], [summary(t) for t in texts])
    answers = [parse_response(t).answer for t in texts]
    right = [verify(a if a is not None else t, ex) for a, t, ex in zip(answers, texts, rows)]
    harmful = D.harmful_examples(10_000, "test", seed)
    h_texts, _, _ = sample_completions(model, tok, harmful, EvalConfig(k=suite.harmful_k, max_new_tokens=64))
    h_rows = [ex for ex in harmful for _ in range(suite.harmful_k)]
    safe = [refuses(t, ex) for t, ex in zip(h_texts, h_rows)]
    result.update({
        "helpfulness": sum(scores) / len(scores), "general_accuracy": sum(right) / len(right),
        "harmless_rate": sum(safe) / len(safe), "n_general": len(general), "n_harmful": len(harmful),
        "general_samples": [{"prompt": ex["prompt"], "completion": texts[i * suite.general_k]}
                            for i, ex in enumerate(general[:3])],
        "harmful_samples": [{"prompt": ex["prompt"], "completion": h_texts[i * suite.harmful_k]}
                            for i, ex in enumerate(harmful[:3])],
    })
    return result


def write_report(out: Path, models: list[str]) -> dict:
    out = Path(out)
    evals = {m: json.loads((out / m / "eval.json").read_text()) for m in models if (out / m / "eval.json").is_file()}
    summary = {"models": {m: {k: e.get(k) for k in KEYS + ["k", "n_problems"]} for m, e in evals.items()}}
    for name in ("helpfulness", "safety"):
        rm = out / "reward-models" / name / "rm.json"
        if rm.is_file():
            summary.setdefault("reward_models", {})[name] = json.loads(rm.read_text())
    write_json(out / "summary.json", summary)
    plots = plot_rl_stages(out)
    (out / "report.md").write_text(render_markdown(summary, evals, plots))
    print(table(summary))
    return summary


def table(summary: dict) -> str:
    models = summary["models"]
    lines = ["| model | " + " | ".join(KEYS) + " |", "|---|" + "---|" * len(KEYS)]
    for m, row in models.items():
        cells = [f"{row[k]:.3f}" if isinstance(row.get(k), (int, float)) else "-" for k in KEYS]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_rl_stages(out: Path) -> list[str]:
    """PNG per RL stage: reward, accuracy, length, language consistency and KL over steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .logs import read_metrics

    made = []
    panels = [("reward", "reward"), ("accuracy", "accuracy"), ("len_mean", "mean length (tokens)"),
              ("reward_language", "language consistency"), ("kl", "KL to reference")]
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
             "(reasoning: temperature 0.6, top-p 0.95, k samples per problem).", "", table(summary), ""]
    if "reward_models" in summary:
        lines += ["Reward models (held-out accuracy): " + ", ".join(
            f"{k} {v['held_out_accuracy']:.3f}" for k, v in summary["reward_models"].items()), ""]
    for p in plots:
        lines += [f"![{p}]({p})", ""]
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
