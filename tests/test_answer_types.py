"""Answer types beyond numbers: LaTeX (math-verify), multiple choice, exact strings, HLE-style
completions with a stated confidence, and HLE's RMS calibration error against a hand count."""

from __future__ import annotations

import math

import pytest

from mathtutor.answers import extract_confidence, grade
from mathtutor.metrics import categorize, follows_format, rms_calibration_error
from mathtutor.prompts import FORMATS, render
from mathtutor.results import results_rows, summarize


@pytest.mark.parametrize(
    ("answer", "reference"),
    [
        ("\\frac{1}{2}", "0.5"),
        ("0.5", "\\dfrac12"),
        ("\\dfrac12", "\\frac{1}{2}"),
        ("1+x", "x+1"),
        ("2\\sqrt{2}", "\\sqrt{8}"),
        ("(1, 3]", "(1,3]"),
    ],
)
def test_latex_equivalent_forms_are_equal(answer, reference):
    completion = f"We simplify, so the answer is $\\boxed{{{answer}}}$."
    result = grade(completion, reference, "latex")
    assert result.is_correct and result.method == "boxed"


@pytest.mark.parametrize(
    ("answer", "reference"), [("x-1", "x+1"), ("\\frac{1}{3}", "0.5"), ("[1, 3]", "(1,3]")]
)
def test_latex_different_values_are_wrong(answer, reference):
    assert not grade(f"\\boxed{{{answer}}}", reference, "latex").is_correct


def test_latex_reference_may_be_boxed_and_answer_on_an_answer_line():
    result = grade(
        "Explanation: ...\nExact Answer: \\frac{3}{4}\nConfidence: 60%", "\\boxed{0.75}", "latex"
    )
    assert result.is_correct and result.method == "answer-line"


def test_latex_in_a_worker_thread_has_no_signal_timeout():
    import threading

    verdicts = []
    thread = threading.Thread(target=lambda: verdicts.append(grade("\\boxed{1/2}", "0.5", "latex")))
    thread.start()
    thread.join()
    assert verdicts[0].is_correct


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("Answer: B", True),
        ("The answer is (b).", True),
        ("Explanation: 2 + 2 is 4.\nAnswer: 4\nConfidence: 90%", True),  # the choice's text
        ("\\boxed{C}", False),
        ("Answer: E", False),  # no fifth choice
    ],
)
def test_multiple_choice_by_letter_or_text(completion, expected):
    result = grade(completion, "B", "choice", choices=["3", "4", "5"])
    assert result.is_correct is expected
    assert result.reference == "B"


def test_multiple_choice_reference_given_as_text():
    assert grade("Answer: A", "Paris", "choice", choices=["Paris", "Rome"]).is_correct


def test_exact_answers_are_normalised():
    assert grade(
        "Exact Answer: The Riemann  hypothesis.", "the riemann hypothesis", "exact"
    ).is_correct
    assert grade("Exact Answer: $\\text{Euler}$", "Euler", "exact").is_correct
    assert not grade("Exact Answer: Gauss", "Euler", "exact").is_correct
    assert grade("", "Euler", "exact").extracted is None


HLE_COMPLETIONS = [
    ("Explanation: 7 * 6 = 42.\nExact Answer: 42\nConfidence: 85%", 0.85, True),
    ("Explanation: guess\nExact Answer: 41\nConfidence: 30 %", 0.30, True),
    ("**Explanation:** ...\n**Exact Answer:** 42\n**Confidence:** 100%", 1.0, True),
    ("Explanation: it is 42\nExact Answer: 42", None, True),  # confidence missing
    ("I think it is 42.", None, False),  # no answer line at all
]


@pytest.mark.parametrize(("completion", "confidence", "answered"), HLE_COMPLETIONS)
def test_hle_completions_confidence_and_answer_line(completion, confidence, answered):
    assert extract_confidence(completion) == confidence
    result = grade(completion, "42", FORMATS["hle"].grader_for("exact"))
    numeric = grade(completion, "42", FORMATS["hle"].grader_for("number"))
    assert follows_format(result.method, "hle") is answered
    assert numeric.method == result.method
    if answered:
        assert numeric.is_correct == (result.extracted == "42")


