"""Named prompt formats: how a math question becomes model input, and what the model should write.

Every format comes from one of the seed reports (``/work/shared/seeds``), so a comparison in the
app can reproduce the setting a report measured:

- ``chat``: a system instruction asking for worked steps and a final ``#### <number>`` line.
- ``gemma-oneshot``: the Gemma-2B-IT report's best prompt (seed 001): instruction + the
  Natalia example + the question.
- ``qa``: the Phi-2 report's ``Q: <problem>\\nA:`` (seed 000), a base-model completion format.
- ``qwen-boxed``: the Qwen2.5-Math report's chat setup (seed 003): the answer goes in ``\\boxed{}``.
- ``socratic``: GSM8K's socratic style (sub-question ``**`` answer lines, then ``#### N``).

Pure module: nothing heavy is imported. A tokenizer, when given, is only asked for its
``chat_template`` and ``apply_chat_template``.

>>> render("qa", "What is 2 + 3?")
'Q: What is 2 + 3?\\nA:'
>>> target("qwen-boxed", "2 + 3 = <<2+3=5>>5\\n#### 5", "5", keep_annotations=False)
'2 + 3 = 5\\nThe final answer is $\\\\boxed{5}$.'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from mathtutor.answers import ANSWER_TYPES

AnswerStyle = Literal["hash", "boxed", "socratic", "hle"]


@dataclass(frozen=True)
class PromptFormat:
    """One named way to ask a question and to write the answer."""

    name: str  # key in FORMATS, shown in the UI
    description: str  # one line for the UI, naming the report it comes from
    system: str | None  # instruction, sent as the system turn (folded into the user turn if needed)
    shots: tuple[
        tuple[str, str], ...
    ] = ()  # worked examples (question, answer) before the question
    answer_style: AnswerStyle = "hash"  # final answer as "#### N", \boxed{N}, "Exact Answer: N"
    stop: tuple[str, ...] = ()  # text that ends generation (models invent the next question)
    plain_only: bool = False  # True: never use a chat template (a base-model completion format)
    question_prefix: str = "Question: "  # plain-text rendering: label before each question
    answer_prefix: str = "Answer:"  # plain-text rendering: label the model continues after

    @property
    def grader(self) -> str:
        """The ``answers.grade`` mode answers in this format are judged by, everywhere.

        Compare, the Tutor, Evaluate, the metrics, SFT data and the GRPO reward all ask this
        one property, so training optimises the verdict that evaluation measures.

        >>> FORMATS["qwen-boxed"].grader, FORMATS["chat"].grader
        ('boxed', 'auto')
        """
        return {"boxed": "boxed", "hle": "answer-line"}.get(self.answer_style, "auto")

    @property
    def asks_confidence(self) -> bool:
        """Whether the answer ends with a stated ``Confidence: N%`` (HLE's format).

        >>> FORMATS["hle"].asks_confidence, FORMATS["chat"].asks_confidence
        (True, False)
        """
        return self.answer_style == "hle"

    def grader_for(self, answer_type: str) -> str:
        """The ``answers.grade`` mode for a dataset whose answers are ``answer_type``.

        Numbers keep this format's own mode (lm-eval-compatible ``strict``/``flexible`` are
        reported beside it, unchanged); LaTeX, multiple-choice and exact-string answers are
        graded by the mode of their type, wherever the format puts the answer. Every caller
        (Evaluate, the metrics, GRPO rewards) asks this one method.

        >>> FORMATS["qwen-boxed"].grader_for("number"), FORMATS["qwen-boxed"].grader_for("latex")
        ('boxed', 'latex')
        """
        if answer_type not in ANSWER_TYPES:
            raise ValueError(
                f"answer_type {answer_type!r} is not one of: {', '.join(ANSWER_TYPES)}"
            )
        return self.grader if answer_type == "number" else answer_type

    @property
    def answer_method(self) -> str:
        """The ``Grade.method`` of an answer written in the form this format asks for.

        >>> FORMATS["qwen-boxed"].answer_method, FORMATS["socratic"].answer_method
        ('boxed', 'strict')
        """
        return {"boxed": "boxed", "hle": "answer-line"}.get(self.answer_style, "strict")


# Seed 001 (Gemma-2B-IT report), appendix A: the instruction and the one-shot example, verbatim.
GEMMA_INSTRUCTION = (
    "You are a helpful math assistant. Please provide a step-by-step derivation and end your "
    "answer with the final numerical result in the format '#### <number>'."
)
NATALIA_QUESTION = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in "
    "May. How many clips did Natalia sell altogether in April and May?"
)
NATALIA_ANSWER = (
    "Natalia sold 48 clips in April.\nIn May, she sold half as many clips as in April, so she "
    "sold 48 / 2 = 24 clips.\nAltogether, Natalia sold 48 + 24 = 72 clips.\n#### 72"
)
# The same example in GSM8K's socratic answer style (sub-question ** answer, one per line).
NATALIA_SOCRATIC = (
    "How many clips did Natalia sell in May? ** Natalia sold 48 / 2 = <<48/2=24>>24 clips in May."
    "\nHow many clips did Natalia sell altogether in April and May? ** Natalia sold 48 + 24 = "
    "<<48+24=72>>72 clips altogether.\n#### 72"
)

HLE_SYSTEM = (
    "Your response should be in the following format:\nExplanation: {your explanation for your "
    "final answer}\nExact Answer: {your succinct, final answer}\nConfidence: {your confidence "
    "score between 0% and 100% for your answer}"
)

FORMATS: dict[str, PromptFormat] = {
    "chat": PromptFormat(
        name="chat",
        description="Instruction in the system turn: show the steps, end with '#### <number>'.",
        system=(
            "You are a careful math tutor. Solve the problem step by step, writing out each "
            "calculation. Finish with a last line of the form '#### <number>' that holds only "
            "the final numerical answer."
        ),
        stop=("\nQuestion:",),
    ),
    "gemma-oneshot": PromptFormat(
        name="gemma-oneshot",
        description="Gemma-2B-IT report's best prompt: instruction + one worked example (seed 001).",
        system=GEMMA_INSTRUCTION,
        shots=((NATALIA_QUESTION, NATALIA_ANSWER),),
        # Seed 001: the base model went on to invent "Question: ..." after answering.
        stop=("Question:", "\n\n\n"),
    ),
    "qa": PromptFormat(
        name="qa",
        description="Phi-2 report's 'Q: <problem> / A:' completion prompt, no chat template (seed 000).",
        system=None,
        stop=("\nQ:",),
        plain_only=True,
        question_prefix="Q: ",
        answer_prefix="A:",
    ),
    "qwen-boxed": PromptFormat(
        name="qwen-boxed",
        description="Qwen2.5-Math style: reason step by step, final answer in \\boxed{} (seed 003).",
        # Qwen2.5-Math's chain-of-thought system prompt, as published in its model card.
        system="Please reason step by step, and put your final answer within \\boxed{}.",
        answer_style="boxed",
        stop=("\nQuestion:",),
    ),
    "socratic": PromptFormat(
        name="socratic",
        description="GSM8K socratic style: 'sub-question? ** answer' lines, then '#### <number>'.",
        system=(
            "Solve the problem as a chain of small sub-questions. On each line ask one "
            "sub-question and answer it after '**', showing the calculation. Finish with a last "
            "line of the form '#### <number>'."
        ),
        shots=((NATALIA_QUESTION, NATALIA_SOCRATIC),),
        answer_style="socratic",
        stop=("\nQuestion:",),
    ),
    "hle": PromptFormat(
        name="hle",
        description="Humanity's Last Exam: Explanation / Exact Answer / Confidence: N% (seed 004).",
        # HLE's system prompt for exact-match questions (Phan et al. 2025, hle_eval), verbatim.
        system=HLE_SYSTEM,
        answer_style="hle",
        stop=("\nQuestion:",),
    ),
}

# The tutor's hint mode asks for one line; generation should stop at its end.
HINT_STOP: tuple[str, ...] = ("\n",)

HINT_SYSTEM = (
    "You are a patient math tutor who teaches with questions. Given a word problem and the "
    "guiding questions already asked, write exactly ONE next guiding question that helps the "
    "student take the next small step. Do not solve the problem, do not state the final answer, "
    "and do not write '####'. Reply with the question only, on one line."
)

_ANNOTATION = re.compile(r"<<[^<>]*>>")  # GSM8K calculator annotations, e.g. <<48/2=24>>
_FINAL_LINE = re.compile(r"^\s*####.*$", re.MULTILINE)


def get_format(format_name: str) -> PromptFormat:
    """The format called ``format_name``; ValueError naming the known ones otherwise.

    >>> get_format("qa").stop
    ('\\nQ:',)
    """
    if format_name not in FORMATS:
        raise ValueError(
            f"unknown prompt format {format_name!r}: expected one of {', '.join(FORMATS)}"
        )
    return FORMATS[format_name]


def messages(format_name: str, question: str, fold_system: bool = False) -> list[dict[str, str]]:
    """Chat turns for ``question``: system (if any), shots as user/assistant turns, the question.

    ``fold_system=True`` puts the system text at the top of the first user turn instead, for
    chat templates that reject the system role (Gemma's).

    >>> [m["role"] for m in messages("gemma-oneshot", "What is 2 + 3?")]
    ['system', 'user', 'assistant', 'user']
    >>> messages("chat", "What is 2 + 3?", fold_system=True)[0]["content"].endswith("What is 2 + 3?")
    True
    """
    prompt_format = get_format(format_name)
    _check_question(question)
    turns: list[dict[str, str]] = []
    for shot_question, shot_answer in prompt_format.shots:
        turns.append({"role": "user", "content": shot_question})
        turns.append({"role": "assistant", "content": shot_answer})
    turns.append({"role": "user", "content": question.strip()})
    if prompt_format.system:
        if fold_system:
            turns[0] = {
                "role": "user",
                "content": f"{prompt_format.system}\n\n{turns[0]['content']}",
            }
        else:
            turns.insert(0, {"role": "system", "content": prompt_format.system})
    return turns


def hint_messages(question: str, hints_so_far: list[str]) -> list[dict[str, str]]:
    """Chat turns asking for ONE next guiding question (the tutor's hint mode), never the answer.

    Generate with ``stop=HINT_STOP`` so the reply ends with its line.

    >>> turns = hint_messages("Tom has 3 apples and buys 4 more. How many now?", ["What does Tom start with?"])
    >>> [m["role"] for m in turns]
    ['system', 'user']
    >>> "1. What does Tom start with?" in turns[1]["content"]
    True
    """
    _check_question(question)
    asked = [hint.strip() for hint in hints_so_far if hint.strip()]
    history = "\n".join(f"{i}. {hint}" for i, hint in enumerate(asked, 1)) or "(none yet)"
    user = (
        f"Problem: {question.strip()}\n\nGuiding questions so far:\n{history}\n\n"
        "Write the next guiding question."
    )
    return [{"role": "system", "content": HINT_SYSTEM}, {"role": "user", "content": user}]


def uses_chat_template(format_name: str, tokenizer: Any = None) -> bool:
    """Whether ``render`` goes through ``tokenizer``'s chat template for this format.

    >>> uses_chat_template("chat", None)
    False
    """
    return not get_format(format_name).plain_only and bool(
        getattr(tokenizer, "chat_template", None)
    )


def render(format_name: str, question: str, tokenizer: Any = None) -> str:
    """The prompt text for ``question``, ready to tokenize and continue.

    With a tokenizer that has a chat template: ``apply_chat_template(messages, tokenize=False,
    add_generation_prompt=True)``; when the template rejects the system role (Gemma's raises
    "System role not supported"), the system text is folded into the first user turn. Otherwise
    (no tokenizer, no template, or a ``plain_only`` format such as ``qa``) plain text:
    instruction, blank line, shots and the question as ``Question: ...`` / ``Answer:`` pairs.

    >>> print(render("gemma-oneshot", "What is 2 + 3?").splitlines()[-2:])
    ['Question: What is 2 + 3?', 'Answer:']
    """
    if not uses_chat_template(format_name, tokenizer):
        return _render_plain(get_format(format_name), question)
    return apply_chat(tokenizer, messages(format_name, question))


def apply_chat(tokenizer: Any, turns: list[dict[str, str]]) -> str:
    """``turns`` through the tokenizer's chat template, ready for the assistant's reply.

    A template that rejects the system role (Gemma's raises "System role not supported") gets
    the system text folded into the first user turn instead.
    """
    import jinja2  # light; only to recognise template errors

    try:
        return tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    except jinja2.TemplateError:
        if turns[0]["role"] != "system" or len(turns) < 2:
            raise
    system, first, *rest = turns
    folded = [{"role": first["role"], "content": f"{system['content']}\n\n{first['content']}"}]
    return tokenizer.apply_chat_template(folded + rest, tokenize=False, add_generation_prompt=True)


def _render_plain(prompt_format: PromptFormat, question: str) -> str:
    _check_question(question)
    q, a = prompt_format.question_prefix, prompt_format.answer_prefix
    parts = [f"{prompt_format.system}\n\n"] if prompt_format.system else []
    parts += [f"{q}{shot_q}\n{a} {shot_a}\n\n" for shot_q, shot_a in prompt_format.shots]
    parts.append(f"{q}{question.strip()}\n{a}")
    return "".join(parts)


def target(format_name: str, solution: str, answer: str, keep_annotations: bool = True) -> str:
    """The completion to train on: the worked ``solution`` ending in this format's answer marker.

    Any ``#### ...`` line in ``solution`` is replaced by one built from ``answer`` (the bare final
    answer). ``keep_annotations=False`` strips GSM8K's ``<<48/2=24>>`` calculator annotations.

    >>> target("chat", "She sold 48/2 = <<48/2=24>>24.\\n#### 24", "24")
    'She sold 48/2 = <<48/2=24>>24.\\n#### 24'
    >>> target("chat", "", "7")
    '#### 7'
    """
    prompt_format = get_format(format_name)
    answer = str(answer).strip()
    if not answer:
        raise ValueError("answer is empty: target() needs the bare final answer, e.g. '72'")
    body = _FINAL_LINE.sub("", solution).strip()
    if not keep_annotations:
        body = _ANNOTATION.sub("", body)
    if prompt_format.answer_style == "boxed":
        last = f"The final answer is $\\boxed{{{answer}}}$."
    elif prompt_format.answer_style == "hle":  # no stated confidence to imitate in training
        return f"Explanation: {body}\nExact Answer: {answer}" if body else f"Exact Answer: {answer}"
    else:
        last = f"#### {answer}"
    return f"{body}\n{last}" if body else last


def stop_sequences(format_name: str) -> list[str]:
    """Text that should end generation for this format.

    >>> stop_sequences("qa")
    ['\\nQ:']
    """
    return list(get_format(format_name).stop)


def training_example(
    format_name: str,
    question: str,
    solution: str,
    answer: str,
    tokenizer: Any = None,
    conversational: bool = False,
    keep_annotations: bool = True,
) -> dict[str, Any]:
    """One row of a prompt-completion dataset, as trl's ``SFTTrainer`` takes it.

    trl computes the loss on the completion only for prompt-completion rows. Two shapes:

    - ``conversational=False``: ``{"prompt": str, "completion": str}``; the prompt is
      ``render(...)`` (chat template applied here), and trl appends the EOS token. After a plain
      ``Answer:`` prompt the completion starts with a space, as the model would write it.
    - ``conversational=True``: ``{"prompt": [turns], "completion": [assistant turn]}``; trl
      applies the chat template itself. The system text is folded into the user turn when
      ``tokenizer``'s template rejects the system role. Not available for ``plain_only`` formats.

    >>> row = training_example("qa", "What is 2 + 3?", "2 + 3 = <<2+3=5>>5", "5")
    >>> row["prompt"], row["completion"]
    ('Q: What is 2 + 3?\\nA:', ' 2 + 3 = <<2+3=5>>5\\n#### 5')
    """
    prompt_format = get_format(format_name)
    completion = target(format_name, solution, answer, keep_annotations=keep_annotations)
    if not conversational:
        prompt = render(format_name, question, tokenizer)
        if not uses_chat_template(format_name, tokenizer):
            completion = " " + completion
        return {"prompt": prompt, "completion": completion}
    if prompt_format.plain_only:
        raise ValueError(
            f"prompt format {format_name!r} is a plain completion format (no chat turns); "
            "use conversational=False"
        )
    fold = tokenizer is not None and not _accepts_system_role(tokenizer)
    return {
        "prompt": messages(format_name, question, fold_system=fold),
        "completion": [{"role": "assistant", "content": completion}],
    }


def _accepts_system_role(tokenizer: Any) -> bool:
    if not getattr(tokenizer, "chat_template", None):
        return True
    import jinja2

    probe = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    try:
        tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
    except jinja2.TemplateError:
        return False
    return True


def _check_question(question: str) -> None:
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"question must be non-empty text, got {question!r}")
