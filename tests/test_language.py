import pytest

from r1lab.rewards.language import LexiconIdentifier, consistency, language_reward, make_language_reward

EN = {"lang": "en"}
ES = {"lang": "es"}


def wrap(cot: str) -> str:
    return f"<think> {cot} </think> <answer> 1 </answer>"


@pytest.mark.parametrize("text,ex,expected", [
    (wrap("4 times 7 is 28 , plus 0 is 28 , write 8 carry 2 ."), EN, 1.0),
    (wrap("4 times 7 is 28 , más 0 son 28 , escribo 8 llevo 2 ."), EN, 2 / 6),  # mixed, as R1-Zero writes
    (wrap("4 times 7 is 28 , más 0 son 28 , escribo 8 llevo 2 ."), ES, 4 / 6),
    (wrap("4 por 7 son 28 , más 0 son 28 , escribo 8 llevo 2 ."), ES, 1.0),
    (wrap("4 por 7 son 28"), EN, 0.0),
    ("<answer> 28 </answer>", EN, 0.0),                    # no chain of thought
    ("4 times 7 is 28", EN, 0.0),                          # no tags: no chain of thought to judge
    (wrap(""), EN, 0.0),                                   # empty chain of thought
    (wrap("times"), EN, 1.0),                              # one word
    (wrap("por"), EN, 0.0),
    (wrap("4 , 7 . 28 ! ? : ;"), EN, 0.0),                 # punctuation and digits only: nothing to judge
    (wrap("TIMES Is PLUS"), EN, 1.0),                      # case does not matter
    (wrap("times 乘以 умножить is"), EN, 1.0),              # unknown scripts are not counted
    (wrap("times " * 2_000), EN, 1.0),                      # long: counted up to a word cap
    (wrap("times " * 10_000), EN, 0.0),                     # over the parser's size cap: not judged
])
def test_consistency_edge_cases(text, ex, expected):
    assert language_reward([text], [ex]) == [pytest.approx(expected)]


def test_general_prompts_are_not_scored():
    assert language_reward([wrap("times")], [{"lang": "en", "kind": "general"}]) == [None]  # does not apply


def test_pluggable_identifier_and_shared_words():
    ident = LexiconIdentifier({"en": {"red", "no"}, "es": {"rojo", "no"}})
    assert consistency(wrap("red rojo no"), "en", ident) == 0.5  # "no" is in both lists: not counted
    fn = make_language_reward(ident)
    assert fn([wrap("rojo")], [{"lang": "es"}]) == [1.0]


def test_lingua_identifier_scores_real_text():
    pytest.importorskip("lingua")
    from r1lab.rewards.language import LinguaIdentifier, make_language_reward

    reward = make_language_reward(LinguaIdentifier(("en", "es")))
    english = "<think> First we multiply the numbers and then we add the carry to the result. </think> <answer> 5 </answer>"
    spanish = "<think> Primero multiplicamos los números y luego sumamos el acarreo al resultado. </think> <answer> 5 </answer>"
    mixed = ("<think> First we multiply the numbers, luego sumamos el acarreo al resultado final del problema. "
             "</think> <answer> 5 </answer>")
    en, es, mix = reward([english, spanish, mixed], [{"lang": "en"}] * 3)
    assert en == 1.0 and es == 0.0 and 0.0 < mix < 1.0
    assert reward([english], [{"lang": "en", "kind": "general"}]) == [None]  # only reasoning is scored
