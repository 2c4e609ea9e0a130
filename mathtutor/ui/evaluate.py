"""Evaluate tab: run an evaluation over base and adapters, see the table, browse the errors.

The form is built from `EvalConfig`'s fields (help text as `info=`), so the UI, the CLI and the
tests configure the same dataclass. Start runs `mathtutor.evaluate.evaluate` in the shared GPU
queue with a progress bar and ETA; Stop sets a per-session flag the evaluation checks between
batches, and Resume continues a stopped run. Results, past runs and the error browser read the
SQLite store, so they survive reloads and restarts. The handlers below are plain functions
(tests call them directly); `build` only wires them to components.
"""

from __future__ import annotations

import dataclasses
import html
import tempfile
import time
from pathlib import Path
from typing import Any

import gradio as gr

from mathtutor import metrics, store
from mathtutor.evaluate import EvalConfig, evaluate, export_run, running_run
from mathtutor.models import BASE
from mathtutor.render import faithful_html, slip_marks
from mathtutor.ui.common import GPU, AppContext, dataframe_value, system_choices, user_error

FILTERS = ("all", "fixed", "regressed", "both wrong", "both right", "any wrong")
ANY = "any"
MAIN_FIELDS = ("dataset", "num_samples", "prompt_format")
UPLOAD_FIELDS = ("question_field", "answer_field")
FORM_FIELDS = [  # set elsewhere: model (the picker on top), systems, path (upload), run_id
    f
    for f in dataclasses.fields(EvalConfig)
    if f.name not in ("model", "systems", "path", "run_id")
]
_STOP_REQUESTS: set[str] = set()  # sessions whose running evaluation should stop


# --------------------------------------------------------------------------- running
def config_from_form(
    spec: str, systems: list[str], upload: str | None, settings: dict[str, Any]
) -> EvalConfig:
    """The `EvalConfig` a filled-in form stands for (numbers from gr.Number come as floats)."""
    values = {}
    for spec_field in FORM_FIELDS:
        value = settings.get(spec_field.name, spec_field.default)
        if spec_field.type == "int | None" and not value:
            value = None  # an emptied gr.Number sends 0: "auto"
        elif spec_field.type.startswith("int") and value not in (None, ""):
            value = int(value)
        values[spec_field.name] = value if value != "" else None
    return EvalConfig(model=spec or "bundled", systems=list(systems or []), path=upload, **values)


def start(
    spec: str,
    systems: list[str],
    upload: str | None,
    settings: dict[str, Any],
    progress: Any = None,
    session: str = "local",
    run_id: str | None = None,
) -> tuple[str, str]:
    """Run (or, with run_id, resume) an evaluation; returns (status text, run id)."""
    if run_id:
        config = EvalConfig(run_id=run_id, batch_size=settings.get("batch_size") or None)
    else:
        config = config_from_form(spec, systems, upload, settings)
    _STOP_REQUESTS.discard(session)
    report = evaluate(config, _reporter(progress), lambda: session in _STOP_REQUESTS)
    _STOP_REQUESTS.discard(session)
    verb = "finished" if report.status == "finished" else "stopped (Resume continues it)"
    text = (
        f"Run `{report.run_id}` {verb}: {report.num_records} records, "
        f"{_duration(report.seconds)} this session."
    )
    return text, report.run_id


def request_stop(session: str = "local") -> str:
    """Ask this session's running evaluation to stop after its current batch."""
    _STOP_REQUESTS.add(session)
    running = running_run()
    return f"Stopping run `{running}` after the current batch…" if running else "Nothing running."


def _reporter(progress: Any):
    if progress is None:
        return None
    begun: list[float] = []

    def report(done: int, total: int) -> None:
        if not begun:
            begun.extend([time.perf_counter(), done])
        elapsed, first = time.perf_counter() - begun[0], begun[1]
        eta = ""
        if done > first:
            eta = f" · ETA {_duration(elapsed / (done - first) * (total - done))}"
        progress((done, total), desc=f"{done}/{total} completions{eta}", unit="completions")

    return report


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


# --------------------------------------------------------------------------- results
def results_table(summary: dict[str, Any]) -> dict[str, Any]:
    rows = metrics.results_rows(summary)
    columns = list(dict.fromkeys(key for row in rows for key in row)) or ["system"]
    return dataframe_value(rows, columns)


