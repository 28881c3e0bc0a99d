"""Rule-based rewards. Each is a batched pure function `fn(completions, examples) -> list[float]`:
completions are the decoded texts, examples the dicts they answer (with at least "answer").

>>> accuracy_reward(["<think> ... </think> <answer> 6 </answer>"], [{"answer": "6"}])
[1.0]
>>> format_reward(["<answer> 6 </answer>"], [{"answer": "6"}])
[0.0]
"""

from __future__ import annotations

from .parse import last_number, parse_number, parse_response
from .verifiers import verify


def format_reward(completions: list[str], examples: list[dict]) -> list[float]:
    """1 for exactly one non-empty <think> block then one non-empty <answer> block, nothing else."""
    return [1.0 if parse_response(c).well_formed else 0.0 for c in completions]


def accuracy_reward(completions: list[str], examples: list[dict]) -> list[float]:
    """1 when the content of the single <answer> block verifies against the example's answer."""
    return [1.0 if verify(parse_response(c).answer, ex) else 0.0 for c, ex in zip(completions, examples)]


def answer_accuracy(completion: str, example: dict) -> bool:
    """Right answer with the format ignored: for numbers the last number of the whole response,
    for other verifiers the <answer> block if there is one, else the whole response."""
    if example.get("verifier", "number") == "number":
        got, want = last_number(completion), parse_number(str(example["answer"]))
        return got is not None and want is not None and got == want
    parsed = parse_response(completion)
    return verify(parsed.answer if parsed.answer is not None else completion, example)
