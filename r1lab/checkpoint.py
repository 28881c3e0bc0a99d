"""Atomic checkpoints and exact resume.

A checkpoint is a folder `OUT/checkpoints/step-000123/` holding the model in Hugging Face format
(it loads with `AutoModelForCausalLM.from_pretrained`), `trainer_state.pt` (optimizer, scheduler,
RNG states, reference weights where they differ from the start) and `state.json`. It is written to
a temporary folder and renamed into place; the marker file `COMPLETE` is its last file, so a folder
without it (a crash mid-write) is never loaded.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

MARKER = "COMPLETE"
log = logging.getLogger("r1lab")


def write_json(path: Path, data, sort_keys: bool = False) -> None:
    """Write JSON atomically: a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=sort_keys) + "\n")
    tmp.replace(path)


def read_json(path: Path) -> dict:
    """The JSON object in `path`, or {} when there is no such file."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else {}


@contextmanager
def atomic_folder(final: Path):
    """Yield a temporary folder; on success mark it complete and move it to `final`."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        (tmp / MARKER).write_text("ok\n")
        _fsync_dir(tmp)
        if final.exists():
            trash = final.parent / f".old-{final.name}-{os.getpid()}"
            os.replace(final, trash)
            os.replace(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(final.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def is_complete(folder: Path) -> bool:
    return (Path(folder) / MARKER).is_file()


def checkpoints(out: Path) -> list[Path]:
    """Complete checkpoints under OUT/checkpoints, oldest first (incomplete ones are warned about)."""
    root = Path(out) / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for d in sorted(root.iterdir()):
        if not d.is_dir() or not d.name.startswith("step-"):
            continue
        if is_complete(d):
            found.append(d)
        else:
            log.warning("ignoring incomplete checkpoint %s (no %s marker)", d, MARKER)
    return found


def latest(out: Path) -> Path | None:
    found = checkpoints(out)
    return found[-1] if found else None


def prune(out: Path, keep: int) -> None:
    """Keep the last `keep` complete checkpoints (0 keeps all)."""
    if keep <= 0:
        return
    for d in checkpoints(out)[:-keep]:
        shutil.rmtree(d, ignore_errors=True)


def rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(out: Path, step: int, model, tokenizer, trainer_state: dict, meta: dict, keep: int = 0,
         state_dict: dict | None = None) -> Path:
    """Write checkpoint `step` atomically and prune old ones (`state_dict`: weights gathered from shards)."""
    from .model import save_model

    final = Path(out) / "checkpoints" / f"step-{step:06d}"
    with atomic_folder(final) as tmp:
        save_model(model, tokenizer, tmp, state_dict=state_dict)
        torch.save(trainer_state, tmp / "trainer_state.pt")
        write_json(tmp / "state.json", dict(meta, step=step))
    prune(out, keep)
    return final


def load_state(folder: Path) -> tuple[dict, dict]:
    meta = json.loads((Path(folder) / "state.json").read_text())
    state = torch.load(Path(folder) / "trainer_state.pt", weights_only=False)
    return state, meta
