"""Arithmetic-step checking on every GSM8K calculator annotation, corrupted copies of them,
prose equations, the safe evaluator's limits, and the calculator used while decoding."""

from __future__ import annotations

import dataclasses
import doctest
import json
import re
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import pytest

from mathtutor import checks
from mathtutor.checks import (
    calculator_result,
    find_steps,
    format_value,
    safe_eval,
    wrong_steps,
)

REPO = Path(__file__).resolve().parents[1]
ANNOTATION = re.compile(r"<<([^<>]*)=([^<>=]*)>>")

# Annotations in train.jsonl that are wrong in the dataset itself: (line, annotation) -> why.
# Every one of the 23,716 verifies today, so this stays empty; the test keeps it exact.
WRONG_IN_TRAIN: dict[tuple[int, str], str] = {}

# Prose equations in test.jsonl (outside <<>>) whose authors got them wrong: line -> why.
WRONG_PROSE_IN_TEST = {
    240: "30/100%1000 = 300: '%' used to mean 'of'",
    411: "$3/2 = $1.50+$3.00: the right side continues a different sum",
    1025: "$32 - $20 = $300: a typo for $12",
}


def read_solutions(path: Path) -> list[str]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line)["answer"] for line in lines]


@pytest.fixture(scope="module")
def train_solutions(gsm8k_dir: Path) -> list[str]:
    return read_solutions(gsm8k_dir / "train.jsonl")


@pytest.fixture(scope="module")
def test_solutions(gsm8k_dir: Path) -> list[str]:
    return read_solutions(gsm8k_dir / "test.jsonl")


def test_doctests_pass():
    result = doctest.testmod(checks)
    assert result.failed == 0
    assert result.attempted >= 8


def test_import_does_not_import_torch():
    code = "import mathtutor.checks, sys; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120)


# --- GSM8K annotations -----------------------------------------------------------------------


def test_every_train_annotation_verifies(train_solutions):
    expected_count = sum(len(ANNOTATION.findall(solution)) for solution in train_solutions)
    assert expected_count > 20_000
    found, failures = 0, {}
    for line, solution in enumerate(train_solutions, start=1):
        for step in find_steps(solution):
            if step.kind != "annotation":
                continue
            found += 1
            assert solution[step.start : step.end].startswith("<<")
            if step.is_correct is not True:
                failures[(line, solution[step.start : step.end])] = step
    assert found == expected_count
    assert set(failures) == set(WRONG_IN_TRAIN), failures


def corrupted(claimed: str, change) -> str:
    """``claimed`` with its value changed, written as GSM8K writes numbers."""
    return format_value(change(Fraction(claimed)))


@pytest.mark.parametrize(
    "change", [lambda v: v + 1, lambda v: v * 10], ids=["plus-one", "times-ten"]
)
def test_corrupted_train_annotations_are_all_flagged(train_solutions, change):
    annotations = [
        (line, f"<<{expression}={corrupted(claimed, change)}>>")
        for line, solution in enumerate(train_solutions, start=1)
        for expression, claimed in ANNOTATION.findall(solution)
        if change(Fraction(claimed)) != Fraction(claimed)  # 0 * 10 is no corruption
    ]
    assert len(annotations) > 20_000
    steps = find_steps("\n".join(annotation for _, annotation in annotations))
    assert len(steps) == len(annotations)
    for (line, annotation), step in zip(annotations, steps, strict=True):
        assert step.is_correct is False, (line, annotation, step)
        assert step.actual is not None


