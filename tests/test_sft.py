import json

import torch

from r1lab.stages.sft import SFTConfig, encode, pack, packed_loss, train


def test_pack_keeps_examples_whole_and_positions_restart():
    exs = [([1, 2, 3], [0, 1, 1]), ([4, 5], [0, 1]), ([6, 7, 8, 9], [0, 0, 1, 1])]
    rows = pack(exs, pack_tokens=6)
    assert [r[0] for r in rows] == [[1, 2, 3, 4, 5], [6, 7, 8, 9]]
    assert rows[0][2] == [0, 1, 2, 0, 1] and rows[0][1] == [0, 1, 1, 0, 1]


def test_packed_forward_equals_separate_forwards(tiny_model):
    g = torch.Generator().manual_seed(0)
    a = torch.randint(5, 100, (7,), generator=g).tolist()
    b = torch.randint(5, 100, (5,), generator=g).tolist()
    ids, _, pos = pack([(a, [1] * 7), (b, [1] * 5)], 64)[0]
    packed = tiny_model(input_ids=torch.tensor([ids]), position_ids=torch.tensor([pos]), use_cache=False).logits[0]
    alone_a = tiny_model(input_ids=torch.tensor([a])).logits[0]
    alone_b = tiny_model(input_ids=torch.tensor([b])).logits[0]
    assert torch.allclose(packed[:7], alone_a, atol=1e-5)
    assert torch.allclose(packed[7:], alone_b, atol=1e-5)


def test_loss_counts_completion_tokens_only(tiny_model, toy_tokenizer):
    ex = [{"prompt": "what is 12 times 3", "completion": "<think> 2 times 3 is 6 </think> <answer> 36 </answer>"}]
    (ids, mask), = encode(ex, toy_tokenizer, "r1-zero", 512, "t")
    n_prompt = mask.index(1)
    assert all(m == 0 for m in mask[:n_prompt]) and all(m == 1 for m in mask[n_prompt:])
    assert ids[-1] == toy_tokenizer.eos_token_id
    tiny_model.zero_grad()
    loss, n = packed_loss(tiny_model, pack([(ids, mask)], 4096), "cpu", torch.autocast("cpu", enabled=False),
                          norm=float(sum(mask[1:])))
    x = torch.tensor([ids])
    logp = torch.log_softmax(tiny_model(input_ids=x).logits[0, :-1], -1)
    nll = -logp.gather(-1, x[0, 1:, None]).squeeze(-1)
    manual = nll[n_prompt - 1:].mean()  # targets at positions n_prompt.. (the completion and EOS)
    assert n == len(ids) - n_prompt
    assert torch.allclose(loss, manual.detach(), atol=1e-5)


def test_sft_learns_a_tiny_dataset(tmp_path, tiny_model_dir):
    data = tmp_path / "d.jsonl"
    rows = [{"prompt": f"what is {i} times 2", "completion": f"<answer> {2 * i} </answer>"} for i in range(10, 30)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = train(SFTConfig(model=str(tiny_model_dir), data=str(data), out=str(tmp_path / "o"), epochs=30, lr=1e-2,
                          examples_per_step=10, log_every=1))
    losses = [json.loads(line)["loss"] for line in (tmp_path / "o" / "metrics.jsonl").read_text().splitlines()]
    assert losses[-1] < 0.5 * losses[0]
    assert (out / "model.safetensors").exists()
