"""Evaluate tab handlers, called directly (no browser) on the tiny model; the tab builds."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import gradio as gr
import pytest

from mathtutor import store
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
    progress = []
    text, run_id = tab.start(
        str(tiny_model_dir),
        ["base", str(tiny_adapter_dir)],
        None,
        form(),
        progress=lambda value, desc="", unit="": progress.append((value, desc)),
    )
    assert "finished" in text and run_id in text
    assert progress[0][0] == (0, 8) and progress[-1][0] == (8, 8)
    assert "ETA" in progress[-1][1]
    return run_id


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
    calls = []

    def progress(value, desc="", unit=""):
        calls.append(value)
        if len(calls) == 2:  # after the first batch, the user presses Stop
            tab.request_stop("session-1")

    text, run_id = tab.start(
        str(tiny_model_dir), ["base"], None, form(batch_size=2.0), progress, "session-1"
    )
    assert "stopped" in text and len(store.load_records(run_id)) == 2
    text, resumed = tab.start("", [], None, {"batch_size": 2}, None, "session-1", run_id)
    assert resumed == run_id and "finished" in text
    assert len(store.load_records(run_id)) == 4


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
    figure = tab.accuracy_figure(summary)
    accuracy = next(trace for trace in figure.data if trace.name.startswith("auto"))
    assert list(accuracy.text) == ["0.0%", "25.0%"] and accuracy.textposition == "outside"
