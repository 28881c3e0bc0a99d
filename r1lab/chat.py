"""Talk to a checkpoint in the terminal: `r1lab chat --model DIR`.

Tokens stream as they are generated; the chain of thought (inside <think> ... </think>) is shown
dimmed and apart from the answer. Each turn is a fresh question under the prompt template (the
R1-Zero template by default; `--template chat` uses the tokenizer's chat template).
"""

from __future__ import annotations

import sys
import zlib

import torch

from .engine import SamplingParams, sample_from_logits
from .model import load_model, load_tokenizer
from .template import render_prompt

DIM, BOLD, RESET = "\033[2m", "\033[1m", "\033[0m"


@torch.no_grad()
def stream(model, prompt_ids: list[int], params: SamplingParams, eos_id: int, seed: int = 0):
    """Yield token ids one by one (KV cache, temperature, top-p) until EOS or the budget."""
    from .kvcache import make_cache

    model.eval()
    cache = make_cache(model.config, len(prompt_ids) + params.max_new_tokens)
    ids = torch.tensor([prompt_ids])
    gen = torch.Generator().manual_seed(seed)
    out = model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
    pos = len(prompt_ids)
    for _ in range(params.max_new_tokens):
        token, _ = sample_from_logits(out.logits[:, -1], torch.rand(1, generator=gen), params.temperature, params.top_p)
        t = int(token)
        if t == eos_id:
            return
        yield t
        out = model(input_ids=token[:, None], cache=out.cache if getattr(out, "cache", None) is not None
                    else out.past_key_values, use_cache=True, position_ids=torch.tensor([[pos]]))
        pos += 1


class ThinkRenderer:
    """Prints streamed text, dimming what lies inside <think> ... </think>."""

    def __init__(self, out=sys.stdout, color: bool = True):
        self.out, self.color, self.thinking = out, color, False

    def write(self, piece: str) -> None:
        for tag, thinking in (("<think>", True), ("</think>", False)):
            if tag in piece:
                before, _, after = piece.partition(tag)
                self.write(before)
                self.thinking = thinking
                if self.color:
                    self.out.write(DIM + "[thinking] " if thinking else RESET + "\n" + BOLD)
                else:
                    self.out.write("[thinking] " if thinking else "\n")
                self.write(after)
                return
        self.out.write(piece)
        self.out.flush()

    def end(self) -> None:
        if self.color:
            self.out.write(RESET)
        self.out.write("\n")
        self.out.flush()


def chat(model_dir: str, template: str = "r1-zero", temperature: float = 0.6, top_p: float = 0.95,
         max_new_tokens: int = 256, inputs=None, out=sys.stdout) -> None:
    tok = load_tokenizer(model_dir)
    model = load_model(model_dir)
    color = out.isatty() if hasattr(out, "isatty") else False
    out.write("r1lab chat: type a question, an empty line or Ctrl-D to quit.\n")
    lines = inputs if inputs is not None else _stdin_lines(out)
    for question in lines:
        question = question.strip()
        if not question:
            break
        ids = tok(render_prompt(question, template, tok), add_special_tokens=False)["input_ids"]
        renderer, done = ThinkRenderer(out, color), []
        seed = zlib.crc32(question.encode())
        for t in stream(model, ids, SamplingParams(max_new_tokens, temperature, top_p), tok.eos_token_id, seed):
            done.append(t)
            text = tok.decode(done, skip_special_tokens=False)
            renderer.write(text[len(tok.decode(done[:-1], skip_special_tokens=False)):])
        renderer.end()


def _stdin_lines(out):
    while True:
        try:
            out.write("you> ")
            out.flush()
            yield input()
        except EOFError:
            return
