"""Metrics on hand-computed cases; error categories on crafted completions."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from mathtutor.answers import grade
from mathtutor.metrics import (
    CATEGORIES,
    accuracy,
    calibration_error,
    categorize,
    follows_format,
    majority_vote,
    mcnemar_exact,
    paired,
)
from mathtutor.results import EvalSummary, summarize


def test_metrics_module_does_not_import_torch():
    code = "import sys, mathtutor.metrics; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False"


# --------------------------------------------------------------------------- accuracy
def test_accuracy_stderr_matches_hand_computation():
    # 59 right of 100: p = 0.59, sample variance = 100/99 * 0.59 * 0.41
    estimate = accuracy([True] * 59 + [False] * 41)
    assert estimate.value == pytest.approx(0.59)
    assert estimate.stderr == pytest.approx(math.sqrt(0.59 * 0.41 / 99))
    assert estimate.n == 100


def test_accuracy_stderr_equals_lm_eval_formula():
    # lm-eval: mean_stderr = sample_stddev(arr) / sqrt(len(arr)), sample_stddev with n - 1
    verdicts = [1, 0, 0, 1, 1, 1, 0]
    n = len(verdicts)
    mu = sum(verdicts) / n
    expected = math.sqrt(sum((x - mu) ** 2 for x in verdicts) / (n - 1)) / math.sqrt(n)
    assert accuracy([bool(v) for v in verdicts]).stderr == pytest.approx(expected)


def test_accuracy_edge_cases():
    assert accuracy([False, False]).stderr == 0.0
    assert accuracy([True]).stderr is None
    with pytest.raises(ValueError, match="empty"):
        accuracy([])


# --------------------------------------------------------------------------- McNemar
def test_mcnemar_exact_known_tables():
    assert mcnemar_exact(1, 9) == pytest.approx(0.021484375)  # 2 * (1 + 10) / 2**10
    assert mcnemar_exact(9, 1) == mcnemar_exact(1, 9)
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 32)
    assert mcnemar_exact(2, 8) == pytest.approx(2 * (1 + 10 + 45) / 1024)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(3, 4) == 1.0  # capped at 1


def test_mcnemar_exact_agrees_with_scipy_binomtest():
    scipy_stats = pytest.importorskip("scipy.stats")
    for b, c in [(1, 9), (3, 12), (20, 31), (0, 7), (40, 55)]:
        expected = scipy_stats.binomtest(b, b + c, 0.5).pvalue
        assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-12)


def test_mcnemar_large_counts_stay_exact():
    # 59% vs 55% on 200 problems with 20 fixed / 12 regressed: not significant
    assert mcnemar_exact(20, 12) == pytest.approx(0.21537, abs=1e-4)
    assert 0.0 <= mcnemar_exact(0, 1500) < 1e-300  # 2**-1499 underflows to 0.0, no overflow


def test_paired_counts():
    base = [True, True, False, False, False, True]
    tuned = [True, False, True, True, False, True]
    result = paired(base, tuned)
    assert (result.both_right, result.fixed, result.regressed, result.both_wrong) == (2, 2, 1, 1)
    assert result.n == 6
    assert result.p_value == 1.0
    with pytest.raises(ValueError, match="same problems"):
        paired([True], [True, False])


# --------------------------------------------------------------------------- votes, calibration
def test_majority_vote_and_ties():
    assert majority_vote(["72", "72", "70"]).answer == "72"
    assert majority_vote(["72", "72", "70"]).share == pytest.approx(2 / 3)
    tie = majority_vote(["5", "3", "3", "5"])  # tie: the first seen wins
    assert (tie.answer, tie.count, tie.share) == ("5", 2, 0.5)
    assert majority_vote([None, "4", None]).answer == "4"
    assert majority_vote([None, "4", None]).share == pytest.approx(1 / 3)
    assert majority_vote([None]).answer is None


def test_calibration_error_hand_computed():
    # bin [0.6, 0.7): 3 items, confidence 2/3, 1 correct -> |1/3 - 2/3| = 1/3, weight 3/6
    # bin [1.0]: 2 items, confidence 1, 2 correct -> 0
    # bin [0.3, 0.4): 1 item, confidence 1/3, 1 correct -> 2/3, weight 1/6
    confidences = [2 / 3, 2 / 3, 2 / 3, 1.0, 1.0, 1 / 3]
    verdicts = [True, False, False, True, True, True]
    expected = 3 / 6 * (1 / 3) + 0 + 1 / 6 * (2 / 3)
    assert calibration_error(confidences, verdicts) == pytest.approx(expected)
    assert calibration_error([1.0] * 4, [True] * 4) == 0.0
    assert calibration_error([1.0] * 4, [False] * 4) == 1.0
    # one bin: |mean accuracy - mean confidence|
    assert calibration_error([0.2, 0.9], [True, False], num_bins=1) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="outside"):
        calibration_error([1.5], [True])


# --------------------------------------------------------------------------- categories
def _category(text: str, reference: str, finish: str = "eos", fmt: str = "chat") -> str:
    mode = "boxed" if fmt == "qwen-boxed" else "auto"
    return categorize(text, finish, grade(text, reference, mode), fmt)


def test_categories_on_crafted_completions():
    assert _category("48 / 2 = 24 and 48 + 24 = 72\n#### 72", "72") == "correct"
    # arithmetic slip in a plain equation and in a GSM8K annotation
    assert _category("48 / 2 = 24, 48 + 24 = 74\n#### 74", "72") == "arithmetic"
    assert _category("She sold 48+24=<<48+24=74>>74\n#### 74", "72") == "arithmetic"
    # right arithmetic, wrong plan
    assert _category("She sold 48 + 48 = 96 clips.\n#### 96", "72") == "reasoning"
    # no '#### N' although the chat format asks for it
    assert _category("She sold 48 + 24 = 70 clips.", "72") == "no-answer"
    assert _category("I cannot solve this.", "72") == "no-answer"
    # cut at the token limit before the final line
    assert _category("First, 48 / 2 = 24. Then", "72", finish="length") == "truncated"
    # ran on into a new question (no stop sequence caught it)
    runaway = "48 + 24 = 72 so\n#### 73\nQuestion: Tom has 3 apples..."
    assert _category(runaway, "72") == "runaway"
    # generation was cut by the format's stop sequence ("\nQuestion:")
    assert _category("48 + 24 = 72\n#### 71", "72", finish="stop") == "runaway"


def test_category_precedence():
    # truncated beats no-answer; a wrong step beats runaway
    assert _category("5 * 3 = 16 and then", "15", finish="length") == "truncated"
    text = "5 * 3 = 16\n#### 16\nQuestion: next one"
    assert _category(text, "15") == "arithmetic"
    # an answered but truncated completion is judged on its content
    assert _category("5 * 3 = 15\n#### 14\nand so", "15", finish="length") == "reasoning"


def test_format_adherence_per_format():
    assert _category("The answer is \\boxed{7}.", "8", fmt="qwen-boxed") == "reasoning"
    assert _category("The answer is 7.", "8", fmt="qwen-boxed") == "no-answer"
    # qa asks for no particular form: any extracted number is an answer
    assert _category("She has 7 apples.", "8", fmt="qa") == "reasoning"
    assert follows_format("strict", "gemma-oneshot") and not follows_format("boxed", "chat")
    assert not follows_format(None, "qa")


def test_summarize_counts_and_comparison():
    def record(system, pid, ok, category, finish="eos"):
        return {
            "system": system,
            "problem_id": pid,
            "is_correct": ok,
            "strict_correct": ok and pid != "p0",
            "flexible_correct": ok,
            "follows_format": category != "no-answer",
            "num_tokens": 20 if finish == "length" else 10,
            "finish_reason": finish,
            "category": category,
            "seconds": 0.5,
        }

    records = [
        record("base", "p0", True, "correct"),
        record("base", "p1", False, "arithmetic"),
        record("base", "p2", False, "truncated", "length"),
        record("base", "p3", False, "no-answer"),
        record("tuned", "p0", True, "correct"),
        record("tuned", "p1", True, "correct"),
        record("tuned", "p2", True, "correct"),
        record("tuned", "p3", False, "reasoning"),
        record("other", "p0", True, "correct"),  # not asked for: ignored
    ]
    summary = summarize(records, ["base", "tuned"])
    base, tuned = summary.systems["base"], summary.systems["tuned"]
    assert base.accuracy.value == 0.25 and tuned.accuracy.value == 0.75
    assert base.strict.value == 0.0 and tuned.strict.value == 0.5
    assert base.categories == dict.fromkeys(CATEGORIES, 0) | {
        "arithmetic": 1,
        "truncated": 1,
        "no-answer": 1,
    }
    assert base.truncation_rate == 0.25 and base.format_rate == 0.75
    assert base.mean_tokens == 12.5 and base.seconds == 2.0
    assert base.majority is None and base.calibration_error is None
    (comparison,) = summary.comparisons
    assert (comparison.fixed, comparison.regressed, comparison.both_wrong) == (2, 0, 1)
    assert comparison.p_value == 0.5  # 2 * 1/4
    assert EvalSummary.from_dict(summary.to_dict()) == summary


def test_docstring_examples_hold():
    import doctest

    from mathtutor import metrics

    assert doctest.testmod(metrics).failed == 0
