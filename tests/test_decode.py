"""The lean decode step (r1lab/decode.py) computes what the model's own forward computes: the same
logits within float32 rounding, hence the same samples for the same seeds. (Samples are compared
exactly: a token could differ only where a uniform falls within ~1e-6 of a boundary of the
cumulative distribution, or two greedy logits tie that closely: ~1e-6 per token, a few thousand
tokens here.)"""

import pytest
import torch

from r1lab import decode
from r1lab.engine import SamplingParams, generate
from r1lab.kvcache import make_cache


def _qwen2_gqa(vocab: int):
    """A tiny Qwen2 with what the Llama fixture lacks: q/k/v biases and grouped key/value heads."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(1)
    cfg = Qwen2Config(vocab_size=vocab, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=False, pad_token_id=0, eos_token_id=2)
    model = Qwen2ForCausalLM(cfg).eval()
    with torch.no_grad():  # random biases, so that a dropped bias shows
        for layer in model.model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                proj.bias.normal_(0, 0.5)
    return model


@pytest.fixture(params=["llama", "qwen2-gqa"])
def model_and_prompts(request, tiny_model, toy_tokenizer):
    model = tiny_model.eval() if request.param == "llama" else _qwen2_gqa(len(toy_tokenizer))
    texts = ["what is 4821 times 7", "hello", "cuánto es 123 por 4 and more words here"]
    return model, [toy_tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts], toy_tokenizer


@pytest.mark.parametrize("prompt_set", ["different", "shared-prefix"])
def test_lean_step_logits_equal_the_models_forward(model_and_prompts, prompt_set):
    """Prefill and 40 steps (past a block boundary of the decoder's own buffers), with rows dropped
    half way, against the model's forward over one cache holding each sample's whole sequence."""
    model, prompts, tok = model_and_prompts
    from r1lab.engine import left_pad

    if prompt_set == "shared-prefix":  # a common head (the template's, in training) and rests of 1-9 tokens
        prompts = [prompts[2][:6] + p for p in prompts]
    n = 2
    lean = decode.LeanDecoder(model, prompts, n, tok.pad_token_id)
    assert lean.C == (6 if prompt_set == "shared-prefix" else 0)  # the shared head computed once
    # float32 on a CPU: the products run on oneDNN's prepacked weights wherever torch has that kernel
    assert lean.layers[0][2].packed == decode.packed_linears_available(torch.device("cpu"))
    ids, mask = left_pad([p for p in prompts for _ in range(n)], tok.pad_token_id, "cpu")
    position = (mask.cumsum(-1) - 1).clamp_min(0)
    cache = make_cache(model.config, ids.shape[1] + 40)
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask, position_ids=position, cache=cache, use_cache=True).logits[:, -1]
    scale = float(ref.abs().max())
    # float32 sums over a few hundred terms in another order: ~1e-6 of the logits' scale
    torch.testing.assert_close(lean.first_logits.repeat_interleave(n, 0), ref, rtol=1e-4, atol=1e-4 * scale)
    tokens, pos = ref.argmax(-1), position[:, -1] + 1
    torch.testing.assert_close(lean.next_position.repeat_interleave(n, 0), pos)
    for step in range(40):
        if step == 20:  # finished rows dropped: 1 and 4
            keep = torch.tensor([i for i in range(len(tokens)) if i not in (1, 4)])
            lean.select(keep)
            cache.batch_select_indices(keep)
            tokens, pos, mask = tokens[keep], pos[keep], mask[keep]
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
        with torch.no_grad():
            ref = model(input_ids=tokens[:, None], attention_mask=mask, position_ids=pos[:, None], cache=cache,
                        use_cache=True).logits[:, -1]
        got = lean.step(tokens, pos)
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))
        tokens, pos = ref.argmax(-1), pos + 1


@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.6, 0.95), (0.0, 1.0)])
def test_generate_gives_the_same_samples_with_and_without_the_lean_step(model_and_prompts, monkeypatch, temperature,
                                                                       top_p):
    model, prompts, tok = model_and_prompts
    steps = []
    real_step = decode.LeanDecoder.step
    monkeypatch.setattr(decode.LeanDecoder, "step", lambda self, *a: steps.append(1) or real_step(self, *a))
    params = SamplingParams(48, temperature, top_p)
    lean = generate(model, prompts, 4, params, [3, 4, 5], tok.eos_token_id, tok.pad_token_id, return_logprobs=True)
    assert steps  # the lean step ran
    n_lean = len(steps)
    plain = generate(model, prompts, 4, params, [3, 4, 5], tok.eos_token_id, tok.pad_token_id, return_logprobs=True,
                     lean_decode=False)
    assert len(steps) == n_lean  # ... and only where asked
    assert lean.completions == plain.completions and lean.truncated == plain.truncated
    for a, b in zip(lean.logprobs, plain.logprobs):
        assert max((abs(x - y) for x, y in zip(a, b)), default=0.0) <= 1e-4


def test_other_architectures_take_the_generic_path(toy_tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(toy_tokenizer), n_embd=32, n_layer=1, n_head=2)).eval()
    assert not decode.lean_supported(model)
    out = generate(model, [[5, 6, 7]], 2, SamplingParams(5, 1.0), [1], toy_tokenizer.eos_token_id,
                   toy_tokenizer.pad_token_id)
    assert len(out.completions) == 2


def test_dynamic_rope_takes_the_generic_path():
    """The lean step reads rotary angles from a table computed ahead; dynamic RoPE scaling changes
    them with the longest position seen, so those models decode through their own forward."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = dict(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    assert decode.lean_supported(LlamaForCausalLM(LlamaConfig(**cfg)))
    dynamic = LlamaConfig(**cfg, rope_scaling={"rope_type": "dynamic", "factor": 2.0})
    assert not decode.lean_supported(LlamaForCausalLM(dynamic))


def test_uniforms_drawn_in_chunks_are_the_per_step_stream():
    """engine.generate draws a chunk of steps' uniforms at once; the samples stay what one draw per
    step gave only while torch's CPU generator fills a tensor in order."""
    for n, steps in ((8, 64), (3, 50)):
        one = torch.Generator().manual_seed(7)
        per_step = torch.stack([torch.rand(n, generator=one) for _ in range(steps)])
        chunk = torch.rand((steps, n), generator=torch.Generator().manual_seed(7))
        assert torch.equal(per_step, chunk)


@pytest.mark.skipif(not decode.packed_linears_available(torch.device("cpu")), reason="no oneDNN linear in this torch")
def test_prepacked_products_equal_f_linear_for_any_number_of_rows():
    """Weights are packed for the batch's first size; rows dropped later give other sizes."""
    torch.manual_seed(0)
    w, b = torch.randn(96, 48), torch.randn(96)
    for bias in (None, b):
        packed = decode.Linear(w, bias, packed=True, rows=64)
        for rows in (64, 37, 8, 1):
            x = torch.randn(rows, 48)
            ref = torch.nn.functional.linear(x, w, bias)
            # float32 sums of 48 products in another order: ~1e-6 of the scale
            torch.testing.assert_close(packed(x), ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))
