"""Forward passes over prompt + completion batches, for every training stage.

A batch row is one prompt followed by one completion. The token prefix that every prompt of the batch
shares (with the R1-Zero template: the whole template head, ~85 tokens) goes through the model once
per pass and its keys/values are repeated for the rows, instead of once per row; gradients flow back
through it, so the result is the same as a full forward per row, for a fraction of the work.
"""

from __future__ import annotations

import torch

from .losses import token_logprobs


def common_prefix_len(seqs: list[list[int]]) -> int:
    """Length of the longest token prefix shared by all sequences, leaving each at least one token."""
    first, n = seqs[0], min(len(s) for s in seqs) - 1
    for i in range(max(0, n)):
        if any(s[i] != first[i] for s in seqs):
            return i
    return max(0, n)


def sequences(prompt_ids: list[list[int]], completion_ids: list[list[int]], pad_id: int, device,
              share_prefix: bool = True) -> dict:
    """Training tensors. The token prefix shared by every prompt (the template's head) is kept apart
    and computed once per forward pass; the rest of each prompt is left-padded after it and the
    completion right-padded:

    prefix [C], ids [B, Lp+Lc], attn [B, C+Lp+Lc], pos [B, Lp+Lc], targets [B, Lc], mask [B, Lc].
    """
    C = common_prefix_len(prompt_ids) if share_prefix else 0
    rest = [p[C:] for p in prompt_ids]
    B = len(completion_ids)
    Lp = max(len(p) for p in rest)
    Lc = max(1, max(len(c) for c in completion_ids))
    ids = torch.full((B, Lp + Lc), pad_id, dtype=torch.long)
    attn = torch.zeros((B, C + Lp + Lc), dtype=torch.long)
    attn[:, :C] = 1
    for i, (p, c) in enumerate(zip(rest, completion_ids)):
        ids[i, Lp - len(p):Lp] = torch.tensor(p, dtype=torch.long)
        attn[i, C + Lp - len(p):C + Lp] = 1
        if c:
            ids[i, Lp:Lp + len(c)] = torch.tensor(c, dtype=torch.long)
            attn[i, C + Lp:C + Lp + len(c)] = 1
    positions = (attn.cumsum(-1) - 1).clamp_min(0)[:, C:]
    return {"prefix": torch.tensor(prompt_ids[0][:C], dtype=torch.long, device=device),
            "ids": ids.to(device), "attn": attn.to(device), "pos": positions.to(device),
            "targets": ids[:, Lp:].to(device), "mask": attn[:, C + Lp:].float().to(device), "Lc": Lc}


def completion_logits(model, seq: dict, rows: slice, amp) -> torch.Tensor:
    """Logits that predict each completion token, [b, Lc, V] (lm_head only on those positions).

    The shared prefix goes through the model once (batch 1) and its keys/values are repeated for
    the rows; gradients flow back through them, so the result equals a full forward per row."""
    from transformers import DynamicCache

    Lc = seq["Lc"]
    ids = seq["ids"][rows]
    cache = None
    with amp:
        if seq["prefix"].numel():
            cache = DynamicCache(config=model.config)
            model(input_ids=seq["prefix"][None], cache=cache, use_cache=True, logits_to_keep=1)
            cache.batch_repeat_interleave(ids.shape[0])
        out = model(input_ids=ids, attention_mask=seq["attn"][rows], position_ids=seq["pos"][rows],
                    cache=cache, use_cache=cache is not None, logits_to_keep=Lc + 1)
    return out.logits[:, :-1]


@torch.no_grad()
def frozen_logprobs(model, seq: dict, micro: int, temperature: float, amp) -> torch.Tensor:
    """Per-token log-probs [B, Lc] of a model that is not being trained (reference, pi_old)."""
    B = seq["ids"].shape[0]
    parts = [token_logprobs(completion_logits(model, seq, slice(s, s + micro), amp),
                            seq["targets"][s:s + micro], temperature) for s in range(0, B, micro)]
    return torch.cat(parts)
