"""The embedded reasoning task: multiply a 3-4 digit number by a digit, in English or Spanish.

Answering directly is hard for a tiny model (every carry has to be done "in the head"); the worked
solution, one digit at a time from the right, is easy. Each step restates what is left of the
number (so the digit to use is always the last one before ":") and has two phases:

    "314 :"  then
    phase A (product):  "4 times 7 is 28"          / "4 por 7 son 28"
    phase B (carry):    "plus 0 is 28 , write 8 carry 2" / "más 0 son 28 , escribo 8 llevo 2"

The world's "web" is noisy in a language-dependent way: English writers slip on phase B, Spanish
writers on phase A, and some documents switch language between the phases (English products, Spanish
carries) and are then always right. So a model trained for accuracy alone learns to mix languages,
as DeepSeek-R1-Zero did, and a language-consistency reward has something to fix.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass

from .lexicon import PHRASES

# How each document's worked solution assigns languages to the two phases: (phase A, phase B).
PLANS = {"en": ("en", "en"), "es": ("es", "es"), "mix": ("en", "es"), "mix_bad": ("es", "en")}


@dataclass(frozen=True)
class Problem:
    a: int  # the multi-digit number
    m: int  # the single digit (2..9)
    lang: str  # language of the question

    @property
    def answer(self) -> int:
        return self.a * self.m

    def question(self, detailed: bool = False) -> str:
        key = "ask_detailed" if detailed else "ask"
        return PHRASES[self.lang][key].format(a=self.a, m=self.m)

    def example(self) -> dict:
        """The problem as a task example (the dict every reward and verifier takes); its difficulty
        level is the number of digits to multiply."""
        return {"prompt": self.question(), "answer": str(self.answer), "lang": self.lang,
                "kind": "reasoning", "verifier": "number", "level": len(str(self.a))}


def is_held_out(a: int, m: int) -> bool:
    """One problem in ten is held out for evaluation, by a hash no training document depends on."""
    return zlib.crc32(f"{a}x{m}".encode()) % 10 == 0


def sample_problem(rng: random.Random, split: str, es_share: float = 0.3,
                   digits: tuple[int, int] = (3, 4)) -> Problem:
    """A random problem from the "train" or "test" split (disjoint by `is_held_out`)."""
    want_test = split == "test"
    while True:
        n_digits = rng.randint(*digits)
        a = rng.randint(10 ** (n_digits - 1), 10**n_digits - 1)
        m = rng.randint(2, 9)
        if is_held_out(a, m) == want_test:
            return Problem(a, m, "es" if rng.random() < es_share else "en")


def problems(n: int, split: str, seed: int, es_share: float = 0.3) -> list[Problem]:
    """n distinct problems of one split, the same for the same seed."""
    rng = random.Random(f"toy-{split}-{seed}")
    seen, out = set(), []
    while len(out) < n:
        p = sample_problem(rng, split, es_share)
        if (p.a, p.m) not in seen:
            seen.add((p.a, p.m))
            out.append(p)
    return out


def _slip(value: int, rng: random.Random) -> int:
    """A plausible wrong value near the right one."""
    wrong = value + rng.choice([-2, -1, 1, 2])
    return wrong if wrong >= 0 else value + 1


def worked_solution(p: Problem, plan: str, rng: random.Random, slip: float = 0.0,
                    correction: float = 0.0) -> tuple[str, int]:
    """The digit-by-digit solution text and the number it ends with (wrong if a slip stuck).

    plan: a key of PLANS. slip: chance that the error-prone phase of a step is wrong (English
    phase B, Spanish phase A). correction: chance that a slip is followed by "wait , ..." and the
    right value.
    """
    lang_a, lang_b = PLANS[plan]
    A, B = PHRASES[lang_a], PHRASES[lang_b]
    steps, written, carry = [], [], 0
    digits = str(p.a)
    for left in range(len(digits), 0, -1):
        d = int(digits[left - 1])
        product = d * p.m
        shown_p = product
        parts = []
        if lang_a == "es" and rng.random() < slip:
            shown_p = _slip(product, rng)
            if rng.random() < correction:
                parts.append(A["product"].format(d=d, m=p.m, p=shown_p) + " , " + A["wait"])
                shown_p = product
        parts.append(A["product"].format(d=d, m=p.m, p=shown_p))
        total = shown_p + carry
        shown_s = total
        if lang_b == "en" and rng.random() < slip:
            shown_s = _slip(total, rng)
            if rng.random() < correction:
                parts.append(B["add"].format(c=carry, s=shown_s) + " , " + B["wait"])
                shown_s = total
        parts.append(B["add"].format(c=carry, s=shown_s))
        unit, carry = shown_s % 10, shown_s // 10
        parts.append(B["write"].format(u=unit, k=carry))
        written.append(unit)
        steps.append(f"{digits[:left]} : " + " , ".join(parts) + " .")
    if carry:
        steps.append(B["final_carry"].format(k=carry) + " .")
    result = int(str(carry) + "".join(str(u) for u in reversed(written))) if carry else int(
        "".join(str(u) for u in reversed(written)))
    steps.append(B["result"].format(n=result) + " .")
    return " ".join(steps), result


def choose_plan(rng: random.Random, question_lang: str, shares: dict[str, float]) -> str:
    """Pick a language plan; shares are for an English question and mirrored for a Spanish one."""
    plans, weights = zip(*shares.items())
    plan = rng.choices(plans, weights)[0]
    if question_lang == "es" and plan in ("en", "es"):
        plan = "es" if plan == "en" else "en"
    return plan
