import math

import pytest
import torch

from r1lab.losses import (
    bradley_terry_loss,
    group_advantages,
    grpo_loss,
    k3_kl,
    pointwise_loss,
    sft_loss,
    token_entropy,
    token_logprobs,
)


def slow_grpo(logp, old, adv, mask, ref, beta, eps_low, eps_high, agg, max_len):
    """Per-sample, per-token loops, written straight from the formulas."""
    B, T = logp.shape
    seq_terms, token_sum, n_tokens = [], 0.0, 0
    for i in range(B):
        terms = []
        for t in range(T):
            if mask[i, t] == 0:
                continue
            rho = torch.exp(logp[i, t] - old[i, t])
            unclipped = rho * adv[i]
            clipped = torch.clamp(rho, 1 - eps_low, 1 + eps_high) * adv[i]
            term = -torch.min(unclipped, clipped)
            if ref is not None:
                r = torch.exp(ref[i, t] - logp[i, t])
                term = term + beta * (r - torch.log(r) - 1)
            terms.append(term)
        n_tokens += len(terms)
        s = sum(terms) if terms else torch.zeros(())
        token_sum = token_sum + s
        seq_terms.append(s / max(1, len(terms)))
    if agg == "seq-mean":
        return sum(seq_terms) / B
    if agg == "token-mean":
        return token_sum / n_tokens
    return token_sum / (B * max_len)


@pytest.mark.parametrize("agg", ["seq-mean", "token-mean", "dr-grpo"])
@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_grpo_loss_matches_slow_reference_values_and_grads(agg, beta):
    g = torch.Generator().manual_seed(0)
    B, T = 6, 9
    base = torch.randn(B, T, generator=g, dtype=torch.float64) - 2
    old = base + 0.3 * torch.randn(B, T, generator=g, dtype=torch.float64)  # ratios far from 1: clipping active
    ref = base + 0.2 * torch.randn(B, T, generator=g, dtype=torch.float64)
    adv = torch.randn(B, generator=g, dtype=torch.float64)
    mask = (torch.rand(B, T, generator=g) > 0.3).double()
    mask[0] = 0  # a fully masked sequence
    a = base.clone().requires_grad_(True)
    b = base.clone().requires_grad_(True)
    fast, stats = grpo_loss(a, old, adv, mask, ref if beta else None, beta, 0.2, 0.28, agg, max_len=T)
    slow = slow_grpo(b, old, adv, mask, ref if beta else None, beta, 0.2, 0.28, agg, T)
    assert torch.allclose(fast, slow, atol=1e-10)
    fast.backward()
    slow.backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-10)
    assert 0 < stats["clip_frac"] < 1


def test_microbatches_with_global_norm_sum_to_full_batch():
    g = torch.Generator().manual_seed(1)
    logp = torch.randn(8, 5, generator=g)
    old = logp + 0.1
    adv = torch.randn(8, generator=g)
    mask = (torch.rand(8, 5, generator=g) > 0.2).float()
    for agg, norm in [("seq-mean", 8.0), ("token-mean", float(mask.sum())), ("dr-grpo", 8.0 * 5)]:
        full, _ = grpo_loss(logp, old, adv, mask, agg=agg)
        parts = sum(grpo_loss(logp[s:s + 3], old[s:s + 3], adv[s:s + 3], mask[s:s + 3], agg=agg, norm=norm,
                              max_len=5)[0] for s in range(0, 8, 3))
        assert torch.allclose(full, parts, atol=1e-6), agg


def test_ratio_one_gives_policy_gradient():
    # with pi_old = pi_theta (detached), the gradient is -A * grad(logp) / |o| per token (seq-mean)
    logp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    loss, _ = grpo_loss(logp, logp.detach(), torch.tensor([2.0]), torch.ones(1, 2))
    loss.backward()
    assert torch.allclose(logp.grad, torch.tensor([[-1.0, -1.0]]))


def test_k3_kl_nonnegative_and_zero_when_equal():
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(1000, generator=g), torch.randn(1000, generator=g)
    assert (k3_kl(a, b) >= 0).all()
    assert torch.equal(k3_kl(a, a), torch.zeros(1000))
    # k3 is an unbiased estimator of KL(p||q) when tokens are sampled from p
    p = torch.tensor([0.7, 0.2, 0.1])
    q = torch.tensor([0.4, 0.4, 0.2])
    exact = float((p * (p / q).log()).sum())
    estimate = float((p * k3_kl(p.log(), q.log())).sum())
    assert abs(exact - estimate) < 1e-6


def test_group_advantages():
    r = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.5, 0.5, 0.5, 0.5])
    adv = group_advantages(r, 4)
    assert torch.allclose(adv[:4], torch.tensor([0.5, -0.5, 0.5, -0.5]) / math.sqrt(1 / 3))
    assert torch.equal(adv[4:], torch.zeros(4))  # zero spread: no signal, no NaN
    assert torch.allclose(group_advantages(r, 4, scale=False)[:4], torch.tensor([0.5, -0.5, 0.5, -0.5]))
    assert torch.isfinite(group_advantages(torch.zeros(8), 4)).all()
    for g in range(2):
        assert abs(float(adv[4 * g:4 * g + 4].sum())) < 1e-6


def test_token_logprobs_matches_log_softmax():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 4, 11, generator=g)
    targets = torch.randint(0, 11, (2, 4), generator=g)
    ref = torch.log_softmax(logits / 0.7, -1).gather(-1, targets[..., None]).squeeze(-1)
    assert torch.allclose(token_logprobs(logits, targets, 0.7), ref, atol=1e-6)
    ent = token_entropy(logits)
    p = torch.softmax(logits, -1)
    assert torch.allclose(ent, -(p * p.log()).sum(-1), atol=1e-5)


def test_sft_loss_counts_only_masked_tokens():
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 3, 5, generator=g)
    targets = torch.randint(0, 5, (2, 3), generator=g)
    mask = torch.tensor([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
    nll = -torch.log_softmax(logits, -1).gather(-1, targets[..., None]).squeeze(-1)
    expected = (nll[0, 1] + nll[0, 2] + nll[1, 2]) / 3
    assert torch.allclose(sft_loss(logits, targets, mask), expected)


def test_bradley_terry_and_pointwise_against_formulas():
    c, r = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([1.0, 0.0, 0.5])
    slow = sum(-math.log(1 / (1 + math.exp(-(a - b)))) for a, b in zip(c.tolist(), r.tolist())) / 3
    assert abs(float(bradley_terry_loss(c, r)) - slow) < 1e-6
    s, y = torch.tensor([3.0, -2.0, 0.0]), torch.tensor([1.0, 0.0, 1.0])
    slow = 0.0
    for x, t in zip(s.tolist(), y.tolist()):
        p = 1 / (1 + math.exp(-x))
        slow -= t * math.log(p) + (1 - t) * math.log(1 - p)
    assert abs(float(pointwise_loss(s, y)) - slow / 3) < 1e-6
