import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(2)


@pytest.fixture(scope="session")
def toy_tokenizer():
    from r1lab.tasks.toy.corpus import documents
    from r1lab.tasks.toy.tokenizer import build_tokenizer

    return build_tokenizer(documents(2000, 5))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, toy_tokenizer):
    """A randomly initialised 2-layer Llama with the toy tokenizer, saved as a HF folder."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(toy_tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                      tie_word_embeddings=True, pad_token_id=toy_tokenizer.pad_token_id,
                      eos_token_id=toy_tokenizer.eos_token_id, bos_token_id=None)
    model = LlamaForCausalLM(cfg)
    path = tmp_path_factory.mktemp("tiny")
    model.save_pretrained(path)
    toy_tokenizer.save_pretrained(path)
    return path


@pytest.fixture()
def tiny_model(tiny_model_dir):
    from r1lab.model import load_model

    return load_model(tiny_model_dir)
