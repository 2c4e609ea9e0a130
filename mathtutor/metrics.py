"""Evaluation metrics: accuracy with standard error, paired tests, votes, calibration, categories.

Pure module (no torch): every function takes plain lists, so the numbers in a results table can
be checked by hand.

- ``accuracy``: the mean of 0/1 verdicts with lm-evaluation-harness's standard error, the sample
  standard deviation (n - 1 in the denominator) over sqrt(n).
- ``paired``: two systems on the same problems: fixed / regressed / both right / both wrong and
  McNemar's *exact* test, a two-sided binomial test on the discordant pairs (fixed vs regressed)
  with p = 0.5, computed with exact integers (``math.comb``), so "59% vs 55% on 200 problems"
  gets a p-value instead of a guess.
- ``majority_vote``: self-consistency (maj@k). The most frequent answer wins; the vote share
  (its count over k, unanswered samples included) is the confidence. Ties go to the tied answer
  that appears first in sample order, so the same samples always give the same vote.
- ``calibration_error``: expected calibration error (ECE), the metric of the LLaMA/HLE report
  (seed 004): ``sum_b (n_b / n) * |accuracy_b - confidence_b|`` over ``CALIBRATION_BINS`` = 10
  equal-width confidence bins [0, 0.1), [0.1, 0.2), ..., [0.9, 1.0]. (HLE's own code uses a
  root-mean-square variant over bins of ~100 samples; equal-width L1 bins are the common ECE
  and stay meaningful on the small samples a CPU can evaluate.)
- ``rms_calibration_error``: HLE's calibration error from the model's own *stated* confidence
  (``answers.extract_confidence``): predictions sorted by confidence, cut into consecutive bins
  of ``HLE_BIN_SIZE`` = 100, the last bin taking the remainder, and the root of the
  size-weighted mean squared gap between mean confidence and accuracy per bin. Reported with
  its n: under 100 samples there is one bin, so the number says little.

Error categories (``categorize``), one per *wrong* answer, first match wins:

1. ``truncated``: generation hit the token limit (finish reason ``length``) before an answer in
   the format's expected form was written. Checked before ``no-answer`` because the budget, not
   the format, is the cause: raising max_new_tokens is the fix.
2. ``no-answer``: a format failure: the model stopped on its own but wrote no answer in the
   form its prompt format asks for (``#### N`` for the hash and socratic formats, ``\\boxed{N}``
   for ``qwen-boxed``; any extractable number for an instruction-free format such as ``qa``).
3. ``arithmetic``: a step ``a op b = c`` or a GSM8K annotation ``<<a*b=c>>`` whose result is
   wrong when the expression is evaluated exactly (``checks.wrong_steps``).
4. ``runaway``: the model did not end its turn after answering; it went on to a new question
   (a line starting ``Question:``, ``Q:`` or ``Problem:`` after its answer, or generation was
   cut by one of the format's stop sequences, all of which mark such a continuation), as the
   base Gemma did in seed 001.
5. ``reasoning``: a wrong final answer with no wrong arithmetic: a reading or reasoning error.

A correct answer is categorized ``correct``. The categories hold for every answer type: "in the
form its format asks for" is ``Grade.method == PromptFormat.answer_method`` whatever the type
(``answer-line`` for HLE's ``Exact Answer:``), and a LaTeX, multiple-choice or exact answer that
is found but wrong is ``arithmetic`` when a step is wrong, else ``runaway`` or ``reasoning``.

>>> accuracy([True, False, True, True])
Estimate(value=0.75, stderr=0.25, n=4)
>>> round(mcnemar_exact(1, 9), 6)
0.021484
>>> majority_vote(["12", "7", "12", None])
Vote(answer='12', count=2, share=0.5)
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from mathtutor.checks import wrong_steps
from mathtutor.prompts import get_format

CALIBRATION_BINS = 10
HLE_BIN_SIZE = 100  # hle_eval/run_judge_results.py: calib_err(..., beta=100)
CATEGORIES = ("truncated", "no-answer", "arithmetic", "runaway", "reasoning")
CORRECT = "correct"
# A line where the model starts inventing the next problem (seed 001: "Question: ...").
_NEW_QUESTION = re.compile(r"^\s*(?:Question|Q|Problem)\s*\d*\s*:", re.MULTILINE)


@dataclass(frozen=True)
class Estimate:
    """A proportion with its standard error (None when n < 2)."""

    value: float
    stderr: float | None
    n: int


def accuracy(verdicts: Sequence[bool]) -> Estimate:
    """Mean of 0/1 verdicts and lm-eval's standard error: sample std (n - 1) / sqrt(n).

    >>> accuracy([True] * 3 + [False] * 7).stderr  # sqrt(0.3 * 0.7 / 9)
    0.15275252316519466
    >>> accuracy([True])
    Estimate(value=1.0, stderr=None, n=1)
    >>> accuracy([])
    Traceback (most recent call last):
    ValueError: accuracy of an empty list: no verdicts to average
    """
    n = len(verdicts)
    if n == 0:
        raise ValueError("accuracy of an empty list: no verdicts to average")
    mean = sum(bool(v) for v in verdicts) / n
    if n < 2:
        return Estimate(mean, None, n)
    variance = sum((bool(v) - mean) ** 2 for v in verdicts) / (n - 1)
    return Estimate(mean, math.sqrt(variance) / math.sqrt(n), n)


def rate(flags: Sequence[bool]) -> float | None:
    """Fraction of true flags (format adherence, truncation), None for an empty list.

    >>> rate([True, False, False, False]), rate([])
    (0.25, None)
    """
    return sum(bool(f) for f in flags) / len(flags) if flags else None


def mean(values: Sequence[float]) -> float | None:
    """Arithmetic mean (e.g. completion length in tokens), None for an empty list.

    >>> mean([10, 20, 60])
    30.0
    """
    return sum(values) / len(values) if values else None


# --------------------------------------------------------------------------- paired comparison
@dataclass(frozen=True)
class Paired:
    """System A vs system B on the same problems (B is usually the tuned one)."""

    both_right: int
    fixed: int  # A wrong, B right
    regressed: int  # A right, B wrong
    both_wrong: int
    p_value: float  # McNemar exact, two-sided

    @property
    def n(self) -> int:
        return self.both_right + self.fixed + self.regressed + self.both_wrong


def mcnemar_exact(fixed: int, regressed: int) -> float:
    """Two-sided exact McNemar p-value: binomial(n = fixed + regressed, 1/2) tail, doubled.

    p = min(1, 2 * sum_{k <= min(b, c)} C(n, k) / 2**n), computed with exact fractions.

    >>> mcnemar_exact(1, 9)  # 2 * (1 + 10) / 1024
    0.021484375
    >>> mcnemar_exact(0, 0), mcnemar_exact(5, 5)
    (1.0, 1.0)
    """
    if fixed < 0 or regressed < 0:
        raise ValueError(f"counts must be non-negative, got {fixed} and {regressed}")
    n = fixed + regressed
    tail = sum(math.comb(n, k) for k in range(min(fixed, regressed) + 1))
    return float(min(Fraction(1), Fraction(2 * tail, 2**n)))


def paired(a: Sequence[bool], b: Sequence[bool]) -> Paired:
    """Compare verdicts of system A and system B, problem by problem (same order).

    >>> paired([True, True, False, False], [True, False, True, True])
    Paired(both_right=1, fixed=2, regressed=1, both_wrong=0, p_value=1.0)
    """
    if len(a) != len(b):
        raise ValueError(
            f"paired comparison needs the same problems: {len(a)} vs {len(b)} verdicts"
        )
    table = Counter((bool(x), bool(y)) for x, y in zip(a, b, strict=True))
    fixed, regressed = table[(False, True)], table[(True, False)]
    return Paired(
        both_right=table[(True, True)],
        fixed=fixed,
        regressed=regressed,
        both_wrong=table[(False, False)],
        p_value=mcnemar_exact(fixed, regressed),
    )


# --------------------------------------------------------------------------- self-consistency
@dataclass(frozen=True)
class Vote:
    """The majority answer of k samples; share = count / k is its confidence."""

    answer: str | None
    count: int
    share: float


def majority_vote(answers: Sequence[str | None]) -> Vote:
    """Self-consistency over k sampled answers (normalized strings; None = no answer).

    Unanswered samples count in k but never win. Ties go to the answer seen first.

    >>> majority_vote(["3", "5", "5", "3"])
    Vote(answer='3', count=2, share=0.5)
    >>> majority_vote([None, None])
    Vote(answer=None, count=0, share=0.0)
    """
    if not answers:
        raise ValueError("majority vote over no answers: num_votes must be at least 1")
    counts = Counter(answer for answer in answers if answer is not None)
    if not counts:
        return Vote(None, 0, 0.0)
    best = max(counts.values())
    winner = next(answer for answer in answers if answer is not None and counts[answer] == best)
    return Vote(winner, best, best / len(answers))


def calibration_error(
    confidences: Sequence[float], verdicts: Sequence[bool], num_bins: int = CALIBRATION_BINS
) -> float:
    """Expected calibration error over equal-width bins, as a fraction in [0, 1].

    Bin i holds confidences in [i / num_bins, (i + 1) / num_bins); 1.0 goes in the last bin.

    >>> calibration_error([1.0, 1.0, 0.5, 0.5], [True, False, True, False])  # 2/4 * 0.5 + 0
    0.25
    """
    if len(confidences) != len(verdicts):
        raise ValueError(f"{len(confidences)} confidences but {len(verdicts)} verdicts")
    if not confidences:
        raise ValueError("calibration error of an empty list")
    if num_bins < 1:
        raise ValueError(f"num_bins must be at least 1, got {num_bins}")
    bins: dict[int, list[tuple[float, bool]]] = {}
    for confidence, verdict in zip(confidences, verdicts, strict=True):
        if not 0.0 <= confidence <= 1.0:
            raise ValueError(f"confidence {confidence} is outside [0, 1]")
        index = min(int(confidence * num_bins), num_bins - 1)
        bins.setdefault(index, []).append((confidence, bool(verdict)))
    total = len(confidences)
    error = 0.0
    for members in bins.values():
        mean_confidence = sum(c for c, _ in members) / len(members)
        mean_accuracy = sum(v for _, v in members) / len(members)
        error += len(members) / total * abs(mean_accuracy - mean_confidence)
    return error


def rms_calibration_error(
    confidences: Sequence[float],
    verdicts: Sequence[bool],
    bin_size: int = HLE_BIN_SIZE,
    include_last_bin: bool = True,
) -> float:
    """HLE's calibration error (RMS over bins of ``bin_size`` sorted predictions), in [0, 1].

    As ``calib_err(confidence, correct, p="2", beta=100)`` in HLE's ``run_judge_results.py``:
    sort by confidence (ties keep their order), cut ``[0, b), [b, 2b), ...``, the last bin
    running to the end; ``sqrt(sum_b n_b / n * (mean_conf_b - acc_b) ** 2)``. Two differences,
    both where HLE's code gives no number: fewer than ``bin_size`` predictions make one bin (HLE
    raises there), and the last bin is counted (HLE's loop stops one bin early, so below 200
    predictions it returns 0); ``include_last_bin=False`` reproduces that loop.

    >>> error = rms_calibration_error([0.9, 0.9, 0.5, 0.5], [True, False, True, False], bin_size=2)
    >>> round(error, 6)  # bins (0.5, 0.5 right) gap 0, (0.9, 0.5 right) gap 0.4: sqrt(2/4 * 0.16)
    0.282843
    """
    if len(confidences) != len(verdicts):
        raise ValueError(f"{len(confidences)} confidences but {len(verdicts)} verdicts")
    if not confidences:
        raise ValueError("calibration error of an empty list")
    if bin_size < 1:
        raise ValueError(f"bin_size must be at least 1, got {bin_size}")
    if any(not 0.0 <= c <= 1.0 for c in confidences):
        raise ValueError("confidences must lie in [0, 1]")
    ordered = sorted(zip(confidences, verdicts, strict=True), key=lambda pair: pair[0])
    total = len(ordered)
    starts = list(range(0, max(total // bin_size, 1) * bin_size, bin_size))
    bounds = [(start, start + bin_size) for start in starts]
    bounds[-1] = (bounds[-1][0], total)
    if not include_last_bin:
        bounds = bounds[:-1]
    squared = 0.0
    for start, end in bounds:
        members = ordered[start:end]
        gap = sum(c for c, _ in members) / len(members) - sum(bool(v) for _, v in members) / len(
            members
        )
        squared += len(members) / total * gap**2
    return math.sqrt(squared)


# --------------------------------------------------------------------------- categories
def follows_format(method: str | None, prompt_format: str) -> bool:
    """Whether the answer was found in the form the prompt format asks for.

    ``method`` is ``answers.Grade.method``: ``strict`` (``#### N``), ``boxed``, ... or None.

    >>> follows_format("strict", "chat"), follows_format("flexible", "chat")
    (True, False)
    >>> follows_format("boxed", "qwen-boxed"), follows_format("flexible", "qa")
    (True, True)
    """
    spec = get_format(prompt_format)
    if method is None:
        return False
    if not spec.system and not spec.shots:  # e.g. "qa": the prompt asks for no answer form
        return True
    return method == spec.answer_method


def categorize(completion: str, finish_reason: str | None, grade: Any, prompt_format: str) -> str:
    """The error category of one graded completion (see the module docstring for the order).

    ``grade`` is an ``answers.Grade`` (``is_correct``, ``method``).

    >>> from mathtutor.answers import grade
    >>> text = "She has 5 * 3 = 16 apples.\\n#### 16"
    >>> categorize(text, "eos", grade(text, "15"), "chat")
    'arithmetic'
    >>> categorize("She has 5 * 3 = 15 apples", "length", grade("5 * 3 = 15", "20"), "chat")
    'truncated'
    """
    if grade.is_correct:
        return CORRECT
    answered = follows_format(grade.method, prompt_format)
    if finish_reason == "length" and not answered:
        return "truncated"
    if not answered:
        return "no-answer"
    if wrong_steps(completion):
        return "arithmetic"
    if _NEW_QUESTION.search(completion, 1) or (
        finish_reason == "stop" and get_format(prompt_format).stop
    ):
        return "runaway"
    return "reasoning"


def category_counts(categories: Sequence[str]) -> dict[str, int]:
    """Counts of each error category (every category listed, zeros included; ``correct`` not).

    >>> category_counts(["correct", "arithmetic", "arithmetic", "no-answer"])["arithmetic"]
    2
    """
    counts = Counter(categories)
    return {name: counts[name] for name in CATEGORIES}


def format_duration(seconds: float) -> str:
    """A wall time as the CLI and every tab show it (elapsed, ETA, estimates).

    >>> format_duration(42), format_duration(600), format_duration(3900)
    ('42 s', '10 min', '1 h 5 min')
    """
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"
