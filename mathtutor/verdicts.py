"""Verdicts on a student's answer: right or wrong only when a known answer says so.

    python -m mathtutor.verdicts "Tom has 3 apples and buys 4 more. How many?" --answer 7

``check_answer_stream`` yields ``tutor.Progress`` while the model samples and then ONE
``Verdict`` in one of ``STATUSES``, never the answer itself unless ``reveal=True``:

- against a known reference: "correct" / "incorrect" (the only verified states, the only ✅;
  a reference that is not a number is a ValueError naming the field, ``tutor.check_reference``);
- without one, ``tutor.self_consistency_stream`` samples k solutions in ONE batched call: at
  least ``threshold`` of them agreeing gives "likely-correct" / "likely-incorrect" (the share and
  the threshold are stated, "not verified"); less gives "unverified": the tutor says it can't
  verify, shows what it checked (``checked_line``: arithmetic only) and offers
  ``deeper_check`` with its expected time.

With a known worked solution the working gets first-wrong-step feedback
(``grounding.first_wrong_step``); otherwise its arithmetic slips are listed. A slip whose true
value is the hidden answer is pointed out without its value.

A known answer of another type (a practice set's ``latex``, ``choice`` or ``exact`` answers,
``answer_type=``) is graded by ``tutor.grade_known``, the grader Evaluate uses for that type:
a choice is read as its letter or its text, LaTeX by math-verify, exact strings normalised.

>>> read_student_answer("I got 12 apples"), STATUSES["correct"]
('12', 'checked against a known answer: right')
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from mathtutor import cli
from mathtutor.answers import LETTERS, answers_match, parse_number
from mathtutor.checks import Step, find_steps, format_value, wrong_steps
from mathtutor.grounding import StepFeedback, first_wrong_step, reference_steps
from mathtutor.tutor import (
    BASE,
    CONFIDENCE_THRESHOLD,
    MAX_ANSWER_CHARS,
    MAX_K,
    MAX_WORKING_CHARS,
    SAMPLING,
    Consensus,
    Expected,
    Progress,
    check_reference,
    expected_answer,
    fraction_text,
    grade_known,
    prepare_problem,
    self_consistency_stream,
    stated_numbers,
)

if TYPE_CHECKING:
    from mathtutor.models import LoadedModel


@dataclass(frozen=True)
class Verdict:
    """What the tutor says about a student's answer. ``message`` is Markdown for the student.

    ``status`` is one of ``STATUSES``; only "correct" (checked against a known answer) is a
    verified right answer.
    """

    status: str
    message: str
    student: str | None = None  # the student's answer, normalized ("12", "3/4")
    expected: Expected | None = None  # never shown unless revealed
    slips: tuple[Step, ...] = ()  # wrong arithmetic in the student's working
    revealed: bool = False
    feedback: StepFeedback | None = None  # first-wrong-step, when a worked solution is known
    deeper_k: int | None = None  # offered when unverified: samples of the deeper check
    deeper_seconds: float | None = None  # its expected wall time

    @property
    def is_correct(self) -> bool | None:
        return {"correct": True, "incorrect": False}.get(self.status)


STATUSES = {
    "correct": "checked against a known answer: right",
    "incorrect": "checked against a known answer: not right",
    "likely-correct": "no known answer; the model's own samples agree with it (not verified)",
    "likely-incorrect": "no known answer; the model's own samples agree on another answer",
    "unverified": "no known answer and the samples disagree: the tutor cannot say",
    "unreadable": "no answer could be read from the student's answer",
    "revealed": "the student asked for the answer",
}


def read_student_answer(text: str) -> str | None:
    """The number a student's answer states, normalized, or None.

    Plain numbers, words, units, fractions and percentages (``answers.parse_number``); else a
    sentence with exactly one number in it ("I think it is 12 apples").

    A decimal stays a decimal (a student who wrote 1.76 is told about 1.76, not 44/25).

    >>> [read_student_answer(t) for t in ["twelve", "12 cm", "3/4", "25%", "I got 12 apples", "lots"]]
    ['12', '12', '3/4', '25', '12', None]
    >>> [read_student_answer(t) for t in ["1.76", "$0.50", "It is 2.5 km", "1/3"]]
    ['1.76', '0.5', '2.5', '1/3']
    """
    text = (text or "").strip()
    if len(text) > MAX_ANSWER_CHARS:  # not an answer; cutting it would change the number
        return None
    written = text
    value = parse_number(text)
    if value is None:
        numbers = stated_numbers(text)
        written = numbers[0] if len(numbers) == 1 else ""
        value = parse_number(written) if written else None
    if value is None:
        return None
    if "." in written and "/" not in written and value.denominator != 1:
        decimal = _decimal_text(value)
        if decimal is not None:
            return decimal
    return fraction_text(value)


def _decimal_text(value) -> str | None:
    """`value` as `checks.format_value` writes it, when that is exact (a finite decimal of at
    most 6 places), else None.

    >>> from fractions import Fraction
    >>> _decimal_text(Fraction(44, 25)), _decimal_text(Fraction(1, 3))
    ('1.76', None)
    """
    text = format_value(value)
    return text if parse_number(text) == value else None


# How to write an answer of each type, said when one cannot be read.
ANSWER_EXAMPLES = {
    "number": "Write just the number, for example `12`, `3/4`, `25%` or `twelve`.",
    "latex": "Write just the answer, for example `\\frac{1}{2}`, `x+1` or `\\sqrt{2}`.",
    "choice": "Write the letter of your choice (for example `B`) or the choice's text.",
    "exact": "Write just the answer itself, for example a word or a name.",
}


def _unreadable(student_answer: str, answer_type: str) -> str:
    """Why a student's answer could not be read, and how to write one (Markdown)."""
    told = "I couldn't read a number in your answer"
    if answer_type == "choice":
        told = "I couldn't read one of the choices in your answer"
    if not (student_answer or "").strip():
        told = "Type your answer first"
    elif len(student_answer.strip()) > MAX_ANSWER_CHARS:
        told = f"Your answer is longer than {MAX_ANSWER_CHARS} characters"
    return f"{told}. {ANSWER_EXAMPLES[answer_type]}"


