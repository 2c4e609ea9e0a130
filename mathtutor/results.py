"""Evaluation results: the typed summary of a run, the error browser's filter, the results table.

`summarize(records, systems) -> EvalSummary` computes a run's numbers from its records
(`mathtutor.metrics` for accuracy, McNemar, votes and calibration). `mathtutor.evaluate` stores
`summary.to_dict()` with the run; every reader (the Evaluate tab, the CLI table, model cards)
reads it back with `EvalSummary.from_dict`, which accepts what any version stored. Which
problems were fixed or regressed (`pair_verdict`, the cells `metrics.paired` counts) and the
error browser's filter (`select_problems`) live here too; the UI only formats them.

Pure: no torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mathtutor.metrics import (
    CATEGORIES,
    Estimate,
    accuracy,
    calibration_error,
    category_counts,
    mean,
    paired,
    rate,
    rms_calibration_error,
)


# --------------------------------------------------------------------------- a whole run
@dataclass(frozen=True)
class SystemSummary:
    """One system's numbers in a run (every field optional, so older stored runs read back)."""

    n: int = 0
    accuracy: Estimate | None = None  # the format's grader
    strict: Estimate | None = None  # lm-eval strict-match
    flexible: Estimate | None = None  # lm-eval flexible-extract
    majority: Estimate | None = None  # maj@k, with num_votes > 1
    calibration_error: float | None = None  # ECE of the vote shares (num_votes > 1)
    # HLE's RMS calibration error of the stated confidence (formats that ask for one), over
    # stated_n answers; a missing confidence counts as 100% (HLE's judge rule), missing_n of them
    stated_calibration_error: float | None = None
    stated_n: int = 0
    confidence_missing: int = 0
    mean_confidence: float | None = None
    format_rate: float | None = None
    mean_tokens: float | None = None
    truncation_rate: float | None = None
    categories: dict[str, int] = field(default_factory=dict)  # wrong answers per category
    seconds: float = 0.0

    def category(self, name: str) -> int:
        """Wrong answers in category ``name``; 0 for one this run did not know."""
        return self.categories.get(name, 0)


@dataclass(frozen=True)
class Comparison:
    """System ``b`` against the reference system ``a`` on their shared problems."""

    a: str = ""
    b: str = ""
    n: int = 0
    both_right: int = 0
    fixed: int = 0  # a wrong, b right
    regressed: int = 0  # a right, b wrong
    both_wrong: int = 0
    p_value: float = 1.0  # McNemar exact, two-sided


@dataclass(frozen=True)
class EvalSummary:
    """What an evaluation run measured; stored as ``to_dict()``, read back with ``from_dict``.

    ``from_dict`` takes what any mathtutor version stored: unknown keys are ignored, missing
    ones take their defaults, and a category name one run has and another lacks counts 0.

    >>> old = {"systems": {"base": {"n": 2, "categories": {"reasoning": 1}}}, "order": ["base"]}
    >>> summary = EvalSummary.from_dict(old)
    >>> summary.systems["base"].category("reasoning"), summary.systems["base"].category("runaway")
    (1, 0)
    """

    systems: dict[str, SystemSummary] = field(default_factory=dict)
    comparisons: tuple[Comparison, ...] = ()  # every other system vs order[0]
    order: tuple[str, ...] = ()  # systems as given; the first is the reference
    num_problems: int | None = None
    prompt_format: str | None = None
    grader: str | None = None  # the answers.grade mode of `accuracy` (PromptFormat.grader_for)
    answer_type: str | None = None  # answers.ANSWER_TYPES of the problems
    num_votes: int = 1
    backend: str | None = None
    dtype: str | None = None  # the weights' dtype the completions were decoded in

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> EvalSummary:
        data = data if isinstance(data, dict) else {}
        systems = {
            str(name): _system_from(stats) for name, stats in (data.get("systems") or {}).items()
        }
        order = tuple(str(name) for name in data.get("order") or systems)
        systems.update({name: SystemSummary() for name in order if name not in systems})
        comparisons = tuple(
            Comparison(**_known(Comparison, c)) for c in data.get("comparisons") or ()
        )
        return cls(systems, comparisons, order, **_known(cls, data, skip=_NESTED))

    def comparison(self, system: str) -> Comparison | None:
        """``system`` against ``order[0]``, if it was compared."""
        return next((c for c in self.comparisons if c.b == system), None)

    @property
    def category_names(self) -> list[str]:
        """``CATEGORIES``, then any other category a stored system counts."""
        names = list(CATEGORIES)
        for stats in self.systems.values():
            names += [name for name in stats.categories if name not in names]
        return names


_NESTED = ("systems", "comparisons", "order")


