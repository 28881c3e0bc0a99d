"""Rollout engine: batched sampling with a KV cache for any Hugging Face causal LM.

Each prompt is prefilled once; its KV cache is then repeated for its G samples (GRPO's group), and
the G x P rows decode together, one token per step, until EOS or the token budget. Rows that finish
are dropped from the batch as it goes, so the tail of long samples does not pay for finished ones.

Sampling is reproducible per prompt, not per batch: every prompt has its own random stream
(seeded by the caller), and each step draws one uniform number per sample of the group whatever
else is in the batch. So the same prompt with the same seed gives the same samples alone, in any
batch and on any number of processes.

    rollout = generate(model, [ids_a, ids_b], n=8, params=SamplingParams(64, 1.0), seeds=[11, 12])
    rollout.completions[0]   # token ids of sample 0 of prompt a (EOS included if it stopped)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

UNIFORM_CHUNK = 64  # decode steps whose sampling uniforms are drawn together


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int  # token budget per sample
    temperature: float = 1.0  # 0 means greedy
    top_p: float = 1.0  # nucleus sampling: smallest set of tokens whose probability reaches top_p


@dataclass
class Rollout:
    completions: list[list[int]]  # [P*G] token ids, EOS included when the sample stopped
    truncated: list[bool]  # [P*G] ran out of budget before EOS
    logprobs: list[list[float]] | None  # [P*G] log-prob of each sampled token under the sampling temperature
    n_prefill_tokens: int = 0  # prompt tokens computed (once per prompt)
    n_decode_tokens: int = 0  # tokens decoded (all rows, all steps)


def left_pad(seqs: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, L] ids and attention mask, shorter rows padded on the left."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            ids[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
            mask[i, width - len(s):] = 1
    return ids.to(device), mask.to(device)


def sample_from_logits(logits: torch.Tensor, uniforms: torch.Tensor, temperature: float,
                       top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens [B] drawn by inverse CDF from given uniforms [B], and their log-probs [B].

    The log-prob is under softmax(logits / temperature), before top-p truncation (the policy's
    distribution, as the GRPO loss sees it). Temperature 0 is greedy (log-prob then at temperature 1).
    """
    logits = logits.float()
    if temperature <= 0:
        tokens = logits.argmax(-1)
        return tokens, torch.log_softmax(logits, -1).gather(-1, tokens[:, None]).squeeze(-1)
    logp = torch.log_softmax(logits / temperature, -1)
    probs = logp.exp()
    if top_p < 1.0:
        probs, order = probs.sort(-1, descending=True)
        cum = probs.cumsum(-1)
        probs = probs * ((cum - probs) < top_p)  # always keeps the most likely token
    cum = probs.cumsum(-1)
    target = uniforms[:, None] * cum[:, -1:]
    pick = torch.searchsorted(cum, target).clamp_max(cum.shape[-1] - 1)
    tokens = order.gather(-1, pick).squeeze(-1) if top_p < 1.0 else pick.squeeze(-1)
    return tokens, logp.gather(-1, tokens[:, None]).squeeze(-1)