def _same_answer(student_text: str, student: str, expected: str) -> bool:
    """Equal numbers; a percentage also matches its fraction (25% == 0.25)."""
    if answers_match(student, expected):
        return True
    value, target = parse_number(student), parse_number(expected)
    return (
        "%" in student_text and value is not None and target is not None and value / 100 == target
    )


def _slip_lines(slips: list[Step], hidden: str | None) -> list[str]:
    lines = []
    for step in slips[:5]:
        value = format_value(step.actual) if step.actual is not None else None
        if value is None or (hidden is not None and answers_match(value, hidden)):
            lines.append(
                f"- In your working, `{step.expression} = {step.claimed}` is not right: redo it."
            )
        else:
            lines.append(
                f"- In your working, `{step.expression} = {step.claimed}` should be **{value}**."
            )
    return lines


def checked_line(steps: list[Step] | tuple[Step, ...], whose: str = "your working") -> str:
    """What the step checker verified, named as such: arithmetic only, never a verdict.

    >>> checked_line([])
    'What I checked: I found no arithmetic steps in your working.'
    """
    checked = [s for s in steps if s.is_correct is not None]
    if not checked:
        return f"What I checked: I found no arithmetic steps in {whose}."
    wrong = sum(1 for s in checked if s.is_correct is False)
    return (
        f"What I checked: the arithmetic of {len(checked)} step(s) in {whose} "
        f"({len(checked) - wrong} compute correctly, {wrong} do not). That checks the sums, "
        "not the reasoning or the final answer."
    )


