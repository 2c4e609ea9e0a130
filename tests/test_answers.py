"""Answer extraction and grading on real GSM8K solutions, adversarial completions, and parity
with an independent re-implementation of lm-evaluation-harness's gsm8k scoring."""

from __future__ import annotations

import dataclasses
import doctest
import itertools
import json
import random
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from mathtutor import answers
from mathtutor.answers import (
    Grade,
    answers_match,
    extract_answer,
    grade,
    lm_eval_flexible,
    lm_eval_match,
    lm_eval_strict,
    parse_number,
    reference_answer,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def solutions(gsm8k_dir: Path) -> list[str]:
    """The first 200 reference solutions of the GSM8K test split ($MATHTUTOR_GSM8K_DIR)."""
    with (gsm8k_dir / "test.jsonl").open(encoding="utf-8") as lines:
        return [json.loads(line)["answer"] for line in itertools.islice(lines, 200)]


def final_number(solution: str) -> str:
    """The number after '#### ' with its thousands separators removed ("2,125" -> "2125")."""
    return solution.rsplit("#### ", 1)[1].strip().replace(",", "")


def test_doctests_pass():
    result = doctest.testmod(answers)
    assert result.failed == 0
    assert result.attempted >= 15


def test_import_does_not_import_torch():
    code = "import mathtutor.answers, sys; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120)


# --- real GSM8K solutions ------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["strict", "flexible", "auto"])
def test_gsm8k_solutions_grade_themselves(solutions, mode):
    for solution in solutions:
        result = grade(solution, solution, mode=mode)
        assert result.is_correct, (mode, solution)
        assert result.method == ("strict" if mode == "auto" else mode)
        assert result.extracted == final_number(solution)
        assert result.reference == final_number(solution)


STYLES = {
    "boxed": ("So the answer is $\\boxed{{{n}}}$.", "boxed"),
    "answer-is": ("The answer is {n}.", "answer-is"),
    "final-answer-is": ("Therefore, the final answer is: {n}", "answer-is"),
    "a-colon": ("A: {n}", "a-colon"),
    "answer-colon": ("**Answer:** {n}", "a-colon"),
    "dollars": ("In total that is {n} dollars.", "flexible"),
    "thousands": ("The answer is {n_commas}.", "answer-is"),
    "thousands-boxed": ("\\boxed{{\\${n_commas}}}", "boxed"),
    "chatter": ("The answer is {n}. I hope this helps! Ask me about problems 1 to 3.", "answer-is"),
    "bare-last-line": ("{n}", "flexible"),
}


@pytest.mark.parametrize("style", sorted(STYLES))
def test_gsm8k_solutions_in_other_answer_styles(solutions, style):
    template, method = STYLES[style]
    for solution in solutions:
        body, number = solution.rsplit("####", 1)[0].rstrip(), final_number(solution)
        for answer, expected in ((int(number), True), (int(number) + 1, False)):
            line = template.format(n=answer, n_commas=f"{answer:,}")
            result = grade(f"{body}\n{line}", solution)
            assert result.is_correct is expected, (style, line, result)
            assert result.method == method, (style, line, result)
            assert result.extracted == str(answer)
        # without '#### ' lm-eval strict-match finds nothing, and flexible takes the last number
        assert grade(f"{body}\n{line}", solution, mode="strict").extracted is None


# --- adversarial completions ---------------------------------------------------------------

CASES = [
    # (completion, reference, mode, is_correct, extracted, method)
    ("I don't know.", "#### 5", "auto", False, None, None),
    ("I don't know.", "#### 5", "strict", False, None, None),
    ("I don't know.", "#### 5", "flexible", False, None, None),
    ("#### 5\n#### 6", "#### 5", "strict", True, "5", "strict"),
    ("#### 5\n#### 6", "#### 6", "strict", False, "5", "strict"),
    ("#### 5\n#### 6", "#### 6", "flexible", True, "6", "flexible"),
    ("#### 5\n#### 6", "#### 5", "auto", True, "5", "strict"),
    ("It drops by 3 degrees, so it is -3.\n#### -3", "-3", "strict", True, "-3", "strict"),
    ("The temperature is -3 degrees.", "#### -3", "auto", True, "-3", "flexible"),
    ("10 - 4", "6", "auto", False, "4", "flexible"),  # a binary minus is not a sign
    ("so 10-4", "6", "auto", False, "4", "flexible"),
    ("Answer: 5\nWait, I made a mistake: the answer is 6.", "6", "auto", True, "6", "answer-is"),
    ("#### 3.50", "3.5", "strict", False, "3.50", "strict"),  # lm-eval compares strings
    ("#### 3.50", "3.5", "auto", True, "3.5", "strict"),
    ("#### 1,000.", "1000", "strict", True, "1000", "strict"),
    ("#### $1,000", "1000", "strict", False, None, None),  # lm-eval's regex wants a digit
    ("#### $1,000", "1000", "auto", True, "1000", "strict"),
    ("She paid $1,200.50 in total.", "1200.5", "auto", True, "1200.5", "flexible"),
    ("She paid $1,200.50 in total.", "#### 1200.50", "flexible", True, "1200.50", "flexible"),
    ("The answer is 72. Next question: what is 5 + 5? 10", "72", "auto", True, "72", "answer-is"),
    (
        "The answer is 72. Next question: what is 5 + 5? 10",
        "72",
        "flexible",
        False,
        "10",
        "flexible",
    ),
    ("\\boxed{\\frac{1}{2}}", "0.5", "auto", True, "1/2", "boxed"),
    ("\\boxed{\\dfrac{1}{2}}", "0.5", "boxed", True, "1/2", "boxed"),
    ("\\boxed{\\tfrac12}", "1/2", "boxed", True, "1/2", "boxed"),
    ("\\boxed{0.5}", "\\boxed{\\frac{1}{2}}", "auto", True, "0.5", "boxed"),
    ("first \\boxed{3}, then \\boxed{{4}}", "4", "boxed", True, "4", "boxed"),
    ("\\boxed{\\text{12 cm}}", "12", "auto", True, "12", "boxed"),
    ("\\boxed{12\\text{ cm}}", "12", "auto", True, "12", "boxed"),
    ("\\boxed{1\\,000}", "1000", "auto", True, "1000", "boxed"),
    ("\\boxed{25\\%}", "25", "auto", True, "25", "boxed"),
    ("\\boxed{\\$18.00}", "#### 18", "auto", True, "18", "boxed"),
    ("\\boxed{x > 3}", "x>3", "boxed", True, "x>3", "boxed"),
    ("\\boxed{5", "5", "boxed", False, None, None),  # unclosed: no boxed answer
    ("\\boxed{5", "5", "auto", True, "5", "flexible"),
    ("The final answer is boxed{51}.", "51", "auto", True, "51", "boxed"),
    ("The answer is 7", "\\boxed{7}", "boxed", False, None, None),
    ("the final answer is: 42.", "42", "auto", True, "42", "answer-is"),
    ("The answer is **18**.", "18", "auto", True, "18", "answer-is"),
    ("The answer is $\\frac{3}{4}$ of the pie.", "0.75", "auto", True, "3/4", "answer-is"),
    ("A: 16 - 3 - 4 = 9 eggs", "9", "auto", True, "9", "flexible"),
    ("Q: how many?\nA: 9 eggs\nThat was easy, 10/10.", "9", "auto", True, "9", "a-colon"),
    ("He walked 1 1/2 miles.", "1.5", "auto", True, "3/2", "flexible"),
    ("Half of it is 50%.", "50", "auto", True, "50", "flexible"),
    ("...", "#### 5", "flexible", False, "..", "flexible"),  # lm-eval takes "..." as a number
    ("Answer: 5", "[invalid]", "strict", True, None, None),  # exactly lm-eval: both '[invalid]'
]


@pytest.mark.parametrize(
    ("completion", "reference", "mode", "is_correct", "extracted", "method"), CASES
)
def test_adversarial_completions(completion, reference, mode, is_correct, extracted, method):
    result = grade(completion, reference, mode=mode)
    assert (result.is_correct, result.extracted, result.method) == (is_correct, extracted, method)
    assert extract_answer(completion, mode=mode) == extracted


def test_grade_is_frozen_and_names_its_reference():
    result = grade("The answer is 1,000.", "Add it up: 600 + 400 = 1000\n#### 1,000")
    assert result == Grade(True, "1000", "1000", "answer-is")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.is_correct = False  # type: ignore[misc]


def test_unknown_mode_and_blank_reference_are_errors():
    with pytest.raises(ValueError, match="strict, flexible, boxed, auto"):
        extract_answer("42", mode="lenient")
    with pytest.raises(ValueError, match="strict, flexible, boxed, auto"):
        grade("42", "42", mode="")
    with pytest.raises(ValueError, match="reference answer is empty"):
        grade("42", "  ")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("12", 12),
        ("12 cm", 12),
        ("12 m^2", 12),
        ("$1,200.50", Fraction(240100, 200)),
        ("3/4", Fraction(3, 4)),
        ("1 1/2", Fraction(3, 2)),
        ("-1 1/2", Fraction(-3, 2)),
        ("25%", 25),
        ("-7", -7),
        ("+7", 7),
        ("$-7", -7),
        ("minus 7", -7),
        ("72.", 72),
        ("0.75", Fraction(3, 4)),
        (".5", Fraction(1, 2)),
        ("\\frac{3}{4}", Fraction(3, 4)),
        ("$\\frac{3}{4}$", Fraction(3, 4)),
        ("1.5e3", 1500),
        ("twelve", 12),
        ("Twelve eggs", 12),
        ("forty-two", 42),
        ("one hundred and five", 105),
        ("two thousand three hundred", 2300),
        ("one million two hundred thousand", 1_200_000),
        ("a dozen", 12),
        ("three dozen eggs", 36),
        ("two and a half", Fraction(5, 2)),
        ("zero", 0),
        ("3 apples and 4 pears", None),
        ("5 - 3", None),
        ("1/0", None),
        ("Tuesday", None),
        ("a", None),
        ("", None),
        ("1" * 1000, None),
        ("1e999", None),
    ],
)
def test_parse_number(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("1,000", "1000", True),
        ("$5", "5.00", True),
        ("0.5", "1/2", True),
        ("\\frac{1}{2}", "0.50", True),
        ("50%", "50", True),  # GSM8K drops the percent sign
        ("50%", "0.5", False),
        ("0.333333", "1/3", True),  # 6+ decimals: relative 1e-6
        ("0.3333", "1/3", False),  # few decimals: exact
        ("3.3e-10", "0", True),  # scientific notation: absolute 1e-9
        ("72", "72.0001", False),
        ("twelve", "12", True),
        ("Tuesday", "tuesday", True),
        ("x > 3", "x>3", True),
        ("12 apples", "12 pears", True),  # unit words are dropped
        ("", "", False),
        ("5", "five apples and 3", False),
    ],
)
def test_answers_match(a, b, expected):
    assert answers_match(a, b) is expected
    assert answers_match(b, a) is expected


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("48/2 = <<48/2=24>>24 clips\n#### 72", "72"),
        ("#### 2,125", "2125"),
        ("\\boxed{\\dfrac{1}{2}}", "1/2"),
        ("$0.50", "0.5"),
        ("1,000", "1000"),
        ("-3.5", "-3.5"),
        ("x > 3", "x>3"),
    ],
)
def test_reference_answer(reference, expected):
    assert reference_answer(reference) == expected