def accuracy_figure(summary: dict[str, Any]):
    """Grouped bars per system: the format's grader, lm-eval strict and flexible (± stderr)."""
    import plotly.graph_objects as go

    figure = go.Figure()
    systems = summary.get("order", [])
    grader = summary.get("grader", "auto")
    series = [("accuracy", f"{grader} (numeric)"), ("strict", "strict"), ("flexible", "flexible")]
    if any(summary["systems"][s].get("majority") for s in systems):
        series.append(("majority", f"maj@{summary.get('num_votes')}"))
    for key, label in series:
        estimates = [summary["systems"][s].get(key) or {} for s in systems]
        values = [100 * (e.get("value") or 0) for e in estimates]
        figure.add_bar(
            name=label,
            x=systems,
            y=values,
            # Every bar is labelled with its value, so a 0% bar is still visibly there.
            text=[f"{value:.1f}%" for value in values],
            textposition="outside",
            cliponaxis=False,
            error_y={"type": "data", "array": [100 * (e.get("stderr") or 0) for e in estimates]},
        )
    figure.update_layout(
        barmode="group",
        yaxis={"title": "accuracy (%)", "range": [0, 105]},
        height=360,
        margin={"t": 30, "b": 30},
        legend={"orientation": "h"},
    )
    return figure


def categories_figure(summary: dict[str, Any]):
    """Stacked bars: wrong answers per error category, per system."""
    import plotly.graph_objects as go

    figure = go.Figure()
    systems = summary.get("order", [])
    for category in metrics.CATEGORIES:
        counts = [summary["systems"][s]["categories"][category] for s in systems]
        figure.add_bar(name=category, x=systems, y=counts)
    figure.update_layout(
        barmode="stack",
        yaxis={"title": "wrong answers"},
        height=360,
        margin={"t": 30, "b": 30},
        legend={"orientation": "h"},
    )
    return figure


def runs_table() -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Past runs, newest first: a table and the (label, id) choices of the run picker."""
    rows, choices = [], []
    for run in store.list_eval_runs():
        config, summary = run["config"], run.get("summary") or {}
        accuracy = [
            f"{name}: {100 * ((summary['systems'][name].get('accuracy') or {}).get('value') or 0):.1f}%"
            for name in summary.get("order", [])
        ]
        rows.append(
            {
                "run": run["id"],
                "status": run["status"],
                "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(run["created"])),
                "dataset": config.get("dataset"),
                "format": config.get("prompt_format"),
                "systems": ", ".join(config.get("labels") or config.get("systems", [])),
                "problems": config.get("num_samples"),
                "records": run["num_records"],
                "accuracy": " · ".join(accuracy),
            }
        )
        choices.append((f"{run['id']} · {config.get('dataset')} · {run['status']}", run["id"]))
    columns = ["run", "status", "created", "dataset", "format", "systems", "problems"]
    return dataframe_value(rows, [*columns, "records", "accuracy"]), choices


def show_run(run_id: str | None) -> tuple:
    """(run info, results table, accuracy chart, category chart, compare-with choices) of a run."""
    run = store.get_eval_run(run_id) if run_id else None
    if run is None:
        empty = {"headers": ["system"], "data": []}
        return "", empty, None, None, gr.Dropdown(choices=[], value=None)
    summary = run.get("summary")
    if not summary:  # still running, or killed before its first summary
        summary = metrics.summarize(store.load_records(run_id), run["config"]["labels"])
    order = summary["order"]
    others = order[1:] or order
    status = f"Run `{run_id}`: {run['status']}" + (f" — {run['error']}" if run.get("error") else "")
    return (
        status,
        results_table(summary),
        accuracy_figure(summary),
        categories_figure(summary),
        gr.Dropdown(choices=others, value=others[0]),
    )


# --------------------------------------------------------------------------- error browser
def _by_problem(records: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    grouped: dict[str, dict[str, dict[str, Any]]] = {}
    for record in sorted(records, key=lambda r: r["position"]):
        grouped.setdefault(record["problem_id"], {})[record["system"]] = record
    return grouped


def browse(
    records: list[dict[str, Any]],
    systems: list[str],
    other: str | None,
    verdict: str = "all",
    category: str = ANY,
    search: str = "",
) -> list[dict[str, Any]]:
    """Problems of a run, filtered; `fixed`/`regressed` compare systems[0] with `other`."""
    first = systems[0]
    other = other if other in systems else first
    needle = (search or "").strip().lower()
    rows = []
    for problem_id, by_system in _by_problem(records).items():
        a, b = by_system.get(first), by_system.get(other)
        if verdict != "all":
            if a is None or b is None:
                continue
            pair = (a["is_correct"], b["is_correct"])
            wanted = {
                "fixed": pair == (False, True),
                "regressed": pair == (True, False),
                "both wrong": pair == (False, False),
                "both right": pair == (True, True),
                "any wrong": not all(r["is_correct"] for r in by_system.values()),
            }
            if not wanted[verdict]:
                continue
        if category != ANY and not any(r["category"] == category for r in by_system.values()):
            continue
        sample = next(iter(by_system.values()))
        texts = [problem_id, sample["question"], *(r["completion"] for r in by_system.values())]
        if needle and not any(needle in text.lower() for text in texts):
            continue
        row = {
            "problem": problem_id,
            "question": _short(sample["question"], 90),
            "reference": sample["answer"],
        }
        for name in systems:
            record = by_system.get(name)
            row[name] = "" if record is None else _verdict(record)
        rows.append(row)
    return rows


def _verdict(record: dict[str, Any]) -> str:
    answer = record["extracted"] if record["extracted"] is not None else "—"
    if record["is_correct"]:
        return f"✓ {answer}"
    return f"✗ {answer} · {record['category']}"


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def filter_problems(
    run_id: str | None, other: str | None, verdict: str, category: str, search: str
) -> tuple[dict[str, Any], Any]:
    """Handler: the error table and the problem picker's choices."""
    run = store.get_eval_run(run_id) if run_id else None
    if run is None:
        return {"headers": ["problem"], "data": []}, gr.Dropdown(choices=[], value=None)
    systems = run["config"]["labels"]
    rows = browse(store.load_records(run_id), systems, other, verdict, category, search)
    columns = ["problem", "question", "reference", *systems]
    ids = [row["problem"] for row in rows]
    return dataframe_value(rows, columns), gr.Dropdown(choices=ids, value=ids[0] if ids else None)


