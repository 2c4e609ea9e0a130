"""The `Problem` record every source of math problems produces (GSM8K, generators, uploads).

Its own module so that `mathtutor.data` (which loads problems and draws generated ones) and
`mathtutor.generators` (which makes them) both import it without importing each other back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

MAX_REPORTED_ROWS = 5  # bad rows an error lists, so a broken 10k-row file stays readable
MAX_QUOTED_CHARS = 30  # the most of a value from the user's file quoted in an error


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


def quoted(text: str) -> str:
    """At most MAX_QUOTED_CHARS of a value from the user's file, for an error message.

    >>> quoted("x" * 40)
    'xxxxxxxxxxxxxxxxxxxxxxxxxxx...'
    """
    return text if len(text) <= MAX_QUOTED_CHARS else text[: MAX_QUOTED_CHARS - 3] + "..."


def collect(rows: Iterable[tuple[str, Callable[[], Problem]]], label: str) -> list[Problem]:
    """The problems of `label`'s rows, each `(where, make)` ("line 3", a function that builds
    that row's problem or raises ValueError); every row is tried, then any bad row or repeated
    id fails the whole call with up to MAX_REPORTED_ROWS of them listed by `where`.

    >>> collect([("row 0", lambda: Problem("a", "1+1?", "2"))], "t.csv")[0].answer
    '2'
    """
    problems: list[Problem] = []
    errors: list[str] = []
    seen: set[str] = set()
    total = 0
    for where, make in rows:
        total += 1
        try:
            problem = make()
            if problem.id in seen:
                raise ValueError(f"duplicate id {quoted(problem.id)!r}")
        except ValueError as error:
            errors.append(f"{where}: {error}")
            continue
        seen.add(problem.id)
        problems.append(problem)
    if errors:
        listed = "\n  ".join(errors[:MAX_REPORTED_ROWS])
        more = len(errors) - MAX_REPORTED_ROWS
        listed += f"\n  ... and {more} more" if more > 0 else ""
        raise ValueError(f"{label}: {len(errors)} invalid row(s) of {total}:\n  {listed}")
    if not problems:
        raise ValueError(f"{label} holds no rows")
    return problems
