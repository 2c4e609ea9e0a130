"""Evaluate tab: run an evaluation over base and adapters, see the table, browse the errors.

The form is built from `EvalConfig`'s fields (help text as `info=`), so the UI, the CLI and the
tests configure the same dataclass. Start launches `mathtutor.evaluate.evaluate` as a background
job (`mathtutor.jobs`) and returns at once; a timer polls the job (done/total, ETA from the
measured rate), so leaving or reloading the page neither stops nor loses it, and Compare and
Tutor are not queued behind it. Stop ends the job after its current batch; Resume continues a
stopped run. Results, past runs and the error browser read the
SQLite store, so they survive reloads and restarts. The handlers below are plain functions
(tests call them directly); `build` only wires them to components. On a Space a visitor's
evaluation is bounded in size and counted per client (`admit`), and deleting a run is for the
owner and admins (`mathtutor.access`).
"""

from __future__ import annotations

import dataclasses
import html
import time
from typing import Any

import gradio as gr

from mathtutor import access, jobs, metrics, results, store, tables
from mathtutor.evaluate import EvalConfig, check_problems, export_run, running_run
from mathtutor.metrics import format_duration
from mathtutor.models import BASE
from mathtutor.presets import preset_values
from mathtutor.render import faithful_html, slip_marks
from mathtutor.results import EvalSummary
from mathtutor.ui.common import (
    AppContext,
    client_key,
    dataframe_value,
    download_dir,
    field_widget,
    gate_note,
    signed_in_user,
    system_choices,
    user_error,
)

FILTERS = ("all", *results.VERDICTS, "any wrong")
ANY = "any"
MAIN_FIELDS = ("dataset", "num_samples", "prompt_format")
UPLOAD_FIELDS = ("question_field", "answer_field")
HUB_FIELDS = ("hub_id", "hub_config", "split", "revision")
MAPPING_FIELDS = (
    "question_template", "solution_field", "id_field", "choices_field", "answer_type",
)  # fmt: skip
DATASET_FIELDS = (*UPLOAD_FIELDS, *HUB_FIELDS, *MAPPING_FIELDS)
TABLE_DATASETS = ("upload", "hub")  # datasets whose columns are mapped (and previewed)
FORM_FIELDS = [  # set elsewhere: model (the picker on top), systems, path (upload), run_id
    f
    for f in dataclasses.fields(EvalConfig)
    if f.name not in ("model", "systems", "path", "run_id")
]
POLL_SECONDS = 1.0  # how often a page following an evaluation asks for its progress
STARTED = "new:starting"  # what a page has seen right after its Start (see `follow`)


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


def preview_dataset(upload: str | None, settings: dict[str, Any]) -> str:
    """The columns found and three mapped rows of the form's upload or Hub dataset (Markdown).

    The same `EvalConfig` (and so the same `ColumnMapping`) the run will use; nothing runs.
    """
    dataset = settings.get("dataset")
    if dataset not in TABLE_DATASETS:
        return ""
    if dataset == "upload" and not upload:
        return "Upload a JSONL / JSON / CSV / Parquet file to see its columns."
    if dataset == "hub" and not (settings.get("hub_id") or "").strip():
        return "Type a Hub dataset id (owner/name) to see its columns."
    config = config_from_form("bundled", [BASE], upload, settings)
    if dataset == "hub":
        source = tables.TableSource(config.hub_id, config.hub_config, config.split, config.revision)
    else:
        source = tables.TableSource(path=str(upload))
    return tables.preview(source, config.mapping()).markdown()


def preset_form(name: str | None) -> dict[str, Any]:
    """The form values preset `name` sets (empty for no preset)."""
    return preset_values(name) if name else {}


