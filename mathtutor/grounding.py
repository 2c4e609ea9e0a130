"""Grounded tutoring: a known worked solution's steps as hints, and first-wrong-step feedback.

A problem with a worked solution (GSM8K main ``<<48/2=24>>`` annotations, GSM8K socratic
``How many eggs does Janet sell? ** 16 - 3 - 4 = <<16-3-4=9>>9``, the generators' steps, an
upload's ``solution`` field) is tutored from that solution, not from a model:

- ``reference_steps``: the solution's arithmetic steps in order, each with its value and the
  question it answers (the socratic sub-question, else the step's sentence with its result
  blanked out).
- ``grounded_hint``: step ``i`` turned into a question, with the numbers it uses; it never
  states the value of this step or of a later one (so the final answer stays hidden until the
  student finds it), unless the problem itself states that number.
- ``first_wrong_step``: the student's working (``checks.find_steps``) matched to the steps'
  values; names the first step that departs and what that step should have found (its value,
  unless it is the final answer), never a later step, and keeps every arithmetic slip.
- ``safe_rephrasing``: whether a model's rewording of a grounded hint may be shown (same
  numbers, nothing hidden, a whole question).

>>> steps = reference_steps("How many eggs does Janet sell? ** 16 - 3 - 4 = <<16-3-4=9>>9 eggs."
...                         "\\nHow much does she make? ** 9 * 2 = $<<9*2=18>>18\\n#### 18")
>>> [(s.expression, s.result) for s in steps], grounded_hint(steps, 1, "").text
([('16-3-4', '9'), ('9*2', '18')], 'How much does she make? Use 9 and 2.')
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from fractions import Fraction

from mathtutor.answers import parse_number
from mathtutor.checks import Step, find_steps, format_value

_DIGITS = r"(?<![\w.])(?:\d[\d,]*(?:\.\d+)?|\.\d+)"  # "1,000", "2.5"; ".5" is a number too
_NUMBER = re.compile(_DIGITS)
_STATED = re.compile(rf"{_DIGITS}(?:/\d+)?")  # a tight "2/3" is one number
_WRITTEN_RESULT = re.compile(r"\s*\$?\s*-?\d[\d,]*(?:\.\d+)?")
_ANNOTATION = re.compile(r"<<[^<>]*>>")
_BARE = re.compile(r"\s*\$?\s*[\d,.]+\s*")
_SENTENCE_END = re.compile(r"[.?!](?=[\s\"')\]]*$)")


@dataclass(frozen=True)
class RefStep:
    """One arithmetic step of a known worked solution."""

    index: int  # 0-based position among the solution's steps
    expression: str  # "16-3-4"
    value: Fraction  # what the solution found (and later steps use)
    question: str  # the quantity this step finds, as a question or a sentence with ___
    operands: tuple[Fraction, ...]  # the numbers the expression uses
    claimed: str = ""  # the result as the solution writes it ("60%", "$18")

    @property
    def result(self) -> str:
        return format_value(self.value)


def _value(text: str) -> Fraction | None:
    value = parse_number(text)
    return None if value is None else Fraction(value)


def operands(expression: str) -> tuple[Fraction, ...]:
    """The numbers an expression uses, in order ("48/2" -> 48, 2)."""
    return tuple(v for v in (_value(n) for n in _NUMBER.findall(expression)) if v is not None)


def numbers_in(text: str) -> set[Fraction]:
    """Every number written in digits in ``text``, as exact values ("1,000" -> 1000, "2/3")."""
    return {v for v in (_value(n) for n in _STATED.findall(text)) if v is not None}


def reference_steps(solution: str) -> tuple[RefStep, ...]:
    """The arithmetic steps of a worked solution, in order (lines after ``####`` ignored).

    On a line with annotations only those count (the plain equation around them repeats
    them); a line without annotations contributes its plain equations; prose lines none.
    """
    body = solution.split("####", 1)[0]
    steps: list[RefStep] = []
    for line in body.splitlines():
        question = ""
        if " ** " in line:  # socratic: "sub-question ** step"
            question, line = (part.strip() for part in line.split(" ** ", 1))
        found = find_steps(line)
        annotations = [s for s in found if s.kind == "annotation"]
        found = annotations or found
        segment_start = 0
        for number, step in enumerate(found):
            last_on_line = number == len(found) - 1
            value = _value(step.claimed)
            if value is None:
                value = step.actual
            if value is None or _BARE.fullmatch(step.expression):
                continue  # "<<4=4>>" restates a number: no step to take
            end = step.end
            written = _WRITTEN_RESULT.match(line, end) if step.kind == "annotation" else None
            end = written.end() if written else end
            own = question if question and last_on_line else ""
            text = own or _blanked(line[segment_start : len(line) if last_on_line else end], value)
            used = operands(step.expression)
            steps.append(RefStep(len(steps), step.expression, value, text, used, step.claimed))
            segment_start = end
    return tuple(steps)


def _blanked(segment: str, value: Fraction) -> str:
    """The step's sentence without annotations, its result written as ___, ÷ for division."""
    text = _ANNOTATION.sub("", segment).strip(" ,;")
    text = re.sub(r"(?<=\d)\s*/\s*(?=\d)", " ÷ ", text)  # "48/2" would read as a stated 24
    text = re.sub(r"^(?:and|so|then)\s+", "", text, flags=re.I)
    parts, last = [], 0
    for match in _NUMBER.finditer(text):
        if _value(match[0]) == value:
            parts.append(text[last : match.start()] + "___")
            last = match.end()
    text = "".join(parts) + text[last:]
    return text[:1].upper() + text[1:]


# --------------------------------------------------------------------------- hints
@dataclass(frozen=True)
class GroundedHint:
    """Hint ``step.index + 1`` of ``total``: the question of one reference step."""

    text: str
    step: RefStep
    total: int

    @property
    def is_last(self) -> bool:
        return self.step.index == self.total - 1


def hidden_values(steps: tuple[RefStep, ...], index: int, problem: str) -> set[Fraction]:
    """Values a hint for step ``index`` must not state: its own and later steps' results,
    except numbers the problem states."""
    given = numbers_in(problem)
    return {s.value for s in steps[index:]} - given


def grounded_hint(steps: tuple[RefStep, ...], index: int, problem: str) -> GroundedHint:
    """Step ``index`` turned into a question, with the numbers it uses (none of them hidden)."""
    if not 0 <= index < len(steps):
        raise ValueError(f"hint number must be from 1 to {len(steps)}, got {index + 1}")
    step = steps[index]
    hidden = hidden_values(steps, index, problem)
    question = step.question
    if numbers_in(question) & hidden:
        question = re.sub(_NUMBER, lambda m: "___" if _value(m[0]) in hidden else m[0], question)
    if "___" in question:
        question = question.rstrip(".")
        question += f"{'' if question.endswith('?') else '.'} What number goes in the blank?"
    elif not question.endswith("?"):
        question = f"{question.rstrip('.')}?"
    uses = [format_value(v) for v in dict.fromkeys(step.operands) if v not in hidden]
    if uses and "___" not in question:
        listed = uses[0] if len(uses) == 1 else ", ".join(uses[:-1]) + " and " + uses[-1]
        question += f" Use {listed}."
    return GroundedHint(question, step, len(steps))


def safe_rephrasing(
    text: str, hint: GroundedHint, steps: tuple[RefStep, ...], problem: str
) -> bool:
    """Whether a model's rewording of ``hint`` may replace it: a whole question (ends at a
    sentence boundary, asks), no ``####``, and only numbers the hint or the problem states,
    none of them hidden (``hidden_values``).

    >>> steps = reference_steps("Sold 48/2 = <<48/2=24>>24 clips.\\n#### 24")
    >>> hint = grounded_hint(steps, 0, "48 clips")
    >>> safe_rephrasing("How many is half of 48?", hint, steps, "48 clips")
    True
    >>> safe_rephrasing("Half of 48 is 24?", hint, steps, "48 clips")
    False
    """
    text = text.strip()
    if not text or "####" in text or "?" not in text or not _SENTENCE_END.search(text):
        return False
    allowed = numbers_in(hint.text) | numbers_in(problem)
    shown = numbers_in(text)
    return shown <= allowed and not shown & hidden_values(steps, hint.step.index, problem)


# --------------------------------------------------------------------------- feedback
@dataclass(frozen=True)
class StepFeedback:
    """Where a student's working first departs from the reference solution."""

    student_steps: tuple[Step, ...]  # the student's arithmetic steps, in order
    departs_at: int | None  # index into student_steps of the first off-track step
    reference_index: int | None  # the reference step that is missed first
    slips: tuple[Step, ...]  # student steps whose arithmetic is wrong
    total: int  # reference steps
    message: str  # Markdown for the student

    @property
    def on_track(self) -> bool:
        return self.departs_at is None and self.reference_index is None


def first_wrong_step(working: str, steps: tuple[RefStep, ...], problem: str = "") -> StepFeedback:
    """Match the student's arithmetic steps to the reference values (rule in the module doc).

    A student step is on track when its value is a reference value, or when a later on-track
    step uses it (a student may split or merge steps). A reference step is covered when the
    student reaches its value or reaches a later step that builds on it.
    """
    student = tuple(find_steps(working or ""))
    slips = tuple(s for s in student if s.is_correct is False)
    values = [_value(s.claimed) if _value(s.claimed) is not None else s.actual for s in student]
    reference = {s.value for s in steps}
    on_track = [False] * len(student)
    used: set[Fraction] = set()
    for i in range(len(student) - 1, -1, -1):  # a slip is off track even on a known value
        known = values[i] is not None and (values[i] in reference or values[i] in used)
        on_track[i] = known and student[i].is_correct is not False
        if on_track[i]:
            used |= set(operands(student[i].expression))
    # each on-track student step reaches at most one reference step (values can repeat)
    unmatched = [i for i in range(len(student)) if on_track[i]]
    covered = [False] * len(steps)
    for k, step in enumerate(steps):
        match = next((i for i in unmatched if values[i] == step.value), None)
        if match is not None:
            unmatched.remove(match)
            covered[k] = True
    for k in range(len(steps) - 1, -1, -1):  # a covered step covers what it builds on
        if covered[k]:
            for i in range(k):
                if steps[i].value in steps[k].operands:
                    covered[i] = True
    departs_at = next((i for i, ok in enumerate(on_track) if not ok), None)
    missed = next((i for i, ok in enumerate(covered) if not ok), None)
    message = _feedback_message(student, departs_at, missed, steps, slips, problem)
    return StepFeedback(student, departs_at, missed, slips, len(steps), message)


def _feedback_message(
    student: tuple[Step, ...],
    departs_at: int | None,
    missed: int | None,
    steps: tuple[RefStep, ...],
    slips: tuple[Step, ...],
    problem: str,
) -> str:
    final = steps[-1].value if steps else None
    lines = []
    if not student:
        lines.append("I found no arithmetic steps in your working (write them like `16 - 3 = 13`).")
    elif missed is None and departs_at is None:
        lines.append(f"Your working matches all {len(steps)} steps of the solution.")
    elif missed is None:
        step = student[departs_at]
        lines.append(
            f"Your step `{step.expression} = {step.claimed}` is not one the solution needs; "
            "the other steps match it."
        )
    else:
        target = steps[missed]
        should = f" (the solution gets **{target.result}** there)"
        if target.value == final and target.value not in numbers_in(problem):
            should = ""
        where = f"**step {missed + 1}** of {len(steps)}"
        if departs_at is None:
            lines.append(f"Your working stops before {where}: {target.question}{should}")
        else:
            step = student[departs_at]
            lines.append(
                f"🔎 Your working first departs from the solution at {where}, your "
                f"`{step.expression} = {step.claimed}`. That step should find: "
                f"{target.question}{should}"
            )
    for slip in slips[:5]:
        true = format_value(slip.actual) if slip.actual is not None else None
        if true is None or (final is not None and slip.actual == final):
            lines.append(
                f"- Arithmetic: `{slip.expression} = {slip.claimed}` is not right: redo it."
            )
        else:
            lines.append(
                f"- Arithmetic: `{slip.expression} = {slip.claimed}` should be **{true}**."
            )
    return "\n\n".join(lines)


# --------------------------------------------------------------------------- test students
def student_working(
    steps: tuple[RefStep, ...], changed: int | None = None, kind: str = "slip", delta: int = 1
) -> str:
    """A student's working written from the reference steps (``expression = value`` lines),
    with step ``changed`` altered and the change carried into later steps (for the tests and
    ``bench/bench_tutor_feedback.py``).

    ``kind`` "slip": the step's result is off by ``delta`` (wrong arithmetic); "operand": its
    first number is off by ``delta`` and the arithmetic is right (a wrong step that checks out).

    >>> steps = reference_steps("16-3-4=<<16-3-4=9>>9\\n9*2=<<9*2=18>>18\\n#### 18")
    >>> student_working(steps, 0)
    '16 - 3 - 4 = 10\\n10 * 2 = 20'
    >>> student_working(steps, 0, "operand")
    '17 - 3 - 4 = 10\\n10 * 2 = 20'
    """
    from mathtutor.checks import safe_eval

    if kind not in ("slip", "operand"):
        raise ValueError(f"kind must be 'slip' or 'operand', got {kind!r}")
    replaced: dict[Fraction, Fraction] = {}
    lines = []
    for step in steps:
        expression = re.sub(
            _NUMBER,
            lambda m: format_value(replaced[v]) if (v := _value(m[0])) in replaced else m[0],
            step.expression,
        )
        if step.index == changed and kind == "operand":
            first = _NUMBER.search(expression)
            bumped = format_value(_value(first[0]) + delta)
            expression = f"{expression[: first.start()]}{bumped}{expression[first.end() :]}"
        value = step.value
        # only a changed step is recomputed ("100%" reads as 1 there, 100 in the claim)
        if expression != step.expression:
            with contextlib.suppress(ValueError):
                value = safe_eval(expression)
        claimed = value + delta if step.index == changed and kind == "slip" else value
        if claimed != step.value:
            replaced[step.value] = claimed
        spaced = re.sub(r"(?<=[\d)%])\s*([-+*])\s*(?=[\d(.])", r" \1 ", expression)
        percent = "%" if step.claimed.strip().endswith("%") else ""
        lines.append(f"{spaced} = {format_value(claimed)}{percent}")  # spaced: not a date
    return "\n".join(lines)
