"""r1lab/dist.py: the one place that decides where collectives' tensors live (NCCL takes CUDA
tensors only). No GPU here, so the collectives are replaced by spies that record the device of the
tensor they are handed; the devices used are ones a CPU can name without allocating (meta)."""

import pytest
import torch
import torch.distributed as tdist

from r1lab import dist
from r1lab.dist import World


class Seen(Exception):
    pass


@pytest.fixture()
def spy(monkeypatch):
    """all_reduce that reports the device it was given (and stops the helper there)."""
    def all_reduce(t, *args, **kwargs):
        raise Seen(t.device)
    monkeypatch.setattr(tdist, "all_reduce", all_reduce)


META = World(rank=0, size=2, device=torch.device("meta"), distributed=True)


@pytest.mark.parametrize("call", [
    lambda: dist.all_sum([1.0, 2.0], META),
    lambda: dist.any_true(True, META),
    lambda: dist.sum_gradients(_model_with_grads(), META),
])
def test_collectives_use_the_worlds_device(spy, call):
    with pytest.raises(Seen) as seen:
        call()
    assert seen.value.args[0] == torch.device("meta")


def _model_with_grads():
    m = torch.nn.Linear(3, 2)
    m(torch.ones(1, 3)).sum().backward()
    return m


def test_single_process_needs_no_collective(spy):
    assert dist.all_sum([1.0, 2.5], World()) == [1.0, 2.5]
    assert dist.any_true(False, World()) is False
    dist.sum_gradients(_model_with_grads(), World())  # the spy would raise


def test_init_picks_nccl_and_this_ranks_gpu(monkeypatch):
    seen = {}
    monkeypatch.setenv("WORLD_SIZE", "1")  # torchrun --nproc_per_node 1 on one GPU: a group all the same
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: seen.setdefault("set_device", i))
    monkeypatch.setattr(tdist, "is_initialized", lambda: False)
    monkeypatch.setattr(tdist, "init_process_group", lambda backend: seen.setdefault("backend", backend))
    world, device = dist.init("auto")
    assert seen == {"set_device": 1, "backend": "nccl"}
    assert world.device == device == torch.device("cuda:1") and world.rank == 1 and world.distributed


def test_init_on_cpu_picks_gloo(monkeypatch):
    seen = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(tdist, "is_initialized", lambda: False)
    monkeypatch.setattr(tdist, "init_process_group", lambda backend: seen.setdefault("backend", backend))
    world, device = dist.init("cpu")
    assert seen == {"backend": "gloo"} and world.device == device == torch.device("cpu")


def test_strided_shares_cover_the_list_once():
    items = list(range(7))
    parts = [dist.strided(items, World(rank=r, size=3)) for r in range(3)]
    assert parts == [[0, 3, 6], [1, 4], [2, 5]]
    assert sorted(sum(parts, [])) == items
