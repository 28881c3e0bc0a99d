import torch

from r1lab.forward import common_prefix_len, completion_logits, sequences
from r1lab.stages.grpo import Batch, GRPOConfig, _update
from r1lab.template import render_prompt


def _batch(tok, G=2):
    prompts = [tok(render_prompt(q), add_special_tokens=False)["input_ids"]
               for q in ["what is 12 times 3", "cuánto es 4821 por 7"]]
    comps = [tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
             for t in [" <think> 2 times 3 is 6 </think>", " <answer> 36 </answer>", " 7", " <think> x"]]
    rows = [{"prompt": "q", "answer": "36"}] * 4
    return Batch(rows, [p for p in prompts for _ in range(G)], comps, ["a"] * 4, [False] * 4,
                 torch.tensor([1.0, 0.0, 0.5, 0.0]), {})


def test_common_prefix_len():
    assert common_prefix_len([[1, 2, 3], [1, 2, 4]]) == 2
    assert common_prefix_len([[1, 2, 3], [1, 2, 3]]) == 2  # each keeps one token of its own
    assert common_prefix_len([[5], [1, 2]]) == 0


def test_shared_prefix_forward_equals_full_forward(tiny_model, toy_tokenizer):
    batch = _batch(toy_tokenizer)
    amp = torch.autocast("cpu", enabled=False)
    shared = sequences(batch.prompt_ids, batch.completion_ids, toy_tokenizer.pad_token_id, "cpu", share_prefix=True)
    full = sequences(batch.prompt_ids, batch.completion_ids, toy_tokenizer.pad_token_id, "cpu", share_prefix=False)
    assert shared["prefix"].numel() > 50  # the template head
    a = completion_logits(tiny_model, shared, slice(0, 4), amp)
    ga = torch.autograd.grad((a * full["mask"][..., None]).sum(), list(tiny_model.parameters()))
    b = completion_logits(tiny_model, full, slice(0, 4), amp)
    gb = torch.autograd.grad((b * full["mask"][..., None]).sum(), list(tiny_model.parameters()))
    m = full["mask"].bool()
    assert torch.allclose(a[m], b[m], atol=1e-4)
    for x, y in zip(ga, gb):
        assert torch.allclose(x, y, atol=1e-3, rtol=1e-3)


def test_parameters_change_after_one_step_with_nonzero_advantages(tiny_model, toy_tokenizer):
    batch = _batch(toy_tokenizer)
    cfg = GRPOConfig(beta=0.04, micro_batch=3)
    seq = sequences(batch.prompt_ids, batch.completion_ids, toy_tokenizer.pad_token_id, "cpu")
    before = [p.detach().clone() for p in tiny_model.parameters()]
    opt = torch.optim.AdamW(tiny_model.parameters(), lr=1e-3)
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5])
    ref = seq["mask"].clone().zero_() - 1.0
    stats = _update(tiny_model, opt, seq, seq["mask"], adv, None, ref, cfg, torch.autocast("cpu", enabled=False))
    changed = sum(not torch.equal(b, p) for b, p in zip(before, tiny_model.parameters()))
    assert changed == len(before)
    assert stats["grad_norm"] > 0 and stats["kl"] > 0


def test_zero_advantages_and_no_kl_leave_parameters_unchanged(tiny_model, toy_tokenizer):
    batch = _batch(toy_tokenizer)
    cfg = GRPOConfig(beta=0.0)
    seq = sequences(batch.prompt_ids, batch.completion_ids, toy_tokenizer.pad_token_id, "cpu")
    before = [p.detach().clone() for p in tiny_model.parameters()]
    opt = torch.optim.SGD(tiny_model.parameters(), lr=1e-2)
    stats = _update(tiny_model, opt, seq, seq["mask"], torch.zeros(4), None, None, cfg, torch.autocast("cpu", enabled=False))
    assert stats["grad_norm"] == 0
    assert all(torch.equal(b, p) for b, p in zip(before, tiny_model.parameters()))


def test_nonfinite_update_is_skipped(tiny_model, toy_tokenizer):
    batch = _batch(toy_tokenizer)
    seq = sequences(batch.prompt_ids, batch.completion_ids, toy_tokenizer.pad_token_id, "cpu")
    with torch.no_grad():
        tiny_model.model.norm.weight[0] = float("nan")  # poisons the logits, hence loss and gradients
    before = [p.detach().clone() for p in tiny_model.parameters()]
    opt = torch.optim.AdamW(tiny_model.parameters(), lr=1e-3)
    stats = _update(tiny_model, opt, seq, seq["mask"], torch.tensor([1.0, -1.0, 0.5, -0.5]), None, None,
                    GRPOConfig(beta=0.0), torch.autocast("cpu", enabled=False))
    assert stats["skipped_updates"] == 1
    assert all(torch.equal(b, p) or (torch.isnan(b).any() and torch.isnan(p).any())
               for b, p in zip(before, tiny_model.parameters()))


def test_run_stops_after_repeated_nonfinite_steps(tmp_path, tiny_model_dir, capsys):
    import shutil

    from safetensors.torch import load_file, save_file

    from r1lab.cli import main

    bad = tmp_path / "nan_model"
    shutil.copytree(tiny_model_dir, bad)
    weights = load_file(bad / "model.safetensors")
    weights["model.norm.weight"][:] = float("nan")
    save_file(weights, bad / "model.safetensors", metadata={"format": "pt"})
    code = main(["zero", "--model", str(bad), "--out", str(tmp_path / "o"), "--steps", "5", "--prompts-per-step",
                 "2", "--group-size", "2", "--max-new-tokens", "4", "--eval-problems", "0", "--max-nonfinite", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "NaN/inf in 2 steps in a row" in err and "Traceback" not in err
