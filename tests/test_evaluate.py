import itertools
import json
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


def test_reflection_finds_checks_and_corrections_in_the_reasoning_only():
    from r1lab.rewards.parse import reflection

    slip = ("<think> 314 : 4 times 7 is 28 , plus 0 is 29 , wait , plus 0 is 28 , write 8 carry 2 . </think> "
            "<answer> 2198 </answer>")
    assert reflection(slip) == (True, True)
    es = "<think> 4 por 7 son 27 , espera , 4 por 7 son 28 , más 0 son 28 </think> <answer> 28 </answer>"
    assert reflection(es) == (True, True)
    same = "<think> 4 times 7 is 28 , wait , 4 times 7 is 28 , plus 0 is 28 </think> <answer> 28 </answer>"
    assert reflection(same) == (True, False)  # a second look that changed nothing
    check = ("<think> 38 times 7 is 266 , check : 8 times 7 is 56 , 3 times 7 is 21 , plus 5 is 26 , so 266 , yes , "
             "plus 0 is 266 </think> <answer> 266 </answer>")
    assert reflection(check) == (True, False)  # a check that agreed
    caught = ("<think> 38 times 7 is 256 , check : 8 times 7 is 56 , 3 times 7 is 21 , plus 5 is 26 , so 266 , wait , "
              "38 times 7 is 266 , plus 0 is 266 </think> <answer> 266 </answer>")
    assert reflection(caught) == (True, True)  # the check disagreed with the value it checked: corrected
    assert reflection(caught.replace("is 256", "is 266")) == (True, False)  # "wait" restating the same value
    plain = "<think> 4 times 7 is 28 , plus 0 is 28 , write 8 carry 2 </think> <answer> 28 </answer>"
    assert reflection(plain) == (False, False)
    assert reflection("<think> 4 times 7 is 28 </think> <answer> 27 , wait , 28 </answer>") == (False, False)
    assert reflection("4 times 7 is 27 , wait , 4 times 7 is 28") == (True, True)  # no tags: the whole text
    assert reflection("a wait " * 5000) == (False, False)  # over the parser's cap: not read
    assert reflection("<think> await the waiter </think>") == (False, False)  # whole words only


def test_score_samples_reflection_and_levels():
    ex = [{"prompt": "a", "answer": "28", "level": 3}, {"prompt": "b", "answer": "35", "level": 10}]
    checked_right = "<think> 4 times 7 is 27 , wait , 4 times 7 is 28 </think> <answer> 28 </answer>"
    checked_wrong = "<think> let me check : 5 times 7 is 36 </think> <answer> 36 </answer>"
    texts = [checked_right, checked_right, "<think> 4 times 7 is 28 </think> <answer> 28 </answer>",
             "<think> 4 times 7 is 29 </think> <answer> 29 </answer>",          # a: 3 of 4 right, vote 28
             checked_wrong, "<think> 5 times 7 is 35 </think> <answer> 35 </answer>",
             checked_wrong, "<think> x </think> <answer> 34 </answer>"]       # b: 1 of 4 right, vote 36
    m = score_samples(texts, [10] * 8, ex, k=4)
    assert m["reflection_rate"] == 4 / 8 and m["corrected_rate"] == 2 / 8
    assert m["pass@1_checked"] == 2 / 4 and m["pass@1_unchecked"] == 2 / 4
    assert m["pass@1_by_level"] == {"3": 0.75, "10": 0.25}  # numeric order, keyed by level
    assert list(m["pass@1_by_level"]) == ["3", "10"]
    assert m["cons@k_by_level"] == {"3": 1.0, "10": 0.0}
    assert m["reflection_rate_by_level"] == {"3": 0.5, "10": 0.5}
    assert m["pass@1_checked_by_level"] == {"3": 1.0, "10": 0.0}  # a: both checked right; b: both checked wrong
    assert m["pass@1_unchecked_by_level"] == {"3": 0.5, "10": 0.5}
    plain = score_samples(["<answer> 6 </answer>"], [3], [{"prompt": "c", "answer": "6"}], k=1)
    assert "pass@1_by_level" not in plain and plain["pass@1_checked"] is None and plain["reflection_rate"] == 0