@torch.no_grad()
def generate(model, prompts: list[list[int]], n: int, params: SamplingParams, seeds: list[int],
             eos_id: int, pad_id: int, drop_finished: bool = True, return_logprobs: bool = False,
             autocast=None, sync=None, lean_decode: bool = True) -> Rollout:
    """n samples for each prompt (token ids); returns them grouped: prompt 0's n samples first.

    sync(running_here) -> running_anywhere: for a model sharded over processes (FSDP2), whose every
    forward is a collective: a process whose rows have all finished keeps stepping (its finished rows
    ride along, ignored) until every process is done."""
    assert len(seeds) == len(prompts), "one seed per prompt"
    assert n >= 1 and params.max_new_tokens >= 1
    from .decode import LeanDecoder, lean_supported
    from .kvcache import make_cache

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    B = len(prompts) * n
    ctx = autocast if autocast is not None else torch.autocast(device.type, enabled=False)
    lean = cache = mask = None
    if lean_decode and lean_supported(model):
        # r1lab's lean decoder for Llama-family models (same function, far fewer ops and bytes read
        # per step; see decode.py): it prefills the prompts itself
        with ctx:
            lean = LeanDecoder(model, prompts, n, pad_id)
        logits = lean.first_logits.repeat_interleave(n, 0)  # [B, V]
        next_pos = lean.next_position.repeat_interleave(n, 0)[:, None]  # [B, 1]
    else:
        # the model's own forward: prefill each prompt once; positions count only real tokens, so
        # left padding is harmless; the cache is then repeated for the samples
        ids, mask = left_pad(prompts, pad_id, device)
        cache = make_cache(model.config, ids.shape[1] + params.max_new_tokens)
        position = (mask.cumsum(-1) - 1).clamp_min(0)
        with ctx:
            out = model(input_ids=ids, attention_mask=mask, position_ids=position, cache=cache,
                        use_cache=True, logits_to_keep=1)
        cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
        logits = out.logits[:, -1].repeat_interleave(n, 0)  # [B, V]
        cache.batch_repeat_interleave(n)
        mask = mask.repeat_interleave(n, 0)
        next_pos = position[:, -1:].repeat_interleave(n, 0) + 1  # [B, 1]

    completions: list[list[int]] = [[] for _ in range(B)]
    logprobs: list[list[float]] = [[] for _ in range(B)]
    finished = [False] * B
    active = torch.arange(B, device=device)  # row of the batch -> sample index
    decoded = 0
    for step in range(params.max_new_tokens):
        # one uniform per sample of every group, drawn whether or not the sample is still running;
        # drawn UNIFORM_CHUNK steps at a time (the same stream as one draw per step, fewer calls)
        if step % UNIFORM_CHUNK == 0:
            chunk = min(UNIFORM_CHUNK, params.max_new_tokens - step)
            uniforms = torch.stack([torch.rand((chunk, n), generator=g) for g in gens], 1).to(device)  # [chunk, P, n]
        u_all = uniforms[step % UNIFORM_CHUNK].reshape(-1)
        tokens, lp = sample_from_logits(logits, u_all[active], params.temperature, params.top_p)
        tok_list, lp_list, rows = tokens.tolist(), lp.tolist(), active.tolist()
        keep = []
        for j, (i, t) in enumerate(zip(rows, tok_list)):
            if finished[i]:  # a finished row riding along until the next compaction: ignored
                continue
            completions[i].append(t)
            if return_logprobs:
                logprobs[i].append(lp_list[j])
            if t == eos_id:
                finished[i] = True
            else:
                keep.append(j)
        decoded += len(rows)  # rows computed this step, finished riders included
        if step == params.max_new_tokens - 1 or not (sync(bool(keep)) if sync is not None else keep):
            break
        # compact the batch once enough rows have finished (each compaction copies the cache)
        if drop_finished and keep and len(rows) - len(keep) >= max(1, len(rows) // 8):
            sel = torch.tensor(keep, device=device)
            active, tokens, next_pos = active[sel], tokens[sel], next_pos[sel]
            if lean is not None:
                lean.select(sel)
            else:
                cache.batch_select_indices(sel)
                mask = mask[sel]
        with ctx:
            if lean is not None:
                logits = lean.step(tokens, next_pos[:, 0])
            else:
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
                out = model(input_ids=tokens[:, None], attention_mask=mask, position_ids=next_pos,
                            cache=cache, use_cache=True)
                cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
                logits = out.logits[:, -1]
        next_pos = next_pos + 1
    model.train(was_training)
    truncated = [not f for f in finished]
    return Rollout(completions, truncated, logprobs if return_logprobs else None,
                   n_prefill_tokens=sum(len(p) for p in prompts),
                   n_decode_tokens=decoded)


def sample(actor, prompts: list[list[int]], n: int, params: SamplingParams, seeds: list[int], eos_id: int,
           pad_id: int, autocast=None, sync=None) -> Rollout:
    """`generate` on a torch model, or the same request to an inference engine (`--rollout vllm`:
    anything with .generate(prompts, n, params, seeds, eos_id=)); every stage samples through here."""
    if isinstance(actor, torch.nn.Module):
        return generate(actor, prompts, n, params, seeds, eos_id=eos_id, pad_id=pad_id, autocast=autocast, sync=sync)
    return actor.generate(prompts, n, params, seeds, eos_id=eos_id)