def admit(config: EvalConfig, user: str | None, client: str) -> None:
    """A visitor's evaluation on a Space: within `access.VISITOR_BOUNDS`, counted per client."""
    sized = dataclasses.asdict(config)
    if config.run_id:  # a resume continues the stored run, at its size
        stored = store.get_eval_run(config.run_id) or {}
        sized = {**stored.get("config", sized), "batch_size": config.batch_size}
    size = {
        "num_samples": sized.get("num_samples"),
        "num_systems": len(sized.get("systems") or []),
        "num_votes": sized.get("num_votes"),
        "max_new_tokens": sized.get("max_new_tokens"),
        "batch_size": sized.get("batch_size"),
    }
    access.check_bounds(size, user)
    access.LIMITERS["evaluate"].check(client, user)


def start(
    spec: str,
    systems: list[str],
    upload: str | None,
    settings: dict[str, Any],
    run_id: str | None = None,
    user: str | None = None,
    client: str = "local",
) -> str:
    """Launch (or, with run_id, resume) an evaluation for `user` as a background job; returns
    its status.

    It returns at once: the job runs in the app (`mathtutor.jobs`) whatever the browser does,
    and the tab follows it with `follow`. A visitor's job is bounded and counted (`admit`).
    """
    if run_id:
        config = EvalConfig(run_id=run_id, batch_size=settings.get("batch_size") or None)
    else:
        config = config_from_form(spec, systems, upload, settings)
    admit(config, user, client)
    if not run_id:
        check_problems(config)  # a bad upload is refused now, not reported later by the job
    return job_status(jobs.start_evaluation(config, started_by=client))


def request_stop(user: str | None = None, client: str = "local") -> str:
    """Ask the running evaluation to stop after its current batch: the client that started it
    may, and on a Space the owner and admins may stop anyone's (`mathtutor.access`)."""
    job = jobs.current_job()
    if job is None or not job.running:
        return "Nothing running."
    if job.started_by != client:
        access.require("stop_eval", user)
    jobs.stop_job()
    return f"Stopping run `{job.run_id}` after the current batch…"


def job_status(job: jobs.EvalJob | None) -> str:
    """The status line of a background evaluation: done/total and ETA, or how it ended."""
    if job is None:
        return ""
    name = f"Run `{job.run_id}`" if job.run_id else "The evaluation"
    if job.status == "starting":
        return f"{name} is starting (loading the model and the problems)…"
    if job.status == "running":
        rate, eta = job.rate(), job.eta()
        parts = [f"{name} running: {job.done}/{job.total} completions"]
        if rate:
            parts.append(f"{60 * rate:.1f} completions/min")
        parts.append(
            f"ETA {format_duration(eta)}" if eta is not None else "ETA after the first batch"
        )
        if job.stopping:
            parts.append("stopping after the current batch")
        return " · ".join(parts)
    if job.status == "failed" or job.report is None:
        return f"❌ {name} failed: {job.error}"
    verb = "finished" if job.status == "finished" else "stopped (Resume continues it)"
    return (
        f"Run `{job.run_id}` {verb}: {job.report.num_records} records, "
        f"{format_duration(job.report.seconds)} this session."
    )


def follow(seen: str | None) -> tuple[str, str | None, bool, bool]:
    """One poll of a page following the evaluation: (status, seen, ended now, keep polling).

    `seen` is what this page saw last ("<run id>:<status>", None on a fresh page). "Ended now"
    is true once, on the first poll after a job this page saw running has ended: the tab then
    refreshes its runs and shows the run. A page opened after the job ended only shows its line.
    """
    job = jobs.current_job()
    if job is None:
        return "", None, False, False
    now = f"{job.run_id}:{job.status}"
    ended = not job.running and (seen or "").rsplit(":", 1)[-1] in ("starting", "running")
    return job_status(job), now if job.running or ended else seen, ended, job.running


# --------------------------------------------------------------------------- results
def results_table(summary: EvalSummary) -> dict[str, Any]:
    rows = results.results_rows(summary)
    columns = list(dict.fromkeys(key for row in rows for key in row)) or ["system"]
    return dataframe_value(rows, columns)


