"""Evaluation results: the typed summary read back from any stored run, the problem filter."""

from __future__ import annotations

import doctest

from mathtutor import results
from mathtutor.metrics import CATEGORIES, Estimate
from mathtutor.results import EvalSummary, pair_verdict, select_problems, summarize

# A summary as an older mathtutor stored it: no grader/backend, categories lacking "runaway",
# no calibration key, estimates without stderr.
OLD = {
    "systems": {
        "base": {"n": 2, "accuracy": {"value": 0.5, "n": 2}, "strict": {"value": 0.5, "n": 2},
                 "categories": {"truncated": 0, "no-answer": 1, "arithmetic": 0, "reasoning": 0}},
    },
    "comparisons": [],
    "order": ["base"],
    "prompt_format": "chat",
}  # fmt: skip
# One from a newer version: an error category this one does not know, keys it never wrote.
NEW = {
    "systems": {
        "base": {"n": 1, "categories": {**dict.fromkeys(CATEGORIES, 0), "unit-error": 1},
                 "latency_p95": 1.5},
        "tuned": {"n": 1, "categories": {"reasoning": 1}},
    },
    "comparisons": [{"a": "base", "b": "tuned", "n": 1, "fixed": 0, "regressed": 0,
                     "both_right": 0, "both_wrong": 1, "p_value": 1.0, "effect": 0.0}],
    "order": ["base", "tuned"],
    "schema": 7,
}  # fmt: skip


def record(system: str, pid: str, ok: bool, category: str, position: int) -> dict:
    return {"system": system, "problem_id": pid, "position": position, "is_correct": ok,
            "strict_correct": ok, "flexible_correct": ok, "follows_format": True,
            "num_tokens": 5, "finish_reason": "eos", "category": category, "seconds": 0.1,
            "question": f"question {pid}", "answer": "1", "completion": f"answer of {system}"}  # fmt: skip


def test_docstring_examples_hold():
    assert doctest.testmod(results).failed == 0


def test_old_and_new_stored_summaries_read_back():
    old = EvalSummary.from_dict(OLD)
    base = old.systems["base"]
    assert base.accuracy == Estimate(0.5, None, 2) and base.flexible is None
    assert base.category("runaway") == 0 and base.calibration_error is None
    assert old.grader is None and old.num_votes == 1
    new = EvalSummary.from_dict(NEW)
    assert new.systems["base"].category("unit-error") == 1
    assert new.category_names == [*CATEGORIES, "unit-error"]
    assert new.comparison("tuned").both_wrong == 1
    for summary in (old, new):
        rows = results.results_rows(summary)  # the table every reader shows
        assert [row["system"] for row in rows] == list(summary.order)
        assert all(row["runaway"] == 0 for row in rows)
        assert results.format_table(summary)
    assert EvalSummary.from_dict(None) == EvalSummary()
    assert EvalSummary.from_dict({"order": ["ghost"]}).systems["ghost"].n == 0


def test_summary_survives_its_stored_form():
    records = [record("base", "p0", True, "correct", 0), record("tuned", "p0", False, "runaway", 0)]
    summary = summarize(records, ["base", "tuned"])
    assert EvalSummary.from_dict(summary.to_dict()) == summary
    assert summary.comparison("tuned").regressed == 1


def test_select_problems_uses_the_paired_cells():
    cells = [(False, True), (True, False), (False, False), (True, True)]
    records = []
    for position, (a, b) in enumerate(cells):
        records.append(
            record("base", f"p{position}", a, "correct" if a else "arithmetic", position)
        )
        records.append(record("tuned", f"p{position}", b, "correct" if b else "runaway", position))
    systems = ["base", "tuned"]
    for position, (a, b) in enumerate(cells):
        verdict = pair_verdict(a, b)
        chosen = select_problems(records, systems, "tuned", verdict)
        assert [next(iter(p.values()))["problem_id"] for p in chosen] == [f"p{position}"]
    assert len(select_problems(records, systems, "tuned", "any wrong")) == 3
    assert len(select_problems(records, systems, "tuned", category="runaway")) == 2
    assert len(select_problems(records, systems, "tuned", search="QUESTION P1")) == 1
    old = [{k: v for k, v in r.items() if k != "category"} for r in records]  # no category key
    assert select_problems(old, systems, "tuned", category="runaway") == []