def _known(cls: type, data: Any, skip: Sequence[str] = ()) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)} - set(skip)
    return {k: v for k, v in data.items() if k in names} if isinstance(data, dict) else {}


def _estimate_from(data: Any) -> Estimate | None:
    if not isinstance(data, dict) or data.get("value") is None:
        return None
    return Estimate(float(data["value"]), data.get("stderr"), int(data.get("n") or 0))


def _system_from(data: Any) -> SystemSummary:
    values = _known(SystemSummary, data)
    for name in ("accuracy", "strict", "flexible", "majority"):
        values[name] = _estimate_from(values.get(name))
    values["categories"] = {str(k): int(v) for k, v in (values.get("categories") or {}).items()}
    return SystemSummary(**values)


def summarize(records: Sequence[dict[str, Any]], systems: Sequence[str]) -> EvalSummary:
    """Per-system metrics, category counts and paired comparisons vs ``systems[0]``.

    ``records`` are evaluation records (``mathtutor.evaluate``): dicts with ``system``,
    ``problem_id``, ``is_correct`` (the format's grader), ``strict_correct``,
    ``flexible_correct`` (lm-eval), ``follows_format``, ``num_tokens``, ``finish_reason``,
    ``category``, ``seconds`` and, with self-consistency, ``maj_correct`` and ``vote_share``;
    with a format that asks for it, ``confidence`` (the stated one, None when missing).
    Paired comparisons use the problems both systems have finished.

    >>> rows = [{"system": s, "problem_id": str(i), "is_correct": ok, "strict_correct": ok,
    ...          "flexible_correct": ok, "follows_format": True, "num_tokens": 10,
    ...          "finish_reason": "eos", "category": "correct" if ok else "reasoning",
    ...          "seconds": 1.0} for s, oks in (("base", [0, 0, 1]), ("tuned", [1, 1, 1]))
    ...         for i, ok in enumerate(oks)]
    >>> summary = summarize(rows, ["base", "tuned"])
    >>> summary.systems["tuned"].accuracy.value, summary.comparisons[0].fixed
    (1.0, 2)
    """
    by_system: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in systems}
    for record in records:
        if record["system"] in by_system:
            by_system[record["system"]][record["problem_id"]] = record
    per_system = {name: _system_metrics(list(rows.values())) for name, rows in by_system.items()}
    comparisons = []
    first = systems[0] if systems else None
    for other in systems[1:]:
        shared = [pid for pid in by_system[first] if pid in by_system[other]]
        if not shared:
            continue
        result = paired(
            [by_system[first][pid]["is_correct"] for pid in shared],
            [by_system[other][pid]["is_correct"] for pid in shared],
        )
        comparisons.append(Comparison(first, other, result.n, **dataclasses.asdict(result)))
    return EvalSummary(per_system, tuple(comparisons), tuple(systems))


def _estimate(verdicts: list[bool]) -> Estimate | None:
    return accuracy(verdicts) if verdicts else None


def _system_metrics(rows: list[dict[str, Any]]) -> SystemSummary:
    voted = [row for row in rows if row.get("vote_share") is not None]
    stated = [row for row in rows if "confidence" in row]
    confidences = [1.0 if row["confidence"] is None else row["confidence"] for row in stated]
    return SystemSummary(
        n=len(rows),
        accuracy=_estimate([row["is_correct"] for row in rows]),
        strict=_estimate([row["strict_correct"] for row in rows]),
        flexible=_estimate([row["flexible_correct"] for row in rows]),
        majority=_estimate([row["maj_correct"] for row in voted]),
        calibration_error=(
            calibration_error(
                [row["vote_share"] for row in voted], [row["maj_correct"] for row in voted]
            )
            if voted
            else None
        ),
        stated_calibration_error=(
            rms_calibration_error(confidences, [row["is_correct"] for row in stated])
            if stated
            else None
        ),
        stated_n=len(stated),
        confidence_missing=sum(row["confidence"] is None for row in stated),
        mean_confidence=mean(confidences),
        format_rate=rate([row["follows_format"] for row in rows]),
        mean_tokens=mean([row["num_tokens"] for row in rows]),
        truncation_rate=rate([row["finish_reason"] == "length" for row in rows]),
        categories=category_counts([row["category"] for row in rows]),
        seconds=sum(row.get("seconds", 0.0) for row in rows),
    )


# --------------------------------------------------------------------------- the error browser
VERDICTS = ("fixed", "regressed", "both wrong", "both right")