def accuracy_figure(summary: EvalSummary):
    """Grouped bars per system: the format's grader, lm-eval strict and flexible (± stderr)."""
    import plotly.graph_objects as go

    figure = go.Figure()
    systems = list(summary.order)
    stats = [summary.systems[s] for s in systems]
    series = [
        ("accuracy", f"{summary.grader or 'auto'} ({summary.answer_type or 'number'})"),
        ("strict", "strict"),
        ("flexible", "flexible"),
    ]
    if any(system.majority for system in stats):
        series.append(("majority", f"maj@{summary.num_votes}"))
    for key, label in series:
        estimates = [getattr(system, key) for system in stats]
        values = [100 * (e.value if e else 0) for e in estimates]
        figure.add_bar(
            name=label,
            x=systems,
            y=values,
            # Every bar is labelled with its value, so a 0% bar is still visibly there.
            text=[f"{value:.1f}%" for value in values],
            textposition="outside",
            cliponaxis=False,
            error_y={"type": "data", "array": [100 * ((e and e.stderr) or 0) for e in estimates]},
        )
    figure.update_layout(
        barmode="group",
        yaxis={"title": "accuracy (%)", "range": [0, 105]},
        height=360,
        margin={"t": 30, "b": 30},
        legend={"orientation": "h"},
    )
    return figure


