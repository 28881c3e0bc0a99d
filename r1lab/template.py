"""Prompt templates.

`R1_ZERO` is Table 1 of the DeepSeek-R1 paper, verbatim: the only thing it imposes is structure
(think, then answer), never how to reason. "prompt" is replaced by the question.
"""

R1_ZERO = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant "
    "solves it. The assistant first thinks about the reasoning process in the mind and then "
    "provides the user with the answer. The reasoning process and answer are enclosed within "
    "<think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning process "
    "here </think> <answer> answer here </answer>. User: prompt. Assistant:"
)

TEMPLATES = {"r1-zero": R1_ZERO, "plain": "prompt"}


def render_prompt(question: str, template: str = "r1-zero", tokenizer=None) -> str:
    """The text the model sees before its completion.

    template: "r1-zero" (the paper's), "plain" (the question alone), or "chat" (the tokenizer's
    own chat template with one user turn and the generation prompt).

    >>> render_prompt("what is 2 times 3").endswith("User: what is 2 times 3. Assistant:")
    True
    """
    if template == "chat":
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ValueError("template 'chat' needs a tokenizer that has a chat_template")
        messages = [{"role": "user", "content": question}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if template not in TEMPLATES:
        raise ValueError(f"unknown template {template!r}; expected one of {sorted(TEMPLATES) + ['chat']}")
    # split/join instead of str.replace: only the template's own "prompt" placeholder is replaced,
    # and a question that itself contains the word "prompt" is left alone.
    head, sep, tail = TEMPLATES[template].rpartition("prompt")
    return head + question + tail