def test_hle_number_grading_never_reads_the_confidence():
    result = grade("Explanation: ...\nExact Answer: 7\nConfidence: 85%", "85", "answer-line")
    assert not result.is_correct and result.extracted == "7"


def test_hle_format_asks_for_the_three_parts():
    prompt = render("hle", "What is 6 * 7?")
    for part in ("Explanation:", "Exact Answer:", "Confidence:", "What is 6 * 7?"):
        assert part in prompt
    assert FORMATS["hle"].asks_confidence and not FORMATS["chat"].asks_confidence


def test_categories_for_each_answer_type():
    wrong_choice = "Explanation: 2 + 2 = 5\nAnswer: C"
    assert (
        categorize(wrong_choice, "eos", grade(wrong_choice, "B", "choice", ["3", "4", "5"]), "hle")
        == "arithmetic"
    )
    rambling = "It might be Gauss."
    assert categorize(rambling, "eos", grade(rambling, "Euler", "exact"), "hle") == "no-answer"
    cut = "Explanation: let me think about"
    assert categorize(cut, "length", grade(cut, "\\frac12", "latex"), "hle") == "truncated"
    boxed = "so $\\boxed{x-1}$"
    assert categorize(boxed, "eos", grade(boxed, "x+1", "latex"), "qwen-boxed") == "reasoning"


def test_rms_calibration_error_by_hand():
    # 5 predictions, bins of 2: sorted confidences 0.2 0.4 | 0.6 0.8 1.0 (the last bin takes
    # the remainder). Bin 1: mean conf 0.3, accuracy 0/2 -> gap 0.3; bin 2: mean conf 0.8,
    # accuracy 2/3 -> gap 0.1333. RMS = sqrt(2/5 * 0.09 + 3/5 * 0.017778) = 0.216025
    confidences = [1.0, 0.2, 0.8, 0.4, 0.6]
    verdicts = [True, False, True, False, False]
    expected = math.sqrt(2 / 5 * 0.3**2 + 3 / 5 * (0.8 - 2 / 3) ** 2)
    assert rms_calibration_error(confidences, verdicts, bin_size=2) == pytest.approx(expected)
    assert expected == pytest.approx(0.216025, abs=1e-6)
    # HLE's loop leaves the last bin out: only bin 1 counts, over all 5 predictions
    hle_loop = math.sqrt(2 / 5 * 0.3**2)
    assert rms_calibration_error(confidences, verdicts, 2, include_last_bin=False) == pytest.approx(
        hle_loop
    )
    # fewer predictions than a bin: one bin, |mean conf - accuracy|
    assert rms_calibration_error([0.9, 0.5], [True, True], bin_size=100) == pytest.approx(0.3)
    assert rms_calibration_error([1.0] * 4, [True] * 4) == 0.0
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        rms_calibration_error([1.5], [True])


def test_summary_reports_stated_calibration_with_n_beside_vote_ece():
    rows = []
    for index, (completion, confidence, _) in enumerate(HLE_COMPLETIONS):
        verdict = grade(completion, "42", "exact")
        rows.append({
            "system": "base", "problem_id": str(index), "is_correct": verdict.is_correct,
            "strict_correct": False, "flexible_correct": False, "follows_format": True,
            "num_tokens": 10, "finish_reason": "eos", "category": "reasoning", "seconds": 1.0,
            "confidence": confidence,
        })  # fmt: skip
    base = summarize(rows, ["base"]).systems["base"]
    assert base.stated_n == 5 and base.confidence_missing == 2
    confidences = [0.85, 0.30, 1.0, 1.0, 1.0]  # a missing confidence counts as 100% (HLE)
    verdicts = [True, False, True, True, False]
    assert base.stated_calibration_error == pytest.approx(
        rms_calibration_error(confidences, verdicts)
    )
    assert base.calibration_error is None  # no votes: no vote-share ECE
    row = results_rows(summarize(rows, ["base"]))[0]
    assert row["n (confidence)"] == 5 and row["no confidence"] == 2
    assert row["RMS calibration error %"] == round(100 * base.stated_calibration_error, 1)