def categories_figure(summary: EvalSummary):
    """Stacked bars: wrong answers per error category, per system."""
    import plotly.graph_objects as go

    figure = go.Figure()
    systems = list(summary.order)
    for category in summary.category_names:
        counts = [summary.systems[s].category(category) for s in systems]
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
        config, summary = run["config"], EvalSummary.from_dict(run.get("summary"))
        shown = {name: summary.systems[name].accuracy for name in summary.order}
        accuracy = [f"{name}: {100 * (e.value if e else 0):.1f}%" for name, e in shown.items()]
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
    if run.get("summary"):
        summary = EvalSummary.from_dict(run["summary"])
    else:  # still running, or killed before its first summary
        summary = results.summarize(store.load_records(run_id), run["config"]["labels"])
    order = list(summary.order)
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
def browse(
    records: list[dict[str, Any]],
    systems: list[str],
    other: str | None,
    verdict: str = "all",
    category: str = ANY,
    search: str = "",
) -> list[dict[str, Any]]:
    """Table rows of `results.select_problems` (fixed/regressed: systems[0] vs `other`)."""
    chosen = None if category == ANY else category
    rows = []
    for by_system in results.select_problems(records, systems, other, verdict, chosen, search):
        sample = next(iter(by_system.values()))
        row = {
            "problem": sample["problem_id"],
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
    return f"✗ {answer} · {record.get('category', '?')}"


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
    by_system = results.by_problem(store.load_records(run_id)).get(problem_id)
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
        mark = "✅ correct" if record["is_correct"] else f"❌ {record.get('category', '?')}"
        extracted = record["extracted"] if record["extracted"] is not None else "no answer"
        parts.append(
            f"<h5>{html.escape(name)}: {mark} · answer <code>{html.escape(extracted)}</code>"
            f" · {record['num_tokens']} tokens ({html.escape(str(record['finish_reason']))})</h5>"
            f"{highlight(record['completion'], record['wrong_steps'])}"
        )
    return f'<div class="eval-detail">{"".join(parts)}</div>'


def send_to_compare(run_id: str | None, problem_id: str | None) -> tuple[str, str, Any]:
    """Handler: the problem and its answer into the Compare tab, and switch to it."""
    records = (
        results.by_problem(store.load_records(run_id)).get(problem_id or "") if run_id else None
    )
    if not records:
        raise gr.Error("Pick a problem first.", print_exception=False)
    sample = next(iter(records.values()))
    return sample["question"], sample["answer"], gr.Tabs(selected="compare")


def delete_run(run_id: str | None, profile: gr.OAuthProfile | None = None) -> str:
    try:
        access.require("delete_eval", signed_in_user(profile))
    except PermissionError as error:
        raise user_error(error) from error
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
    target = download_dir("export") / f"{run_id}.{file_format}"
    return str(export_run(run_id, target, file_format))


# --------------------------------------------------------------------------- layout


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
                widgets[spec_field.name] = field_widget(spec_field, spec_field.default, "eval")
    with gr.Group(visible=False) as upload_group:
        with gr.Row():
            upload = gr.File(
                label="Your problems (JSONL / JSON / CSV / Parquet)",
                file_types=[".jsonl", ".json", ".csv", ".tsv", ".parquet"],
                type="filepath",
                elem_id="eval-upload",
            )
        with gr.Row(visible=False) as hub_row:
            for spec_field in FORM_FIELDS:
                if spec_field.name in HUB_FIELDS:
                    widgets[spec_field.name] = field_widget(spec_field, spec_field.default, "eval")
        with gr.Row():
            for spec_field in FORM_FIELDS:
                if spec_field.name in (*UPLOAD_FIELDS, *MAPPING_FIELDS):
                    widgets[spec_field.name] = field_widget(spec_field, spec_field.default, "eval")
        with gr.Row():
            preview_button = gr.Button("Preview", size="sm", scale=0, elem_id="eval-preview-button")
            preview = gr.Markdown(elem_id="eval-preview")
    with gr.Accordion("Settings", open=False), gr.Row():
        for spec_field in FORM_FIELDS:
            if spec_field.name not in (*MAIN_FIELDS, *DATASET_FIELDS):
                widgets[spec_field.name] = field_widget(spec_field, spec_field.default, "eval")
    with gr.Row():
        start_button = gr.Button("Start evaluation", variant="primary", elem_id="eval-start")
        stop_button = gr.Button("Stop", elem_id="eval-stop")
        resume_button = gr.Button("Resume selected run", elem_id="eval-resume")
    status = gr.Markdown(elem_id="eval-status")
    with gr.Row():
        run_picker = gr.Dropdown([], label="Run", elem_id="eval-run", scale=3)
        refresh_runs = gr.Button("↻ runs", elem_id="eval-refresh-runs", size="sm", scale=0)
        delete_button = gr.Button(
            "Delete run", elem_id="eval-delete-run", size="sm", scale=0,
            interactive=access.allowed("delete_eval", None),
        )  # fmt: skip
        export_format = gr.Radio(
            ["jsonl", "csv"],
            value="jsonl",
            label="Export as",
            elem_id="eval-export-format",
            scale=1,
        )
        export_button = gr.Button("Export", elem_id="eval-export", size="sm", scale=0)
        export_file = gr.File(label="Download", elem_id="eval-export-file", scale=1, height=90)
    gate = gr.Markdown(visible=False, elem_id="eval-gate")
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

    # The endpoint's inputs: main fields, upload fields, then the rest in field order (as
    # before the Hub and mapping fields were laid out beside the upload), whatever the layout.
    order = [*MAIN_FIELDS, *UPLOAD_FIELDS]
    order += [f.name for f in FORM_FIELDS if f.name not in order]
    widgets = {name: widgets[name] for name in order}
    names = list(widgets)

    seen = gr.State(None)  # "<run id>:<status>" this page last showed
    # Active on page load, so a reloaded page re-attaches to a running job; it stops itself
    # when nothing runs, and Start / Resume turn it back on.
    timer = gr.Timer(POLL_SECONDS, active=True)

    def on_start(request: gr.Request, profile: gr.OAuthProfile | None, *values):
        spec, chosen, path, *settings = values
        who = signed_in_user(profile), client_key(request, profile)
        try:
            form = dict(zip(names, settings, strict=True))
            return (
                start(spec, chosen, path, form, None, *who),
                STARTED,
                gr.Timer(active=True),
            )
        except Exception as error:
            raise user_error(error) from error

    def on_resume(request: gr.Request, profile: gr.OAuthProfile | None, run_id=None, batch=None):
        if not run_id:
            raise gr.Error("Pick a run to resume.", print_exception=False)
        who = signed_in_user(profile), client_key(request, profile)
        try:
            text = start("", [], None, {"batch_size": batch}, run_id, *who)
            return text, STARTED, gr.Timer(active=True)
        except Exception as error:
            raise user_error(error) from error

    def on_gate(profile: gr.OAuthProfile | None):
        may, note = gate_note("delete_eval", profile)
        return gr.Button(interactive=may), note

    def on_stop(request: gr.Request, profile: gr.OAuthProfile | None) -> str:
        try:
            return request_stop(signed_in_user(profile), client_key(request, profile))
        except Exception as error:
            raise user_error(error) from error

    def on_tick(last: str | None):
        text, now, ended, polling = follow(last)
        if not ended:
            return text, now, gr.Timer(active=polling), gr.skip(), gr.skip()
        table, choices = runs_table()
        run_id = now.rsplit(":", 1)[0] if now else None
        picked = run_id if run_id in [choice[1] for choice in choices] else None
        return text, now, gr.Timer(active=False), table, gr.Dropdown(choices=choices, value=picked)

    def on_runs(keep: str | None = None):
        table, choices = runs_table()
        keep = keep if keep in [choice[1] for choice in choices] else None
        return table, gr.Dropdown(choices=choices, value=keep)

    def on_select(event: gr.SelectData):
        return gr.Dropdown(value=event.row_value[0]) if event.row_value else gr.Dropdown()

    view_outputs = [run_info, results, accuracy_plot, categories_plot, other]
    filter_inputs = [run_picker, other, verdict, category, search]
    # No shared model queue: the job runs outside Gradio's queue, so Compare and Tutor events
    # never wait behind an evaluation (their forward steps go before its own; see models.py).
    start_inputs = [ctx.model_spec, systems, upload, *widgets.values()]
    started = [status, seen, timer]
    start_button.click(on_start, start_inputs, started, api_name="eval_start")
    resume_button.click(
        on_resume, [run_picker, widgets["batch_size"]], started, api_name="eval_resume"
    )
    stop_button.click(on_stop, None, status)
    timer.tick(on_tick, seen, [status, seen, timer, runs, run_picker], show_progress="hidden")
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
    gr.on(None, on_gate, None, [delete_button, gate], api_visibility="private")  # page load
    export_button.click(export, [run_picker, export_format], export_file)
    refresh_runs.click(on_runs, run_picker, [runs, run_picker], api_name="eval_runs")
    upload_visible = widgets["dataset"]

    def on_dataset(dataset: str):
        return (
            gr.Group(visible=dataset in TABLE_DATASETS),
            gr.File(visible=dataset == "upload"),
            gr.Row(visible=dataset == "hub"),
        )

    upload_visible.change(on_dataset, upload_visible, [upload_group, upload, hub_row])

    def on_preview(path: str | None, *settings):
        try:
            return preview_dataset(path, dict(zip(names, settings, strict=True)))
        except Exception as error:
            raise user_error(error) from error

    preview_inputs = [upload, *widgets.values()]
    mapping_edits = [widgets[name].change for name in (*UPLOAD_FIELDS, *MAPPING_FIELDS)]
    gr.on(
        [preview_button.click, upload.change, widgets["hub_id"].submit, *mapping_edits],
        on_preview, preview_inputs, preview, trigger_mode="always_last", api_name="eval_preview",
    )  # fmt: skip

    def on_preset(name: str | None):
        values = preset_form(name)
        return [gr.update(value=values[n]) if n in values else gr.update() for n in names]

    widgets["preset"].input(on_preset, widgets["preset"], list(widgets.values()))

    def refresh_systems(spec: str, chosen: list[str]):
        choices = system_choices(spec)
        kept = [c for c in chosen or [] if c in choices] or [BASE]
        return gr.Dropdown(choices=choices, value=kept)

    tab.select(refresh_systems, [ctx.model_spec, systems], systems).then(
        on_runs, run_picker, [runs, run_picker]
    )
    ctx.model_spec.change(refresh_systems, [ctx.model_spec, systems], systems)