def test_corrupted_solutions_flag_exactly_the_changed_step(test_solutions):
    for line, solution in enumerate(test_solutions[:300], start=1):
        matches = list(ANNOTATION.finditer(solution))
        if not matches:
            continue
        target = matches[len(matches) // 2]
        bad = corrupted(target[2], lambda v: v + 1)
        text = solution[: target.start(2)] + bad + solution[target.end(2) :]
        flagged = [step for step in wrong_steps(text) if step.kind == "annotation"]
        assert [(step.expression, step.claimed) for step in flagged] == [(target[1], bad)], line


def test_prose_equations_in_test_split(test_solutions):
    """Equations written in prose are checked too; the only ones flagged are real slips."""
    equations, flagged = 0, {}
    for line, solution in enumerate(test_solutions, start=1):
        for step in find_steps(solution):
            if step.kind == "equation":
                equations += 1
                assert step.is_correct is not None, (line, step)
                if step.is_correct is False:
                    flagged[line] = step
    assert equations > 150
    assert set(flagged) == set(WRONG_PROSE_IN_TEST), flagged


# --- find_steps on hand-written text -------------------------------------------------------

STEPS = [
    # (text, [(expression, claimed, is_correct, kind)])
    ("Natalia sold 48 / 2 = 24 clips in May.", [("48 / 2", "24", True, "equation")]),
    ("She pays $5 x 3 = $15 in all.", [("$5 x 3", "$15", True, "equation")]),
    ("So 3 * 4 + 2 = 14 apples", [("3 * 4 + 2", "14", True, "equation")]),
    ("So 3 * 4 + 2 = 15 apples", [("3 * 4 + 2", "15", False, "equation")]),
    (
        "3 * 4 + 2 = 12 + 2 = 14",
        [("3 * 4 + 2", "12 + 2", True, "equation"), ("12 + 2", "14", True, "equation")],
    ),
    (
        "3 * 4 + 2 = 12 + 3 = 15",
        [("3 * 4 + 2", "12 + 3", False, "equation"), ("12 + 3", "15", True, "equation")],
    ),
    ("Each gets 10/3 = 3.33 pies", [("10/3", "3.33", True, "equation")]),
    ("Each gets 10/3 = 3.34 pies", [("10/3", "3.34", False, "equation")]),
    ("Each gets 10/3 = 3 pies", [("10/3", "3", False, "equation")]),  # whole claims are exact
    ("2/3 = 0.67 of it", [("2/3", "0.67", True, "equation")]),
    ("5/2 = 2.5 = 3 when rounded", [("5/2", "2.5", True, "equation")]),
    ("That is 1/4 = 25% of the class.", [("1/4", "25%", True, "equation")]),
    ("She earned $2.50 - $2.24 = 26 cents more.", [("$2.50 - $2.24", "26", True, "equation")]),
    ("It took 1 1/2 * 60 = 90 minutes.", [("1 1/2 * 60", "90", True, "equation")]),
    ("They ate 2 + 1 1/2 = 3 1/2 pies", [("2 + 1 1/2", "3 1/2", True, "equation")]),
    ("He reads 4 / 3 = 1 and 1/3 books", [("4 / 3", "1 and 1/3", True, "equation")]),
    ("He spent 1,000 + 2,500 = 3,500 dollars.", [("1,000 + 2,500", "3,500", True, "equation")]),
    ("That is $3.5 \\times 60 = 210$ miles.", [("$3.5 \\times 60", "210", True, "equation")]),
    ("1 – 3/4 = 1/4 of the total", [("1 – 3/4", "1/4", True, "equation")]),
    ("Yuri scored 1/2 (68) + 10 = 44 points", [("1/2 (68) + 10", "44", True, "equation")]),
    ("1. 3 + 4 = 8", [("3 + 4", "8", False, "equation")]),
    ("<< 8/100 = 0.08 >>0.08 m", [("8/100", "0.08", True, "annotation")]),
    ("<<5/0=1>>1", [("5/0", "1", None, "annotation")]),
    ("She sold 48/2 = <<48/2=25>>25 clips", [("48/2", "25", False, "annotation")]),
    ("Let x = 5 and y = x + 2.", []),
    ("So 14 = 14.", []),
    ("We get X*2 - $40 = $250.", []),
    ("He works M + 4 + 2 = 8 hours a day.", []),
    ("100/5 = 5A/5 or 20 = A.", []),
    ("So 3*30 = 30 + M trees.", []),
    ("It is 0900-0130 = 0730 hours.", []),
    ("Weeks 1-2 = 96 hours.", []),
    ("Due 2023-01-05 = 5 days from now; 12/25/2020 = 3 weeks.", []),
    ("He uses 600 x 30 = 18 000 watts.", []),
    ("12 x 1 and 1/4 = 15", []),
    ("a == b, a <= 5 + 2, 3 + 4 => 7", []),
]


@pytest.mark.parametrize(("text", "expected"), STEPS)
def test_find_steps(text, expected):
    steps = find_steps(text)
    assert [(s.expression, s.claimed, s.is_correct, s.kind) for s in steps] == expected
    for step in steps:
        assert step.expression in text[step.start : step.end]
        assert step.claimed in text[step.start : step.end]


def test_wrong_steps_and_step_is_frozen():
    text = "She has 5 x 3 = 16 apples. Then <<16-1=15>>15 are left and 15 * 2 = 31 are eaten."
    wrong = wrong_steps(text)
    assert [(step.expression, step.actual) for step in wrong] == [
        ("5 x 3", Fraction(15)),
        ("15 * 2", Fraction(30)),
    ]
    assert text[wrong[0].start : wrong[0].end] == "5 x 3 = 16"
    with pytest.raises(dataclasses.FrozenInstanceError):
        wrong[0].is_correct = True  # type: ignore[misc]


# --- safe_eval -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("3 * 4 + 2", 14),
        ("48/2", 24),
        ("-2**2", -4),
        ("2**-1", Fraction(1, 2)),
        ("2**3**2", 512),
        ("(1 + 2) * 3", 9),
        ("7 // 2", 3),
        ("7 % 3", 1),
        ("25% * 80", 20),
        ("200 * 25%", 50),
        ("1,000 + 2,000", 3000),
        ("$1,200 x 3", 3600),
        ("5 × 3 ÷ 2", Fraction(15, 2)),
        ("3 \\cdot 4", 12),
        ("2^10", 1024),
        (".5 + 5.", Fraction(11, 2)),
        ("0.1 + 0.2", Fraction(3, 10)),
        ("007 + 1", 8),
        ("4**0.5", 2),
        ("(-8)**(1/3)", -2),
        ("2(3 + 4)", 14),
        ("1 1/2 * 60", 90),
        ("25 / 1/3", 75),
        ("10/2/5", 1),
        ("−5 + 2", -3),
        ("((((((((((((((((((((1))))))))))))))))))))", 1),
        ("1" + "0" * 30, 10**30),
    ],
)
def test_safe_eval_values(expression, value):
    assert safe_eval(expression) == value


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("1/0", "division by zero in '1/0'"),
        ("5 // (2 - 2)", "division by zero"),
        ("5 % 0", "division by zero"),
        ("0 ** -1", "division by zero"),
        ("9**9**9", "too large in '9\\*\\*9\\*\\*9'"),
        ("2**200", "too large"),
        ("0.5**200", "too large"),
        ("10**31", "beyond 10\\*\\*30"),
        ("1" + "0" * 31, "beyond 10\\*\\*30"),
        ("9" * 41, "longer than 40 digits"),
        ("9" * 10_000, "longer than 200 characters"),
        ("(" * 1000 + "1" + ")" * 1000, "longer than 200 characters"),
        ("(" * 21 + "1" + ")" * 21, "nested deeper than 20"),
        ("2**0.5", "not a rational number"),
        ("", "empty expression"),
        ("2 +", "unexpected 'end of expression' in '2 \\+'"),
        ("(2 + 3", "missing '\\)'"),
        ("2 + 3)", "unexpected '\\)'"),
        ("5 7", "unexpected '7' in '5 7'"),
        ("__import__('os')", "unexpected '_'"),
        ("x + 1", "unexpected 'x'"),
        ("1e5", "unexpected 'e'"),
    ],
)
@pytest.mark.timeout(10)  # a blow-up that slips through must fail, not hang the suite
def test_safe_eval_errors_are_quick_value_errors(expression, message):
    started = time.perf_counter()
    with pytest.raises(ValueError, match=message):
        safe_eval(expression)
    assert time.perf_counter() - started < 0.05


