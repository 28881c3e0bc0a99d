"""Many processes with torch.distributed, as launched by torchrun.

    torchrun --nproc_per_node 2 -m r1lab zero ...                      # one machine, 2 processes
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv_backend c10d \
             --rdzv_endpoint HOST:29500 -m r1lab zero ...            # two machines

Data parallel by prompt group: every process reads the same global batch of prompts (the data order
depends only on the seed and the step) and takes its own slice of whole groups, so advantages never
cross processes. Gradients are summed across processes after backward (the loss of each process is
its share of the *global* normaliser), so 1 and N processes take the same step. Rank 0 writes logs,
evaluations and checkpoints. gloo on CPU, NCCL on GPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init(device_request: str = "auto") -> tuple[World, torch.device]:
    """Join the process group torchrun describes in the environment (or stay single-process)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        from .model import pick_device

        return World(), pick_device(device_request)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device_request != "cpu"
    if use_cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return World(rank, size, local), torch.device(f"cuda:{local}" if use_cuda else "cpu")


def shard(items: list, world: World) -> tuple[list, int]:
    """This process's contiguous slice of a global list, and the index of its first item."""
    if len(items) % world.size:
        from .errors import UserError

        raise UserError(f"{len(items)} prompts per step cannot be split evenly over {world.size} processes: "
                        "make --prompts-per-step a multiple of the number of processes")
    n = len(items) // world.size
    return items[world.rank * n:(world.rank + 1) * n], world.rank * n


def all_sum(values: list[float], world: World) -> list[float]:
    """Element-wise sum over processes (in float64, so the order of the sum does not matter)."""
    if world.size == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def gather(obj, world: World) -> list:
    """Every process's object, in rank order, on every process."""
    if world.size == 1:
        return [obj]
    out = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def sum_gradients(model, world: World) -> None:
    """Sum the gradients of all processes into every process (plain data parallel)."""
    if world.size == 1:
        return
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()


def close(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()
