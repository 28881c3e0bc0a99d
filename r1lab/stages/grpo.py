"""GRPO: reinforcement learning with group-relative advantages and rule-based rewards.

    r1lab zero                                   # R1-Zero on the embedded world (base model -> RL)
    r1lab zero --model DIR --task jsonl --data train.jsonl --out runs/mine

Each step reads top to bottom in `train`:
  1. take P prompts (seeded data order) and render them with the template;
  2. roll out G samples per prompt (prefix computed once per prompt, KV cache, temperature, top-p);
  3. score every sample with the weighted rule rewards;
  4. advantages A_i = (r_i - mean(group)) / std(group);  [DAPO: drop zero-spread groups and refill]
  5. mu updates on the clipped surrogate + beta * k3 KL to the frozen reference;
  6. log, reset the reference every N steps, checkpoint every K steps.
No critic, no neural reward model: this is DeepSeek-R1-Zero's recipe (paper section 2).
"""

from __future__ import annotations

import copy
import json
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import checkpoint as ckpt
from ..config import check_positive, opt, to_dict, write_json
from ..engine import SamplingParams, generate
from ..errors import UserError
from ..evaluate import EvalConfig, evaluate
from ..logs import MetricsLog
from ..forward import completion_logits, frozen_logprobs, sequences
from ..losses import LOSS_AGGREGATIONS, group_advantages, grpo_loss, token_entropy, token_logprobs
from ..model import autocast, load_model, load_tokenizer, pick_device, save_model
from ..rewards import REWARDS, parse_spec, score
from ..tasks import load_task
from ..template import render_prompt


@dataclass
class GRPOConfig:
    model: str = opt("base", "start model: a local Hugging Face folder, or 'base' for the embedded base model")
    task: str = opt("toy", "prompt source + verifier: 'toy' (embedded world), 'jsonl' (--data), or a library task")
    data: str | None = opt(None, "training data file for file-backed tasks (JSONL: prompt, answer per line)")
    eval_data: str | None = opt(None, "held-out data file (default: the last examples of --data are held out)")
    out: str = opt("runs/zero", "output folder: metrics.jsonl, TensorBoard events, eval.json, checkpoints/, model/")
    seed: int = opt(0, "seed of the data order and of sampling (per prompt)")
    steps: int = opt(60, "optimizer steps (rollout batches)")
    prompts_per_step: int = opt(16, "prompts per step (P)")
    group_size: int = opt(8, "samples per prompt (G); the batch is P x G sequences")
    max_new_tokens: int = opt(128, "token budget of each sample")
    temperature: float = opt(1.0, "rollout sampling temperature (paper: 1.0)")
    top_p: float = opt(1.0, "rollout nucleus sampling")
    template: str = opt("r1-zero", "prompt template: 'r1-zero' (paper Table 1), 'plain', or 'chat' (tokenizer's)")
    rewards: str = opt("accuracy=1,format=0.5", "weighted rewards, name=weight,... (see `r1lab rewards`)")
    lr: float = opt(1e-4, "AdamW learning rate (constant after warmup)")
    warmup_steps: int = opt(0, "steps of linear learning-rate warmup")
    weight_decay: float = opt(0.0, "AdamW weight decay")
    grad_clip: float = opt(1.0, "gradient norm clip (0 = off)")
    beta: float = opt(0.01, "coefficient of the k3 KL to the reference, in the loss (0 = no reference model)")
    eps_low: float = opt(0.2, "clip range below 1 for the probability ratio")
    eps_high: float = opt(0.2, "clip range above 1 (DAPO's clip-higher: e.g. 0.28)")
    updates_per_batch: int = opt(1, "mu: optimizer updates per rollout batch against pi_old")
    ref_reset_every: int = opt(400, "reset the reference to the policy every N steps (R1-Zero: 400; 0 = never)")
    loss_agg: str = opt("seq-mean", "loss aggregation: seq-mean (paper), token-mean (DAPO), dr-grpo (constant "
                        "normaliser, advantages not divided by std)", list(LOSS_AGGREGATIONS))
    dynamic_sampling: bool = opt(False, "DAPO: drop groups whose rewards are all equal and refill with new prompts")
    max_refill_rounds: int = opt(3, "dynamic sampling: extra rollout rounds per step at most")
    overlong_filter: bool = opt(False, "DAPO: mask truncated samples (no EOS within budget) out of the loss")
    micro_batch: int = opt(64, "sequences per forward/backward pass (memory knob; the math does not change)")
    eval_problems: int = opt(200, "held-out problems evaluated before and after training (0 = skip)")
    eval_k: int = opt(4, "samples per held-out problem (pass@1 over k, cons@k)")
    eval_temperature: float = opt(0.6, "evaluation sampling temperature (paper: 0.6)")
    eval_top_p: float = opt(0.95, "evaluation top-p (paper: 0.95)")
    eval_max_new_tokens: int = opt(160, "evaluation token budget per sample")
    save_every: int = opt(0, "checkpoint every N steps (0 = only at the end)")
    keep_last: int = opt(2, "checkpoints kept (0 = all)")
    precision: str = opt("auto", "bf16 autocast where fast ('auto'), 'fp32' or 'bf16'", ["auto", "fp32", "bf16"])
    device: str = opt("auto", "'auto', 'cpu', 'cuda' or 'cuda:N'")
    threads: int = opt(0, "torch CPU threads (0 = default)")
    log_every: int = opt(1, "steps between terminal lines (every step goes to metrics.jsonl)")


