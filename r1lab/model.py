"""Load and save Hugging Face causal LMs and their tokenizers from local folders.

Any `AutoModelForCausalLM` folder works. The embedded base model ships inside the package
(`r1lab/assets/base`) and is what `--model` means when it is not given.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .errors import UserError

# Nothing is ever fetched from a hub: every model and tokenizer comes from a local folder.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

def _quiet_transformers() -> None:
    """transformers' load reports and save progress bars drown the training log: errors only."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


_quiet_transformers()
ASSETS = Path(__file__).parent / "assets"
DEFAULT_MODEL = ASSETS / "base"


def resolve_model_path(path: str | os.PathLike | None) -> Path:
    """The model folder to use: `path`, or the embedded base model when it is None/"base"."""
    if path in (None, "", "base"):
        return DEFAULT_MODEL
    p = Path(path)
    if not p.is_dir():
        raise UserError(f"model folder {str(p)!r} does not exist (expected a local Hugging Face folder "
                        "with config.json, weights and tokenizer files)")
    if not (p / "config.json").is_file():
        raise UserError(f"model folder {str(p)!r} has no config.json: is it a Hugging Face model folder?")
    return p


def load_tokenizer(path):
    """The tokenizer of a model folder, checked for what generation needs (eos and pad tokens)."""
    from transformers import AutoTokenizer

    path = resolve_model_path(path)
    try:
        tok = AutoTokenizer.from_pretrained(str(path))
    except Exception as e:  # noqa: BLE001 - any load failure is reported with the folder's name
        raise UserError(f"could not load a tokenizer from {str(path)!r}: {e}") from None
    if tok.eos_token_id is None:
        raise UserError(f"tokenizer in {str(path)!r} has no eos token: generation could never stop "
                        "(set eos_token in tokenizer_config.json)")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token  # the usual fallback; pad positions are always masked
    tok.padding_side = "left"
    return tok


def load_model(path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
    """A causal LM from a local folder, in train mode, on `device`."""
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(path)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
    except Exception as e:  # noqa: BLE001
        raise UserError(f"could not load a causal LM from {str(path)!r}: {e}") from None
    return model.to(device)


def save_model(model, tokenizer, folder: str | os.PathLike, state_dict: dict | None = None) -> None:
    """Save weights (safetensors), config and tokenizer in Hugging Face format into `folder`
    (`state_dict`: weights to write instead of the model's own, e.g. gathered from FSDP shards)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    kwargs = {"state_dict": state_dict} if state_dict is not None else {}
    model.save_pretrained(str(folder), safe_serialization=True, **kwargs)
    tokenizer.save_pretrained(str(folder))


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {requested}: no CUDA GPU is visible to torch")
    return torch.device(requested)


def fast_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast pays here: on CUDA, and on CPUs with AVX512-BF16/AMX. On AVX2-only CPUs
    bf16 matmuls are emulated and run tens of times slower than fp32, so they are not used."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def autocast(device: torch.device, precision: str):
    """Context for the forward pass: bf16 autocast when asked ("bf16", or "auto" where it pays)."""
    use = precision == "bf16" or (precision == "auto" and fast_bf16(device))
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use)


def decode_completions(tokenizer, completions: list[list[int]]) -> list[str]:
    """The text of each generated completion, as rewards, filters and readers see it: a final EOS
    dropped, every other token kept (tags and special tokens the model wrote included)."""
    eos = tokenizer.eos_token_id
    return [tokenizer.decode(c[:-1] if c and c[-1] == eos else c, skip_special_tokens=False) for c in completions]
