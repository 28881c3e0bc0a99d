"""A reward file for the command line: a bonus for right answers whose reasoning is short.

    r1lab zero --reward-fn examples/short_reasoning.py:short_and_right \
        --rewards accuracy=1,format=0.5,short_and_right=0.5

Every reward takes the completions and the data rows they answer, and returns one value per
completion (None where it does not apply: here, prompts that are not reasoning problems).
"""

from r1lab.rewards.parse import parse_response
from r1lab.rewards.verifiers import verify


def short_and_right(completions: list[str], examples: list[dict]) -> list[float | None]:
    scores = []
    for text, example in zip(completions, examples):
        if example.get("kind", "reasoning") != "reasoning":
            scores.append(None)
            continue
        parsed = parse_response(text)
        right = parsed.well_formed and verify(parsed.answer, example)
        words = len(parsed.think.split()) if parsed.think else 0
        scores.append(max(0.0, 1.0 - words / 200) if right else 0.0)
    return scores