# settings that change nothing about the trajectory: a run may be resumed with different values
_RESUMABLE = {"out", "steps", "save_every", "keep_last", "eval_problems", "eval_k", "eval_temperature",
              "eval_top_p", "eval_max_new_tokens", "threads", "log_every", "micro_batch", "device"}


def check_config(cfg: GRPOConfig) -> None:
    check_positive(cfg, ["steps", "prompts_per_step", "group_size", "max_new_tokens", "updates_per_batch",
                         "micro_batch", "eval_k", "eval_max_new_tokens", "lr"])
    check_positive(cfg, ["eval_problems", "save_every", "keep_last", "warmup_steps", "ref_reset_every",
                         "threads", "max_refill_rounds", "beta", "eps_low", "eps_high", "grad_clip",
                         "weight_decay", "temperature"],
                   allow_zero=("eval_problems", "save_every", "keep_last", "warmup_steps", "ref_reset_every",
                               "threads", "max_refill_rounds", "beta", "grad_clip", "weight_decay",
                               "eps_low", "eps_high", "temperature"))
    if cfg.group_size < 2:
        raise UserError("--group-size must be >= 2: advantages compare samples within a group")
    if not 0 < cfg.top_p <= 1 or not 0 < cfg.eval_top_p <= 1:
        raise UserError("--top-p and --eval-top-p must be in (0, 1]")


@dataclass
class Batch:
    """One step's rollouts, grouped: the G samples of prompt p are rows p*G .. p*G+G-1."""

    examples: list[dict]  # [P*G] the example each row answers
    prompt_ids: list[list[int]]  # [P*G]
    completion_ids: list[list[int]]  # [P*G] EOS included when the sample stopped
    texts: list[str]  # [P*G] decoded completions (EOS removed)
    truncated: list[bool]  # [P*G]
    rewards: torch.Tensor  # [P*G] weighted total
    parts: dict[str, list[float]]  # reward name -> [P*G]
    reward_errors: int = 0
    t_gen: float = 0.0  # seconds generating
    t_reward: float = 0.0  # seconds scoring


def sample_seed(seed: int, step: int, round_: int, index: int) -> int:
    """The sampling seed of one prompt: fixed by (seed, step, refill round, position in the batch)."""
    return zlib.crc32(f"{seed}|{step}|{round_}|{index}".encode())


def rollout(model, tokenizer, examples: list[dict], cfg: GRPOConfig, step: int, round_: int, weights,
            reward_fns, prompt_cache: dict, amp) -> Batch:
    """Generate G samples for each example and score them."""
    prompts = []
    for ex in examples:
        key = ex["prompt"]
        if key not in prompt_cache:
            prompt_cache[key] = tokenizer(render_prompt(key, cfg.template, tokenizer), add_special_tokens=False)["input_ids"]
        prompts.append(prompt_cache[key])
    seeds = [sample_seed(cfg.seed, step, round_, i) for i in range(len(examples))]
    t0 = time.perf_counter()
    out = generate(model, prompts, cfg.group_size, SamplingParams(cfg.max_new_tokens, cfg.temperature, cfg.top_p),
                   seeds, eos_id=tokenizer.eos_token_id, pad_id=tokenizer.pad_token_id, autocast=amp)
    G = cfg.group_size
    rows = [ex for ex in examples for _ in range(G)]
    texts = [tokenizer.decode(c[:-1] if c and c[-1] == tokenizer.eos_token_id else c, skip_special_tokens=False)
             for c in out.completions]
    t1 = time.perf_counter()
    scores = score(texts, rows, weights, reward_fns)
    return Batch(rows, [p for p in prompts for _ in range(G)], out.completions, texts, out.truncated,
                 torch.tensor(scores.total), scores.parts, scores.errors, t1 - t0, time.perf_counter() - t1)


