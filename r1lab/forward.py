"""Forward passes over prompt + completion batches, for every training stage.

A batch row is one prompt followed by one completion. The token prefix that every prompt of the batch
shares (with the R1-Zero template: the whole template head, ~85 tokens) goes through the model once
per pass, the rest of each prompt once for its group of samples (GRPO's G rows share a prompt), and
their keys/values are handed to the rows; gradients flow back through them, so the result is the
same as a full forward per row, for a fraction of the work.
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
              share_prefix: bool = True, by_length: bool = True) -> dict:
    """Training tensors. With `share_prefix`, the token prefix shared by every prompt (the template's
    head) is kept apart and computed once per forward pass, and the rest of a prompt once for the
    consecutive rows that share it (a group); the rest of each prompt is left-padded after the prefix
    and the completion right-padded:

    prefix [C], ids [B, Lp+Lc], attn [B, C+Lp+Lc], pos [B, Lp+Lc], targets [B, Lc], mask [B, Lc],
    completion_len [B] (on the CPU: it decides micro-batches), group [B] (the row's group, or None
    without `share_prefix`: a full forward per row), first_row [groups] (a row of each group) and
    by_length (how `micro_batches` forms the passes; False under FSDP2).
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
    group, first_row = None, None
    if share_prefix:
        new_group = [i == 0 or prompt_ids[i] != prompt_ids[i - 1] for i in range(B)]
        group = torch.tensor(new_group, dtype=torch.long).cumsum(0) - 1
        first_row = torch.tensor([i for i in range(B) if new_group[i]], dtype=torch.long)
    return {"prefix": torch.tensor(prompt_ids[0][:C], dtype=torch.long, device=device),
            "ids": ids.to(device), "attn": attn.to(device), "pos": positions.to(device),
            "targets": ids[:, Lp:].to(device), "mask": attn[:, C + Lp:].float().to(device), "Lc": Lc,
            "completion_len": torch.tensor([len(c) for c in completion_ids]), "group": group, "first_row": first_row,
            "by_length": by_length}


def micro_batches(lengths: list[int], max_rows: int, by_length: bool = True) -> list[torch.Tensor]:
    """Row indices of each micro-batch: at most `max_rows` rows, each micro-batch padded only to its
    own longest completion. With `by_length`, rows are taken longest first and a micro-batch closes
    when the next row is under half its longest, so padding is under half of what is computed
    (R1-Zero's early batches mix 25-token answers with 128-token ones); without it (FSDP2, where
    every process must run the same number of forwards), consecutive slices."""
    n = len(lengths)
    if not by_length:
        return [torch.arange(s, min(s + max_rows, n)) for s in range(0, n, max_rows)]
    order = sorted(range(n), key=lambda i: (-lengths[i], i))
    out, current = [], []
    for i in order:
        if current and (len(current) == max_rows or 2 * max(lengths[i], 1) <= max(lengths[current[0]], 1)):
            out.append(current)
            current = []
        current.append(i)
    if current:
        out.append(current)
    return [torch.tensor(rows) for rows in out]


def cut(t: torch.Tensor, rows: torch.Tensor, width: int) -> torch.Tensor:
    """A [B, Lc] tensor's micro-batch: these rows, the first `width` completion columns."""
    return t[rows.to(t.device)][:, :width]


def completion_logits(model, seq: dict, rows: torch.Tensor | slice, amp) -> torch.Tensor:
    """Logits that predict each completion token, [b, lc, V], lc = the longest completion of these rows
    (lm_head only on those positions).

    With a shared prefix (`sequences(share_prefix=True)`), three forwards: the prefix (batch 1), the
    rest of the prompt of each group among the rows (its last position predicts the first completion
    token), then the completions on those keys/values, each row on its group's. Gradients flow back
    through the handed-on keys/values, so the result equals a full forward per row. Without it, one
    full forward per row (what activation checkpointing and FSDP2 need: each layer once per backward)."""
    from transformers import DynamicCache

    if isinstance(rows, slice):
        rows = torch.arange(seq["ids"].shape[0])[rows]
    Lp = seq["ids"].shape[1] - seq["Lc"]
    C = seq["attn"].shape[1] - seq["ids"].shape[1]
    lc = int(seq["completion_len"][rows].max().clamp_min(1))
    on = rows.to(seq["ids"].device)
    with amp:
        if seq["group"] is None:
            out = model(input_ids=seq["ids"][on, :Lp + lc], attention_mask=seq["attn"][on, :C + Lp + lc],
                        position_ids=seq["pos"][on, :Lp + lc], use_cache=False, logits_to_keep=lc + 1)
            return out.logits[:, :-1]
        groups, row_group = torch.unique(seq["group"][rows], return_inverse=True)
        first = seq["first_row"][groups].to(on.device)
        cache = DynamicCache(config=model.config)
        if C:
            model(input_ids=seq["prefix"][None], cache=cache, use_cache=True, logits_to_keep=1)
            cache.batch_repeat_interleave(len(groups))
        out = model(input_ids=seq["ids"][first, :Lp], attention_mask=seq["attn"][first, :C + Lp],
                    position_ids=seq["pos"][first, :Lp], cache=cache, use_cache=True, logits_to_keep=1)
        # index_select, not indexing: its backward adds the rows of a group in a fixed order, where
        # indexing's backward (index_put_ with accumulate) made gradients differ from run to run
        row_group = row_group.to(on.device)
        logits = out.logits[:, -1:].index_select(0, row_group)  # [b, 1, V]: predicts each row's first token
        if lc > 1:
            for layer in cache.layers:
                layer.keys, layer.values = layer.keys.index_select(0, row_group), layer.values.index_select(0, row_group)
            out = model(input_ids=seq["ids"][on, Lp:Lp + lc - 1], attention_mask=seq["attn"][on, :C + Lp + lc - 1],
                        position_ids=seq["pos"][on, Lp:Lp + lc - 1], cache=cache, use_cache=True)
            logits = torch.cat([logits, out.logits], 1)
    return logits


@torch.no_grad()
def frozen_logprobs(model, seq: dict, micro: int, temperature: float, amp) -> torch.Tensor:
    """Per-token log-probs [B, Lc] of a model that is not being trained (reference, pi_old); 0 past
    each row's completion."""
    out = torch.zeros(seq["targets"].shape, device=seq["targets"].device)
    for rows in micro_batches(seq["completion_len"].tolist(), micro, seq["by_length"]):
        logits = completion_logits(model, seq, rows, amp)
        lp = token_logprobs(logits, cut(seq["targets"], rows, logits.shape[1]), temperature)
        out[rows.to(out.device), :lp.shape[1]] = lp
    return out