# --- parity with lm-evaluation-harness -----------------------------------------------------


def lm_eval_reference(response: str, gold: str, filter_name: str) -> tuple[str, bool]:
    """The gsm8k scoring pipeline, re-typed from the task definition (regex filter with
    group_select, take_first, exact_match on numpy strings with regexes_to_ignore)."""
    pattern, group_select = {
        "strict": (r"#### (\-?[0-9\.\,]+)", 0),
        "flexible": (r"(-?[$0-9.,]{2,})|(-?[0-9]+)", -1),
    }[filter_name]
    found = re.findall(pattern, response)
    if not found:
        extracted = "[invalid]"
    else:
        chosen = found[group_select]
        if isinstance(chosen, tuple):
            chosen = next(group for group in chosen if group)
        extracted = chosen.strip()
    predictions, references = np.array([extracted]), np.array([gold])
    for ignored in [",", "\\$", "(?s).*#### ", "\\.$"]:
        predictions = np.array([re.sub(ignored, "", x) for x in predictions])
        references = np.array([re.sub(ignored, "", x) for x in references])
    predictions, references = np.char.lower(predictions), np.char.lower(references)
    return extracted, bool((predictions == references)[0])


PIECES = [
    "#### ", "####", "# ", " ", " ", "\n", "-", "-", ".", ".", ",", "$", "$", "x", "A",
    "İ", "\x00", "The answer is ", "\\boxed{", "}", "1,000", "3.5", "12", "0", "7", "42",
]  # fmt: skip