def highlight(text: str, steps: list[dict[str, Any]]) -> str:
    """HTML of a completion shown exactly, each wrong arithmetic step marked with its value."""
    return faithful_html(text, slip_marks(steps))


def problem_detail(run_id: str | None, problem_id: str | None) -> str:
    """Handler: question, reference solution and every system's completion, slips marked."""
    if not run_id or not problem_id:
        return "<p><em>Pick a problem in the table.</em></p>"
    by_system = _by_problem(store.load_records(run_id)).get(problem_id)
    if not by_system:
        return f"<p>No records for problem {html.escape(problem_id)}.</p>"
    sample = next(iter(by_system.values()))
    reference = sample.get("solution") or sample["answer"]
    pre = 'style="white-space: pre-wrap; font-family: inherit; margin: 0"'
    parts = [
        f"<h4>{html.escape(problem_id)}</h4><p>{html.escape(sample['question'])}</p>",
        f"<details open><summary><b>Reference</b> ({html.escape(sample['answer'])})</summary>"
        f"<pre {pre}>{html.escape(reference)}</pre></details>",
    ]
    for name, record in by_system.items():
        mark = "✅ correct" if record["is_correct"] else f"❌ {record['category']}"
        extracted = record["extracted"] if record["extracted"] is not None else "no answer"
        parts.append(
            f"<h5>{html.escape(name)}: {mark} · answer <code>{html.escape(extracted)}</code>"
            f" · {record['num_tokens']} tokens ({html.escape(str(record['finish_reason']))})</h5>"
            f"{highlight(record['completion'], record['wrong_steps'])}"
        )
    return f'<div class="eval-detail">{"".join(parts)}</div>'


def send_to_compare(run_id: str | None, problem_id: str | None) -> tuple[str, str, Any]:
    """Handler: the problem and its answer into the Compare tab, and switch to it."""
    records = _by_problem(store.load_records(run_id)).get(problem_id or "") if run_id else None
    if not records:
        raise gr.Error("Pick a problem first.", print_exception=False)
    sample = next(iter(records.values()))
    return sample["question"], sample["answer"], gr.Tabs(selected="compare")


def delete_run(run_id: str | None) -> str:
    if not run_id:
        raise gr.Error("Pick a run to delete.", print_exception=False)
    if running_run() == run_id:
        raise gr.Error(f"Run {run_id} is running: stop it first.", print_exception=False)
    store.delete_eval_run(run_id)
    return f"Deleted run `{run_id}`."


