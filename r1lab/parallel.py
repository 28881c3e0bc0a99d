"""Model wrappers for larger models: LoRA (PEFT), activation checkpointing, FSDP2 sharding.

- LoRA (`--lora-rank R`): only low-rank adapters on every linear layer are trained. The reference
  model is the same network with the adapter switched off (no second copy) until the first
  reference reset; from then on it is a frozen copy of the merged policy. Checkpoints hold the
  adapter; the final `OUT/model` holds the merged weights (loads without PEFT) and `OUT/adapter`
  the adapter alone.
- Activation checkpointing (`--activation-checkpointing`): recompute activations in backward. It
  turns off the shared-prefix forward (transformers disables the KV cache under checkpointing).
- FSDP2 (`--fsdp`, under torchrun): every decoder layer and the model are sharded with
  `torch.distributed.fsdp.fully_shard`, the policy and the reference alike, so each process holds
  1/N of both (plus the optimizer state of its shard). Training forward/backward are sharded (one
  forward per micro-batch: the shared-prefix forward runs each layer twice, which a sharded layer
  cannot differentiate through once its weights are resharded). Rollouts and evaluation run on the
  sharded policy too: each forward gathers one layer at a time, so every process must take part in
  every forward; a process whose samples have all finished keeps stepping until all have
  (engine.generate's `sync`). No process ever holds a full copy of the weights, except rank 0 for a
  moment when a checkpoint is written.
"""

from __future__ import annotations

import copy

import torch

from .errors import UserError


def decoder_layers(model) -> list:
    """The repeated blocks of a Hugging Face causal LM (for sharding), found without knowing its class."""
    for module in model.modules():
        layers = getattr(module, "layers", None)
        if isinstance(layers, torch.nn.ModuleList) and len(layers):
            return list(layers)
    return []


def add_lora(model, rank: int, alpha: float = 0.0):
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise UserError("--lora-rank needs the peft package: pip install 'r1lab[lora]'") from None
    cfg = LoraConfig(r=rank, lora_alpha=alpha or 2 * rank, lora_dropout=0.0, target_modules="all-linear",
                     task_type="CAUSAL_LM")
    return get_peft_model(model, cfg)


def load_lora(base, folder):
    from peft import PeftModel

    return PeftModel.from_pretrained(base, str(folder), is_trainable=True)


def is_lora(model) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


def merged_copy(model):
    """A plain model with the adapter merged in (the policy as one network)."""
    return copy.deepcopy(model).merge_and_unload() if is_lora(model) else copy.deepcopy(model)


def enable_checkpointing(model) -> None:
    target = model.get_base_model() if is_lora(model) else model
    if hasattr(target, "activation_checkpointing_enable"):  # transformers >= 5.x's name
        target.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        target.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if is_lora(model):
        target.enable_input_require_grads()


def shard(model) -> None:
    """FSDP2: shard each decoder layer, then the rest of the model."""
    from torch.distributed.fsdp import fully_shard

    layers = decoder_layers(model)
    if not layers:
        raise UserError("--fsdp: could not find the model's decoder layers to shard")
    for layer in layers:
        fully_shard(layer)
    fully_shard(model)


def full_state_dict(model, sharded: bool, everywhere: bool = False) -> dict:
    """The whole state dict (a collective when sharded): on rank 0 only (moved to the CPU, for
    writing), or on every process with `everywhere`."""
    if not sharded:
        return {k: v.detach() for k, v in model.state_dict().items()}
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=not everywhere))


def optimizer_state(model, optimizer, sharded: bool) -> dict:
    if not sharded:
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_optimizer_state(model, optimizer, state: dict, sharded: bool) -> None:
    if not sharded:
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, optim_state_dict=state,
                             options=StateDictOptions(full_state_dict=True))


def local_bytes(*modules) -> int:
    """Bytes of parameters and buffers this process holds for the given modules (a sharded tensor
    counts its local shard only; None is skipped)."""
    total = 0
    for module in modules:
        if module is None:
            continue
        for t in list(module.parameters()) + list(module.buffers()):
            local = t.to_local() if hasattr(t, "to_local") else t
            total += local.numel() * local.element_size()
    return total
