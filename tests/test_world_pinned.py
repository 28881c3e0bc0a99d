"""The shipped base model is reproducible: the world that `r1lab pretrain` builds today is the one it
was trained on. If a change to the world's text alters these, re-run `r1lab pretrain` and ship the new
checkpoint (README, "The embedded default") together with the new pins."""

import hashlib
import json

from r1lab.model import DEFAULT_MODEL
from r1lab.stages.pretrain import PretrainConfig
from r1lab.tasks.toy.corpus import documents
from r1lab.tasks.toy.tokenizer import build_tokenizer


def test_shipped_tokenizer_is_the_one_pretrain_builds():
    cfg = PretrainConfig()
    built = build_tokenizer(documents(20_000, cfg.seed + 10_000), model_max_length=cfg.seq_len)
    shipped = json.loads((DEFAULT_MODEL / "tokenizer.json").read_text())["model"]["vocab"]
    assert built.get_vocab() == shipped


def test_corpus_is_pinned():
    digest = hashlib.sha256("\n".join(documents(2_000, PretrainConfig().seed)).encode()).hexdigest()
    assert digest == PINNED, digest


PINNED = "40e62e599efbebf796990f17edfc21924c2714bd12f1d569fd3295a3b11cdf52"
