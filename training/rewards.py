"""GRPO rewards: exact-match correctness from the project's grader, and answer format.

Both follow trl's reward-function signature: `f(prompts, completions, **columns) -> list[float]`,
where the dataset's extra columns arrive as keyword lists (one entry per completion). The GRPO
dataset (`training/grpo.py`) carries `answer` (the reference) and `answer_style` ("hash" for a
final `#### N` line, "boxed" for `\\boxed{N}`, from the prompt format). A completion is a string,
or for chat datasets a list of messages whose last one is the assistant's.

Pure: imports only `mathtutor.answers`.

>>> correctness_reward(["q"], ["3 + 4 = 7\\n#### 7"], answer=["7"])
[1.0]
>>> format_reward(["q", "q"], ["so 7\\n#### 7", "the answer is 7"], answer_style=["hash", "hash"])
[1.0, 0.0]
"""

from __future__ import annotations

import re
from typing import Any

from mathtutor.answers import extract_answer, grade, parse_number

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
    prompts: list, completions: list, answer: list[str], grader: list[str] | None = None, **_: Any
) -> list[float]:
    """1.0 when `mathtutor.answers.grade` finds the reference answer, else 0.0.

    `grader` (a dataset column) is the grader mode per completion, the one the evaluation
    uses for the prompt format (`mathtutor.evaluate.grader_mode`); "auto" when absent.

    >>> correctness_reward(["q", "q"], ["#### 1,000", "#### 999"], answer=["1000", "1000"])
    [1.0, 0.0]
    >>> correctness_reward(["q"], ["so 7"], answer=["7"], grader=["boxed"])
    [0.0]
    """
    modes = grader or ["auto"] * len(completions)
    return [
        1.0 if grade(completion_text(completion), str(reference), mode).is_correct else 0.0
        for completion, reference, mode in zip(completions, answer, modes, strict=True)
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
    prompts: list, completions: list, answer_style: list[str] | None = None, **_: Any
) -> list[float]:
    """`format_score` of each completion (style from the dataset's `answer_style` column)."""
    styles = answer_style or ["hash"] * len(completions)
    return [
        format_score(completion_text(completion), style)
        for completion, style in zip(completions, styles, strict=True)
    ]