def export(run_id: str | None, file_format: str) -> str:
    """Handler: write the run's records to a temporary file for download."""
    if not run_id:
        raise gr.Error("Pick a run to export.", print_exception=False)
    target = Path(tempfile.mkdtemp(prefix="mathtutor-export-")) / f"{run_id}.{file_format}"
    return str(export_run(run_id, target, file_format))


# --------------------------------------------------------------------------- layout
def _widget(spec_field: dataclasses.Field) -> gr.components.Component:
    """One form component for one `EvalConfig` field: its type, default, help and range."""
    name, meta = spec_field.name, spec_field.metadata
    common = {
        "label": name.replace("_", " ").capitalize(),
        "info": meta["help"],
        "elem_id": f"eval-{name.replace('_', '-')}",
    }
    default = spec_field.default
    if "choices" in meta:
        return gr.Dropdown(list(meta["choices"]), value=default, **common)
    if spec_field.type == "bool":
        return gr.Checkbox(value=default, **common)
    if "range" in meta and spec_field.type == "float":
        low, high = meta["range"]
        return gr.Slider(low, high, value=default, step=0.05, **common)
    if "range" in meta and meta["range"][1] <= 4096:
        low, high = meta["range"]
        return gr.Slider(low, high, value=default, step=1, **common)
    if spec_field.type == "int | None":  # e.g. batch size: empty or 0 means automatic
        common["info"] = f"{meta['help']} 0 = automatic."
        return gr.Number(value=default, precision=0, minimum=0, **common)
    if spec_field.type.startswith("int"):
        # No `minimum=`: Gradio's own range message does not name the field; the config's
        # validation does ("num_samples must be between 1 and 100000, got 0").
        return gr.Number(value=default, precision=0, **common)
    return gr.Textbox(value=default, **common)


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "local"


