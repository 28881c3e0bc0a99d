"""A lean decoder for Llama-family models (Llama, Qwen2, Mistral without sliding windows).

One decoded token of a small model costs far more in framework overhead and memory traffic than in
arithmetic: the Hugging Face forward runs ~60 small ops and several Python modules per layer, most
of them shape bookkeeping, masks and cache logic that a one-token step does not need, and a cache
repeated per sample reads each prompt's keys G times per step. `LeanDecoder.step` computes the same
function with what is left: per layer one fused QKV product, rotary embedding on q and k together,
the new key/value written in place, attention over two parts (each prompt's keys, stored once for
its samples; each sample's own tokens), one fused gate/up product; on a CPU in float32 the products
run on weights prepacked for oneDNN. The prefill runs the model's own forward (the prefix all
prompts share once, then each prompt's rest), so anything special about the prompt (left padding,
positions) is handled by the model itself.

`engine.generate` uses it where `lean_supported(model)` says it applies, and the model's own forward
everywhere else; tests/test_decode.py checks that both give the same logits and the same samples.
Weights are read from the model at construction (the fused matrices are copies), so a decoder is
built for one `generate` call and never outlives an optimizer step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SUPPORTED = ("llama", "qwen2", "mistral")


def lean_supported(model) -> bool:
    """Whether LeanDecoder computes this model's function (else the model's own forward decodes)."""
    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) not in SUPPORTED or type(model).__name__.startswith("Peft"):
        return False
    if getattr(config, "hidden_act", "silu") != "silu" or getattr(config, "pretraining_tp", 1) != 1:
        return False
    if getattr(config, "mlp_bias", False) or getattr(config, "use_sliding_window", False):
        return False
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    if "dynamic" in str(rope.get("rope_type", rope.get("type", ""))):  # its frequencies depend on the longest
        return False  # position seen, which a table of positions computed ahead would change
    return not any(hasattr(p, "to_local") for p in model.parameters())  # FSDP2: weights live in shards


def packed_linears_available(device: torch.device) -> bool:
    """oneDNN's prepacked linear (the kernel torch.compile's CPU freezing uses): ~2x faster than
    F.linear for the 64-row products of a decode step on this project's CPUs; float32 on the CPU only."""
    return (device.type == "cpu" and torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_linear_pointwise") and hasattr(torch.ops.mkldnn, "_reorder_linear_weight"))


class Linear:
    """y = x W^T + b, with W prepacked for oneDNN where that kernel is used."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, packed: bool, rows: int):
        self.weight, self.bias, self.packed = weight, bias, packed
        if packed:
            self.weight = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), rows)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.packed:
            return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")
        return F.linear(x, self.weight, self.bias)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Llama's RMSNorm in its own order of operations (fewer ops than F.rms_norm on a CPU)."""
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


class LeanDecoder:
    """Prefills the prompts and then decodes their n samples each, one token per step.

    The key/value cache comes in two parts, each attended over by one product per layer: each
    prompt's keys, stored once for its n samples, [P, Hkv, L, D], and each sample's own tokens,
    [B, Hkv, capacity, D], grown by BLOCK positions at a time and attended over whole (unfilled
    positions masked), because a batched product over a contiguous buffer is several times faster on
    a CPU than over a strided slice of a larger one. Repeating the prompt's keys for every sample, as
    a generic cache does, makes each step read them n times: at 64 rows that reading, not arithmetic,
    was a third of a step. The scores of both parts go through one softmax, so this is the same
    attention as over one concatenated cache. The prefill runs the model's own forward: the prefix
    all prompts share (the template's head) once, then each prompt's rest."""

    BLOCK = 32

    @torch.no_grad()
    def __init__(self, model, prompts: list[list[int]], n: int, pad_id: int):
        from transformers import DynamicCache

        from .engine import left_pad
        from .forward import common_prefix_len

        cfg = model.config
        inner = model.model
        device = next(model.parameters()).device
        self.n, self.P = n, len(prompts)
        rows = self.P * n
        packed = (packed_linears_available(device) and not torch.is_autocast_enabled(device.type)
                  and all(p.dtype == torch.float32 for p in model.parameters()))
        self.rotary = inner.rotary_emb
        self.embed = inner.embed_tokens.weight
        self.norm_w, self.norm_eps = inner.norm.weight, inner.norm.variance_epsilon
        self.lm_head = Linear(model.lm_head.weight, None, packed, rows)
        self.heads, self.kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.layers = []
        for layer in inner.layers:
            attn, mlp = layer.self_attn, layer.mlp
            qkv_bias = None
            if attn.q_proj.bias is not None:
                qkv_bias = torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias])
            self.layers.append((
                layer.input_layernorm.weight, layer.input_layernorm.variance_epsilon,
                Linear(torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]), qkv_bias, packed, rows),
                Linear(attn.o_proj.weight, attn.o_proj.bias, packed, rows),
                layer.post_attention_layernorm.weight, layer.post_attention_layernorm.variance_epsilon,
                Linear(torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]), None, packed, rows),
                Linear(mlp.down_proj.weight, None, packed, rows),
            ))
        # prefill: the shared prefix once, then each prompt's rest, left-padded after it
        C = common_prefix_len(prompts) if self.P > 1 else 0
        cache = DynamicCache(config=cfg)
        if C:
            model(input_ids=torch.tensor([prompts[0][:C]], device=device), cache=cache, use_cache=True,
                  logits_to_keep=1)
            cache.batch_repeat_interleave(self.P)
        rest, rest_mask = left_pad([p[C:] for p in prompts], pad_id, device)
        mask = torch.cat([torch.ones((self.P, C), dtype=torch.long, device=device), rest_mask], 1)
        position = (mask.cumsum(-1) - 1).clamp_min(0)[:, C:]
        out = model(input_ids=rest, attention_mask=mask, position_ids=position, cache=cache, use_cache=True,
                    logits_to_keep=1)
        self.first_logits = out.logits[:, -1]  # [P, V]
        self.next_position = position[:, -1] + 1  # [P]
        self.last_prompt_position = int(self.next_position.max())
        self._rope(self.last_prompt_position + self.BLOCK)
        self.C = C
        self.prompt = [(layer.keys.contiguous(), layer.values.contiguous()) for layer in cache.layers]
        self.L = mask.shape[1]
        # additive mask of each prompt's positions (left padding of its rest excluded): [P, L]
        self.prompt_bias = torch.zeros(mask.shape, device=device).masked_fill_(mask == 0, float("-inf"))
        self.slots = torch.arange(rows, device=device)  # row of the batch -> sample index
        B, Hkv, D = rows, self.kv_heads, self.head_dim
        dtype = self.prompt[0][0].dtype
        self.keys = [torch.zeros((B, Hkv, self.BLOCK, D), dtype=dtype, device=device) for _ in self.prompt]
        self.values = [torch.zeros((B, Hkv, self.BLOCK, D), dtype=dtype, device=device) for _ in self.prompt]
        self.length = 0  # sample tokens in the cache
        self.by_slot = self.p_by_slot = None  # buffers indexed by sample, once rows have been dropped

    def _rope(self, positions: int) -> None:
        """The rotary embedding's cos and signed sin for positions 0 .. positions-1, [positions, D]:
        computed once by the model's own rotary module, then read by index each step."""
        x = self.embed[:1]
        cos, sin = self.rotary(x, torch.arange(positions, device=x.device)[None])  # [1, positions, D]
        half = self.head_dim // 2
        self.cos, self.sin = cos[0], torch.cat([-sin[0, :, :half], sin[0, :, half:]], -1)

    def _grow(self, buf: torch.Tensor) -> torch.Tensor:
        B, H, T, D = buf.shape
        out = buf.new_zeros((B, H, T + self.BLOCK, D))
        out[:, :, :T] = buf
        return out

    def select(self, indices: torch.Tensor) -> None:
        """Keep these rows of the batch (finished samples dropped)."""
        self.keys = [k[indices] for k in self.keys]
        self.values = [v[indices] for v in self.values]
        self.slots = self.slots[indices]

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Logits [B, V] of the next token after `tokens` [B] at `positions` [B] (rows as `slots`)."""
        B = tokens.shape[0]
        H, Hkv, D = self.heads, self.kv_heads, self.head_dim
        g, P, n, L = H // Hkv, self.P, self.n, self.L
        t = self.length
        if t == self.keys[0].shape[2]:  # full: grow every layer's buffers by a block
            self.keys = [self._grow(k) for k in self.keys]
            self.values = [self._grow(v) for v in self.values]
            self._rope(self.last_prompt_position + self.keys[0].shape[2])
        capacity = self.keys[0].shape[2]
        full = B == P * n  # no row dropped yet: the rows are the slots in order
        if not full and self.by_slot is None:  # rows dropped: queries and probabilities go by sample index
            self.by_slot = self.keys[0].new_zeros((P * n, Hkv, g, D))
            self.p_by_slot = self.keys[0].new_zeros((P * n, Hkv, g, L))
        x = F.embedding(tokens, self.embed)  # [B, hidden]
        cos, sin = self.cos[positions].view(B, 1, D), self.sin[positions].view(B, 1, D)
        half = D // 2
        # one additive mask per step, [B, 1, 1, L + capacity]: the row's prompt, then its filled positions
        own = torch.zeros((B, capacity), device=x.device)
        own[:, t + 1:] = float("-inf")
        bias = torch.cat([self.prompt_bias[self.slots // n], own], 1).view(B, 1, 1, L + capacity)
        scale = D ** -0.5
        for (ln1, eps1, qkv_proj, o_proj, ln2, eps2, gate_up, down), (pk, pv), keys, values in zip(
                self.layers, self.prompt, self.keys, self.values):
            qkv = qkv_proj(rms_norm(x, ln1, eps1))  # [B, (H + 2 Hkv) D]
            qk = qkv[:, :(H + Hkv) * D].view(B, H + Hkv, D)
            qk = torch.addcmul(qk * cos, qk.roll(half, -1), sin)  # rotary on q and k at once
            keys[:, :, t] = qk[:, H:]
            values[:, :, t] = qkv[:, (H + Hkv) * D:].view(B, Hkv, D)
            # the query heads of one key/value head attend together: [B, Hkv, g, D]
            q = qk[:, :H].reshape(B, Hkv, g, D).to(keys.dtype) * scale
            # each prompt's keys against all its samples' queries at once: [P, Hkv, n g, L]
            q_slots = q if full else self.by_slot.index_copy_(0, self.slots, q)  # stale rows: ignored
            s_prompt = torch.matmul(q_slots.view(P, n, Hkv, g, D).transpose(1, 2).reshape(P, Hkv, n * g, D),
                                    pk.transpose(-1, -2))
            s_prompt = s_prompt.view(P, Hkv, n, g, L).transpose(1, 2).reshape(P * n, Hkv, g, L)
            if not full:
                s_prompt = s_prompt[self.slots]
            scores = torch.cat([s_prompt, torch.matmul(q, keys.transpose(-1, -2))], -1).float() + bias
            probs = torch.softmax(scores, dim=-1).to(values.dtype)
            p_prompt, p_own = probs.split([L, capacity], -1)
            if not full:
                p_prompt = self.p_by_slot.index_copy_(0, self.slots, p_prompt)
            o_prompt = torch.matmul(p_prompt.reshape(P, n, Hkv, g, L).transpose(1, 2).reshape(P, Hkv, n * g, L), pv)
            o_prompt = o_prompt.view(P, Hkv, n, g, D).transpose(1, 2).reshape(P * n, Hkv, g, D)
            out = torch.matmul(p_own, values) + (o_prompt if full else o_prompt[self.slots])  # [B, Hkv, g, D]
            x = x + o_proj(out.reshape(B, H * D))
            gate, up = gate_up(rms_norm(x, ln2, eps2)).chunk(2, dim=-1)
            x = x + down(F.silu(gate) * up)
        self.length = t + 1
        return self.lm_head(rms_norm(x, self.norm_w, self.norm_eps))
