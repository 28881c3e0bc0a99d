"""Supervised fine-tuning on prompt -> completion pairs (cold start, rejection-sampling SFT, distillation).

    r1lab sft --model base --data cold_start.jsonl --out runs/sft --epochs 2

Data: JSONL, one object per line with "prompt" (the question; the template is applied here) and
"completion" (the wanted response, e.g. "<think> ... </think> <answer> 42 </answer>").
The loop: shuffle (seeded, per epoch) -> pack the step's examples padding-free into rows (each example
keeps its own positions and attends only to itself) -> next-token loss on completion tokens only ->
AdamW with cosine decay -> log -> checkpoint. Paper settings (R1 cold start): 2-3 epochs, cosine from
5e-5 to 5e-6; the tiny world uses larger rates.

Under torchrun (`torchrun --nproc_per_node N -m r1lab sft ...`) it is data parallel: every process
draws the same step's examples, packs and trains on its share (examples rank, rank + N, ...), the
loss is normalised by the step's token count over all processes and the gradients are summed, so 1
and N processes take the same steps (tests/test_distributed.py). Rank 0 writes.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import checkpoint as ckpt
from .. import dist
from ..config import check_positive, opt, to_dict
from ..errors import UserError
from ..logs import MetricsLog
from ..losses import sft_loss
from ..model import autocast, load_model, load_tokenizer, save_model
from ..tasks.files import read_data
from ..template import render_prompt


@dataclass
class SFTConfig:
    model: str = opt("base", "start model: a local Hugging Face folder, or 'base'")
    data: str = opt("", "training data: rows with 'prompt' and 'completion' (JSONL, Parquet or a save_to_disk folder)")
    out: str = opt("runs/sft", "output folder: metrics.jsonl, checkpoints/, model/")
    seed: int = opt(0, "seed of the data order")
    epochs: int = opt(2, "passes over the data (paper: 2-3)")
    lr: float = opt(5e-4, "peak learning rate (AdamW), after warmup")
    min_lr_ratio: float = opt(0.1, "cosine decay ends at lr x this (paper: 5e-5 -> 5e-6)")
    warmup: float = opt(0.05, "share of the steps spent warming the learning rate up")
    weight_decay: float = opt(0.0, "AdamW weight decay")
    grad_clip: float = opt(1.0, "gradient norm clip (0 = off)")
    examples_per_step: int = opt(32, "examples per optimizer step")
    pack_tokens: int = opt(512, "tokens per packed row (examples are packed padding-free into rows; attention runs "
                           "over the whole row under a block mask, so longer rows cost more than they save)")
    max_len: int = opt(512, "longest prompt + completion in tokens; a longer example is an error")
    template: str = opt("r1-zero", "prompt template: 'r1-zero', 'plain' or 'chat'")
    save_every: int = opt(0, "checkpoint every N steps (0 = only at the end)")
    keep_last: int = opt(1, "checkpoints kept (0 = all)")
    precision: str = opt("auto", "bf16 autocast where fast ('auto'), 'fp32' or 'bf16'", ["auto", "fp32", "bf16"])
    device: str = opt("auto", "'auto', 'cpu', 'cuda' or 'cuda:N'")
    threads: int = opt(0, "torch CPU threads (0 = default)")
    log_every: int = opt(10, "steps between terminal lines")


_RESUMABLE = {"out", "save_every", "keep_last", "threads", "log_every", "device"}


def encode(examples: list[dict], tokenizer, template: str, max_len: int, source: str) -> list[tuple[list[int], list[int]]]:
    """(token ids, loss mask) per example: the prompt under the template, then the completion and EOS."""
    rows = []
    for ex in examples:
        if not isinstance(ex.get("completion"), str):
            raise UserError(f"{source}:{ex.get('_line', '?')}: field 'completion' must be a string")
        prompt = tokenizer(render_prompt(ex["prompt"], template, tokenizer), add_special_tokens=False)["input_ids"]
        completion = tokenizer(ex["completion"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        if len(prompt) + len(completion) > max_len:
            raise UserError(f"{source}:{ex.get('_line', '?')}: example is {len(prompt) + len(completion)} tokens, "
                            f"longer than --max-len {max_len}")
        rows.append((prompt + completion, [0] * len(prompt) + [1] * len(completion)))
    return rows


def pack(examples: list[tuple[list[int], list[int]]], pack_tokens: int) -> list[tuple[list[int], list[int], list[int]]]:
    """Greedy padding-free packing: rows of (ids, loss mask, positions), positions restarting at 0 for
    every example, so the model's block-causal mask keeps examples apart."""
    rows, ids, mask, pos = [], [], [], []
    for ex_ids, ex_mask in examples:
        if ids and len(ids) + len(ex_ids) > pack_tokens:
            rows.append((ids, mask, pos))
            ids, mask, pos = [], [], []
        ids, mask, pos = ids + ex_ids, mask + ex_mask, pos + list(range(len(ex_ids)))
    if ids:
        rows.append((ids, mask, pos))
    return rows