def deeper_check(k: int, consensus: Consensus | None) -> tuple[int, float | None]:
    """(samples, expected seconds) of the deeper check offered when a verdict is unverified.

    Twice the samples (at most ``MAX_K``); time scaled from the last check's measured time.
    """
    deeper = min(MAX_K, max(2 * k, k + 1))
    if consensus is None or not consensus.k:
        return deeper, None
    return deeper, consensus.seconds * deeper / consensus.k


def check_answer_stream(
    loaded: LoadedModel | None,
    problem: str,
    student_answer: str,
    reference: str | None = None,
    working: str = "",
    system: str = BASE,
    k: int = 5,
    *,
    threshold: float = CONFIDENCE_THRESHOLD,
    reveal: bool = False,
    cached: Expected | None = None,
    calculator: bool = True,
    solution: str | None = None,
    max_new_tokens: int | None = None,
    answer_type: str = "number",
    choices: Sequence[str] = (),
) -> Iterator[Progress | Verdict]:
    """Progress while the model samples (only without a reference), then the ``Verdict``.

    Statuses in ``STATUSES``. With a known worked ``solution`` the working gets first-wrong-step
    feedback (``grounding.first_wrong_step``); otherwise its arithmetic slips are listed. A
    slip whose true value is the hidden answer is pointed out without its value. An empty
    answer with working is read from the working's last step. A ``reference`` of another
    ``answer_type`` (``choices`` for multiple choice) is graded by ``tutor.grade_known``.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    problem, notices = prepare_problem(problem)
    reference = check_reference(reference, answer_type)
    typed = reference is not None and answer_type != "number"
    notes = list(notices)
    if len(working or "") > MAX_WORKING_CHARS:
        notes.append(
            f"Your working was {len(working):,} characters; I checked the first {MAX_WORKING_CHARS:,}."
        )
    working = (working or "")[:MAX_WORKING_CHARS]
    steps = reference_steps(solution) if solution else ()
    feedback = first_wrong_step(working, steps, problem) if steps and working.strip() else None
    if not typed and not (student_answer or "").strip() and working.strip():
        found = find_steps(working)
        student_answer = found[-1].claimed if found else ""
    graded = None
    if typed:
        text = (student_answer or "").strip()
        graded = grade_known(text, reference, answer_type, choices) if text else None
        too_long = len(text) > MAX_ANSWER_CHARS
        student = None if graded is None or too_long else graded.extracted
        student = None if student is None else student.replace("`", "").replace("*", "")
    else:
        student = read_student_answer(student_answer)
    if student is None and not reveal:
        message = _unreadable(student_answer, answer_type if typed else "number")
        extra = [feedback.message] if feedback else []
        text = "\n\n".join([*notes, message, *extra])
        yield Verdict("unreadable", text, feedback=feedback)
        return
    expected = None
    if typed:
        known = grade_known(reference, reference, answer_type, choices).reference
        expected = Expected(problem, system, known, "reference", 1.0)
    elif reference or (cached is not None and cached.matches(problem, system, reference)):
        expected = expected_answer(loaded, problem, reference, system, k, cached=cached)
    else:
        if loaded is None:
            raise ValueError("a problem without a known answer needs a model to check against")
        sampling = replace(SAMPLING, calculator=calculator)
        if max_new_tokens:
            sampling = replace(sampling, max_new_tokens=max_new_tokens)
        for item in self_consistency_stream(loaded, problem, k, system, sampling):
            if isinstance(item, Progress):
                yield item
            else:
                expected = Expected(
                    problem, system, item.answer, "self-consistency", item.share, item
                )
    slips = wrong_steps(working)
    hidden = None if reveal else expected.answer
    same = graded.is_correct if graded is not None else None
    lead, status = _lead(expected, student, student_answer, threshold, same)
    votes = expected.consensus
    deeper_k = deeper_seconds = None
    lines = [*notes, lead]
    if feedback:
        lines.append(feedback.message)
    else:
        lines += _slip_lines(slips, hidden)
    if expected.source != "reference" and (working.strip() or status == "unverified"):
        lines.append(checked_line(find_steps(working)))
    if status == "unverified":
        deeper_k, deeper_seconds = deeper_check(votes.k if votes else k, votes)
        when = f"about {deeper_seconds:.0f} s" if deeper_seconds is not None else "a while"
        lines.append(f"A deeper check with {deeper_k} samples would take {when}.")
    if reveal:
        lines.append(_reveal_line(expected, status, choices if typed else ()))
        status = status if student is not None else "revealed"
    message = "\n\n".join(lines)
    yield Verdict(
        status, message, student, expected, tuple(slips), reveal, feedback, deeper_k, deeper_seconds
    )


def _lead(
    expected: Expected,
    student: str | None,
    student_text: str,
    threshold: float,
    same: bool | None = None,
) -> tuple[str, str]:
    """(Markdown first line, status) of a verdict; ✅ only against a known answer.

    ``same``: whether the student's answer is the known one, when the caller graded it in the
    answer's own type; else numbers are compared."""
    if expected.source == "reference":
        if student is None:
            return "You asked for the answer (the problem's known answer).", "revealed"
        if same if same is not None else _same_answer(student_text, student, expected.answer):
            return (
                f"✅ Correct! **{student}** is right (checked against the known answer).",
                "correct",
            )
        lead = f"🔎 Not yet: **{student}** is not the known answer. Look at your steps again, "
        return lead + "or ask for a hint.", "incorrect"
    votes = expected.consensus
    share = f"{votes.count} of {votes.k} ({votes.share:.0%})" if votes else "none"
    rule = f"I call an answer likely when at least {threshold:.0%} of my samples agree"
    if expected.answer is None or expected.confidence < threshold:
        lead = (
            "❔ I can't verify this answer: this problem has no known answer, and my own "
            f"solutions agree only {share} ({rule}). I won't say right or wrong."
        )
        return lead, "unverified"
    if student is None:
        return f"There is no known answer; my own samples agree {share}.", "revealed"
    if _same_answer(student_text, student, expected.answer):
        lead = f"🟡 Likely right, not verified: {share} of my own solutions reach **{student}** ({rule})."
        return lead, "likely-correct"
    lead = (
        f"🟠 Likely not right, not verified: {share} of my own solutions agree on a different "
        f"answer than **{student}** ({rule})."
    )
    return lead, "likely-incorrect"


