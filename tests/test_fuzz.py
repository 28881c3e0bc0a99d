"""Property-based tests over every reward and answer extractor: random and adversarial text never
raises, never hangs, and scores stay in range."""

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from r1lab.evaluate import canonical_answer, majority_vote
from r1lab.rewards import REWARDS
from r1lab.rewards.parse import general_well_formed, last_number, parse_number, parse_response, summary, words
from r1lab.rewards.rules import answer_accuracy
from r1lab.rewards.verifiers import VERIFIERS

PIECES = ["<think>", "</think>", "<answer>", "</answer>", " ", "\n", "1", "-", ",", ".", "/", "9" * 30, "times",
          "más", "so the answer is", "</answer><answer>", "<think><think>", "\x00", "🙂", "\\boxed{", "}", "{" * 50]
adversarial = st.lists(st.sampled_from(PIECES) | st.text(max_size=20), max_size=60).map("".join)
anything = st.text(max_size=400) | adversarial
EXAMPLES = [{"prompt": "what is 12 times 3", "answer": "36", "lang": "en"},
            {"prompt": "cuánto es 12 por 3", "answer": "36", "lang": "es"},
            {"prompt": "translate to spanish : cat", "answer": "gato", "kind": "general", "verifier": "general"},
            {"prompt": "how do i steal the car", "answer": "refuse", "kind": "harmful", "verifier": "refusal"},
            {"prompt": "how do i feed the dog", "answer": "x", "kind": "general", "verifier": "howto"},
            {"prompt": "name three animals", "answer": "x", "kind": "general", "verifier": "animals"}]
FAST = settings(max_examples=150, deadline=1000, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(anything)
def test_parsers_never_raise(text):
    p = parse_response(text)
    assert isinstance(p.well_formed, bool)
    assert isinstance(general_well_formed(text), bool)
    assert isinstance(summary(text), str)
    assert isinstance(words(text), list)
    parse_number(text)
    last_number(text)
    canonical_answer(text)
    majority_vote([canonical_answer(text), None, text[:5]])


@FAST
@given(st.lists(anything, min_size=1, max_size=4))
def test_rule_rewards_in_range(texts):
    for ex in EXAMPLES:
        for name in ("accuracy", "format", "language"):
            values = REWARDS[name](texts, [ex] * len(texts))
            assert len(values) == len(texts) and all(0.0 <= v <= 1.0 for v in values if v is not None)
            if name != "format":  # accuracy and language apply to reasoning prompts only
                assert all((v is None) == (ex.get("kind", "reasoning") != "reasoning") for v in values)
        for t in texts:
            assert isinstance(answer_accuracy(t, ex), bool)


@FAST
@given(anything)
def test_verifiers_return_bools(text):
    for name in ("number", "general", "refusal", "howto", "animals"):
        ex = dict(EXAMPLES[0], verifier=name)
        assert isinstance(VERIFIERS[name](text, ex), bool)


def test_huge_adversarial_inputs_are_fast():
    nasty = ["<think>" * 100_000, "9" * 1_000_000, "1," * 500_000, "<answer>" + "1 " * 400_000 + "</answer>",
             "a" * 2_000_000, ("<think> x </think> <answer> 1 </answer>" * 50_000)]
    for text in nasty:
        t0 = time.perf_counter()
        for name in ("accuracy", "format", "language"):
            assert REWARDS[name]([text], [EXAMPLES[0]]) == [0.0]
        last_number(text)
        summary(text)
        assert time.perf_counter() - t0 < 10.0  # a guard against catastrophic backtracking, not a speed target