def concat(batches: list[Batch]) -> Batch:
    if len(batches) == 1:
        return batches[0]
    return Batch(sum((b.examples for b in batches), []), sum((b.prompt_ids for b in batches), []),
                 sum((b.completion_ids for b in batches), []), sum((b.texts for b in batches), []),
                 sum((b.truncated for b in batches), []), torch.cat([b.rewards for b in batches]),
                 {k: sum((b.parts[k] for b in batches), []) for k in batches[0].parts},
                 sum(b.reward_errors for b in batches), sum(b.t_gen for b in batches),
                 sum(b.t_reward for b in batches))


def select_groups(batch: Batch, groups: list[int], G: int) -> Batch:
    rows = [g * G + j for g in groups for j in range(G)]
    pick = lambda xs: [xs[i] for i in rows]  # noqa: E731
    return Batch(pick(batch.examples), pick(batch.prompt_ids), pick(batch.completion_ids), pick(batch.texts),
                 pick(batch.truncated), batch.rewards[rows], {k: pick(v) for k, v in batch.parts.items()},
                 batch.reward_errors, batch.t_gen, batch.t_reward)


def lr_lambda(cfg: GRPOConfig):
    return lambda step: min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0


def run_identity(cfg: GRPOConfig) -> dict:
    return {k: v for k, v in to_dict(cfg).items() if k not in _RESUMABLE}