# --- calculator ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Natalia sold <<48/2=", "24"),
        ("Natalia sold <<48/2= ", "24"),
        ("so 3 * 4 + 2 = ", "14"),
        ("so 3 * 4 + 2 =", "14"),
        ("each gets 10 / 3 = ", "3.333333"),
        ("1/8 =", "0.125"),
        ("2/3 =", "0.666667"),
        ("1/3*3 =", "1"),
        ("5 - 7 =", "-2"),
        ("$5 x 3 = ", "15"),
        ("1,000 + 2,500 =", "3500"),
        ("1 1/2 * 60 = ", "90"),
        ("<<2*3=6*2=", "12"),
        ("<<7=", "7"),
        ("x = ", None),
        ("The total = ", None),
        ("a == ", None),
        ("x <= ", None),
        ("3 * 4 = 12", None),
        ("3 * 4 = \n", None),
        ("<<48/2=24>>24 = ", None),
        ("7 / 0 =", None),
        ("<<9**9**9=", None),
        ("X*2 - 40 = ", None),
        ("", None),
    ],
)
def test_calculator_result(text, expected):
    assert calculator_result(text) == expected


def test_calculator_result_is_cheap_on_long_text():
    long_text = "Janet's ducks lay 16 eggs per day. " * 2000
    started = time.perf_counter()
    for _ in range(2000):
        assert calculator_result(long_text) is None
    assert calculator_result(long_text + "16 - 3 - 4 = ") == "9"
    assert calculator_result(long_text + "<<16-3-4=") == "9"
    assert time.perf_counter() - started < 0.5


