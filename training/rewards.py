"""GRPO rewards: exact-match correctness from the project's grader, and answer format.

Both follow trl's reward-function signature: `f(prompts, completions, **columns) -> list[float]`,
where the dataset's extra columns arrive as keyword lists (one entry per completion). The GRPO
dataset (`training/data.grpo_rows`) carries `answer` (the reference) and `prompt_format`. The
format decides both rewards: correctness grades with `PromptFormat.grader`, the mode Evaluate
grades with (so `qwen-boxed` rewards only a boxed answer), and the format reward checks the
format's answer form (`#### N`, or `\\boxed{N}` for `qwen-boxed`). A completion is a string, or
for chat datasets a list of messages whose last one is the assistant's.

Pure: imports only `mathtutor.answers` and `mathtutor.prompts`.

>>> correctness_reward(["q"], ["3 + 4 = 7\\n#### 7"], answer=["7"], prompt_format=["chat"])
[1.0]
>>> correctness_reward(["q"], ["The answer is 7."], answer=["7"], prompt_format=["qwen-boxed"])
[0.0]
>>> format_reward(["q", "q"], ["so 7\\n#### 7", "the answer is 7"], prompt_format=["chat"] * 2)
[1.0, 0.0]
"""

from __future__ import annotations

import re
from typing import Any

from mathtutor.answers import extract_answer, grade, parse_number
from mathtutor.prompts import get_format

# A final-answer line as GSM8K writes it: "#### 72" (lm-eval's strict regex reads the same).
_HASH_LINE = re.compile(r"^\s*####\s*(?P<answer>-?[$0-9.,/]+)\s*$", re.MULTILINE)
_HASH_ANYWHERE = re.compile(r"####\s*-?[$0-9]")


def completion_text(completion: Any) -> str:
    """The text of one completion: a string, or the content of the last chat message.

    >>> completion_text([{"role": "assistant", "content": "#### 4"}])
    '#### 4'
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content") or "")
    return str(completion or "")


def correctness_reward(
    prompts: list,
    completions: list,
    answer: list[str],
    prompt_format: list[str],
    answer_type: list[str] | None = None,
    choices: list[list[str]] | None = None,
    **_: Any,
) -> list[float]:
    """1.0 when `mathtutor.answers.grade`, in the mode the format gives the problem's answer
    type (`PromptFormat.grader_for`; rows without one are numbers), finds the reference.

    >>> correctness_reward(["q"] * 2, ["#### 1,000", "#### 999"], ["1000"] * 2, ["chat"] * 2)
    [1.0, 0.0]
    >>> correctness_reward(["q"], ["Answer: B"], ["B"], ["chat"], ["choice"], [["3", "4"]])
    [1.0]
    """
    types = answer_type or ["number"] * len(completions)
    options = choices or [[]] * len(completions)
    return [
        1.0
        if grade(completion_text(c), str(ref), get_format(name).grader_for(kind), opts).is_correct
        else 0.0
        for c, ref, name, kind, opts in zip(
            completions, answer, prompt_format, types, options, strict=True
        )
    ]


def format_score(text: str, answer_style: str = "hash") -> float:
    """How well `text` follows the expected answer form.

    hash: 1.0 when the last non-empty line is `#### <number>`, 0.5 when a `#### N` appears
    elsewhere (text after it), 0.0 otherwise. boxed: 1.0 when the last `\\boxed{}` holds a
    number and nothing but a closing sentence follows, 0.5 when it holds something else, 0.0
    without one.

    >>> format_score("48 / 2 = 24\\n#### 24"), format_score("#### 24\\nQuestion: next"), format_score("24")
    (1.0, 0.5, 0.0)
    >>> format_score("So $\\\\boxed{5}$.", "boxed"), format_score("\\\\boxed{x+1}", "boxed")
    (1.0, 0.5)
    """
    if answer_style == "boxed":
        boxed = extract_answer(text, mode="boxed")
        if boxed is None:
            return 0.0
        tail = text[text.rfind("\\boxed") :]
        trailing = tail[tail.find("}") + 1 :].strip(" $.}\n")
        return 1.0 if parse_number(boxed) is not None and len(trailing) <= 40 else 0.5
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if lines and _HASH_LINE.fullmatch(lines[-1]):
        return 1.0
    return 0.5 if _HASH_ANYWHERE.search(text) else 0.0


def format_reward(
    prompts: list, completions: list, prompt_format: list[str], **_: Any
) -> list[float]:
    """`format_score` of each completion in its prompt format's answer style."""
    return [
        format_score(completion_text(completion), get_format(name).answer_style)
        for completion, name in zip(completions, prompt_format, strict=True)
    ]