def train(cfg: GRPOConfig, extra_rewards: dict | None = None, reward_schedule=None, prompt_source=None) -> dict:
    """Run GRPO as configured; returns the eval results ({"base": ..., "final": ...}).

    extra_rewards: reward functions beyond the built-in ones (e.g. reward models), by name.
    reward_schedule(step) -> weights: overrides the weights per step (R1 stage 4 adds preference
    rewards only in the last steps). prompt_source: a PromptSet to use instead of the task's.
    """
    check_config(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    reward_fns = dict(REWARDS, **(extra_rewards or {}))
    weights = parse_spec(cfg.rewards, reward_fns)
    task = load_task(cfg.task, cfg.data, cfg.eval_data, cfg.eval_problems)
    prompts = prompt_source or task.train
    device = pick_device(cfg.device)
    tokenizer = load_tokenizer(cfg.model)
    model = load_model(cfg.model, device=device)
    amp = autocast(device, cfg.precision)

    # resume: the same command on the same --out continues from the last complete checkpoint
    start, state = 0, None
    out.mkdir(parents=True, exist_ok=True)
    last = ckpt.latest(out)
    if last is not None:
        state, meta = ckpt.load_state(last)
        if meta.get("identity") != run_identity(cfg):
            changed = sorted(k for k in run_identity(cfg) if meta.get("identity", {}).get(k) != run_identity(cfg)[k])
            raise UserError(f"{out} holds checkpoints of a different run (settings differ: {', '.join(changed)}); "
                            "use another --out or delete that folder")
        model = load_model(last, device=device)
        start = meta["step"] + 1
        print(f"resuming from {last} (step {meta['step']})")
    previous = _read_json(out / "config.json")
    same_run = bool(previous) and {k: v for k, v in previous.items() if k not in _RESUMABLE} == run_identity(cfg)
    results = _read_json(out / "eval.json") if same_run else {}  # another run's evaluation is not ours
    write_json(cfg, out / "config.json")
    if start >= cfg.steps and (not cfg.eval_problems or "final" in results):
        print(f"{out}: this run is already complete ({cfg.steps} steps)")
        if "final" in results and "base" in results:
            print(eval_table(results))
        return results
    language_fn = reward_fns["language"] if task.name == "toy" else None
    eval_cfg = EvalConfig(k=cfg.eval_k, temperature=cfg.eval_temperature, top_p=cfg.eval_top_p,
                          max_new_tokens=cfg.eval_max_new_tokens, template=cfg.template)
    if cfg.eval_problems and "base" not in results and start == 0:
        results["base"] = evaluate(model, tokenizer, task.eval_examples, eval_cfg, amp, language_fn, keep_samples=3)
        _write_json(out / "eval.json", results)
        print(_eval_line("base", results["base"]))

    ref = None
    if cfg.beta > 0:
        ref = copy.deepcopy(model).eval().requires_grad_(False)
        if state is not None and state.get("ref") is not None:
            ref.load_state_dict(state["ref"])
        elif start > 0:
            ref.load_state_dict(load_model(cfg.model, device=device).state_dict())
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        ckpt.set_rng_state(state["rng"])
    ref_is_start = state is None or state.get("ref") is None

    metrics_log = MetricsLog(out, "grpo", total=cfg.steps, resume_step=start if start else None)
    G, P = cfg.group_size, cfg.prompts_per_step
    prompt_cache: dict = {}
    model.train()
    for step in range(start, cfg.steps):
        step_weights = reward_schedule(step) if reward_schedule else weights
        # 1-3. prompts -> rollouts -> rewards (with DAPO's refill of zero-spread groups if asked)
        batch = rollout(model, tokenizer, prompts.batch(step, P, cfg.seed), cfg, step, 0, step_weights,
                        reward_fns, prompt_cache, amp)
        n_zero_std = int((batch.rewards.view(-1, G).std(1) < 1e-6).sum()) if G > 1 else 0
        if cfg.dynamic_sampling:
            batch = _refill(batch, model, tokenizer, prompts, cfg, step, step_weights, reward_fns, prompt_cache, amp)
        # 4. group-relative advantages
        scale = cfg.loss_agg != "dr-grpo"
        advantages = group_advantages(batch.rewards, G, scale=scale)
        # 5. mu updates of the clipped surrogate + KL, against pi_old (the rollout policy)
        t1 = time.perf_counter()
        seq = sequences(batch.prompt_ids, batch.completion_ids, tokenizer.pad_token_id, device)
        mask = seq["mask"].clone()
        if cfg.overlong_filter:
            mask[torch.tensor(batch.truncated, device=device)] = 0.0
        ref_logp = frozen_logprobs(ref, seq, cfg.micro_batch, cfg.temperature, amp) if ref is not None else None
        old_logp = (frozen_logprobs(model, seq, cfg.micro_batch, cfg.temperature, amp)
                    if cfg.updates_per_batch > 1 else None)
        train_stats = _update(model, optimizer, seq, mask, advantages.to(device), old_logp, ref_logp, cfg, amp)
        scheduler.step()
        t_train = time.perf_counter() - t1
        # 6. reference reset, logging, checkpoint
        if ref is not None and cfg.ref_reset_every and (step + 1) % cfg.ref_reset_every == 0:
            ref.load_state_dict(model.state_dict())
            ref_is_start = False
        row = _step_metrics(batch, G, n_zero_std, train_stats, optimizer, t_train)
        metrics_log.log(step, row)
        if (cfg.save_every and (step + 1) % cfg.save_every == 0) or step == cfg.steps - 1:
            trainer_state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                             "rng": ckpt.rng_state(),
                             "ref": None if (ref is None or ref_is_start) else ref.state_dict()}
            ckpt.save(out, step, model, tokenizer, trainer_state, {"identity": run_identity(cfg)}, keep=cfg.keep_last)
    metrics_log.close()

    with ckpt.atomic_folder(out / "model") as tmp:
        save_model(model, tokenizer, tmp)
    if cfg.eval_problems:
        results["final"] = evaluate(model, tokenizer, task.eval_examples, eval_cfg, amp, language_fn, keep_samples=3)
        _write_json(out / "eval.json", results)
        print(_eval_line("final", results["final"]))
        if "base" in results:
            print(eval_table(results))
    return results


