"""R1-Zero from Python with your own verifier, on a `datasets.Dataset` (pip install datasets).

    python examples/zero_with_verifier.py [--steps N] [--out DIR]

The verifier reads a column of the data ("tolerance") that r1lab knows nothing about.
"""

import argparse

import datasets

import r1lab
from r1lab.rewards.parse import parse_number, parse_response


def close_enough(completions: list[str], examples: list[dict]) -> list[float]:
    """1 when the <answer> is within the row's tolerance of the reference."""
    scores = []
    for text, example in zip(completions, examples):
        got = parse_number(parse_response(text).answer or "")
        scores.append(float(got is not None and abs(got - int(example["answer"])) <= example["tolerance"]))
    return scores


def main(steps: int = 60, out: str = "runs/zero-verifier", **settings) -> dict:
    rows = [{"prompt": f"what is {a} times {b}", "answer": str(a * b), "tolerance": 0}
            for a in range(12, 40) for b in range(2, 10)]
    data = datasets.Dataset.from_list(rows)
    cfg = r1lab.GRPOConfig(out=out, steps=steps, rewards="format=0.5,close_enough=1", **settings)
    return r1lab.grpo(cfg, data=data, rewards={"close_enough": close_enough})


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--out", default="runs/zero-verifier")
    args = p.parse_args()
    result = main(args.steps, args.out)
    print(result["model"], result["eval"].get("final", {}).get("pass@1"))
