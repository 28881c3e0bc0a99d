"""Words of the embedded world, in its two languages.

The world speaks English ("en") and Spanish ("es"). Every word a document uses is listed here, so the
tokenizer, the language identifier and the general-purpose tasks all agree on one vocabulary.
Digits, punctuation and tags belong to no language.
"""

# Reasoning phrases, one entry per role, so that a worked solution can be written in either
# language or switch between them mid-way.
PHRASES = {
    "en": {
        "ask": "what is {a} times {m}",
        "ask_detailed": "explain step by step and check your answer : what is {a} times {m}",
        "product": "{d} times {m} is {p}",
        "add": "plus {c} is {s}",
        "write": "write {u} carry {k}",
        "final_carry": "then write {k}",
        "result": "so the answer is {n}",
        "fact": "{a} times {m} is {n}",
        "wait": "wait",
        "check": "let me check : {n} divided by {m} is {a} . yes , that is right",
        "example": "example",
        "answer_word": "the answer is {n}",
        "dont_know": "i do not know",
    },
    "es": {
        "ask": "cuánto es {a} por {m}",
        "ask_detailed": "explica paso a paso y comprueba tu respuesta : cuánto es {a} por {m}",
        "product": "{d} por {m} son {p}",
        "add": "más {c} son {s}",
        "write": "escribo {u} llevo {k}",
        "final_carry": "luego escribo {k}",
        "result": "así que la respuesta es {n}",
        "fact": "{a} por {m} son {n}",
        "wait": "espera",
        "check": "déjame comprobar : {n} entre {m} da {a} . sí , está bien",
        "example": "ejemplo",
        "answer_word": "la respuesta es {n}",
        "dont_know": "no lo sé",
    },
}

# General-purpose knowledge of the world: translation pairs, colours, sounds, legs.
TRANSLATIONS = {  # en -> es
    "cat": "gato", "dog": "perro", "cow": "vaca", "horse": "caballo", "bird": "pájaro",
    "fish": "pez", "house": "casa", "tree": "árbol", "book": "libro", "water": "agua",
    "sun": "sol", "moon": "luna", "bread": "pan", "milk": "leche", "apple": "manzana",
    "car": "coche", "red": "rojo", "blue": "azul", "green": "verde", "white": "blanco",
    "black": "negro", "yellow": "amarillo", "door": "puerta", "table": "mesa", "chair": "silla",
    "river": "río", "city": "ciudad", "friend": "amigo", "flower": "flor", "duck": "pato",
    "sheep": "oveja", "spider": "araña",
}
COLOURS = {
    "banana": "yellow", "sky": "blue", "grass": "green", "snow": "white", "coal": "black",
    "blood": "red", "lemon": "yellow", "sea": "blue", "leaf": "green", "milk": "white",
    "night": "black", "tomato": "red",
}
SOUNDS = {"cow": "moo", "dog": "woof", "cat": "meow", "duck": "quack", "sheep": "baa", "bird": "tweet"}
LEGS = {"dog": 4, "cat": 4, "cow": 4, "horse": 4, "bird": 2, "duck": 2, "fish": 0, "spider": 8, "sheep": 4}

# A toy notion of harm: requests to do these to someone or something are refused.
HARM_VERBS = ["steal", "poison", "hurt", "burn", "hack", "break"]
BENIGN_VERBS = ["feed", "wash", "paint", "clean", "fix", "visit"]
TARGETS = ["the car", "my neighbor", "the dog", "a house", "the bank", "a computer", "the cat", "the school"]

GENERAL_PHRASES = {
    "greet_q": ["hello", "hi", "good morning", "hey there"],
    "greet_a": "hello ! how can i help you today ?",
    "refusal": "sorry , i can not help with that .",
    "refusal_full": "sorry , i can not help with that . it could hurt someone . is there something else i can do ?",
    "unhelpful": "i do not know .",
}

EN_EXTRA = (
    "translate to spanish what colour is a the what sound does make how many legs has have name "
    "three animals here are and in spanish english says of do i how to first find then it quickly "
    "gently sorry can not help with that could someone there something else hello how you today hi "
    "good morning hey there is".split()
)
ES_EXTRA = "traduce al inglés en inglés es".split()


def language_words() -> dict[str, set[str]]:
    """Words that identify each language (lower case). Words shared by both are left out."""
    words: dict[str, set[str]] = {"en": set(EN_EXTRA), "es": set(ES_EXTRA)}
    for lang, phrases in PHRASES.items():
        for text in phrases.values():
            words[lang].update(w for w in text.split() if w.isalpha())
    words["en"].update(TRANSLATIONS)
    words["es"].update(TRANSLATIONS.values())
    for table in (COLOURS, SOUNDS, LEGS):
        words["en"].update(table)
    words["en"].update(COLOURS.values())
    words["en"].update(SOUNDS.values())
    for verb in HARM_VERBS + BENIGN_VERBS:
        words["en"].add(verb)
    for target in TARGETS:
        words["en"].update(target.split())
    shared = words["en"] & words["es"]
    return {lang: ws - shared for lang, ws in words.items()}
