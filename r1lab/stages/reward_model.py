"""Reward models on the base model with a scalar head (R1 stage 4's helpfulness and safety models).

    r1lab rm --kind helpfulness --out runs/rm-help      # pairwise Bradley-Terry on preference pairs
    r1lab rm --kind safety --out runs/rm-safety         # pointwise: is the whole response safe?

Data: JSONL, Parquet or a save_to_disk folder; helpfulness rows {"prompt", "chosen", "rejected"}, safety
rows {"prompt", "response", "label" (1 safe, 0 unsafe)}; without --data the embedded world's data are generated (train split for
training, held-out split for the accuracy reported in OUT/rm.json).
The loop: batches of pairs (or labelled responses) -> scores -> Bradley-Terry (or binary
cross-entropy) loss -> AdamW -> held-out accuracy at the end. Paper: batch 256, lr 6e-6, one epoch.

Under torchrun it is data parallel like SFT: each process scores its share of the step's rows
(rank, rank + N, ...), the loss is its share of the mean over the whole batch, gradients are summed;
rank 0 writes (tests/test_distributed.py).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import dist
from ..checkpoint import atomic_folder, write_json
from ..config import check_positive, opt, to_dict
from ..logs import MetricsLog
from ..losses import bradley_terry_loss, pointwise_loss
from ..model import load_tokenizer, resolve_model_path
from ..rewards.models import rm_text
from ..tasks import sources
from ..tasks.files import check_rows, read_data


@dataclass
class RMConfig:
    kind: str = opt("helpfulness", "'helpfulness' (pairwise Bradley-Terry) or 'safety' (pointwise)",
                    ["helpfulness", "safety"])
    model: str = opt("base", "backbone: a local Hugging Face causal LM folder, or 'base'")
    data: str = opt("", "training data: JSONL, Parquet or a save_to_disk folder (empty: the embedded world's)")
    eval_data: str = opt("", "held-out data, same format (empty: none with --data, else the world's held-out split)")
    out: str = opt("runs/rm", "output folder: the reward model (Hugging Face format), rm.json, metrics.jsonl")
    seed: int = opt(0, "seed of the data and its order")
    examples: int = opt(2000, "generated training examples (embedded world only)")
    epochs: int = opt(2, "passes over the data")
    lr: float = opt(3e-4, "AdamW learning rate")
    batch: int = opt(32, "pairs (or labelled responses) per step")
    device: str = opt("auto", "'auto', 'cpu' or 'cuda'")
    log_every: int = opt(10, "steps between terminal lines")


def load_data(cfg: RMConfig, examples: list[dict] | None = None, eval_examples: list[dict] | None = None
              ) -> tuple[list[dict], list[dict]]:
    """Training and held-out rows: `examples`/`eval_examples` (r1lab.reward_model's data) when given,
    else cfg.data/cfg.eval_data, else the embedded world's."""
    fields = ("prompt", "chosen", "rejected") if cfg.kind == "helpfulness" else ("prompt", "response", "label")
    if examples is not None:
        held = check_rows(eval_examples, "eval_data", fields) if eval_examples is not None else []
        return check_rows(examples, "data", fields), held
    if cfg.data:
        train = read_data(cfg.data, fields)
        held = read_data(cfg.eval_data, fields) if cfg.eval_data else []
    else:
        train, held = sources.reward_data(cfg.kind, cfg.examples, cfg.seed)
    return train, held


def _scores(model, tokenizer, prompts, responses, device) -> torch.Tensor:
    enc = tokenizer([rm_text(p, r) for p, r in zip(prompts, responses)], return_tensors="pt", padding=True,
                    truncation=True, max_length=model.config.max_position_embeddings,
                    add_special_tokens=False).to(device)
    return model(**enc).logits[:, 0]


def batch_loss(model, tokenizer, rows, kind, device) -> tuple[torch.Tensor, float]:
    """Loss and accuracy of one batch (pairwise: chosen scored above rejected; pointwise: sign right)."""
    prompts = [r["prompt"] for r in rows]
    if kind == "helpfulness":
        s = _scores(model, tokenizer, prompts + prompts, [r["chosen"] for r in rows] + [r["rejected"] for r in rows],
                    device)
        chosen, rejected = s[:len(rows)], s[len(rows):]
        return bradley_terry_loss(chosen, rejected), float((chosen > rejected).float().mean())
    s = _scores(model, tokenizer, prompts, [r["response"] for r in rows], device)
    labels = torch.tensor([r["label"] for r in rows], device=device, dtype=torch.float)
    return pointwise_loss(s, labels), float(((s > 0).float() == labels).float().mean())


@torch.no_grad()
def accuracy(model, tokenizer, rows, kind, device, batch=64, world=None) -> float:
    """Held-out accuracy; under torchrun each process scores its share and the hits are summed."""
    if not rows:
        return float("nan")
    world = world or dist.World()
    model.eval()
    hits = 0.0
    mine = dist.strided(rows, world)
    for s in range(0, len(mine), batch):
        _, acc = batch_loss(model, tokenizer, mine[s:s + batch], kind, device)
        hits += round(acc * len(mine[s:s + batch]))  # a count: exact however the rows are split
    model.train()
    return dist.all_sum([hits], world)[0] / len(rows)


def train(cfg: RMConfig, examples: list[dict] | None = None, eval_examples: list[dict] | None = None) -> Path:
    """Train a reward model; returns its folder (OUT/model), which scores with `RewardModel`.
    examples / eval_examples: rows instead of cfg.data / cfg.eval_data."""
    from transformers import AutoModelForSequenceClassification

    check_positive(cfg, ["examples", "epochs", "lr", "batch", "log_every"])
    train_rows, held = load_data(cfg, examples, eval_examples)  # a bad file stops here, before anything is written
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    world, device = dist.init(cfg.device)
    if world.main:
        write_json(out / "config.json", to_dict(cfg), sort_keys=True)
    tokenizer = load_tokenizer(cfg.model)
    tokenizer.padding_side = "right"
    torch.manual_seed(cfg.seed)
    model = AutoModelForSequenceClassification.from_pretrained(str(resolve_model_path(cfg.model)), num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.to(device).train()  # the same seed gives every process the same new head
    before = accuracy(model, tokenizer, held, cfg.kind, device, world=world)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    steps_per_epoch = max(1, len(train_rows) // cfg.batch)
    log = MetricsLog(out, f"rm-{cfg.kind}", total=steps_per_epoch * cfg.epochs) if world.main else None
    step = 0
    for epoch in range(cfg.epochs):
        order = list(range(len(train_rows)))
        random.Random(f"rm-{cfg.seed}-{epoch}").shuffle(order)
        for i in range(steps_per_epoch):
            t0, cpu0 = time.perf_counter(), time.process_time()
            rows = [train_rows[j] for j in order[i * cfg.batch:(i + 1) * cfg.batch]]
            mine = dist.strided(rows, world)
            optimizer.zero_grad(set_to_none=True)
            loss, acc = batch_loss(model, tokenizer, mine, cfg.kind, device) if mine else (torch.zeros(()), 0.0)
            share = len(mine) / len(rows)  # this process's part of the batch mean
            if mine:
                (loss * share).backward()
            dist.sum_gradients(model, world)
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            loss_all, acc_all, cpu_all = dist.all_sum([float(loss.detach()) * share, acc * share,
                                                       time.process_time() - cpu0], world)
            if log is not None and step % cfg.log_every == 0:
                log.log(step, {"loss": loss_all, "accuracy": acc_all, "grad_norm": float(grad_norm),
                               "t_step": time.perf_counter() - t0, "cpu_s": cpu_all})
            step += 1
    if log is not None:
        log.close()
    after = accuracy(model, tokenizer, held, cfg.kind, device, world=world)
    report = {"kind": cfg.kind, "held_out_accuracy": after, "held_out_accuracy_before": before,
              "n_train": len(train_rows), "n_held_out": len(held),
              "metric": "pairwise accuracy (chosen > rejected)" if cfg.kind == "helpfulness"
              else "accuracy of the safe/unsafe call"}
    if world.main:
        with atomic_folder(out / "model") as tmp:
            model.save_pretrained(str(tmp), safe_serialization=True)
            tokenizer.save_pretrained(str(tmp))
        write_json(out / "rm.json", report)
        print(f"rm {cfg.kind}: held-out accuracy {before:.3f} -> {after:.3f} ({len(held)} examples)")
    dist.barrier(world)
    return out / "model"