def packed_loss(model, rows, device, amp, norm: float) -> tuple[torch.Tensor, float]:
    """Sum of next-token losses on completion tokens of packed rows / norm; backward is done here,
    row by row, so only one row's activations are alive at a time. Returns (loss, tokens)."""
    total, n = 0.0, 0
    for ids, mask, pos in rows:
        x = torch.tensor([ids], device=device)
        p = torch.tensor([pos], device=device)
        m = torch.tensor([mask[1:]], device=device, dtype=torch.float)
        with amp:
            logits = model(input_ids=x, position_ids=p, use_cache=False).logits[:, :-1]
        loss = sft_loss(logits, x[:, 1:], m, norm=norm)
        loss.backward()
        total += float(loss.detach())
        n += int(m.sum())
    return torch.tensor(total), n


def cosine(step: int, total: int, cfg: SFTConfig) -> float:
    warm = max(1, int(cfg.warmup * total))
    if step < warm:
        return (step + 1) / warm
    progress = min(1.0, (step - warm) / max(1, total - warm))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def train(cfg: SFTConfig, examples: list[dict] | None = None) -> Path:
    """Fine-tune; returns the folder of the final model (OUT/model)."""
    check_positive(cfg, ["epochs", "lr", "examples_per_step", "pack_tokens", "max_len"])
    check_positive(cfg, ["save_every", "keep_last", "threads", "warmup", "weight_decay", "grad_clip"],
                   allow_zero=("save_every", "keep_last", "threads", "warmup", "weight_decay", "grad_clip"))
    if examples is None:
        if not cfg.data:
            raise UserError("--data is required: rows with 'prompt' and 'completion' (JSONL, Parquet or a "
                            "save_to_disk folder)")
        examples = read_data(cfg.data, ("prompt", "completion"))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    world, device = dist.init(cfg.device)
    tokenizer = load_tokenizer(cfg.model)
    encoded = encode(examples, tokenizer, cfg.template, cfg.max_len, cfg.data or "data")
    steps_per_epoch = math.ceil(len(encoded) / cfg.examples_per_step)
    total = steps_per_epoch * cfg.epochs
    identity = {k: v for k, v in to_dict(cfg).items() if k not in _RESUMABLE}

    model = load_model(cfg.model, device=device)
    start, state = 0, None
    last = ckpt.latest(out)
    if last is not None:
        state, meta = ckpt.load_state(last)
        if meta.get("identity") != identity:
            raise UserError(f"{out} holds checkpoints of a different run; use another --out or delete that folder")
        model = load_model(last, device=device)
        start = meta["step"] + 1
    dist.barrier(world)  # every process has read the checkpoint before rank 0 writes anything
    if world.main:
        ckpt.write_json(out / "config.json", to_dict(cfg), sort_keys=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: cosine(s, total, cfg))
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
    amp = autocast(device, cfg.precision)
    if world.main:
        print(f"sft: {len(encoded)} examples, {cfg.epochs} epochs, {total} steps of {cfg.examples_per_step} examples"
              + (f" over {world.size} processes" if world.size > 1 else ""))
    log = MetricsLog(out, "sft", total=total, resume_step=start if start else None) if world.main else None
    model.train()
    for step in range(start, total):
        epoch, i = divmod(step, steps_per_epoch)
        order = list(range(len(encoded)))
        random.Random(f"sft-{cfg.seed}-{epoch}").shuffle(order)
        chunk = [encoded[j] for j in order[i * cfg.examples_per_step:(i + 1) * cfg.examples_per_step]]
        t0, cpu0 = time.perf_counter(), time.process_time()
        optimizer.zero_grad(set_to_none=True)
        norm = float(sum(sum(m[1:]) for _, m in chunk))  # the step's loss tokens, over all processes
        loss, n_tok = packed_loss(model, pack(dist.strided(chunk, world), cfg.pack_tokens), device, amp, norm)
        dist.sum_gradients(model, world)
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or float("inf"))
        optimizer.step()
        scheduler.step()
        loss_all, tokens_all, cpu_all = dist.all_sum([float(loss), n_tok, time.process_time() - cpu0], world)
        if log is not None and (step % cfg.log_every == 0 or step == total - 1):
            log.log(step, {"loss": loss_all, "grad_norm": float(grad_norm), "lr": optimizer.param_groups[0]["lr"],
                           "tokens": int(tokens_all), "epoch": epoch, "t_step": time.perf_counter() - t0,
                           "cpu_s": cpu_all})  # CPU seconds of the step, all processes together
        if (cfg.save_every and (step + 1) % cfg.save_every == 0) or step == total - 1:
            if world.main:
                ckpt.save(out, step, model, tokenizer, {"optimizer": optimizer.state_dict(),
                                                        "scheduler": scheduler.state_dict(), "rng": ckpt.rng_state()},
                          {"identity": identity}, keep=cfg.keep_last)
            dist.barrier(world)
    if log is not None:
        log.close()
        with ckpt.atomic_folder(out / "model") as tmp:
            save_model(model, tokenizer, tmp)
    dist.barrier(world)
    return out / "model"
