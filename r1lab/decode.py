"""A lean decode step for Llama-family models (Llama, Qwen2, Mistral without sliding windows).

One decoded token of a small model costs far more in framework overhead than in arithmetic: the
Hugging Face forward runs ~60 small ops and several Python modules per layer, most of them shape
bookkeeping, masks and cache logic that a one-token step does not need. `LeanDecoder.step` computes
the same function with what is left: per layer one fused QKV product, rotary embedding on q and k
together, the new key/value written in place, attention of the one query as two small batched
products over a contiguous cache, one fused gate/up product. The prompt's prefill still runs the
model's own forward (once per prompt, into r1lab/kvcache.py's cache, whose filled part the decoder
then takes over), so anything special about the prompt (left padding, positions) is handled by the
model itself.

`engine.generate` uses it where `lean_decoder(model)` says it applies, and the model's own forward
everywhere else; tests/test_decode.py checks that both give the same logits and the same samples.
Weights are read from the model at construction (the fused matrices are copies), so a decoder is
built for one `generate` call and never outlives an optimizer step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SUPPORTED = ("llama", "qwen2", "mistral")


def lean_decoder(model, cache) -> LeanDecoder | None:
    """A LeanDecoder for this model and cache, or None where the generic path must be used (another
    architecture, a wrapped or sharded model, a cache that is not preallocated)."""
    from .kvcache import PreallocatedLayer

    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) not in SUPPORTED or type(model).__name__.startswith("Peft"):
        return None
    if getattr(config, "hidden_act", "silu") != "silu" or getattr(config, "pretraining_tp", 1) != 1:
        return None
    if getattr(config, "mlp_bias", False) or getattr(config, "use_sliding_window", False):
        return None
    layers = getattr(cache, "layers", None)
    if not layers or not all(isinstance(layer, PreallocatedLayer) and layer.is_initialized for layer in layers):
        return None
    if any(hasattr(p, "to_local") for p in model.parameters()):  # FSDP2: weights live in shards
        return None
    return LeanDecoder(model, cache)


class LeanDecoder:
    """Owns the decode-time KV cache: per layer [B, Hkv, capacity, D], grown by BLOCK positions at a
    time and attended over whole (unfilled positions masked), because a batched product over a
    contiguous cache is several times faster on a CPU than over a strided slice of a larger buffer."""

    BLOCK = 32

    def __init__(self, model, cache):
        cfg = model.config
        inner = model.model
        self.rotary = inner.rotary_emb
        self.embed = inner.embed_tokens.weight
        self.norm_w, self.norm_eps = inner.norm.weight, inner.norm.variance_epsilon
        self.lm_head = model.lm_head.weight
        self.heads, self.kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.scale = self.head_dim ** -0.5
        self.layers = []
        with torch.no_grad():
            for layer in inner.layers:
                attn, mlp = layer.self_attn, layer.mlp
                qkv_bias = None
                if attn.q_proj.bias is not None:
                    qkv_bias = torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias])
                self.layers.append((
                    layer.input_layernorm.weight, layer.input_layernorm.variance_epsilon,
                    torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]), qkv_bias,
                    attn.o_proj.weight, attn.o_proj.bias,
                    layer.post_attention_layernorm.weight, layer.post_attention_layernorm.variance_epsilon,
                    torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]), mlp.down_proj.weight,
                ))
        # the prompt's keys and values, from the prefill, copied into buffers of our own
        self.length = cache.layers[0].length
        self.keys = [self._room(layer.keys[:, :, :self.length]) for layer in cache.layers]
        self.values = [self._room(layer.values[:, :, :self.length]) for layer in cache.layers]

    def _room(self, filled: torch.Tensor) -> torch.Tensor:
        """A buffer holding `filled` [B, Hkv, T, D] with room for at least one more position."""
        B, H, T, D = filled.shape
        capacity = (T // self.BLOCK + 1) * self.BLOCK
        buf = filled.new_zeros((B, H, capacity, D))
        buf[:, :, :T] = filled
        return buf

    def select(self, indices: torch.Tensor) -> None:
        """Keep these rows of the batch (finished samples dropped)."""
        self.keys = [k[indices] for k in self.keys]
        self.values = [v[indices] for v in self.values]

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits [B, V] of the next token after `tokens` [B] at `positions` [B]; `mask` [B, T] is the
        attention mask over the cache with the new token included (1 = attend)."""
        B = tokens.shape[0]
        H, Hkv, D = self.heads, self.kv_heads, self.head_dim
        t = self.length
        if t == self.keys[0].shape[2]:  # full: grow every layer's buffers by a block
            self.keys = [self._room(k) for k in self.keys]
            self.values = [self._room(v) for v in self.values]
        capacity = self.keys[0].shape[2]
        x = F.embedding(tokens, self.embed)  # [B, hidden]
        cos, sin = self.rotary(x, positions[:, None])  # [B, 1, D]
        cos, sin = cos.view(B, 1, D), sin.view(B, 1, D)
        # additive mask over the whole buffer (padding and unfilled positions excluded): [B, 1, 1, capacity]
        bias = torch.full((B, capacity), float("-inf"), device=x.device)
        bias[:, :t + 1].masked_fill_(mask[:, -(t + 1):] != 0, 0.0)
        bias = bias.view(B, 1, 1, capacity)
        for (ln1, eps1, w_qkv, b_qkv, w_o, b_o, ln2, eps2, w_gu, w_down), keys, values in zip(
                self.layers, self.keys, self.values):
            h = _rms_norm(x, ln1, eps1)
            qkv = F.linear(h, w_qkv, b_qkv)  # [B, (H + 2 Hkv) D]
            qk = qkv[:, :(H + Hkv) * D].view(B, H + Hkv, D)
            qk = qk * cos + _rotate_half(qk) * sin  # rotary on q and k at once
            keys[:, :, t] = qk[:, H:]
            values[:, :, t] = qkv[:, (H + Hkv) * D:].view(B, Hkv, D)
            # the query heads of one key/value head attend together: [B, Hkv, H/Hkv, D]
            q = qk[:, :H].reshape(B, Hkv, H // Hkv, D).to(keys.dtype)
            scores = torch.matmul(q, keys.transpose(-1, -2)).float() * self.scale + bias  # [B, Hkv, g, capacity]
            probs = torch.softmax(scores, dim=-1).to(values.dtype)
            out = torch.matmul(probs, values).reshape(B, H * D)
            x = x + F.linear(out, w_o, b_o)
            h = _rms_norm(x, ln2, eps2)
            gate, up = F.linear(h, w_gu).chunk(2, dim=-1)
            x = x + F.linear(F.silu(gate) * up, w_down)
        self.length = t + 1
        return F.linear(_rms_norm(x, self.norm_w, self.norm_eps), self.lm_head)


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """As transformers' LlamaRMSNorm: normalise in float32, then scale in the input's dtype."""
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(x.dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)