def test_aha_sample_is_the_first_right_sample_that_corrected_itself():
    from r1lab.evaluate import aha_sample

    ex = [{"prompt": "a", "answer": "28"}, {"prompt": "b", "answer": "35", "level": 2}]
    wrong_fix = "<think> 4 times 7 is 27 , wait , 4 times 7 is 29 </think> <answer> 29 </answer>"
    right_fix = "<think> 5 times 7 is 36 , wait , 5 times 7 is 35 </think> <answer> 35 </answer>"
    right_plain = "<think> 4 times 7 is 28 </think> <answer> 28 </answer>"
    assert aha_sample([wrong_fix, right_plain, right_fix, right_fix], ex, k=2) == {
        "prompt": "b", "answer": "35", "completion": right_fix, "level": 2}
    assert aha_sample([wrong_fix, right_plain], ex[:1], k=2) is None


def test_length_quarters_split_an_rl_run_into_four_consecutive_parts(tmp_path):
    from r1lab.report import length_quarters

    path = tmp_path / "metrics.jsonl"
    rows = [{"step": i, "len_mean": float(10 * (i // 2 + 1))} for i in range(8)] + [{"step": 8, "eval": 1}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert length_quarters(path) == [10.0, 20.0, 30.0, 40.0]
    rows[1]["accuracy_unchecked"], rows[6]["accuracy_unchecked"], rows[7]["accuracy_unchecked"] = 0.5, 0.25, 0.75
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert length_quarters(path, "accuracy_unchecked") == [0.5, None, None, 0.5]  # steps that logged it
    path.write_text("".join(json.dumps(r) + "\n" for r in rows[:3]))
    assert length_quarters(path) is None  # fewer than four steps
    assert length_quarters(tmp_path / "absent.jsonl") is None


def test_report_splits_r1_zero_training_samples_by_check_and_quarter(tmp_path):
    """summary.json and report.md carry, per quarter of R1-Zero's steps, the share of training samples
    that check and the accuracy of those that do and of those that do not (a quarter without one: None)."""
    from r1lab.report import write_report

    rows = [{"step": i, "len_mean": 10.0, "reflection_rate": i / 8, "accuracy_checked": 0.5 + i / 16}
            for i in range(8)]
    for i in range(4):
        rows[i]["accuracy_unchecked"] = 0.25
    (tmp_path / "r1-zero").mkdir()
    (tmp_path / "r1-zero" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = write_report(tmp_path, [])
    assert summary["r1_zero_check_quarters"] == {"reflection_rate": [0.0625, 0.3125, 0.5625, 0.8125],
                                                 "accuracy_checked": [0.53125, 0.65625, 0.78125, 0.90625],
                                                 "accuracy_unchecked": [0.25, 0.25, None, None]}
    report = (tmp_path / "report.md").read_text()
    assert ("share that check 0.062 -> 0.312 -> 0.562 -> 0.812; accuracy of those that check "
            "0.531 -> 0.656 -> 0.781 -> 0.906, of those that do not 0.250 -> 0.250 -> - -> -.") in report


def test_budget_scaling_samples_the_hardest_level_at_each_budget():
    """The default budgets are the suite's and twice it; given budgets are used as they are; the same
    samples up to the smaller budget, so pass@1 cannot fall when the budget grows (a longer budget only
    lets cut samples finish) and the share cut cannot rise."""
    from r1lab.model import DEFAULT_MODEL, load_model, load_tokenizer
    from r1lab.pipeline import EvalSuite
    from r1lab.report import budget_scaling
    from r1lab.tasks import sources

    tok, model = load_tokenizer(DEFAULT_MODEL), load_model(DEFAULT_MODEL)
    examples = sources.reasoning_eval(200)
    hardest = max(ex["level"] for ex in examples)
    got = budget_scaling(model, tok, examples, EvalSuite(k=2, max_new_tokens=12, scaling_problems=3))
    assert got["level"] == str(hardest) and got["n_problems"] == 3 and list(got["budgets"]) == ["12", "24"]
    got = budget_scaling(model, tok, examples, EvalSuite(k=2, scaling_problems=3, scaling_budgets=[4, 16, 96]))
    b = got["budgets"]
    assert list(b) == ["4", "16", "96"]
    assert b["4"]["pass@1"] <= b["16"]["pass@1"] <= b["96"]["pass@1"]
    assert b["4"]["truncated"] >= b["16"]["truncated"] >= b["96"]["truncated"]
    assert b["4"]["mean_length"] <= 4 < b["16"]["mean_length"] <= b["96"]["mean_length"]  # each budget applied
