import itertools
import math

import pytest

from r1lab.evaluate import canonical_answer, majority_vote, pass_at_k, score_samples


def brute_pass_at_k(n, c, k):
    """Share of all k-subsets of n samples (c correct) that contain a correct one."""
    samples = [1] * c + [0] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_pass_at_k_matches_enumeration(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert math.isclose(pass_at_k(n, c, k), brute_pass_at_k(n, c, k), abs_tol=1e-12)


def test_pass_at_k_needs_enough_samples():
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 3)


def test_majority_vote_and_canonical_answers():
    assert canonical_answer(" 1,000 ") == canonical_answer("1000.0")
    assert majority_vote(["1", None, "2", "2", "1"]) == "1"  # tie: first seen wins
    assert majority_vote(["3", "2", "2"]) == "2"
    assert majority_vote([None, None]) is None


def test_score_samples():
    ex = [{"prompt": "a", "answer": "6"}, {"prompt": "b", "answer": "8"}]
    good = "<think> x </think> <answer> 6 </answer>"
    texts = [good, good, "<answer> 5 </answer>", "the answer is 6",          # problem a: 2 of 4 right
             "<think> y </think> <answer> 7 </answer>", "<answer> 8 </answer>",
             "<think> y </think> <answer> 7 </answer>", "8"]                 # problem b: 1 of 4 right
    m = score_samples(texts, [10] * 8, ex, k=4)
    assert m["pass@1"] == 3 / 8
    assert m["cons@k"] == 0.5  # a votes 6 (right), b votes 7 (wrong)
    assert m["format"] == 4 / 8
    assert m["answer_accuracy"] == 5 / 8  # last number, format ignored: a has 3, b has 2
    assert m["mean_length"] == 10 and m["k"] == 4 and m["n_problems"] == 2
    assert m["pass@4"] == 1.0 and math.isclose(m["pass@2"], (pass_at_k(4, 2, 2) + pass_at_k(4, 1, 2)) / 2)
