import pytest

from r1lab.rewards import parse_spec, score
from r1lab.rewards.parse import MAX_CHARS, last_number, parse_number, parse_response
from r1lab.rewards.rules import accuracy_reward, answer_accuracy, format_reward

EX = {"answer": "33747"}
GOOD = "<think> 1 times 7 is 7 </think> <answer> 33747 </answer>"


@pytest.mark.parametrize("text,fmt,acc", [
    (GOOD, 1, 1),
    ("  " + GOOD + "  \n", 1, 1),                                     # surrounding whitespace is fine
    ("<think> x </think><answer> 33,747 </answer>", 1, 1),            # numbers compared as numbers
    ("<think> x </think> <answer> 33747.0 </answer>", 1, 1),
    ("<think> x </think> <answer> 33746 </answer>", 1, 0),            # wrong answer
    ("<answer> 33747 </answer>", 0, 1),                               # missing think: right, not formatted
    ("<think> x </think>", 0, 0),                                     # missing answer
    ("", 0, 0),                                                       # empty
    ("<think> </think> <answer> 33747 </answer>", 0, 1),              # empty think earns no format
    ("<think> x </think> <answer> </answer>", 0, 0),                  # empty answer
    (GOOD + " so there", 0, 1),                                       # text after </answer>
    ("hi " + GOOD, 0, 1),                                             # text before <think>
    (GOOD + " " + GOOD, 0, 0),                                        # duplicated blocks
    ("<think> x </think> <answer> 1 </answer> <answer> 33747 </answer>", 0, 0),
    ("<think> <think> x </think> </think> <answer> 33747 </answer>", 0, 1),  # nested think: no format
    ("<think> x </think> <answer> <think> 33747 </answer>", 0, 0),    # tag inside the answer
    ("<think> x <answer> 33747 </answer> </think>", 0, 1),            # answer inside think
    ("<answer> 33747 </answer> <think> x </think>", 0, 1),            # wrong order
    ("<think> x </think> <answer> 33747 and 1 </answer>", 1, 0),      # not a single number
    ("<think> número ünïcödé ✓ </think> <answer> 33747 </answer>", 1, 1),
    ("<think> " + "7 " * 50_000 + "</think> <answer> 33747 </answer>", 0, 0),  # very long: cut at the cap
])
def test_format_and_accuracy_edge_cases(text, fmt, acc):
    assert format_reward([text], [EX]) == [float(fmt)]
    assert accuracy_reward([text], [EX]) == [float(acc)]


def test_parse_response_parts():
    p = parse_response(GOOD)
    assert p.well_formed and p.think.strip() == "1 times 7 is 7" and p.answer.strip() == "33747"


def test_numbers():
    assert parse_number(" 1,024 ") == 1024
    assert parse_number("-2.5") == parse_number("-5/2")
    assert parse_number("3/0") is None
    assert parse_number("12 apples") is None
    assert parse_number("9" * 200) is None  # too long to be an answer we compare
    assert last_number("so the answer is 16415 .") == 16415
    assert last_number("no numbers here") is None
    assert answer_accuracy("3 times 7 is 21 , so the answer is 33747 .", EX)
    assert not answer_accuracy("33747 , no wait , 33746", EX)


def test_score_combines_weights_and_contains_errors():
    def broken(completions, examples):
        return [1 / 0 if "boom" in c else 1.0 for c in completions]

    fns = {"accuracy": accuracy_reward, "format": format_reward, "broken": broken}
    s = score([GOOD, "boom"], [EX, EX], {"accuracy": 1.0, "format": 0.5, "broken": 2.0}, fns)
    assert s.total == [1.0 + 0.5 + 2.0, 0.0]
    assert s.parts["broken"] == [1.0, 0.0]
    assert s.errors == 1


def test_parse_spec():
    assert parse_spec("accuracy=1,format=0.2") == {"accuracy": 1.0, "format": 0.2}
    with pytest.raises(Exception, match="unknown reward 'acuracy'"):
        parse_spec("acuracy=1")
    with pytest.raises(Exception, match="must be a number"):
        parse_spec("accuracy=x")


def test_cap_is_enforced():
    assert not parse_response("<think> a </think> <answer> 1 </answer>" + " " * (2 * MAX_CHARS) + "x").well_formed


@pytest.mark.parametrize("text,ok", [
    ("<answer> gato </answer>", True),
    ("<think> </think> <answer> gato </answer>", True),
    ("<think> the user wants a word </think> <answer> gato </answer>", True),
    ("gato", False),
    ("<answer> gato </answer> extra", False),
    ("<answer> </answer>", False),
    ("<answer> a </answer> <answer> b </answer>", False),
    ("<answer> gato </answer> <think> x </think>", False),
])
def test_general_format(text, ok):
    ex = {"answer": "gato", "kind": "general", "verifier": "general"}
    assert format_reward([text], [ex]) == [float(ok)]
    assert accuracy_reward([text], [ex]) == [None]  # general prompts are judged by reward models, not rules


def test_summary_is_the_answer_or_what_follows_the_reasoning():
    from r1lab.rewards.parse import summary

    assert summary("<think> a b </think> <answer> cat in spanish is gato . </answer>") == "cat in spanish is gato ."
    assert summary("<think> a b </think> gato") == "gato"
    assert summary("just text") == "just text"
    assert summary("<think> reasoning that never ends") == ""
