"""The embedded world's tokenizer: word level, lossless, each tag and each digit one token.

Built with the `tokenizers` library from the world's own documents and saved in Hugging Face format.
Words keep their leading space as "▁" (as SentencePiece does), so decoding gives back the exact text;
digits are split one by one so that numbers of any size are spelled with 20 tokens.
"""

from __future__ import annotations

import re
from collections import Counter

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

SPECIAL = ["<pad>", "<unk>", "<eos>"]
TAGS = ["<think>", "</think>", "<answer>", "</answer>"]
_TAG_SPLIT = re.compile("(" + "|".join(map(re.escape, TAGS)) + ")")


def _pre_tokenizer():
    return pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=False),
        # a word (letters), one digit, one punctuation mark, or a lone space; each may carry its "▁"
        pre_tokenizers.Split(Regex(r"▁?[^\W\d_]+|▁?\d|▁?[^\w▁]|▁?_|▁"), behavior="isolated"),
    ])


def build_tokenizer(texts, model_max_length: int = 256):
    """A PreTrainedTokenizerFast whose vocabulary is every piece of `texts` (sorted by frequency)."""
    from transformers import PreTrainedTokenizerFast

    pre = _pre_tokenizer()
    counts: Counter[str] = Counter()
    for text in texts:
        for part in _TAG_SPLIT.split(text):
            if part and part not in TAGS:
                counts.update(piece for piece, _ in pre.pre_tokenize_str(part))
    for d in "0123456789":  # every digit, with and without a leading space, whatever the sample held
        counts.update([d, "▁" + d])
    vocab = {t: i for i, t in enumerate(SPECIAL + TAGS)}
    for piece, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        vocab.setdefault(piece, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="never", split=False)
    tok.add_special_tokens([AddedToken(t, special=True) for t in SPECIAL])
    # tags are ordinary added tokens, not special ones: decoding with skip_special_tokens keeps them
    tok.add_tokens([AddedToken(t, normalized=False, special=False) for t in TAGS])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>",
                                   unk_token="<unk>", model_max_length=model_max_length,
                                   padding_side="left")
