"""Rule-based rewards. Each is a batched pure function `fn(completions, examples) -> list[float | None]`:
completions are the decoded texts, examples the dicts they answer (with at least "answer"); None
where the rule does not apply.

>>> accuracy_reward(["<think> ... </think> <answer> 6 </answer>"], [{"answer": "6"}])
[1.0]
>>> format_reward(["<answer> 6 </answer>"], [{"answer": "6"}])
[0.0]
"""

from __future__ import annotations

from .parse import general_well_formed, last_number, parse_number, parse_response
from .verifiers import verify


def is_reasoning(example: dict) -> bool:
    """Examples are reasoning prompts unless marked otherwise ("kind": "general" or "harmful")."""
    return example.get("kind", "reasoning") == "reasoning"


def format_reward(completions: list[str], examples: list[dict]) -> list[float]:
    """Reasoning prompts: 1 for exactly one non-empty <think> block then one non-empty <answer> block,
    nothing else. General and harmful prompts: one <answer> block, a <think> block optional."""
    return [1.0 if (parse_response(c).well_formed if is_reasoning(ex) else general_well_formed(c)) else 0.0
            for c, ex in zip(completions, examples)]


def accuracy_reward(completions: list[str], examples: list[dict]) -> list[float | None]:
    """1 when the content of the single <answer> block verifies against the example's answer.
    Reasoning prompts only (general prompts are judged by reward models): None for the others.

    >>> accuracy_reward(["<answer> gato </answer>"], [{"answer": "gato", "kind": "general"}])
    [None]
    """
    return [(1.0 if verify(parse_response(c).answer, ex) else 0.0) if is_reasoning(ex) else None
            for c, ex in zip(completions, examples)]


def answer_accuracy(completion: str, example: dict) -> bool:
    """Right answer with the format ignored: for numbers the last number of the whole response,
    for other verifiers the <answer> block if there is one, else the whole response."""
    if example.get("verifier", "number") == "number":
        got, want = last_number(completion), parse_number(str(example["answer"]))
        return got is not None and want is not None and got == want
    parsed = parse_response(completion)
    return verify(parsed.answer if parsed.answer is not None else completion, example)
