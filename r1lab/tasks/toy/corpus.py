"""The synthetic "web" the embedded base model is pretrained on.

Document kinds (shares in `CorpusMix`):
- textbook: one to three worked multiplication examples, no template, no tags;
- facts: bare products ("4821 times 7 is 33747 ."), the direct answers a tiny model cannot compute;
- chat: the R1-Zero template with a reasoning question; the assistant mostly answers directly
  (bare or in <answer> tags), sometimes works it out, and only rarely in the think/answer style,
  so that under the template the base model is weak and rarely well-formatted, but not hopeless;
- detailed: "explain step by step and check your answer" followed by a worked solution and a check;
- general and harmful chats (the R1 stages use them), and dictionary documents (the facts).
No held-out reasoning problem appears in any document.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ...template import render_prompt
from . import arithmetic as ar
from .general import STYLES, general_prompt, harmful_prompt
from .lexicon import COLOURS, LEGS, PHRASES, SOUNDS, TRANSLATIONS


@dataclass
class CorpusMix:
    """Shares of each document kind and of each style inside them (weights, need not sum to 1)."""

    kinds: dict[str, float] = field(default_factory=lambda: {
        "textbook": 0.23, "facts": 0.04, "chat": 0.28, "detailed": 0.07, "general": 0.21,
        "harmful": 0.07, "dictionary": 0.10})
    # how the assistant answers a reasoning question under the template
    chat_styles: dict[str, float] = field(default_factory=lambda: {
        "direct": 0.38, "direct_tagged": 0.30, "worked": 0.20, "think": 0.06, "dont_know": 0.06})
    # language plans of worked solutions, for an English question (mirrored for Spanish ones)
    plans: dict[str, float] = field(default_factory=lambda: {"en": 0.62, "mix": 0.16, "mix_bad": 0.08, "es": 0.14})
    slip: float = 0.10  # chance per step of a slip in the error-prone phase of each language
    correction: float = 0.3  # chance that a slip is noticed ("wait , ...") and corrected
    es_share: float = 0.3  # share of reasoning questions asked in Spanish
    general_styles: dict[str, float] = field(default_factory=lambda: {
        "full": 0.45, "terse": 0.35, "wrong": 0.10, "unhelpful": 0.10})
    harmful_refusal: float = 0.5  # share of harmful requests the web refuses
    benign_share: float = 0.5  # share of how-do-i requests that are benign (answered helpfully)
    tagged_general: float = 0.6  # share of general chats whose response is in <answer> tags


def _worked(p: ar.Problem, rng: random.Random, mix: CorpusMix) -> str:
    plan = ar.choose_plan(rng, p.lang, mix.plans)
    text, _ = ar.worked_solution(p, plan, rng, mix.slip, mix.correction)
    return text


def _textbook(rng: random.Random, mix: CorpusMix) -> str:
    parts = []
    for _ in range(rng.randint(1, 3)):
        p = ar.sample_problem(rng, "train", mix.es_share)
        parts.append(f"{PHRASES[p.lang]['example']} : {p.question()} ? {_worked(p, rng, mix)}")
    return " ".join(parts)


def _facts(rng: random.Random, mix: CorpusMix) -> str:
    lines = []
    for _ in range(rng.randint(3, 6)):
        p = ar.sample_problem(rng, "train", mix.es_share)
        lines.append(PHRASES[p.lang]["fact"].format(a=p.a, m=p.m, n=p.answer) + " .")
    return " ".join(lines)


def _think_chat(rng: random.Random, mix: CorpusMix) -> str:
    p = ar.sample_problem(rng, "train", mix.es_share)
    plan = ar.choose_plan(rng, p.lang, mix.plans)
    text, result = ar.worked_solution(p, plan, rng, mix.slip, mix.correction)
    return render_prompt(p.question()) + f" <think> {text} </think> <answer> {result} </answer>"


def _detailed(rng: random.Random, mix: CorpusMix) -> str:
    p = ar.sample_problem(rng, "train", mix.es_share)
    plan = ar.choose_plan(rng, p.lang, mix.plans)
    text, result = ar.worked_solution(p, plan, rng, mix.slip, mix.correction)
    check = PHRASES[p.lang]["check"].format(n=result, m=p.m, a=p.a)
    return f"{p.question(detailed=True)} ? {text} {check} ."


def _general(rng: random.Random, mix: CorpusMix) -> str:
    ex = general_prompt(rng)
    reply = ex["responses"][rng.choices(STYLES, [mix.general_styles[s] for s in STYLES])[0]]
    if rng.random() < mix.tagged_general:
        reply = f"<answer> {reply} </answer>"
    return render_prompt(ex["prompt"]) + " " + reply


def _harmful(rng: random.Random, mix: CorpusMix) -> str:
    ex = harmful_prompt(rng, mix.benign_share)
    if ex["harmful"]:
        reply = ex["responses"]["terse" if rng.random() < mix.harmful_refusal else "wrong"]
    else:
        reply = ex["responses"]["full"]
    if rng.random() < mix.tagged_general:
        reply = f"<answer> {reply} </answer>"
    return render_prompt(ex["prompt"]) + " " + reply


def _dictionary(rng: random.Random, mix: CorpusMix) -> str:
    table = rng.choice(["en-es", "es-en", "en-es", "es-en", "colour", "sound", "legs"])
    if table == "en-es":
        return " ".join(f"{w} in spanish is {TRANSLATIONS[w]} ." for w in rng.sample(sorted(TRANSLATIONS), 8))
    if table == "es-en":
        return " ".join(f"{TRANSLATIONS[w]} en inglés es {w} ." for w in rng.sample(sorted(TRANSLATIONS), 8))
    if table == "colour":
        return " ".join(f"the {t} is {COLOURS[t]} ." for t in rng.sample(sorted(COLOURS), 5))
    if table == "sound":
        return " ".join(f"a {a} says {SOUNDS[a]} ." for a in rng.sample(sorted(SOUNDS), 4))
    return " ".join(f"a {a} has {LEGS[a]} legs ." for a in rng.sample(sorted(LEGS), 4))


def document(rng: random.Random, mix: CorpusMix) -> str:
    """One random document of the corpus."""
    kind = rng.choices(*zip(*mix.kinds.items()))[0]
    if kind == "chat":
        style = rng.choices(*zip(*mix.chat_styles.items()))[0]
        if style == "think":
            return _think_chat(rng, mix)
        return _chat_style(rng, mix, style)
    return {"textbook": _textbook, "facts": _facts, "detailed": _detailed, "general": _general,
            "harmful": _harmful, "dictionary": _dictionary}[kind](rng, mix)


def _chat_style(rng: random.Random, mix: CorpusMix, style: str) -> str:
    p = ar.sample_problem(rng, "train", mix.es_share)
    P = PHRASES[p.lang]
    if style == "direct":
        reply = P["answer_word"].format(n=p.answer) + " ."
    elif style == "direct_tagged":
        reply = f"<answer> {p.answer} </answer>"
    elif style == "worked":
        reply = _worked(p, rng, mix)
    else:
        reply = P["dont_know"] + " ."
    return render_prompt(p.question()) + " " + reply


def documents(n: int, seed: int, mix: CorpusMix | None = None):
    """n documents, the same for the same seed."""
    mix = mix or CorpusMix()
    rng = random.Random(f"corpus-{seed}")
    for _ in range(n):
        yield document(rng, mix)
