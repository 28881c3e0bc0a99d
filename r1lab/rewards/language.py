"""Language-consistency reward (DeepSeek-R1 stage 2): the share of target-language words in the
chain of thought, Num(Words_target) / Num(Words), summed with the accuracy reward.

The target language is the example's "lang" (the language the question is asked in; default "en").
Which language a word is in is decided by a pluggable identifier:
  - `LexiconIdentifier`: a word list per language (the embedded world's, from its lexicon);
  - `LinguaIdentifier`: the `lingua-language-detector` package for real text (optional extra
    `r1lab[lang]`); it splits mixed text into single-language spans and counts their words.
Words no identifier claims (digits, symbols, names, words shared by both languages) are not counted.
Only reasoning prompts are scored (general prompts get None: the reward does not apply).
A completion without a chain of thought, or whose chain of thought has no identifiable word, scores 0:
there is nothing to show it is in the right language.
"""

from __future__ import annotations

from typing import Protocol

from .parse import parse_response, words

MAX_WORDS = 4000  # only the first words of a very long chain of thought are counted


class Identifier(Protocol):
    def counts(self, text: str, target: str) -> tuple[int, int]:
        """(words in the target language, words in any known language)."""


class LexiconIdentifier:
    """Each word belongs to the one language whose word list holds it (lower case)."""

    def __init__(self, lexicon: dict[str, set[str]]):
        self.lang_of: dict[str, str] = {}
        for lang, ws in lexicon.items():
            for w in ws:
                self.lang_of[w.lower()] = lang if w.lower() not in self.lang_of else ""  # shared: no language

    def counts(self, text: str, target: str) -> tuple[int, int]:
        langs = [self.lang_of.get(w, "") for w in words(text)[:MAX_WORDS]]
        known = [lang for lang in langs if lang]
        return sum(lang == target for lang in known), len(known)


class LinguaIdentifier:
    """Real-text identifier on top of lingua (https://github.com/pemistahl/lingua-py)."""

    def __init__(self, languages: tuple[str, ...] | None = ("en", "es")):
        """languages: ISO 639-1 codes to tell apart (fewer is faster and surer); None = every language
        lingua knows (its models load lazily, on first use of each language)."""
        try:
            from lingua import IsoCode639_1, LanguageDetectorBuilder
        except ImportError as e:  # optional dependency
            raise ImportError("LinguaIdentifier needs `pip install lingua-language-detector` (r1lab[lang])") from e
        if languages is None:
            builder = LanguageDetectorBuilder.from_all_languages()
        else:
            builder = LanguageDetectorBuilder.from_iso_codes_639_1(*[IsoCode639_1.from_str(c) for c in languages])
        self._detector = builder.build()

    def counts(self, text: str, target: str) -> tuple[int, int]:
        text = " ".join(words(text)[:MAX_WORDS])
        in_target = total = 0
        for span in self._detector.detect_multiple_languages_of(text):
            n = span.word_count
            total += n
            if span.language.iso_code_639_1.name.lower() == target:
                in_target += n
        return in_target, total


def run_identifier(spec: str = "toy") -> tuple[Identifier, str]:
    """The run's language identifier and the language of rows without a "lang" field, from one setting:
    "toy" (the embedded world's lexicon), "lingua:en,es" (real text: lingua telling these languages
    apart; rows without "lang" are in the first) or "lingua" (every language lingua knows: slower and
    less sure on short text; rows without "lang" are English). One per run: the language reward, the
    rejection filter, the cold-start filter and the evaluation all use it."""
    from ..errors import UserError

    name, _, langs = spec.partition(":")
    codes = tuple(c.strip().lower() for c in langs.split(",") if c.strip())
    if name == "toy" and not codes:
        return toy_identifier(), "en"
    if name == "lingua":
        try:
            return LinguaIdentifier(languages=codes or None), (codes or ("en",))[0]
        except ImportError:
            raise UserError("language: lingua needs lingua: pip install 'r1lab[lang]'") from None
        except ValueError as e:  # an ISO code lingua does not know
            raise UserError(f"language {spec!r}: {e}") from None
    raise UserError(f"language {spec!r}: expected 'toy', 'lingua' or 'lingua:<ISO 639-1 codes>' (e.g. lingua:en,es)")


def toy_identifier() -> LexiconIdentifier:
    from ..tasks.toy.lexicon import language_words

    return LexiconIdentifier(language_words())


def consistency(text: str, target: str, identifier: Identifier) -> float:
    """Share of target-language words in the chain of thought of one completion, in [0, 1]."""
    cot = parse_response(text).think
    if not cot:
        return 0.0
    in_target, total = identifier.counts(cot, target)
    return in_target / total if total else 0.0


def make_language_reward(identifier: Identifier, default_lang: str = "en"):
    """A reward `fn(completions, examples) -> list[float | None]` for an identifier."""

    def language_reward(completions: list[str], examples: list[dict]) -> list[float | None]:
        return [consistency(c, ex.get("lang", default_lang), identifier) if ex.get("kind", "reasoning") == "reasoning"
                else None for c, ex in zip(completions, examples)]

    return language_reward


_TOY = None
_LINGUA = None


def language_reward(completions: list[str], examples: list[dict]) -> list[float]:
    """Language consistency with the embedded world's lexicon (the default identifier).

    >>> language_reward(["<think> 4 times 7 is 28 , más 0 son 28 </think> <answer> 28 </answer>"],
    ...                 [{"lang": "en"}])
    [0.5]
    """
    global _TOY
    if _TOY is None:
        _TOY = make_language_reward(toy_identifier())
    return _TOY(completions, examples)


def lingua_language_reward(completions: list[str], examples: list[dict]) -> list[float]:
    """Language consistency of real text, with lingua over every language it knows (`--rewards
    language_lingua=1`; each example's `lang` is the ISO 639-1 code of the language wanted)."""
    global _LINGUA
    if _LINGUA is None:
        _LINGUA = make_language_reward(LinguaIdentifier(languages=None))
    return _LINGUA(completions, examples)


def _lingua_installed() -> None:
    try:
        import lingua  # noqa: F401
    except ImportError:
        from ..errors import UserError

        raise UserError("--rewards language_lingua needs lingua: pip install 'r1lab[lang]'") from None


lingua_language_reward.check = _lingua_installed
