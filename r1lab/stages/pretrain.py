"""Pretrain the embedded base model from scratch on the world's synthetic web.

    r1lab pretrain --out r1lab/assets/base      # rebuilds the shipped checkpoint (same seed, same model)

The loop: write documents -> build the tokenizer -> pack tokens into blocks -> next-token loss with
AdamW and a cosine schedule -> save in Hugging Face format -> run the diagnostic (direct answers vs.
worked solutions vs. behaviour under the R1-Zero template), which is what RL will start from.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..checkpoint import atomic_folder, write_json
from ..config import check_positive, opt, to_dict
from ..logs import MetricsLog
from ..model import autocast, count_parameters, pick_device, save_model
from ..tasks.toy.corpus import documents
from ..tasks.toy.tokenizer import build_tokenizer


@dataclass
class PretrainConfig:
    out: str = opt("runs/pretrain", "output folder: the model in Hugging Face format, metrics.jsonl, config.json")
    seed: int = opt(0, "seed of the corpus, the initial weights and the data order")
    tokens: int = opt(10_000_000, "training tokens (one pass over a corpus of this size)")
    seq_len: int = opt(256, "tokens per training block (documents are packed, separated by <eos>)")
    batch: int = opt(32, "blocks per optimizer step")
    lr: float = opt(2e-3, "peak learning rate (AdamW), reached after warmup, then cosine to lr/10")
    warmup: float = opt(0.02, "share of the steps spent warming the learning rate up")
    weight_decay: float = opt(0.1, "AdamW weight decay")
    hidden: int = opt(128, "model width (Llama architecture)")
    layers: int = opt(4, "transformer layers")
    heads: int = opt(4, "attention heads")
    ffn: int = opt(384, "MLP inner width")
    precision: str = opt("auto", "bf16 autocast where the hardware does it fast ('auto'), or force", ["auto", "fp32", "bf16"])
    device: str = opt("auto", "'auto' (cuda if available), 'cpu' or 'cuda'")
    threads: int = opt(0, "torch CPU threads (0 = torch's default)")
    log_every: int = opt(100, "optimizer steps between log lines")
    diagnose: int = opt(200, "held-out problems for the closing diagnostic (0 skips it)")


def build_model(cfg: PretrainConfig, tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden, intermediate_size=cfg.ffn,
        num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads, num_key_value_heads=cfg.heads,
        max_position_embeddings=cfg.seq_len, tie_word_embeddings=True, rms_norm_eps=1e-5,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=None,
    )
    torch.manual_seed(cfg.seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = None
    return model


def token_blocks(cfg: PretrainConfig, tokenizer) -> torch.Tensor:
    """Documents until `cfg.tokens` tokens, packed into [n_blocks, seq_len] in a shuffled order."""
    ids: list[int] = []
    stream = documents(10**9, cfg.seed)
    eos = tokenizer.eos_token_id
    while len(ids) < cfg.tokens:
        chunk = [next(stream) for _ in range(2000)]
        for row in tokenizer(chunk, add_special_tokens=False)["input_ids"]:
            ids.extend(row)
            ids.append(eos)
    n = len(ids) // cfg.seq_len
    blocks = torch.tensor(ids[: n * cfg.seq_len]).view(n, cfg.seq_len)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed))
    return blocks[order]


def lr_at(step: int, total: int, cfg: PretrainConfig) -> float:
    warm = max(1, int(cfg.warmup * total))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def pretrain(cfg: PretrainConfig) -> Path:
    check_positive(cfg, ["tokens", "seq_len", "batch", "hidden", "layers", "heads", "ffn", "log_every"])
    check_positive(cfg, ["lr"])
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", to_dict(cfg), sort_keys=True)
    device = pick_device(cfg.device)
    random.seed(cfg.seed)

    tokenizer = build_tokenizer(documents(20_000, cfg.seed + 10_000), model_max_length=cfg.seq_len)
    blocks = token_blocks(cfg, tokenizer)
    model = build_model(cfg, tokenizer).to(device)
    steps = len(blocks) // cfg.batch
    print(f"pretrain: {count_parameters(model):,} parameters, vocab {len(tokenizer)}, "
          f"{len(blocks) * cfg.seq_len:,} tokens = {steps} steps of {cfg.batch} x {cfg.seq_len}")

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=cfg.lr, betas=(0.9, 0.95))
    metrics = MetricsLog(out, "pretrain")
    model.train()
    t0 = time.perf_counter()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, steps, cfg)
        batch = blocks[step * cfg.batch:(step + 1) * cfg.batch].to(device)
        with autocast(device, cfg.precision):
            loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % cfg.log_every == 0 or step == steps - 1:
            elapsed = time.perf_counter() - t0
            metrics.log(step, {"loss": loss.item(), "grad_norm": grad_norm.item(), "lr": optimizer.param_groups[0]["lr"],
                               "tokens_per_s": (step + 1) * cfg.batch * cfg.seq_len / elapsed, "elapsed_s": elapsed})
    metrics.close()

    with atomic_folder(out / "model") as tmp:
        save_model(model, tokenizer, tmp)
    if cfg.diagnose:
        from ..evaluate import diagnose_base

        report = diagnose_base(model, tokenizer, n=cfg.diagnose, device=device)
        write_json(out / "diagnostic.json", report)
    return out / "model"