def _refill(batch, model, tokenizer, prompts, cfg, step, weights, reward_fns, cache, amp) -> Batch:
    """DAPO dynamic sampling: keep groups with reward spread; roll out more prompts until P such
    groups (or the round limit), then fill up with the flat groups so the batch size is constant."""
    G, P = cfg.group_size, cfg.prompts_per_step
    spread = lambda b: [g for g in range(len(b.rewards) // G) if float(b.rewards[g * G:(g + 1) * G].std()) > 1e-6]  # noqa: E731
    pool, good = batch, spread(batch)
    for round_ in range(1, cfg.max_refill_rounds + 1):
        if len(good) >= P:
            break
        extra = prompts.batch(step, P, cfg.seed + 7919 * round_)
        pool = concat([pool, rollout(model, tokenizer, extra, cfg, step, round_, weights, reward_fns, cache, amp)])
        good = spread(pool)
    flat = [g for g in range(len(pool.rewards) // G) if g not in set(good)]
    return select_groups(pool, (good + flat)[:P], G)


def _update(model, optimizer, seq, mask, advantages, old_logp, ref_logp, cfg: GRPOConfig, amp) -> dict:
    """mu optimizer updates on one rollout batch; returns averaged statistics."""
    B = seq["ids"].shape[0]
    # global normaliser of the chosen aggregation, so micro-batch losses sum to the batch loss
    norm = {"seq-mean": float(B), "token-mean": float(mask.sum().clamp_min(1.0)),
            "dr-grpo": float(B * cfg.max_new_tokens)}[cfg.loss_agg]
    stats = {"loss": 0.0, "kl": 0.0, "clip_frac": 0.0, "entropy": 0.0, "grad_norm": 0.0}
    n_tok = float(mask.sum().clamp_min(1.0))
    for update in range(cfg.updates_per_batch):
        optimizer.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for s in range(0, B, cfg.micro_batch):
            rows = slice(s, s + cfg.micro_batch)
            logits = completion_logits(model, seq, rows, amp)
            logp = token_logprobs(logits, seq["targets"][rows], cfg.temperature)
            old = old_logp[rows] if old_logp is not None else logp.detach()
            loss, st = grpo_loss(logp, old, advantages[rows], mask[rows],
                                 ref_logp[rows] if ref_logp is not None else None, cfg.beta,
                                 cfg.eps_low, cfg.eps_high, cfg.loss_agg, norm=norm, max_len=cfg.max_new_tokens)
            loss.backward()
            loss_sum += float(loss.detach())
            if update == 0:
                w = st["tokens"] / n_tok
                stats["kl"] += st["kl"] * w
                stats["clip_frac"] += st["clip_frac"] * w
                with torch.no_grad():
                    m = mask[rows]
                    stats["entropy"] += float((token_entropy(logits.detach(), cfg.temperature) * m).sum()) / n_tok
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip if cfg.grad_clip else float("inf"))
        optimizer.step()
        stats["loss"] += loss_sum / cfg.updates_per_batch
        stats["grad_norm"] += float(grad_norm) / cfg.updates_per_batch
    return stats


def _step_metrics(batch: Batch, G: int, n_zero_std: int, train_stats: dict, optimizer, t_train) -> dict:
    lengths = torch.tensor([len(c) for c in batch.completion_ids], dtype=torch.float)
    row = {"reward": float(batch.rewards.mean())}
    for name, values in batch.parts.items():
        row[f"reward_{name}"] = sum(values) / len(values)
    if "accuracy" in batch.parts:
        row["accuracy"] = row["reward_accuracy"]
    if "format" in batch.parts:
        row["format"] = row["reward_format"]
    row.update(train_stats)
    row.update({"len_mean": float(lengths.mean()), "len_max": float(lengths.max()),
                "truncated": sum(batch.truncated) / len(batch.truncated),
                "zero_std": n_zero_std / (len(batch.rewards) // G),
                "reward_errors": batch.reward_errors, "lr": optimizer.param_groups[0]["lr"],
                "t_gen": batch.t_gen, "t_reward": batch.t_reward, "t_train": t_train})
    return row


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def _eval_line(name: str, m: dict) -> str:
    return (f"eval {name}: pass@1={m['pass@1']:.3f} cons@{m['k']}={m['cons@k']:.3f} "
            f"answer_accuracy={m['answer_accuracy']:.3f} format={m['format']:.3f} "
            f"mean_length={m['mean_length']:.1f} ({m['n_problems']} problems x {m['k']})")


def eval_table(results: dict) -> str:
    keys = ["pass@1", "cons@k", "answer_accuracy", "format", "mean_length"]
    names = [n for n in results if isinstance(results[n], dict) and "pass@1" in results[n]]
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(f"{results[n][k]:.3f}" for n in names) + " |")
    return "\n".join(lines)
