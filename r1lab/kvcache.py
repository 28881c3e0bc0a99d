"""A preallocated KV cache for Hugging Face models.

`DynamicCache` grows by `torch.cat` at every decoded token, copying the whole cache each time: on a
small model that copy costs more than the forward pass itself. `PreallocatedCache` reserves room for
the prompt and the token budget once and writes each new key/value in place; attention reads a view
of the filled part. It supports what the rollout engine needs: repeating each prompt's rows for its
G samples, and dropping finished rows.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, CacheLayerMixin


class PreallocatedLayer(CacheLayerMixin):
    is_compileable = False
    is_sliding = False

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self.length = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        B, H, _, D = key_states.shape
        self.keys = key_states.new_zeros((B, H, self.capacity, D))
        self.values = value_states.new_zeros((B, H, self.capacity, value_states.shape[-1]))
        self.device = key_states.device
        self.is_initialized = True

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n = key_states.shape[-2]
        if self.length + n > self.capacity:
            raise RuntimeError(f"KV cache capacity {self.capacity} exceeded")
        self.keys[:, :, self.length:self.length + n] = key_states
        self.values[:, :, self.length:self.length + n] = value_states
        self.length += n
        return self.keys[:, :, :self.length], self.values[:, :, :self.length]

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.length + query_length, 0

    def get_seq_length(self) -> int:
        return self.length

    def get_max_length(self) -> int:
        return self.capacity

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.is_initialized:
            self.keys = self.keys.repeat_interleave(repeats, dim=0)
            self.values = self.values.repeat_interleave(repeats, dim=0)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.is_initialized:
            # only the filled part is copied
            self.keys = _select(self.keys, indices, self.length)
            self.values = _select(self.values, indices, self.length)


def _select(buf: torch.Tensor, indices: torch.Tensor, length: int) -> torch.Tensor:
    out = buf.new_empty((len(indices),) + tuple(buf.shape[1:]))
    out[:, :, :length] = buf[indices, :, :length]
    return out


def supports_preallocation(config) -> bool:
    """Plain full-attention decoders only (no sliding windows, no linear-attention layers)."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    layer_types = getattr(text, "layer_types", None)
    if layer_types and any(t != "full_attention" for t in layer_types):
        return False
    return getattr(text, "sliding_window", None) in (None, 0) or not getattr(text, "use_sliding_window", True)


def make_cache(config, capacity: int) -> Cache:
    """A preallocated cache when the architecture allows it, else transformers' DynamicCache."""
    from transformers import DynamicCache

    if not supports_preallocation(config):
        return DynamicCache(config=config)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return Cache(layers=[PreallocatedLayer(capacity) for _ in range(text.num_hidden_layers)])
