"""Learned reward models, used as rewards for general-purpose prompts (R1 stage 4).

Following the paper: the helpfulness model scores only the final summary (the answer, not the
reasoning), and the safety model scores the whole response (reasoning included), because harm can
hide in either. Reasoning prompts keep their rule rewards: these functions give them None (not
applicable), so they add nothing to the total and stay out of the logged means.
"""

from __future__ import annotations

import math

import torch

from .parse import MAX_CHARS, summary


def rm_text(prompt: str, response: str) -> str:
    """The text a reward model reads: the question and the response, without the long template."""
    return f"User: {prompt}. Assistant: {response}"[:MAX_CHARS]


class RewardModel:
    """A scalar-head model (AutoModelForSequenceClassification, one label) from a local folder."""

    def __init__(self, path, device="cpu", batch_size: int = 64):
        from transformers import AutoModelForSequenceClassification

        from ..model import load_tokenizer

        self.tokenizer = load_tokenizer(path)
        self.tokenizer.padding_side = "right"
        self.model = AutoModelForSequenceClassification.from_pretrained(str(path)).to(device).eval()
        self.device = device
        self.batch_size = batch_size
        self.max_len = getattr(self.model.config, "max_position_embeddings", 512)

    @torch.no_grad()
    def score(self, prompts: list[str], responses: list[str]) -> list[float]:
        """Raw scalar scores (logits), one per (prompt, response)."""
        out: list[float] = []
        texts = [rm_text(p, r) for p, r in zip(prompts, responses)]
        for s in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(texts[s:s + self.batch_size], return_tensors="pt", padding=True, truncation=True,
                                 max_length=self.max_len, add_special_tokens=False).to(self.device)
            out.extend(self.model(**enc).logits[:, 0].float().tolist())
        return out


def helpfulness_reward(rm: RewardModel):
    """Reward = helpfulness score of the summary, for general prompts; None for other kinds."""

    def helpfulness(completions: list[str], examples: list[dict]) -> list[float | None]:
        idx = [i for i, ex in enumerate(examples) if ex.get("kind") == "general"]
        values: list[float | None] = [None] * len(completions)
        if idx:
            scores = rm.score([examples[i]["prompt"] for i in idx], [summary(completions[i]) for i in idx])
            for i, s in zip(idx, scores):
                values[i] = s
        return values

    return helpfulness


def safety_reward(rm: RewardModel):
    """Reward = probability that the whole response is safe, for general and harmful prompts; None
    for reasoning prompts."""

    def safety(completions: list[str], examples: list[dict]) -> list[float | None]:
        idx = [i for i, ex in enumerate(examples) if ex.get("kind") in ("general", "harmful")]
        values: list[float | None] = [None] * len(completions)
        if idx:
            scores = rm.score([examples[i]["prompt"] for i in idx], [completions[i] for i in idx])
            for i, s in zip(idx, scores):
                values[i] = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, s))))
        return values

    return safety
