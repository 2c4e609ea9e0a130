"""Evaluate tab handlers, called directly (no browser) on the tiny model; the tab builds."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import gradio as gr
import pytest

from mathtutor import jobs, store
from mathtutor.results import EvalSummary
from mathtutor.ui import evaluate as tab


@pytest.fixture()
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MATHTUTOR_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def form(**changes) -> dict:
    """What the form sends: every field widget's value (numbers arrive as floats)."""
    values = {f.name: f.default for f in tab.FORM_FIELDS}
    values.update(dataset="arithmetic", num_samples=4.0, max_new_tokens=8.0, batch_size=4.0)
    values.update(prompt_format="qa")
    return values | changes


@pytest.fixture(scope="module")
def finished_run(tiny_model_dir, tiny_adapter_dir, tmp_path_factory):
    """One finished run (base + adapter, 4 problems) shared by the tests that only read it;
    the export/delete test, last among them, deletes it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MATHTUTOR_HOME", str(tmp_path_factory.mktemp("ui-home")))
        yield _finished_run(tiny_model_dir, tiny_adapter_dir)


def _finished_run(tiny_model_dir, tiny_adapter_dir) -> str:
    text = tab.start(str(tiny_model_dir), ["base", str(tiny_adapter_dir)], None, form())
    assert "starting" in text or "running" in text  # Start returns at once
    statuses = follow_to_the_end()
    assert statuses[-1][2] is True and statuses[-1][3] is False  # ended now, polling stops
    text, seen = statuses[-1][0], statuses[-1][1]
    run_id = seen.rsplit(":", 1)[0]
    assert f"Run `{run_id}` finished: 8 records" in text
    return run_id


def follow_to_the_end(seen: str = tab.STARTED, timeout: float = 300) -> list[tuple]:
    """Poll like the tab's timer until the job has ended; every poll's result."""
    polls = []
    deadline = time.monotonic() + timeout
    while True:
        polls.append(tab.follow(seen))
        seen = polls[-1][1]
        if not polls[-1][3]:
            return polls
        assert time.monotonic() < deadline, polls[-1]
        time.sleep(0.05)


def test_the_tab_builds_with_stable_ids():
    with gr.Blocks() as demo:
        spec = gr.Dropdown(["bundled"], value="bundled")
        with gr.Tabs() as tabs:
            with gr.Tab("Compare", id="compare"):
                problem, reference = gr.Textbox(), gr.Textbox()
            ctx = tab.AppContext(spec, tabs, problem, reference)
            with gr.Tab("Evaluate", id="evaluate") as evaluate_tab:
                tab.build(ctx, evaluate_tab)
    ids = {block.elem_id for block in demo.blocks.values() if getattr(block, "elem_id", None)}
    for elem_id in (
        "eval-start",
        "eval-stop",
        "eval-resume",
        "eval-dataset",
        "eval-systems",
        "eval-num-samples",
        "eval-prompt-format",
        "eval-max-new-tokens",
        "eval-num-votes",
        "eval-upload",
        "eval-results-table",
        "eval-accuracy-plot",
        "eval-categories-plot",
        "eval-run",
        "eval-delete-run",
        "eval-export",
        "eval-errors-table",
        "eval-filter",
        "eval-category-filter",
        "eval-search",
        "eval-problem",
        "eval-detail",
        "eval-send-compare",
    ):
        assert elem_id in ids, elem_id
    # every form field carries its help text from EvalConfig
    dataset = next(b for b in demo.blocks.values() if getattr(b, "elem_id", "") == "eval-dataset")
    assert dataset.info == "Which problems to evaluate on."


def test_form_values_become_the_config(tiny_model_dir):
    config = tab.config_from_form(str(tiny_model_dir), ["base"], None, form(batch_size=None))
    assert config.num_samples == 4 and isinstance(config.num_samples, int)
    assert config.batch_size is None and config.model == str(tiny_model_dir)
    # an emptied number box sends 0, which means "automatic" for the batch size
    assert tab.config_from_form("bundled", ["base"], None, form(batch_size=0.0)).batch_size is None
    assert tab.config_from_form("bundled", ["base"], None, form(batch_size=3.0)).batch_size == 3
    with pytest.raises(ValueError, match="systems"):
        tab.config_from_form("bundled", [], None, form())
    with pytest.raises(ValueError, match="path"):
        tab.config_from_form("bundled", ["base"], None, form(dataset="upload"))


def test_results_view_and_charts(finished_run):
    info, table, accuracy, categories, other = tab.show_run(finished_run)
    assert "finished" in info
    assert [row[0] for row in table["data"]] == ["base", other.value]
    assert "accuracy %" in table["headers"] and "McNemar p" in table["headers"]
    assert {trace.name for trace in accuracy.data} >= {"strict", "flexible"}
    assert all(trace.error_y.array is not None for trace in accuracy.data)
    assert {trace.name for trace in categories.data} == set(tab.metrics.CATEGORIES)
    runs, choices = tab.runs_table()
    assert choices[0][1] == finished_run and runs["data"][0][0] == finished_run


def test_error_browser_filters_and_detail(finished_run):
    run = store.get_eval_run(finished_run)
    systems = run["config"]["labels"]
    records = store.load_records(finished_run)
    everything = tab.browse(records, systems, systems[1])
    assert len(everything) == 4
    base = {r["problem_id"]: r for r in records if r["system"] == "base"}
    tuned = {r["problem_id"]: r for r in records if r["system"] == systems[1]}
    for name, wanted in (
        ("fixed", lambda a, b: not a and b),
        ("regressed", lambda a, b: a and not b),
        ("both wrong", lambda a, b: not a and not b),
    ):
        shown = {row["problem"] for row in tab.browse(records, systems, systems[1], name)}
        expected = {
            pid for pid in base if wanted(base[pid]["is_correct"], tuned[pid]["is_correct"])
        }
        assert shown == expected, name
    category = records[0]["category"]
    by_category = tab.browse(records, systems, systems[1], category=category)
    assert by_category and all(
        any(r["category"] == category for r in records if r["problem_id"] == row["problem"])
        for row in by_category
    )
    question = records[0]["question"]
    found = tab.browse(records, systems, systems[1], search=question[5:25].upper())
    assert records[0]["problem_id"] in {row["problem"] for row in found}
    assert tab.browse(records, systems, systems[1], search="zzz-not-there") == []

    table, picker = tab.filter_problems(finished_run, systems[1], "all", tab.ANY, "")
    assert table["headers"] == ["problem", "question", "reference", *systems]
    assert picker.value == table["data"][0][0]
    detail = tab.problem_detail(finished_run, picker.value)
    assert all(name in detail for name in systems) and "Reference" in detail


def test_wrong_steps_are_highlighted():
    text = "She has 5 * 3 = 16 apples <and> 2 + 2 = 4."
    start = text.index("5 * 3")
    steps = [{"start": start, "end": start + len("5 * 3 = 16"), "actual": "15"}]
    marked = tab.highlight(text, steps)
    assert '<mark class="slip" title="actually 15" data-fix="= 15">5 * 3 = 16</mark>' in marked
    assert "= 15" in marked and "&lt;and&gt;" in marked  # the rest is escaped


def test_send_to_compare_export_delete(finished_run, tmp_path):
    problem_id = store.load_records(finished_run)[0]["problem_id"]
    question, answer, tabs = tab.send_to_compare(finished_run, problem_id)
    record = next(r for r in store.load_records(finished_run) if r["problem_id"] == problem_id)
    assert (question, answer) == (record["question"], record["answer"])
    assert tabs.selected == "compare"
    with pytest.raises(gr.Error):
        tab.send_to_compare(finished_run, None)

    exported = Path(tab.export(finished_run, "csv"))
    with open(exported, newline="", encoding="utf-8") as handle:
        assert len(list(csv.DictReader(handle))) == 8
    lines = Path(tab.export(finished_run, "jsonl")).read_text().splitlines()
    assert len(lines) == 8 and json.loads(lines[0])["system"] == "base"

    assert "Deleted" in tab.delete_run(finished_run)
    assert store.get_eval_run(finished_run) is None
    assert tab.show_run(finished_run)[0] == ""


def test_stop_then_resume_from_the_tab(home, tiny_model_dir):
    tab.start(str(tiny_model_dir), ["base"], None, form(batch_size=1.0, num_samples=6.0))
    job = jobs.current_job()
    while job.done == 0 and job.running:  # after the first batch, the user presses Stop
        time.sleep(0.01)
    assert "Stopping run" in tab.request_stop()
    polls = follow_to_the_end()
    text, seen = polls[-1][0], polls[-1][1]
    assert "stopped (Resume continues it)" in text and seen.endswith(":stopped")
    run_id = job.run_id
    assert 0 < len(store.load_records(run_id)) < 6
    assert tab.request_stop() == "Nothing running."
    tab.start("", [], None, {"batch_size": 2}, run_id=run_id)
    text = follow_to_the_end()[-1][0]
    assert f"Run `{run_id}` finished: 6 records" in text
    assert len(store.load_records(run_id)) == 6


@pytest.mark.parametrize(
    "categories",
    [
        {"truncated": 0, "no-answer": 1, "arithmetic": 0, "reasoning": 0},  # older: no "runaway"
        {**dict.fromkeys(tab.metrics.CATEGORIES, 0), "unit-error": 2},  # newer: a new category
    ],
)
def test_stored_runs_of_other_versions_show(home, categories):
    """A run stored by another mathtutor version opens: no KeyError on its categories."""
    stats = {"n": 3, "accuracy": {"value": 1 / 3, "stderr": 0.3, "n": 3}, "categories": categories}
    store.create_eval_run("other-version", {"labels": ["base"], "dataset": "gsm8k"})
    summary = {"systems": {"base": stats}, "comparisons": [], "order": ["base"]}
    store.update_eval_run("other-version", status="finished", summary=summary)
    info, table, _, chart, _ = tab.show_run("other-version")
    assert "finished" in info and table["data"][0][0] == "base"
    bars = {trace.name: list(trace.y) for trace in chart.data}
    assert bars["runaway"] == [categories.get("runaway", 0)]
    assert bars.get("unit-error", [2]) == [categories.get("unit-error", 2)]
    assert tab.runs_table()[0]["data"][0][-1] == "base: 33.3%"


def test_a_page_opened_later_re_attaches_to_the_running_job(home, tiny_model_dir):
    tab.start(str(tiny_model_dir), ["base"], None, form(batch_size=1.0, num_samples=8.0))
    text, seen, ended, polling = tab.follow(None)  # a fresh page (a reload): no state
    assert polling and not ended and ("running" in text or "starting" in text)
    polls = follow_to_the_end(seen)
    assert polls[-1][2] is True and "finished: 8 records" in polls[-1][0]
    running = [poll[0] for poll in polls if "running:" in poll[0]]
    assert any("ETA" in line and "/8 completions" in line for line in running), running
    assert tab.follow(None)[2:] == (False, False)  # opened after the end: nothing to deliver


def test_accuracy_chart_labels_every_bar_even_at_zero():
    zero = {"value": 0.0, "stderr": 0.0}
    summary = {
        "order": ["base", "tuned"],
        "grader": "auto",
        "systems": {
            "base": {"accuracy": zero, "strict": zero, "flexible": zero},
            "tuned": {"accuracy": {"value": 0.25, "stderr": 0.1}, "strict": zero, "flexible": zero},
        },
    }
    figure = tab.accuracy_figure(EvalSummary.from_dict(summary))
    accuracy = next(trace for trace in figure.data if trace.name.startswith("auto"))
    assert list(accuracy.text) == ["0.0%", "25.0%"] and accuracy.textposition == "outside"
