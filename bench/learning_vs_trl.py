"""Does r1lab learn as well as TRL? Both train the embedded base model on the embedded task for the same
number of GRPO steps with the same settings, then r1lab's evaluation scores both final models on the same
held-out problems (k samples at temperature 0.6 / top-p 0.95).

    python bench/learning_vs_trl.py                  # 30 steps each, 200 held-out problems x 4
    python bench/learning_vs_trl.py --steps 60 --workdir /tmp/lt

Settings, both sides: 16 prompts x 8 samples, <= 128 new tokens, temperature 1, beta 0.01, eps 0.2, one
update per batch, per-sequence mean loss, AdamW lr 1e-4 (constant), grad clip 1, rewards accuracy + 0.5 x
format (r1lab's rule functions on both sides), fp32. Prompt order: each side's own (TRL shuffles its
dataset, r1lab draws a seeded order), from the same training split. Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_trl import REWARD_WEIGHTS, check_trl, rule_rewards_for_trl  # noqa: E402

P, G, MAX_NEW, BETA, LR = 16, 8, 128, 0.01, 1e-4


def train_trl(out: Path, steps: int) -> float:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from r1lab.model import DEFAULT_MODEL, load_tokenizer
    from r1lab.tasks import load_task
    from r1lab.template import render_prompt

    task = load_task("toy", eval_problems=0, train_size=P * steps)
    rows = [{"prompt": render_prompt(ex["prompt"], "r1-zero"), "answer": str(ex["answer"]),
             "kind": ex.get("kind", "reasoning"), "verifier": ex.get("verifier", "number")}
            for ex in task.train.examples[:P * steps]]
    rewards, weights = rule_rewards_for_trl()
    cfg = GRPOConfig(output_dir=str(out / "trl-work"), use_cpu=True, bf16=False, fp16=False,
                     activation_checkpointing=False, per_device_train_batch_size=P * G, gradient_accumulation_steps=1,
                     num_generations=G, num_iterations=1, max_completion_length=MAX_NEW, temperature=1.0, top_p=1.0,
                     beta=BETA, epsilon=0.2, loss_type="grpo", scale_rewards="group", reward_weights=weights,
                     learning_rate=LR, lr_scheduler_type="constant", adam_beta1=0.9, adam_beta2=0.99,
                     weight_decay=0.0, max_grad_norm=1.0, max_steps=steps, logging_steps=1, save_strategy="no",
                     report_to="none", dataloader_num_workers=0, disable_tqdm=True, seed=0)
    tok = load_tokenizer(DEFAULT_MODEL)
    trainer = GRPOTrainer(model=str(DEFAULT_MODEL), reward_funcs=rewards, args=cfg,
                          train_dataset=Dataset.from_list(rows), processing_class=tok)
    t = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t
    trainer.save_model(str(out / "trl"))
    tok.save_pretrained(str(out / "trl"))
    return seconds


def train_r1lab(out: Path, steps: int) -> float:
    cmd = [sys.executable, "-m", "r1lab", "zero", "--steps", str(steps), "--prompts-per-step", str(P),
           "--group-size", str(G), "--max-new-tokens", str(MAX_NEW), "--beta", str(BETA), "--lr", str(LR),
           "--rewards", ",".join(f"{k}={v}" for k, v in REWARD_WEIGHTS.items()), "--precision", "fp32",
           "--eval-problems", "0", "--out", str(out / "r1lab-run")]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def evaluate_all(models: dict[str, str], problems: int, k: int) -> dict:
    from r1lab.evaluate import EvalConfig, evaluate_folders
    from r1lab.tasks import load_task

    return evaluate_folders(models, load_task("toy", eval_problems=problems), EvalConfig(k=k))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30, help="GRPO steps per side (default 30)")
    ap.add_argument("--problems", type=int, default=200, help="held-out problems (default 200)")
    ap.add_argument("--k", type=int, default=4, help="samples per held-out problem (default 4)")
    ap.add_argument("--workdir", default=None, help="scratch folder (default: a temporary folder)")
    args = ap.parse_args()
    version = check_trl()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="r1lab-learning-"))
    work.mkdir(parents=True, exist_ok=True)
    seconds = {"trl": train_trl(work, args.steps), "r1lab": train_r1lab(work, args.steps)}
    from r1lab.model import DEFAULT_MODEL

    res = evaluate_all({"base": str(DEFAULT_MODEL), "trl": str(work / "trl"), "r1lab": str(work / "r1lab-run" / "model")},
                       args.problems, args.k)
    print(f"\nEmbedded task, {args.steps} GRPO steps of {P} x {G}, <= {MAX_NEW} tokens; held-out {args.problems} x {args.k} "
          f"at T 0.6 / top-p 0.95 (TRL {version})")
    print(f"  {'':<22}{'base':>10}{'TRL':>10}{'r1lab':>10}")
    for key in ("pass@1", "cons@k", "answer_accuracy", "format", "mean_length", "language_consistency"):
        print(f"  {key:<22}" + "".join(f"{res[m].get(key, float('nan')):>10.3f}" for m in ("base", "trl", "r1lab")))
    print(f"  {'train seconds':<22}{'':>10}{seconds['trl']:>10.1f}{seconds['r1lab']:>10.1f}")
    print(json.dumps({"steps": args.steps, "pass@1_trl": res["trl"]["pass@1"], "pass@1_r1lab": res["r1lab"]["pass@1"],
                      "seconds_trl": seconds["trl"], "seconds_r1lab": seconds["r1lab"]}))


if __name__ == "__main__":
    main()
