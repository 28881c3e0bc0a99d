"""Many processes with torch.distributed, as launched by torchrun.

    torchrun --nproc_per_node 2 -m r1lab zero ...                      # one machine, 2 processes
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv_backend c10d \
             --rdzv_endpoint HOST:29500 -m r1lab zero ...            # two machines

Data parallel: every process reads the same global batch (the data order depends only on the seed
and the step) and takes its own slice of it (GRPO: whole prompt groups, so advantages never cross
processes; SFT and reward models: examples). Gradients are summed across processes after backward
(the loss of each process is its share of the *global* normaliser), so 1 and N processes take the
same step. Rank 0 writes logs, evaluations and checkpoints.

Every collective of r1lab goes through this module, and the rule for where its tensors live is here
once: on `World.device`, the device of the process group's backend (NCCL takes CUDA tensors only,
gloo CPU ones). gloo on CPU, NCCL on GPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))  # where collectives' tensors go
    distributed: bool = False  # a process group is live (torchrun, even with one process)

    @property
    def main(self) -> bool:
        return self.rank == 0


def backend_for(device: torch.device) -> str:
    """The process-group backend for a device: NCCL for CUDA, gloo for the CPU."""
    return "nccl" if device.type == "cuda" else "gloo"


def init(device_request: str = "auto") -> tuple[World, torch.device]:
    """Join the process group torchrun describes in the environment (or stay single-process).

    Under torchrun even one process joins a group and runs every collective, so that
    `torchrun --nproc_per_node 1` on one GPU exercises the NCCL paths of N."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if "RANK" not in os.environ:
        from .model import pick_device

        device = pick_device(device_request)
        return World(device=device), device
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device_request != "cpu"
    device = torch.device(f"cuda:{local}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend_for(device))
    return World(rank, size, local, device, distributed=True), device


def shard(items: list, world: World) -> tuple[list, int]:
    """This process's contiguous slice of a global list, and the index of its first item."""
    if len(items) % world.size:
        from .errors import UserError

        raise UserError(f"{len(items)} prompts per step cannot be split evenly over {world.size} processes: "
                        "make --prompts-per-step a multiple of the number of processes")
    n = len(items) // world.size
    return items[world.rank * n:(world.rank + 1) * n], world.rank * n


def strided(items: list, world: World) -> list:
    """This process's share of a global list that need not split evenly: items rank, rank + size, ..."""
    return items[world.rank::world.size]


def all_sum(values: list[float], world: World) -> list[float]:
    """Element-wise sum over processes (in float64, so the order of the sum does not matter)."""
    if not world.distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=world.device)
    dist.all_reduce(t)
    return t.cpu().tolist()


def any_true(flag: bool, world: World) -> bool:
    """True on every process when it is true on at least one."""
    return all_sum([float(flag)], world)[0] > 0 if world.distributed else flag


def gather(obj, world: World) -> list:
    """Every process's (picklable) object, in rank order, on every process. The objects travel as
    bytes in tensors on `world.device` (torch.distributed does that itself; NCCL needs
    torch.cuda.set_device, which `init` did)."""
    if not world.distributed:
        return [obj]
    out = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def sum_gradients(model, world: World) -> None:
    """Sum the gradients of all processes into every process (plain data parallel). A process with
    no data this step (an empty share) takes part with zeros, so every process sends the same tensor."""
    if not world.distributed:
        return
    for p in model.parameters():
        if p.requires_grad and p.grad is None:
            p.grad = torch.zeros_like(p)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads]).to(world.device)
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def close(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()
