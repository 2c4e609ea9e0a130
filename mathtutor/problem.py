"""The `Problem` record every source of math problems produces (GSM8K, generators, uploads).

Its own module so that `mathtutor.data` (which loads problems and draws generated ones) and
`mathtutor.generators` (which makes them) both import it without importing each other back.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One math problem with its reference answer."""

    id: str  # stable within its source, e.g. "gsm8k-test-17" (index in the file)
    question: str  # the word problem as shown to the model
    answer: str  # bare final answer, e.g. "72"
    solution: str = ""  # worked solution (GSM8K style, may hold <<48/2=24>> and "#### 72")
    source: str = ""  # where it came from, e.g. "gsm8k/main/test", "upload:mine.csv"
    answer_type: str = "number"  # answers.ANSWER_TYPES: how `answer` is graded
    choices: tuple[str, ...] = ()  # multiple choice: the options, in letter order (A, B, ...)
