import torch

from r1lab.engine import SamplingParams, generate, sample_from_logits


def _prompts(tok):
    texts = ["what is 4821 times 7", "hello", "cuánto es 123 por 4 and more words here"]
    return [tok(t, add_special_tokens=False)["input_ids"] for t in texts]


def test_greedy_matches_hf_generate(tiny_model, toy_tokenizer):
    tok = toy_tokenizer
    prompts = _prompts(tok)
    ours = generate(tiny_model, prompts, n=1, params=SamplingParams(20, temperature=0.0), seeds=[0, 0, 0],
                    eos_id=tok.eos_token_id, pad_id=tok.pad_token_id)
    for p, got in zip(prompts, ours.completions):
        ids = torch.tensor([p])
        ref = tiny_model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=20, do_sample=False,
                                  eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)[0, len(p):].tolist()
        if tok.eos_token_id in ref:
            ref = ref[:ref.index(tok.eos_token_id) + 1]
        assert got == ref


def test_greedy_batched_equals_alone(tiny_model, toy_tokenizer):
    tok = toy_tokenizer
    prompts = _prompts(tok)
    together = generate(tiny_model, prompts, 2, SamplingParams(15, 0.0), [1, 2, 3], tok.eos_token_id, tok.pad_token_id)
    for i, p in enumerate(prompts):
        alone = generate(tiny_model, [p], 2, SamplingParams(15, 0.0), [9], tok.eos_token_id, tok.pad_token_id)
        assert together.completions[2 * i:2 * i + 2] == alone.completions


def test_sampling_reproducible_per_prompt_seed(tiny_model, toy_tokenizer):
    tok = toy_tokenizer
    prompts = _prompts(tok)
    params = SamplingParams(25, temperature=1.0, top_p=0.9)
    a = generate(tiny_model, prompts, 4, params, [11, 12, 13], tok.eos_token_id, tok.pad_token_id)
    b = generate(tiny_model, prompts, 4, params, [11, 12, 13], tok.eos_token_id, tok.pad_token_id)
    assert a.completions == b.completions
    # the same prompt and seed alone, in another batch position, gives the same samples
    c = generate(tiny_model, [prompts[1]], 4, params, [12], tok.eos_token_id, tok.pad_token_id)
    assert c.completions == a.completions[4:8]
    d = generate(tiny_model, prompts, 4, params, [11, 99, 13], tok.eos_token_id, tok.pad_token_id)
    assert d.completions[4:8] != a.completions[4:8]
    # samples of one group differ from each other (they are not copies)
    assert len({tuple(x) for x in a.completions[:4]}) > 1


def test_drop_finished_rows_does_not_change_samples(tiny_model, toy_tokenizer):
    tok = toy_tokenizer
    prompts = _prompts(tok)
    params = SamplingParams(30, temperature=1.0)
    a = generate(tiny_model, prompts, 3, params, [5, 6, 7], tok.eos_token_id, tok.pad_token_id, drop_finished=True)
    b = generate(tiny_model, prompts, 3, params, [5, 6, 7], tok.eos_token_id, tok.pad_token_id, drop_finished=False)
    assert a.completions == b.completions


def test_stops_at_eos_and_budget(tiny_model, toy_tokenizer):
    tok = toy_tokenizer
    out = generate(tiny_model, _prompts(tok), 2, SamplingParams(7, 1.0), [1, 2, 3], tok.eos_token_id, tok.pad_token_id)
    for ids, trunc in zip(out.completions, out.truncated):
        assert 1 <= len(ids) <= 7
        assert trunc == (ids[-1] != tok.eos_token_id)
        assert tok.eos_token_id not in ids[:-1]


def test_sample_from_logits_top_p_and_logprob():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    # u close to 1 would pick the least likely token without top-p; with top-p 0.8 only {0, 1} remain
    tok, lp = sample_from_logits(logits, torch.tensor([0.999]), temperature=1.0, top_p=0.8)
    assert tok.item() == 1
    assert abs(lp.item() - torch.log(torch.tensor(0.3)).item()) < 1e-6
    tok, _ = sample_from_logits(logits, torch.tensor([0.999]), temperature=1.0, top_p=1.0)
    assert tok.item() == 3
    tok, _ = sample_from_logits(logits, torch.tensor([0.0]), temperature=1.0, top_p=1.0)
    assert tok.item() == 0
    # empirical frequencies follow the distribution
    u = torch.rand(20000, generator=torch.Generator().manual_seed(0))
    toks, _ = sample_from_logits(logits.expand(20000, -1), u, 1.0, 1.0)
    freq = torch.bincount(toks, minlength=4).float() / 20000
    assert torch.allclose(freq, torch.tensor([0.5, 0.3, 0.15, 0.05]), atol=0.015)


def test_chat_stream_matches_greedy_engine_and_renders_thinking(tiny_model, toy_tokenizer):
    import io

    from r1lab.chat import ThinkRenderer, stream

    tok = toy_tokenizer
    prompt = tok("what is 12 times 3", add_special_tokens=False)["input_ids"]
    streamed = list(stream(tiny_model, prompt, SamplingParams(12, 0.0), tok.eos_token_id))
    batch = generate(tiny_model, [prompt], 1, SamplingParams(12, 0.0), [0], tok.eos_token_id, tok.pad_token_id)
    expected = batch.completions[0]
    assert streamed == [t for t in expected if t != tok.eos_token_id]
    buf = io.StringIO()
    r = ThinkRenderer(buf, color=False)
    for piece in [" <think> 2 times", " 3 </think>", " <answer> 6 </answer>"]:
        r.write(piece)
    r.end()
    assert buf.getvalue() == " [thinking]  2 times 3 \n <answer> 6 </answer>\n"
