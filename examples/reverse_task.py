"""A task of your own: prompts, reference answers and a verifier, in one file.

    r1lab zero --task examples/reverse_task.py:reverse_words --rewards accuracy=1,format=0.5

NAME(data) returns {"train": rows, "eval": rows (optional), "verify": fn(answer, example) -> bool}.
`data` is the --data path (None without it). Each row needs "prompt" and "answer"; any other field
reaches the verifier and every reward. The verifier judges the text of the <answer> block.
"""

import random


def same_words(answer: str, example: dict) -> bool:
    return answer.split() == example["answer"].split()


def reverse_words(data):
    rng = random.Random(0)
    words = ["cat", "dog", "red", "blue", "one", "two", "sun", "moon"]
    rows = []
    for _ in range(50):
        picked = rng.sample(words, 3)
        rows.append({"prompt": "write these words in reverse order : " + " ".join(picked),
                     "answer": " ".join(reversed(picked)), "n_words": 3})
    return {"train": rows[:40], "eval": rows[40:], "verify": same_words}