# Sums of n ones, written "1+1+...+1": 2n - 1 characters, so 100 ones are within the limit
# (199 characters) and 101 ones are not (201).
def ones(n: int) -> str:
    return "+".join(["1"] * n)


@pytest.mark.parametrize("prefix", ["", "The total is ", "So we add: "])
def test_a_long_step_within_the_limit_is_checked_exactly(prefix):
    assert len(ones(100)) == checks.MAX_CHARS - 1
    (right,) = find_steps(f"{prefix}{ones(100)} = 100")
    assert (right.expression, right.actual, right.is_correct) == (ones(100), 100, True)
    (wrong,) = wrong_steps(f"{prefix}{ones(100)} = 99")
    assert (wrong.expression, wrong.actual) == (ones(100), 100)
    assert calculator_result(f"{prefix}{ones(100)} = ") == "100"
    assert calculator_result(f"{prefix}<<{ones(100)}=") == "100"


@pytest.mark.parametrize("count", [101, 150, 1000])
def test_a_step_past_the_limit_is_unchecked_never_judged_by_its_tail(count):
    text = f"Adding them up, {ones(count)} = {count}"
    (step,) = find_steps(text)  # the case: 101 ones was flagged, computing 100
    assert (step.actual, step.is_correct, step.claimed) == (None, None, str(count))
    assert step.expression.startswith("...") and step.expression.endswith("+1")
    assert wrong_steps(text) == [] == wrong_steps(f"{ones(count)} = {count + 1}")
    # the calculator inserts nothing rather than the tail's value (100 for 101 ones)
    assert calculator_result(f"{ones(count)} = ") is None
    assert calculator_result(f"{ones(count)} =") is None
    assert calculator_result(f"so <<{ones(count)}=") is None
    with pytest.raises(ValueError, match="longer than 200 characters"):
        safe_eval(ones(count))


def test_a_long_line_is_fine_when_the_step_itself_is_short():
    words = "Janet counts her ducks and eggs every single morning. " * 10
    text = f"{words}Then 16 - 3 - 4 = 9 and 9 * 2 = 19."
    assert [(s.expression, s.is_correct) for s in find_steps(text)] == [
        ("16 - 3 - 4", True),
        ("9 * 2", False),
    ]
    assert calculator_result(f"{words}Then 16 - 3 - 4 = ") == "9"
    # a list of numbers longer than the limit, then a separate short step
    listing = ", ".join(str(n) for n in range(100)) + ", and 3 + 4 = 7"
    assert [(s.expression, s.is_correct) for s in find_steps(listing)] == [("3 + 4", True)]


@pytest.mark.parametrize("spaces", [195, 205, 400])
def test_a_spaced_out_product_past_the_limit_is_refused(spaces):
    """'2 \\times <spaces> 3 + 1' is 7; its tail '3 + 1' is 4: neither the checker nor the
    calculator may judge by the tail, wherever the window starts."""
    text = "2 \\times" + " " * spaces + "3 + 1 = 4"
    assert [(s.actual, s.is_correct) for s in find_steps(text)] == [(None, None)]
    assert calculator_result(text[: -len(" 4")]) is None
    assert [s.actual for s in find_steps("2 \\times 3 + 1 = 7")] == [7]


def test_a_long_claim_costs_linear_time():
    text = "2 + 2 = " + "4 " * 50_000
    started = time.perf_counter()
    assert find_steps(text) == []  # "4 4 4 ..." is not one number
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Fraction(24), "24"),
        (Fraction(-3), "-3"),
        (Fraction(10, 3), "3.333333"),
        (Fraction(-1, 8), "-0.125"),
        (Fraction(5, 2), "2.5"),
        (Fraction(2, 3), "0.666667"),
        (Fraction(-1, 10**8), "0"),
        (Fraction(19_999_999, 20_000_000), "1"),
    ],
)
def test_format_value(value, text):
    assert format_value(value) == text
