"""Bounded parsers of model output. Model output is untrusted: every parser here caps the text it
reads (`MAX_CHARS`) and uses only linear scans (str.find / fixed regexes without nested repeats),
so no completion can make a reward slow, and none raises on any input. A completion over the cap
gets no answer and no format (the cap is far above any useful answer of the tasks here)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import NamedTuple

MAX_CHARS = 20_000  # a longer completion is not parsed at all: it has no answer and no format
MAX_NUMBER_CHARS = 64  # longer digit strings are not numbers we compare (and would be slow to)
TAGS = ("<think>", "</think>", "<answer>", "</answer>")

_NUMBER = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?")
_NUMBER_FULL = re.compile(r"\s*([+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?)\s*\.?\s*")


@dataclass(frozen=True)
class Parsed:
    think: str | None  # content of the single <think> block, if there is exactly one
    answer: str | None  # content of the single <answer> block, if there is exactly one
    well_formed: bool  # exactly "<think> non-empty </think> <answer> non-empty </answer>", nothing else


def _single_block(text: str, open_tag: str, close_tag: str) -> tuple[int, int] | None:
    """(start, end) of the content of the only open...close pair, or None."""
    if text.count(open_tag) != 1 or text.count(close_tag) != 1:
        return None
    start = text.find(open_tag) + len(open_tag)
    end = text.find(close_tag)
    return (start, end) if end >= start else None


def parse_response(text: str) -> Parsed:
    """Split a completion into its think and answer parts and check the R1-Zero format.

    >>> parse_response("<think> 2 times 3 is 6 </think> <answer> 6 </answer>").well_formed
    True
    >>> parse_response("<answer> 6 </answer>").answer.strip()
    '6'
    """
    if not isinstance(text, str) or len(text) > MAX_CHARS:
        return Parsed(None, None, False)
    think_span = _single_block(text, "<think>", "</think>")
    answer_span = _single_block(text, "<answer>", "</answer>")
    think = text[think_span[0]:think_span[1]] if think_span else None
    answer = text[answer_span[0]:answer_span[1]] if answer_span else None
    well_formed = False
    if think_span and answer_span:
        before = text[:think_span[0] - len("<think>")]
        between = text[think_span[1] + len("</think>"):answer_span[0] - len("<answer>")]
        after = text[answer_span[1] + len("</answer>"):]
        well_formed = (not before.strip() and not between.strip() and not after.strip()
                       and bool(think.strip()) and bool(answer.strip())
                       and not any(t in think or t in answer for t in TAGS))
    return Parsed(think, answer, well_formed)


def general_well_formed(text: str) -> bool:
    """The R1 format for general-purpose prompts: one non-empty <answer> block, optionally preceded by
    one <think> block (simple queries get no chain of thought), nothing else."""
    if not isinstance(text, str) or len(text) > MAX_CHARS:
        return False
    parsed = parse_response(text)
    if parsed.answer is None or not parsed.answer.strip() or any(t in parsed.answer for t in TAGS):
        return False
    if "<think>" not in text and "</think>" not in text:
        return not text.replace(f"<answer>{parsed.answer}</answer>", "", 1).strip()
    if parsed.think is None or any(t in parsed.think for t in TAGS):
        return False
    expected = f"<think>{parsed.think}</think>"
    rest = text.strip()
    if not rest.startswith(expected):
        return False
    return rest[len(expected):].strip() == f"<answer>{parsed.answer}</answer>"


def summary(text: str) -> str:
    """What a helpfulness judge reads (the paper scores the final summary only): the answer block if
    there is exactly one; else what follows the chain of thought; else, for a response with no
    chain of thought at all, the whole text. A chain of thought that never closes has no summary ("")."""
    parsed = parse_response(text)
    if parsed.answer is not None:
        return parsed.answer.strip()
    text = text[:MAX_CHARS] if isinstance(text, str) else ""
    end = text.rfind("</think>")
    if end >= 0:
        return text[end + len("</think>"):].strip()
    return "" if "<think>" in text else text.strip()


def parse_number(text: str | None) -> Fraction | None:
    """The number a short answer states ("33747", "-2.5", "1,024", "3/4"), else None."""
    if text is None or len(text) > MAX_NUMBER_CHARS + 8:
        return None
    m = _NUMBER_FULL.fullmatch(text)
    return _to_fraction(m.group(1)) if m else None


def _to_fraction(token: str) -> Fraction | None:
    token = token.replace(",", "")
    if len(token) > MAX_NUMBER_CHARS:
        return None
    try:
        return Fraction(token)
    except (ValueError, ZeroDivisionError):
        return None


def last_number(text: str) -> Fraction | None:
    """The last number in a text (the answer with the format ignored), else None."""
    text = text[-MAX_CHARS:] if isinstance(text, str) else ""
    last = None
    for m in _NUMBER.finditer(text):
        last = m.group(0)
    return _to_fraction(last) if last is not None else None


def words(text: str) -> list[str]:
    """Lower-case words (letters only) of a text, capped."""
    return re.findall(r"[^\W\d_]+", text[:MAX_CHARS].lower()) if isinstance(text, str) else []


# Words with which a chain of thought re-checks itself (the paper's "wait, wait... that's an aha moment";
# "let me check : ...", "check : ...", "compruebo : ...", "wait , ...", "espera , ..."). A correction marker
# announces a step written again; a check marker any second look.
CORRECTION_MARKERS = ("wait", "espera")
CHECK_MARKERS = CORRECTION_MARKERS + ("check", "compruebo", "comprobar", "verify", "double-check", "recheck",
                                      "re-check")
_CHECK = re.compile(r"\b(?:" + "|".join(re.escape(m) for m in CHECK_MARKERS) + r")\b", re.IGNORECASE)
_CORRECTION = re.compile(r"\b(?:" + "|".join(re.escape(m) for m in CORRECTION_MARKERS) + r")\b", re.IGNORECASE)
_LOOK = re.compile(r"\b(?:" + "|".join(re.escape(m) for m in CHECK_MARKERS if m not in CORRECTION_MARKERS) + r")\b",
                   re.IGNORECASE)  # a check that is not itself a correction


class Reflection(NamedTuple):
    checked: bool  # the reasoning takes a second look at least once
    corrected: bool  # a correction marker stands between two different values of the same step


def reflection(text: str) -> Reflection:
    """Whether a completion's reasoning (its <think> part, else the whole text) checks itself, and
    whether a check changed an intermediate result: the value a correction marker restates differs
    from the value just before the marker ("4 por 7 son 27 , espera , 4 por 7 son 28 ,") or from the
    value just before the check that led to it ("38 times 7 is 256 , check : ... , so 266 , wait ,
    38 times 7 is 266 ,").

    >>> reflection("<think> 4 times 7 is 27 , wait , 4 times 7 is 28 , plus 0 is 28 </think>")
    Reflection(checked=True, corrected=True)
    >>> reflection("<think> 38 times 7 is 256 , check : 8 times 7 is 56 , so 266 , wait , 38 times 7 is 266 </think>")
    Reflection(checked=True, corrected=True)
    >>> reflection("<think> 4 times 7 is 28 , wait , 4 times 7 is 28 </think>").corrected
    False
    """
    if not isinstance(text, str) or len(text) > MAX_CHARS:
        return Reflection(False, False)
    think = parse_response(text).think
    body = think if think is not None else text
    if not _CHECK.search(body):
        return Reflection(False, False)
    for m in _CORRECTION.finditer(body):
        after = re.split(r"[,.;]", body[m.end():m.end() + 80].lstrip(" ,:"), maxsplit=1)[0]
        later = _NUMBER.findall(after)
        if not later:
            continue
        checks = list(_LOOK.finditer(body, max(0, m.start() - 200), m.start()))
        starts = [m.start()] + ([checks[-1].start()] if checks else [])
        for start in starts:
            before = _NUMBER.findall(body[max(0, start - 40):start])
            if before and before[-1] != later[-1]:
                return Reflection(True, True)
    return Reflection(True, False)