def _reveal_line(expected: Expected, status: str, choices: Sequence[str] = ()) -> str:
    if expected.source == "reference":
        answer = expected.answer or ""
        if len(answer) == 1 and answer in LETTERS[: len(choices)]:  # a choice: its text too
            return f"The answer is **{answer}** ({choices[LETTERS.index(answer)]})."
        return f"The answer is **{answer}**."
    if expected.answer is None or status == "unverified":
        return "I can't give you an answer I trust: my own solutions disagree."
    votes = expected.consensus
    return (
        f"My solutions' most common answer is **{expected.answer}** ({votes.count} of {votes.k}); "
        "it is not verified."
    )


def check_answer(
    loaded: LoadedModel | None, problem: str, student_answer: str, *args, **kwargs
) -> Verdict:
    """The ``Verdict`` that ``check_answer_stream`` ends with."""
    *_, last = check_answer_stream(loaded, problem, student_answer, *args, **kwargs)
    assert isinstance(last, Verdict)
    return last


def main(argv: list[str] | None = None) -> None:
    """Check a student's answer to a pasted problem (against --reference, else the model's vote)."""
    parser = cli.ArgumentParser(prog="python -m mathtutor.verdicts", epilog=cli.DEBUG_HELP)
    parser.add_argument("problem")
    parser.add_argument("--answer", default="", help="the student's answer")
    parser.add_argument("--reference", default=None)
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args(argv)
    from mathtutor.models import load_model

    loaded = load_model(args.model)
    print(check_answer(loaded, args.problem, args.answer, args.reference, k=args.k).message)


if __name__ == "__main__":
    sys.exit(cli.run(main))
