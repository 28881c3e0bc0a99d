"""The math of every stage, as pure functions with shapes in comments.

Notation: B sequences (P prompts x G samples), T completion positions, V vocabulary.
`mask` is 1 on completion tokens that count and 0 on padding (and on masked-out samples).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSS_AGGREGATIONS = ("seq-mean", "token-mean", "dr-grpo")


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log p(target) per position, [B, T, V] x [B, T] -> [B, T], in fp32.

    Uses gather - logsumexp instead of a full log_softmax, so no second [B, T, V] tensor is made.
    """
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def token_entropy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Entropy of the next-token distribution per position, [B, T, V] -> [B, T]."""
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def group_advantages(rewards: torch.Tensor, group_size: int, scale: bool = True,
                     eps: float = 1e-6) -> torch.Tensor:
    """GRPO's outcome advantage A_i = (r_i - mean(group)) / std(group), [P*G] -> [P*G].

    Groups are consecutive runs of `group_size` rewards. std is the sample (unbiased) standard
    deviation. A group whose rewards are all equal (std < eps) gets advantage 0 for every member:
    it carries no signal about which sample was better. scale=False skips the division (Dr. GRPO).
    """
    assert rewards.dim() == 1 and rewards.numel() % group_size == 0, "rewards must be [P*G]"
    r = rewards.float().view(-1, group_size)  # [P, G]
    centred = r - r.mean(dim=1, keepdim=True)
    if not scale:
        return centred.view(-1)
    std = r.std(dim=1, keepdim=True, unbiased=group_size > 1) if group_size > 1 else torch.zeros_like(r[:, :1])
    flat = std < eps
    adv = torch.where(flat, torch.zeros_like(centred), centred / std.clamp_min(eps))
    return adv.view(-1)


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(pi_theta || pi_ref) per token: ratio - log(ratio) - 1 with
    ratio = pi_ref / pi_theta. Always >= 0, and exactly 0 where the two log-probs are equal."""
    log_ratio = (ref_logp - logp).clamp(-20.0, 20.0)  # keep exp finite when the policies drift far apart
    return torch.exp(log_ratio) - log_ratio - 1.0


def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
              ref_logp: torch.Tensor | None = None, beta: float = 0.0, eps_low: float = 0.2,
              eps_high: float = 0.2, agg: str = "seq-mean", norm: float | None = None,
              max_len: int | None = None) -> tuple[torch.Tensor, dict]:
    """GRPO surrogate loss (to minimise) and statistics.

    logp, old_logp, ref_logp, mask: [B, T]; advantages: [B].
    Per token: -min(rho A, clip(rho, 1-eps_low, 1+eps_high) A) + beta * k3(pi_theta, pi_ref),
    rho = pi_theta / pi_old. Aggregation `agg`:
      "seq-mean"   mean over a sequence's tokens, then over sequences (DeepSeekMath / R1 paper)
      "token-mean" mean over all tokens of the batch (DAPO)
      "dr-grpo"    sum over tokens / (sequences x max_len), a constant (Dr. GRPO)
    `norm` overrides the denominator (sequences, tokens or sequences x max_len of the *whole* batch,
    across micro-batches and processes), so that micro-batch losses add up to the global loss.
    """
    if agg not in LOSS_AGGREGATIONS:
        raise ValueError(f"unknown loss aggregation {agg!r}; expected one of {LOSS_AGGREGATIONS}")
    mask = mask.to(logp.dtype)
    A = advantages.to(logp.dtype).unsqueeze(-1)  # [B, 1]
    ratio = torch.exp(logp - old_logp)  # [B, T]
    clipped = ratio.clamp(1.0 - eps_low, 1.0 + eps_high)
    per_token = -torch.minimum(ratio * A, clipped * A)  # [B, T]
    kl = torch.zeros_like(logp)
    if ref_logp is not None and beta != 0.0:
        kl = k3_kl(logp, ref_logp)
        per_token = per_token + beta * kl

    lengths = mask.sum(-1)  # [B]
    rows = (per_token * mask).sum(-1)  # [B]
    if agg == "seq-mean":
        rows = rows / lengths.clamp_min(1.0)
        denom = float(mask.shape[0]) if norm is None else norm
    elif agg == "token-mean":
        denom = float(lengths.sum().clamp_min(1.0)) if norm is None else norm
    else:
        denom = float(mask.shape[0] * (max_len or mask.shape[1])) if norm is None else norm
    loss = rows.sum() / denom

    with torch.no_grad():
        n_tok = mask.sum().clamp_min(1.0)
        clip_active = ((ratio < 1.0 - eps_low) & (A < 0)) | ((ratio > 1.0 + eps_high) & (A > 0))
        stats = {
            "kl": float((kl * mask).sum() / n_tok),
            "clip_frac": float((clip_active.to(mask.dtype) * mask).sum() / n_tok),
            "ratio_mean": float((ratio * mask).sum() / n_tok),
            "tokens": float(mask.sum()),
            # the un-normalised loss summed in float64: adds up the same in any order, so the loss
            # logged by 1 and by N processes agrees to ~1e-12, not just to fp32 rounding
            "sum64": float(rows.detach().double().sum()),
        }
    return loss, stats


def sft_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
             norm: float | None = None) -> torch.Tensor:
    """Next-token cross-entropy on the positions where mask is 1 (completion tokens only).

    logits [B, T, V], targets [B, T], mask [B, T]; mean over counted tokens (or / norm).
    """
    nll = -token_logprobs(logits, targets)
    mask = mask.to(nll.dtype)
    denom = mask.sum().clamp_min(1.0) if norm is None else norm
    return (nll * mask).sum() / denom


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """Pairwise preference loss -log sigmoid(r_chosen - r_rejected), mean over pairs. [N], [N] -> []."""
    return -F.logsigmoid(chosen.float() - rejected.float()).mean()


def pointwise_loss(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of a scalar score (logit) against a 0/1 label, mean. [N], [N] -> []."""
    return F.binary_cross_entropy_with_logits(scores.float(), labels.float())
