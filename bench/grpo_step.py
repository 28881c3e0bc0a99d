"""Where the time of a GRPO step goes, phase by phase, on the embedded base model (or --model).

    python bench/grpo_step.py                      # 8 measured steps after 2 warm-up steps
    python bench/grpo_step.py --prompts 8 --group 8 --max-new-tokens 64 --steps 10

Prints one row per phase (median seconds per step and share of the step) and the throughput.
The phases are the ones `r1lab zero` runs, called the same way: rollout (generation), reward,
reference log-probs, policy forward + backward, optimizer step.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from r1lab.engine import SamplingParams, generate
from r1lab.forward import completion_logits, cut, frozen_logprobs, micro_batches, sequences
from r1lab.losses import group_advantages, grpo_loss, token_logprobs
from r1lab.model import autocast, load_model, load_tokenizer
from r1lab.rewards import parse_spec, score
from r1lab.stages.grpo import Batch
from r1lab.tasks import load_task
from r1lab.template import render_prompt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="base")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=112)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--beta", type=float, default=0.01)
    ap.add_argument("--no-share-prefix", action="store_true", help="full forward per row (for comparison)")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"], help="as r1lab zero's --precision")
    args = ap.parse_args()

    tok = load_tokenizer(args.model)
    model = load_model(args.model)
    ref = load_model(args.model).eval().requires_grad_(False)
    task = load_task("toy", eval_problems=0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    amp = autocast(torch.device("cpu"), args.precision)
    weights = parse_spec("accuracy=1,format=0.5")
    G = args.group
    rows = {k: [] for k in ["generate", "reward", "ref_logprobs", "policy_fwd_bwd", "optimizer", "total"]}
    tokens = []
    for step in range(args.warmup + args.steps):
        examples = task.train.batch(step, args.prompts, seed=0)
        prompts = [tok(render_prompt(e["prompt"]), add_special_tokens=False)["input_ids"] for e in examples]
        t = {"start": time.perf_counter()}
        out = generate(model, prompts, G, SamplingParams(args.max_new_tokens, 1.0), list(range(len(prompts))),
                       tok.eos_token_id, tok.pad_token_id, autocast=amp)
        t["generate"] = time.perf_counter()
        texts = [tok.decode(c, skip_special_tokens=True) for c in out.completions]
        ex_rows = [e for e in examples for _ in range(G)]
        s = score(texts, ex_rows, weights)
        t["reward"] = time.perf_counter()
        batch = Batch(ex_rows, [p for p in prompts for _ in range(G)], out.completions, texts, out.truncated,
                      torch.tensor(s.total), s.parts)
        seq = sequences(batch.prompt_ids, batch.completion_ids, tok.pad_token_id, "cpu",
                        share_prefix=not args.no_share_prefix)
        ref_lp = frozen_logprobs(ref, seq, 64, 1.0, amp) if args.beta else None
        t["ref_logprobs"] = time.perf_counter()
        adv = group_advantages(batch.rewards, G)
        opt.zero_grad()
        B = seq["ids"].shape[0]
        for r in micro_batches(seq["completion_len"].tolist(), 64):
            logits = completion_logits(model, seq, r, amp)
            lc = logits.shape[1]
            lp = token_logprobs(logits, cut(seq["targets"], r, lc))
            loss, _ = grpo_loss(lp, lp.detach(), adv[r], cut(seq["mask"], r, lc),
                                cut(ref_lp, r, lc) if ref_lp is not None else None, args.beta, norm=float(B))
            loss.backward()
        t["policy_fwd_bwd"] = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        t["optimizer"] = time.perf_counter()
        if step >= args.warmup:
            prev = t["start"]
            for k in ["generate", "reward", "ref_logprobs", "policy_fwd_bwd", "optimizer"]:
                rows[k].append(t[k] - prev)
                prev = t[k]
            rows["total"].append(t["optimizer"] - t["start"])
            tokens.append(sum(len(c) for c in out.completions))
    total = statistics.median(rows["total"])
    print(f"GRPO step on {args.model}: {args.prompts} prompts x {args.group} samples, <= {args.max_new_tokens} new "
          f"tokens, beta {args.beta}, {args.precision}, {torch.get_num_threads()} threads, "
          f"shared prefix: {not args.no_share_prefix}")
    print(f"{'phase':<16}{'median s':>10}{'share':>8}")
    for k, v in rows.items():
        m = statistics.median(v)
        print(f"{k:<16}{m:>10.3f}{m / total:>8.1%}")
    print(f"completion tokens per step: {statistics.median(tokens):.0f}; "
          f"{statistics.median(tokens) / total:.0f} tokens/s over the whole step")


if __name__ == "__main__":
    main()