def build(ctx: AppContext, tab: gr.Tab) -> None:
    widgets: dict[str, Any] = {}
    with gr.Row():
        systems = gr.Dropdown(
            system_choices(ctx.model_spec.value),
            value=[BASE],
            multiselect=True,
            label="Systems",
            info="Base and adapters, evaluated on the same problems; the "
            "first is the reference for fixed/regressed.",
            elem_id="eval-systems",
            scale=2,
        )
        for spec_field in FORM_FIELDS:
            if spec_field.name in MAIN_FIELDS:
                widgets[spec_field.name] = _widget(spec_field)
    with gr.Group(visible=False) as upload_group, gr.Row():
        upload = gr.File(
            label="Your problems (JSONL / JSON / CSV)",
            file_types=[".jsonl", ".json", ".csv", ".tsv"],
            type="filepath",
            elem_id="eval-upload",
        )
        for spec_field in FORM_FIELDS:
            if spec_field.name in UPLOAD_FIELDS:
                widgets[spec_field.name] = _widget(spec_field)
    with gr.Accordion("Settings", open=False), gr.Row():
        for spec_field in FORM_FIELDS:
            if spec_field.name not in (*MAIN_FIELDS, *UPLOAD_FIELDS):
                widgets[spec_field.name] = _widget(spec_field)
    with gr.Row():
        start_button = gr.Button("Start evaluation", variant="primary", elem_id="eval-start")
        stop_button = gr.Button("Stop", elem_id="eval-stop")
        resume_button = gr.Button("Resume selected run", elem_id="eval-resume")
    status = gr.Markdown(elem_id="eval-status")
    with gr.Row():
        run_picker = gr.Dropdown([], label="Run", elem_id="eval-run", scale=3)
        refresh_runs = gr.Button("↻ runs", elem_id="eval-refresh-runs", size="sm", scale=0)
        delete_button = gr.Button("Delete run", elem_id="eval-delete-run", size="sm", scale=0)
        export_format = gr.Radio(
            ["jsonl", "csv"],
            value="jsonl",
            label="Export as",
            elem_id="eval-export-format",
            scale=1,
        )
        export_button = gr.Button("Export", elem_id="eval-export", size="sm", scale=0)
        export_file = gr.File(label="Download", elem_id="eval-export-file", scale=1, height=90)
    run_info = gr.Markdown(elem_id="eval-run-info")
    results = gr.Dataframe(label="Results", interactive=False, elem_id="eval-results-table")
    with gr.Row():
        accuracy_plot = gr.Plot(label="Accuracy ± standard error", elem_id="eval-accuracy-plot")
        categories_plot = gr.Plot(label="Error categories", elem_id="eval-categories-plot")
    with gr.Accordion("Past runs", open=False):
        runs = gr.Dataframe(interactive=False, elem_id="eval-runs-table")
    gr.Markdown("### Error browser")
    with gr.Row():
        other = gr.Dropdown([], label="Compare first system with", elem_id="eval-compare-with")
        verdict = gr.Radio(list(FILTERS), value="all", label="Show", elem_id="eval-filter")
        category = gr.Dropdown(
            [ANY, *metrics.CATEGORIES], value=ANY, label="Category", elem_id="eval-category-filter"
        )
        search = gr.Textbox(
            label="Search", placeholder="text in question or answers", elem_id="eval-search"
        )
    errors = gr.Dataframe(
        interactive=False,
        elem_id="eval-errors-table",
        wrap=True,
        # problem, question, reference: fixed, so the systems' columns stay on screen and the
        # header never wraps mid-word ("refe renc e"); the question wraps inside its column.
        column_widths=["150px", "300px", "110px"],
    )
    with gr.Row():
        problem = gr.Dropdown([], label="Problem", elem_id="eval-problem", scale=3)
        send = gr.Button(
            "Send to Compare",
            elem_id="eval-send-compare",
            scale=1,
            visible=ctx.compare_problem is not None,
        )
    detail = gr.HTML(elem_id="eval-detail")

    names = list(widgets)

    def finished(text: str, run_id: str) -> tuple:
        table, choices = runs_table()
        return text, table, gr.Dropdown(choices=choices, value=run_id)

    def on_start(request: gr.Request, progress=gr.Progress(), *values):
        spec, chosen, path, *settings = values
        try:
            form = dict(zip(names, settings, strict=True))
            return finished(*start(spec, chosen, path, form, progress, _session(request)))
        except Exception as error:
            raise user_error(error) from error

    def on_resume(request: gr.Request, progress=gr.Progress(), run_id=None, batch=None):
        if not run_id:
            raise gr.Error("Pick a run to resume.", print_exception=False)
        try:
            form = {"batch_size": batch}
            return finished(*start("", [], None, form, progress, _session(request), run_id))
        except Exception as error:
            raise user_error(error) from error

    def on_stop(request: gr.Request) -> str:
        return request_stop(_session(request))

    def on_runs(keep: str | None = None):
        table, choices = runs_table()
        keep = keep if keep in [choice[1] for choice in choices] else None
        return table, gr.Dropdown(choices=choices, value=keep)

    def on_select(event: gr.SelectData):
        return gr.Dropdown(value=event.row_value[0]) if event.row_value else gr.Dropdown()

    view_outputs = [run_info, results, accuracy_plot, categories_plot, other]
    filter_inputs = [run_picker, other, verdict, category, search]
    heavy = {"concurrency_id": GPU, "concurrency_limit": 1}
    start_inputs = [ctx.model_spec, systems, upload, *widgets.values()]
    start_button.click(on_start, start_inputs, [status, runs, run_picker], **heavy)
    resume_button.click(
        on_resume, [run_picker, widgets["batch_size"]], [status, runs, run_picker], **heavy
    )
    stop_button.click(on_stop, None, status)
    run_picker.change(show_run, run_picker, view_outputs).then(
        filter_problems, filter_inputs, [errors, problem]
    )
    gr.on(
        [verdict.change, category.change, search.submit, other.input],
        filter_problems,
        filter_inputs,
        [errors, problem],
    )
    errors.select(on_select, None, problem)
    problem.change(problem_detail, [run_picker, problem], detail)
    if ctx.compare_problem is not None and ctx.compare_reference is not None:
        send.click(
            send_to_compare,
            [run_picker, problem],
            [ctx.compare_problem, ctx.compare_reference, ctx.tabs],
        )
    delete_button.click(delete_run, run_picker, status).then(on_runs, None, [runs, run_picker])
    export_button.click(export, [run_picker, export_format], export_file)
    refresh_runs.click(on_runs, run_picker, [runs, run_picker])
    upload_visible = widgets["dataset"]
    upload_visible.change(lambda d: gr.Group(visible=d == "upload"), upload_visible, upload_group)

    def refresh_systems(spec: str, chosen: list[str]):
        choices = system_choices(spec)
        kept = [c for c in chosen or [] if c in choices] or [BASE]
        return gr.Dropdown(choices=choices, value=kept)

    tab.select(refresh_systems, [ctx.model_spec, systems], systems).then(
        on_runs, run_picker, [runs, run_picker]
    )
    ctx.model_spec.change(refresh_systems, [ctx.model_spec, systems], systems)