def random_text(rng: random.Random) -> str:
    return "".join(rng.choice(PIECES + list("0123456789")) for _ in range(rng.randint(0, 14)))


def random_reference(rng: random.Random, prediction: str) -> str:
    """Often a variant of what lm-eval will extract from ``prediction``, so matches happen."""
    roll = rng.random()
    if roll < 0.3:
        return random_text(rng)
    value = lm_eval_flexible(prediction) if roll < 0.65 else lm_eval_strict(prediction)
    value = rng.choice([value, value + ".", "$" + value, value.upper(), value.replace(",", "")])
    return rng.choice(["", "Some work.\n#### ", "so\n#### 1\n#### "]) + value


def test_lm_eval_parity_on_generated_strings():
    rng = random.Random(0)
    matches = {"strict": 0, "flexible": 0}
    for _ in range(3000):
        text = random_text(rng)
        reference = random_reference(rng, text)
        if not reference.strip():
            continue
        for mode, filter_function in (("strict", lm_eval_strict), ("flexible", lm_eval_flexible)):
            expected_extracted, expected_match = lm_eval_reference(text, reference, mode)
            assert filter_function(text) == expected_extracted, (mode, text)
            assert lm_eval_match(expected_extracted, reference) is expected_match, (text, reference)
            result = grade(text, reference, mode=mode)
            assert result.is_correct is expected_match, (mode, text, reference)
            assert (result.extracted is None) == (expected_extracted == "[invalid]")
            assert (extract_answer(text, mode=mode) is None) == (expected_extracted == "[invalid]")
            matches[mode] += expected_match
    # the generator must produce enough positives for the parity to mean something
    assert matches["strict"] > 200 and matches["flexible"] > 300, matches


def test_lm_eval_parity_on_gsm8k_solutions(solutions):
    rng = random.Random(0)
    for solution in solutions:
        body = solution.rsplit("####", 1)[0]
        for text in (solution, body, body + "#### " + final_number(solution) + ".", body[::-1]):
            reference = rng.choice([solution, final_number(solution), "#### 0"])
            for mode in ("strict", "flexible"):
                expected_extracted, expected_match = lm_eval_reference(text, reference, mode)
                extract = lm_eval_strict if mode == "strict" else lm_eval_flexible
                assert extract(text) == expected_extracted
                assert grade(text, reference, mode=mode).is_correct is expected_match
