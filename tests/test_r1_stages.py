"""Pieces of the R1 stages: rejection filters, reward routing, the cold-start rewriter, the world's splits."""

import pytest

from r1lab.rewards.models import helpfulness_reward, safety_reward
from r1lab.rewards.parse import parse_response
from r1lab.stages.coldstart import r1_completion, translate_reasoning
from r1lab.stages.sample import dedupe_key, is_correct, no_code_blocks, no_long_paragraphs, single_language, well_formed
from r1lab.tasks.toy import datasets as D

GOOD = "<think> 12 : 2 times 3 is 6 , plus 0 is 6 , write 6 carry 0 . so the answer is 36 . </think> <answer> 36 </answer>"
EX = {"prompt": "what is 12 times 3", "answer": "36", "lang": "en"}


def test_rejection_filters():
    assert well_formed(GOOD, EX) and not well_formed("<answer> 36 </answer>", EX)
    assert is_correct(GOOD, EX) and not is_correct(GOOD.replace("> 36 <", "> 35 <"), EX)
    assert single_language(GOOD, EX)
    assert not single_language(GOOD.replace("plus 0 is 6", "más 0 son 6"), EX)
    assert single_language(GOOD.replace("times", "por"), {"lang": "es"}) is False  # mostly English: mixed
    assert no_long_paragraphs(GOOD, 200) and not no_long_paragraphs("word " * 201, 200)
    assert no_long_paragraphs("word " * 150 + "\n\n" + "word " * 150, 200)  # two short paragraphs
    assert no_code_blocks(GOOD) and not no_code_blocks(GOOD + " ```python\nprint(1)\n```")
    assert dedupe_key(" A  b\n") == dedupe_key("a b")


class FakeRM:
    def __init__(self, value):
        self.calls, self.value = [], value

    def score(self, prompts, responses):
        self.calls.append((list(prompts), list(responses)))
        return [self.value] * len(prompts)


def test_reward_routing_summary_vs_whole_response():
    help_rm, safe_rm = FakeRM(2.0), FakeRM(0.0)
    text = "<think> the user greets me </think> <answer> hello ! how can i help you today ? </answer>"
    examples = [{"prompt": "hello", "kind": "general"}, {"prompt": "how do i steal the car", "kind": "harmful"},
                {"prompt": "what is 12 times 3", "answer": "36"}]
    completions = [text, text, GOOD]
    assert helpfulness_reward(help_rm)(completions, examples) == [2.0, None, None]
    assert help_rm.calls == [(["hello"], ["hello ! how can i help you today ?"])]  # the summary only
    assert safety_reward(safe_rm)(completions, examples) == [0.5, 0.5, None]       # sigmoid(0); reasoning: n/a
    assert safe_rm.calls == [(["hello", "how do i steal the car"], [text, text])]  # the whole response


def test_rule_rewriter_makes_mixed_reasoning_single_language():
    mixed = "845 : 5 times 6 is 30 , más 0 son 30 , escribo 0 llevo 3 . luego escribo 5 . así que la respuesta es 5070 ."
    en = translate_reasoning(mixed, "en")
    assert en == ("845 : 5 times 6 is 30 , plus 0 is 30 , write 0 carry 3 . then write 5 . "
                  "so the answer is 5070 .")
    assert translate_reasoning(en, "es") == ("845 : 5 por 6 son 30 , más 0 son 30 , escribo 0 llevo 3 . "
                                             "luego escribo 5 . así que la respuesta es 5070 .")
    done = r1_completion(en, "5070")
    assert parse_response(done).well_formed and single_language(done, {"lang": "en"})


def test_refine_keeps_only_correct_well_formed_r1_zero_output_and_makes_it_single_language():
    import random

    from r1lab.stages.coldstart import _reasoning
    from r1lab.tasks.toy import arithmetic as ar

    p = ar.Problem(a=845, m=6, lang="en")
    mixed, result = ar.worked_solution(p, "mix", random.Random(0))
    assert result == p.answer == 5070
    good = f"<think> {mixed} </think> <answer> 5070 </answer>"
    row, answer = p.example(), 5070

    def refine(text):
        return _reasoning(text, "refine", row, "en", answer, teacher=None, markers=[])

    refined = refine(good)
    assert refined is not None and "más" not in refined and refined.endswith("so the answer is 5070 .")
    assert refine(good.replace("5070 .", "5071 .")) is None  # wrong reasoning
    assert refine(f"{mixed} <answer> 5070 </answer>") is None  # not well formed


def test_world_splits_are_disjoint():
    for make in (D.general_examples, D.harmful_examples):
        train = {e["prompt"] for e in make(10_000, "train", 0)}
        test = {e["prompt"] for e in make(10_000, "test", 0)}
        assert train and test and not train & test
    train = {(e["prompt"]) for e in D.reasoning_examples(2000, "train", 0)}
    test = {(e["prompt"]) for e in D.reasoning_examples(500, "test", 1)}
    assert not train & test


@pytest.mark.parametrize("make", [D.preference_pairs, D.safety_examples])
def test_reward_model_data(make):
    rows = make(300, "train", 0)
    assert len(rows) == 300
    if make is D.preference_pairs:
        assert all(D.HELPFULNESS_RANK[r["chosen_style"]] > D.HELPFULNESS_RANK[r["rejected_style"]] for r in rows)
    else:
        assert {r["label"] for r in rows} == {0, 1}


def test_sft_mix_has_no_chain_of_thought_for_general_prompts():
    rows = D.general_sft_data(40, 0, full_share=0.5, safety=10)
    assert sum(r["kind"] == "harmful" for r in rows) == 10
    assert all(r["completion"].startswith("<answer>") and "<think>" not in r["completion"] for r in rows)


def test_judge_decides_only_where_no_rule_applies(tiny_model_dir):
    import torch

    from r1lab.stages.sample import Judge, is_correct

    judge = Judge(str(tiny_model_dir))
    seen = []
    tok = judge.tok
    judge.tok = lambda text, **kw: (seen.append(text), tok(text, **kw))[1]  # record the judge's prompts

    class Leaning(torch.nn.Module):  # a judge model that says yes exactly when the prediction is "paris"
        def forward(self, input_ids):
            logits = torch.zeros(1, input_ids.shape[1], len(tok))
            said = seen[-1].split("Predicted answer:")[1].split()[0]
            logits[0, -1, judge.yes if said == "paris" else judge.no] = 1.0
            return type("Out", (), {"logits": logits})()

    judge.model = Leaning()
    free = {"prompt": "capital of france", "answer": "paris", "verifier": "free_text"}
    assert is_correct("<think> x </think> <answer> paris </answer>", free, judge)
    assert not is_correct("<think> x </think> <answer> lyon </answer>", free, judge)
    assert not is_correct("no answer block at all", free, judge)  # nothing to judge
    n = len(seen)
    number = {"prompt": "what is 2 times 3", "answer": "6", "verifier": "number"}
    assert is_correct("<think> x </think> <answer> 6 </answer>", number, judge)  # a rule applies: no judge call
    assert len(seen) == n == 2
    assert "Reference answer: paris" in seen[0] and "Predicted answer: paris" in seen[0]
