"""LoRA and FSDP2 runs of a few steps on CPU."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

TINY = ["--steps", "2", "--prompts-per-step", "2", "--group-size", "2", "--max-new-tokens", "8", "--eval-problems", "0"]


def _env():
    return dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")


def test_lora_run_saves_adapter_and_merged_model(tmp_path, tiny_model_dir):
    out = tmp_path / "lora"
    done = subprocess.run([sys.executable, "-m", "r1lab", "zero", "--model", str(tiny_model_dir), "--lora-rank", "4",
                           "--lr", "1e-2", "--out", str(out), *TINY], capture_output=True, text=True, env=_env(),
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "adapter" / "adapter_config.json").exists()
    assert (out / "checkpoints" / "step-000001" / "adapter_model.safetensors").exists()
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out / "model")  # merged: loads without PEFT
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1]


def test_lora_update_trains_adapters_only(tiny_model, toy_tokenizer):
    import torch

    from r1lab.forward import sequences
    from r1lab.parallel import add_lora, merged_copy
    from r1lab.stages.grpo import GRPOConfig, _update

    model = add_lora(tiny_model, rank=4)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    adapters = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert adapters and all("lora_" in n for n in adapters)
    prompts = [toy_tokenizer("what is 12 times 3", add_special_tokens=False)["input_ids"]] * 4
    comps = [toy_tokenizer(t, add_special_tokens=False)["input_ids"] for t in [" 36", " 35", " <answer> 36", " x"]]
    seq = sequences(prompts, comps, toy_tokenizer.pad_token_id, "cpu")
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    with model.disable_adapter():
        from r1lab.forward import frozen_logprobs

        ref = frozen_logprobs(model, seq, 4, 1.0, torch.autocast("cpu", enabled=False))
    for _ in range(2):  # lora_B starts at zero: the second step moves lora_A too
        _update(model, opt, seq, seq["mask"], torch.tensor([1.0, -1.0, 1.0, -1.0]), None, ref,
                GRPOConfig(beta=0.04), torch.autocast("cpu", enabled=False))
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)
    assert all(not torch.equal(p, adapters[n]) for n, p in model.named_parameters() if n in adapters)
    merged = merged_copy(model)
    assert not hasattr(merged, "peft_config")


def test_fsdp2_run_on_cpu(tmp_path, tiny_model_dir):
    """FSDP2 over 2 processes: each holds about half of policy + reference (no full replica for
    generation), rollouts and a held-out evaluation run on the sharded policy (3 problems: one
    process has a stand-in to sample), and the checkpoint loads with from_pretrained."""
    out = tmp_path / "fsdp"
    args = [a for a in TINY if a not in ("--eval-problems", "0")]
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           "29519", "-m", "r1lab", "zero", "--model", str(tiny_model_dir), "--fsdp", "--out", str(out),
                           *args, "--eval-problems", "3", "--eval-k", "2", "--eval-max-new-tokens", "8"],
                          capture_output=True, text=True, env=_env(), timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1]
    # the largest share any process holds, against one unsharded copy of policy + reference
    assert rows[0]["param_bytes"] <= 0.6 * rows[0]["param_bytes_unsharded"], rows[0]
    assert rows[0]["param_bytes_unsharded"] > 0
    results = json.loads((out / "eval.json").read_text())
    assert results["base"]["n_problems"] == results["final"]["n_problems"] == 3
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out / "model")
    assert (out / "checkpoints" / "step-000001" / "trainer_state.pt").exists()


def test_activation_checkpointing_changes_memory_not_math(tiny_model_dir, toy_tokenizer):
    import torch

    from r1lab.forward import sequences
    from r1lab.model import load_model
    from r1lab.parallel import enable_checkpointing
    from r1lab.stages.grpo import GRPOConfig, _update

    prompts = [toy_tokenizer("what is 12 times 3", add_special_tokens=False)["input_ids"]] * 4
    comps = [toy_tokenizer(t, add_special_tokens=False)["input_ids"] for t in [" 36", " 35", " <answer> 36", " x"]]
    after = []
    for checkpointed in (False, True):
        model = load_model(tiny_model_dir)
        if checkpointed:
            enable_checkpointing(model)
        model.train()
        seq = sequences(prompts, comps, toy_tokenizer.pad_token_id, "cpu", share_prefix=not checkpointed)
        # SGD: the update is the gradient times lr, so equal gradients give equal weights up to float
        # rounding (AdamW's first step is ~lr x sign(g), which turns rounding of a near-zero component
        # into a difference of up to lr, and the rows are summed in another order here)
        opt = torch.optim.SGD(model.parameters(), lr=1e-2)
        stats = _update(model, opt, seq, seq["mask"], torch.tensor([1.0, -1.0, 1.0, -1.0]), None, None,
                        GRPOConfig(beta=0.0, activation_checkpointing=checkpointed), torch.autocast("cpu", enabled=False))
        after.append(({n: p.detach().clone() for n, p in model.named_parameters()}, stats))
    (plain, s_plain), (ckpt, s_ckpt) = after
    assert s_plain["grad_norm"] > 0 and abs(s_plain["grad_norm"] - s_ckpt["grad_norm"]) <= 1e-4 * s_plain["grad_norm"]
    start = load_model(tiny_model_dir).state_dict()
    assert any(not torch.equal(plain[n], start[n]) for n in plain)  # the update moved the weights ...
    for n in plain:  # ... identically with and without recomputation
        torch.testing.assert_close(plain[n], ckpt[n], rtol=1e-4, atol=1e-6)
