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


def test_micro_batches_cover_every_row_once_with_little_padding():
    from r1lab.forward import micro_batches

    lengths = [25, 128, 30, 27, 90, 1, 0, 128, 64, 33, 26, 100]
    parts = micro_batches(lengths, max_rows=3)
    rows = sorted(int(i) for p in parts for i in p)
    assert rows == list(range(len(lengths)))
    for p in parts:
        longest = max(lengths[int(i)] for i in p)
        assert len(p) <= 3 and all(2 * max(lengths[int(i)], 1) > longest for i in p)
    # without by_length (FSDP2: the same number of forwards on every process): consecutive slices
    assert [p.tolist() for p in micro_batches(lengths, 5, by_length=False)] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11]]


def test_update_on_length_bucketed_micro_batches_equals_one_padded_batch(tiny_model_dir, toy_tokenizer):
    """Rows of very different lengths: _update's micro-batches (cut to their own longest row) give the
    loss and gradients of one forward over the whole batch padded to its longest row."""
    from r1lab.forward import micro_batches
    from r1lab.losses import grpo_loss, token_logprobs
    from r1lab.model import load_model

    tok = toy_tokenizer
    prompts = [tok(render_prompt(q), add_special_tokens=False)["input_ids"]
               for q in ["what is 12 times 3", "cuánto es 4821 por 7"]]
    comps = [tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for t in
             [" 36", " <think> 2 times 3 is 6 , 1 times 3 is 3 , so 36 </think> <answer> 36 </answer>", " 7", " <think> x"]]
    seq = sequences([p for p in prompts for _ in range(2)], comps, tok.pad_token_id, "cpu")
    assert len(micro_batches(seq["completion_len"].tolist(), 4)) > 1  # the long row alone, then shorter ones
    adv, ref, amp = torch.tensor([1.0, -1.0, 0.5, -0.5]), seq["mask"] * -1.5, torch.autocast("cpu", enabled=False)
    cfg = GRPOConfig(beta=0.04, micro_batch=4, grad_clip=0.0)  # gradients as computed
    model = load_model(tiny_model_dir).train()
    stats = _update(model, torch.optim.SGD(model.parameters(), lr=0.0), seq, seq["mask"], adv, None, ref, cfg, amp)
    bucketed = torch.cat([p.grad.flatten() for p in model.parameters()])
    model = load_model(tiny_model_dir).train()
    logits = completion_logits(model, seq, slice(0, 4), amp)
    assert logits.shape[1] == seq["Lc"]  # padded to the longest row
    logp = token_logprobs(logits, seq["targets"])
    loss, _ = grpo_loss(logp, logp.detach(), adv, seq["mask"], ref, cfg.beta, norm=4.0)
    loss.backward()
    padded = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert padded.abs().max() > 0
    # float32 sums over ~100 terms, in another order: relative rounding ~1e-7, bound 1e-5
    assert abs(stats["loss"] - float(loss)) <= 1e-5 * max(1.0, abs(float(loss)))
    assert (bucketed - padded).abs().max() <= 1e-5 * padded.abs().max()


def test_step_metrics_give_the_share_of_samples_that_check_themselves():
    from r1lab.stages.grpo import Batch, _step_metrics, summarize

    texts = ["<think> 4 times 7 is 27 , wait , 4 times 7 is 28 </think> <answer> 28 </answer>",
             "<think> 4 times 7 is 28 </think> <answer> 28 </answer>",
             "<think> let me check : 28 divided by 7 is 4 </think> <answer> 28 </answer>",
             "<answer> 28 </answer>"]
    batch = Batch(examples=[{"answer": "28"}] * 4, prompt_ids=[[1]] * 4, completion_ids=[[2]] * 4, texts=texts,
                  truncated=[False] * 4, rewards=torch.tensor([1.0, 1.0, 1.0, 0.5]), parts={})

    class Opt:
        param_groups = [{"lr": 1.0}]

    row = _step_metrics([summarize(batch, 2)], {}, Opt(), 0.0)
    assert row["reflection_rate"] == 0.5
    assert "accuracy_checked" not in row  # no accuracy reward: nothing to split
    # with an accuracy reward (None where it does not apply): accuracy of the samples that check and of the rest
    batch.parts = {"accuracy": [1.0, 0.0, 0.0, None]}
    row = _step_metrics([summarize(batch, 2)], {}, Opt(), 0.0)
    assert (row["accuracy_checked"], row["accuracy_unchecked"]) == (0.5, 0.0)
    batch.parts = {"accuracy": [1.0, None, 0.0, None]}
    row = _step_metrics([summarize(batch, 2)], {}, Opt(), 0.0)
    assert row["accuracy_checked"] == 0.5 and "accuracy_unchecked" not in row