def pair_verdict(a_correct: bool, b_correct: bool) -> str:
    """How system B did against system A on one problem (the cells ``paired`` counts).

    >>> pair_verdict(False, True), pair_verdict(True, True)
    ('fixed', 'both right')
    """
    return {
        (False, True): "fixed",
        (True, False): "regressed",
        (False, False): "both wrong",
        (True, True): "both right",
    }[(bool(a_correct), bool(b_correct))]


def by_problem(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """A run's records as ``{problem_id: {system: record}}``, problems in sample order."""
    grouped: dict[str, dict[str, dict[str, Any]]] = {}
    for record in sorted(records, key=lambda r: r["position"]):
        grouped.setdefault(record["problem_id"], {})[record["system"]] = record
    return grouped


def select_problems(
    records: Sequence[dict[str, Any]],
    systems: Sequence[str],
    other: str | None,
    verdict: str = "all",
    category: str | None = None,
    search: str = "",
) -> list[dict[str, dict[str, Any]]]:
    """A run's problems (each ``{system: record}``, in sample order) that pass the filters.

    ``verdict``: ``all``, one of ``VERDICTS`` (``systems[0]`` against ``other``) or
    ``any wrong``; ``category``: a problem with a record in that category (None: any);
    ``search``: text in the problem id, question or a completion (any case). Records of an
    older run without a category simply match no category.
    """
    first = systems[0]
    other = other if other in systems else first
    needle = (search or "").strip().lower()
    selected = []
    for problem_id, by_system in by_problem(records).items():
        if verdict == "any wrong":
            if all(r.get("is_correct") for r in by_system.values()):
                continue
        elif verdict != "all":
            a, b = by_system.get(first), by_system.get(other)
            if a is None or b is None:
                continue
            if pair_verdict(a.get("is_correct"), b.get("is_correct")) != verdict:
                continue
        if category and not any(r.get("category") == category for r in by_system.values()):
            continue
        sample = next(iter(by_system.values()))
        texts = [problem_id, sample.get("question", "")]
        texts += [r.get("completion", "") for r in by_system.values()]
        if needle and not any(needle in text.lower() for text in texts):
            continue
        selected.append(by_system)
    return selected


# --------------------------------------------------------------------------- tables
def results_rows(summary: EvalSummary) -> list[dict[str, Any]]:
    """One row per system (percentages), for the CLI table and the UI's results table."""

    def pct(value: float | None) -> float | None:
        return None if value is None else round(100 * value, 1)

    rows = []
    for name in summary.order:
        system = summary.systems[name]
        row: dict[str, Any] = {"system": name, "n": system.n}
        if summary.dtype:  # greedy texts differ between bf16 and fp32: shown with the figures
            row["dtype"] = summary.dtype
        for key, label in (("accuracy", "accuracy"), ("strict", "strict"), ("flexible", "flex")):
            estimate = getattr(system, key)
            row[f"{label} %"] = pct(estimate.value if estimate else None)
            row[f"{label} ± %"] = pct(estimate.stderr if estimate else None)
        if system.majority:
            row[f"maj@{summary.num_votes} %"] = pct(system.majority.value)
            row["calibration error %"] = pct(system.calibration_error)
        if system.stated_n:
            row["stated confidence %"] = pct(system.mean_confidence)
            row["RMS calibration error %"] = pct(system.stated_calibration_error)
            row["n (confidence)"] = system.stated_n
            row["no confidence"] = system.confidence_missing
        row["format %"] = pct(system.format_rate)
        row["truncation %"] = pct(system.truncation_rate)
        row["mean tokens"] = None if system.mean_tokens is None else round(system.mean_tokens)
        comparison = summary.comparison(name)
        row["fixed"] = comparison.fixed if comparison else None
        row["regressed"] = comparison.regressed if comparison else None
        row["McNemar p"] = round(comparison.p_value, 4) if comparison else None
        row.update({category: system.category(category) for category in summary.category_names})
        rows.append(row)
    return rows


def format_table(summary: EvalSummary) -> str:
    """The results as a plain-text table; estimates shown as ``value ± stderr`` (percent)."""
    rows = []
    for row in results_rows(summary):
        shown = {}
        for key, value in row.items():
            if key.endswith(" ± %"):
                name = key.removesuffix(" ± %") + " %"
                if value is not None and shown.get(name):
                    shown[name] += f" ± {value}"
            else:
                shown[key] = "" if value is None else str(value)
        rows.append(shown)
    if not rows:
        return "(no results)"
    columns = list(dict.fromkeys(key for row in rows for key in row))
    widths = [max(len(c), *(len(row.get(c, "")) for row in rows)) for c in columns]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines += [
        "  ".join(row.get(c, "").rjust(w) for c, w in zip(columns, widths, strict=True))
        for row in rows
    ]
    return "\n".join(lines)
