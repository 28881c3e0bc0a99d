"""GRPO updates on one fixed batch, on 1 process or under torchrun (tests/test_distributed.py runs it
both ways and compares). No sampling: the completions and rewards are fixed, so the two runs must
compute the same gradients and weights, not merely similar trajectories.

    python tests/dp_grpo_updates.py OUT.pt
    torchrun --nproc_per_node 2 tests/dp_grpo_updates.py OUT.pt
"""

import copy
import sys

import torch

from r1lab import dist
from r1lab.forward import frozen_logprobs, sequences
from r1lab.losses import group_advantages
from r1lab.model import autocast, load_model, load_tokenizer
from r1lab.stages.grpo import GRPOConfig, _update

P, G, UPDATES = 4, 4, 3


def fixed_batch(tokenizer, vocab: int):
    """P prompts x G completions of different lengths, some ending in EOS, and fixed rewards."""
    gen = torch.Generator().manual_seed(0)
    prompts, completions = [], []
    for p in range(P):
        prompt = tokenizer(f"what is {17 + p} times {3 + p}", add_special_tokens=False)["input_ids"]
        for g in range(G):
            n = 5 + (3 * p + 5 * g) % 11
            ids = torch.randint(5, vocab, (n,), generator=gen).tolist()
            completions.append(ids + ([tokenizer.eos_token_id] if g % 2 else []))
            prompts.append(prompt)
    rewards = torch.tensor([float((3 * i) % 5 == 0) + 0.25 * (i % 3) for i in range(P * G)])
    return prompts, completions, rewards


def main(out: str) -> None:
    world, device = dist.init("cpu")
    torch.manual_seed(0)
    tokenizer = load_tokenizer("base")
    model = load_model("base", device=device)
    ref = copy.deepcopy(model).eval().requires_grad_(False)
    cfg = GRPOConfig(beta=0.04, lr=1e-3, updates_per_batch=1, micro_batch=3, max_new_tokens=16, precision="fp32")
    amp = autocast(device, "fp32")
    prompts, completions, rewards = fixed_batch(tokenizer, model.config.vocab_size)
    advantages = group_advantages(rewards, G)
    rows, _ = dist.shard(list(range(P * G)), world)  # this process's whole groups (P splits evenly)
    seq = sequences([prompts[i] for i in rows], [completions[i] for i in rows], tokenizer.pad_token_id, device)
    ref_logp = frozen_logprobs(ref, seq, cfg.micro_batch, cfg.temperature, amp)
    start = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
    losses, grads = [], None
    for update in range(UPDATES):
        stats = _update(model, optimizer, seq, seq["mask"], advantages[rows], None, ref_logp, cfg, amp, world)
        losses.append(stats["loss"])
        if update == 0:  # the summed gradient of the whole batch, as the optimizer saw it
            grads = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).clone()
    if world.main:
        weights = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        torch.save({"losses": losses, "grads": grads, "weights": weights, "start": start, "lr": cfg.lr, "updates": UPDATES,
                    "kl": stats["kl"]}, out)
    dist.barrier(world)
    dist.close(world)


if __name__ == "__main__":
    main(sys.argv[1])
