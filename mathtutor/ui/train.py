"""Train tab: pick a recipe, check the estimate, launch a run, watch it learn, stop or resume it.

The form is built from `training.config.TrainConfig`'s fields (help text as `info=`, choices as
dropdowns), grouped by their `section`; a recipe fills it. Launch calls
`training.runs.launch`, which starts `python -m training.sft|grpo` as a subprocess (the app
stays responsive and the device memory is freed when the run ends); a second launch while one
runs is queued and shown as such. A `gr.Timer` polls the selected run's `metrics.jsonl` and
log for the loss/learning-rate plots, the task-accuracy plot (held-out problems graded during
training, `eval_every`), the progress bar with ETA and the log tail (kept scrolled to its end). Finished
adapters are registered in the store, so Compare and Evaluate list them without a restart.
The handlers are plain functions over lists of form values (tests call them directly). On a
Space, launch, stop and resume are for its owner and admins (`mathtutor.access`): the handlers
check it on the server, and the buttons are disabled with a note for everyone else.
"""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any

import gradio as gr

from mathtutor import access, tables
from mathtutor.metrics import format_duration
from mathtutor.paths import check_id
from mathtutor.tables import ColumnMapping, TableSource
from mathtutor.ui.common import (
    AppContext,
    dataframe_value,
    field_widget,
    gate_note,
    signed_in_user,
    user_error,
)
from mathtutor.zerogpu import on_zerogpu
from training import runs
from training.config import SECTIONS, TrainConfig, fields_by_section

RECIPES_DIR = Path(runs.REPO_ROOT) / "training" / "recipes"
CUSTOM = "(custom)"
FORM_FIELDS = [item for section in SECTIONS for item in fields_by_section()[section]]
OPEN_SECTIONS = ("model", "data")
SECTION_TITLES = {
    "model": "Model and method",
    "lora": "LoRA adapter",
    "data": "Data",
    "optimization": "Optimization",
    "accuracy": "Task accuracy during training and best checkpoint",
    "grpo": "GRPO (method = grpo)",
    "run": "Run",
}
RUN_COLUMNS = ["run", "status", "step", "loss", "eval_loss", "reward", "best accuracy", "recipe",
               "model", "started"]  # fmt: skip
ACCURACY_KEYS = ("accuracy", "strict", "flexible", "format")
# Follows the log box to its last line when new lines arrive.
SCROLL_LOG_JS = (
    "() => { const box = document.querySelector('#train-log textarea');"
    " if (box) { box.scrollTop = box.scrollHeight; } }"
)
ZEROGPU_NOTE = (
    "⚠️ This Space runs on ZeroGPU, which lends a GPU for at most a few minutes per call: "
    "training needs dedicated GPU hardware (Settings → Hardware, e.g. an L4 or A10G). "
    "Recipes, estimates and past runs still work here."
)


# --------------------------------------------------------------------------- form <-> config
def recipe_choices() -> list[str]:
    return [CUSTOM, *sorted(path.stem for path in RECIPES_DIR.glob("*.yaml"))]


def _shown(value: Any) -> Any:
    return ",".join(value) if isinstance(value, list) else value


def form_values(config: TrainConfig) -> list[Any]:
    """The config as widget values, in FORM_FIELDS order."""
    return [_shown(getattr(config, item.name)) for item in FORM_FIELDS]


def load_recipe(name: str, model_spec: str = "") -> list[Any]:
    """Handler: the form values of a recipe (or the defaults, on the current base model)."""
    if not name or name == CUSTOM:
        return form_values(TrainConfig(model=model_spec or "bundled"))
    return form_values(TrainConfig.from_yaml(RECIPES_DIR / f"{check_id(name, 'recipe')}.yaml"))


def form_config(values: list[Any]) -> TrainConfig:
    """The TrainConfig a filled-in form stands for; ValueError naming the field otherwise."""
    settings = {}
    for item, value in zip(FORM_FIELDS, values, strict=True):
        settings[item.name] = "" if value is None and item.type == "str" else value
    return TrainConfig(**settings)


# --------------------------------------------------------------------------- before launch
def preview(values: list[Any], num_rows: int = 5) -> dict[str, Any]:
    """Handler: a few training examples (question, target, answer) as a table."""
    from training.data import preview as preview_rows

    rows = preview_rows(form_config(values), num_rows)
    return dataframe_value(rows, ["question", "target", "answer"])


def columns_markdown(values: list[Any]) -> str:
    """Handler: an upload's or Hub dataset's columns and three rows as the mapping reads them
    (`mathtutor.tables.preview`, the same one the Evaluate tab shows); empty for other sets."""
    config = form_config(values)
    if config.dataset == "hub":
        source = TableSource(config.hub_id, config.hub_config, config.hub_split, config.revision)
    elif config.dataset == "upload" and config.dataset_path:
        source = TableSource(path=config.dataset_path)
    else:
        return ""
    return tables.preview(source, ColumnMapping.of(config)).markdown()


def estimate_markdown(values: list[Any]) -> str:
    """Handler: parameters, memory and time before launch, with the fits/tight verdict."""
    from training.estimate import estimate, gpu_requirement

    result = estimate(form_config(values))
    icon = {"fits": "✅", "tight": "⚠️", "will not fit": "⛔"}[result.verdict]
    rows = [
        ("Parameters", f"{result.params / 1e6:,.1f} M"),
        (
            "Trainable",
            f"{result.trainable_params / 1e6:,.2f} M "
            f"({100 * result.trainable_params / max(result.params, 1):.2f}%)",
        ),
        (
            "Weights / grads / optimizer",
            f"{result.weights_gb:.2f} / {result.grads_gb:.2f} / {result.optimizer_gb:.2f} GB",
        ),
        ("Activations", f"{result.activations_gb:.2f} GB"),
        ("Total memory", f"**{result.total_gb:.2f} GB** of {result.device_memory_gb:.1f} GB free"),
        ("Device", result.device),
        ("Needs on a GPU", f"~{result.gpu_gb:.1f} GB: {gpu_requirement(result.gpu_gb)}"),
        ("Tokens per step", f"{result.tokens_per_step:,}"),
        (
            "Time",
            f"~{result.seconds_per_step:.1f} s/step × {result.total_steps} steps "
            f"â {format_duration(result.total_seconds)} ({result.calibration})",
        ),
    ]
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    return f"{icon} **{result.verdict}**\n\n| | |\n|---|---|\n{table}"


# --------------------------------------------------------------------------- run control
def launch(values: list[Any], user: str | None = None) -> tuple[str, str]:
    """Handler: validate and start a run as `user`; returns (status text, run id)."""
    access.require("train", user)
    if on_zerogpu():
        raise ValueError(ZEROGPU_NOTE)
    config = form_config(values)
    run_id = runs.launch(config, user=user)
    busy = [info.run_id for info in runs.list_runs() if info.is_active and info.run_id != run_id]
    queued = f" Queued behind {', '.join(busy)}." if busy else ""
    return f"Launched `{run_id}`.{queued}", run_id


def stop(run_id: str | None, user: str | None = None) -> str:
    access.require("stop_run", user)
    if not run_id:
        raise ValueError("Pick a run to stop.")
    status = runs.stop(run_id)
    if status in ("stopping", "queued"):
        return f"Stop requested for `{run_id}`: it saves a checkpoint and its adapter at the next step."
    return f"`{run_id}` is {status}."


def resume(run_id: str | None, user: str | None = None) -> str:
    access.require("resume_run", user)
    if not run_id:
        raise ValueError("Pick a stopped run to resume.")
    runs.resume(run_id, user)
    return f"Resuming `{run_id}` from its last checkpoint."


# --------------------------------------------------------------------------- following a run
def progress(info: runs.RunInfo, rows: list[dict[str, Any]]) -> tuple[float, str]:
    """(percent done, ETA text) from the metrics rows of this session of the run."""
    if not info.max_steps:
        return 0.0, ""
    percent = 100.0 * info.step / info.max_steps
    begin = next((row for row in reversed(rows) if row.get("event") == "begin"), None)
    timed = [row for row in rows if "loss" in row or "reward" in row]
    if info.status != "running" or not begin or not timed or timed[-1]["step"] <= begin["step"]:
        return percent, ""
    last = timed[-1]
    per_step = (last["time"] - begin["time"]) / (last["step"] - begin["step"])
    remaining = per_step * (info.max_steps - info.step)
    return percent, f"{per_step:.1f} s/step, about {format_duration(remaining)} left"


def accuracy_text(rows: list[dict[str, Any]]) -> str:
    """Last and best task accuracy and the evaluation's share of the run, for the status line.

    >>> accuracy_text([{"event": "accuracy", "step": 0, "accuracy": 0.1, "accuracy_stderr": 0.04,
    ...   "eval_n": 48}, {"event": "accuracy", "step": 20, "accuracy": 0.7, "accuracy_stderr": 0.07,
    ...   "eval_n": 48}, {"event": "accuracy_summary", "eval_share": 0.14}])
    'accuracy 70.0% ± 7.0 (n 48) at step 20, best at step 20 · evaluation takes 14% of this run'
    """
    measured = [row for row in rows if row.get("event") == "accuracy" and "accuracy" in row]
    if not measured:
        return ""
    last, best = measured[-1], runs.best_accuracy(measured)
    text = (
        f"accuracy {100 * last['accuracy']:.1f}% ± {100 * last.get('accuracy_stderr', 0):.1f} "
        f"(n {last.get('eval_n', 0)}) at step {last['step']}, best at step {best['step']}"
    )
    if best["step"] != last["step"]:
        text += f" ({100 * best['accuracy']:.1f}%)"
    summary = next((row for row in reversed(rows) if row.get("event") == "accuracy_summary"), None)
    if summary is not None:
        share = summary.get("eval_share", 0.0)
    else:  # running: the time of the evaluations so far over the time since the run began
        begin = next((row for row in reversed(rows) if row.get("event") == "begin"), None)
        spent = sum(row.get("eval_seconds", 0.0) for row in measured)
        elapsed = (rows[-1].get("time", 0) - begin["time"]) if begin else 0
        share = spent / elapsed if elapsed > 0 else 0.0
    return text + f" · evaluation takes {100 * share:.0f}% of this run"


def status_markdown(info: runs.RunInfo, eta: str, rows: list[dict[str, Any]] | None = None) -> str:
    parts = [f"**`{info.run_id}`** — {info.status}", f"step {info.step}/{info.max_steps or '?'}"]
    for key in ("loss", "eval_loss", "reward"):
        if key in info.last:
            parts.append(f"{key} {info.last[key]:.4f}")
    if eta:
        parts.append(eta)
    text = " · ".join(parts)
    accuracy = accuracy_text(rows or [])
    if accuracy:
        text += f"\n\nTask accuracy: {accuracy}"
    if info.status == "queued":
        text += "\n\nWaiting for the device: one run at a time."
    if info.status == "failed" and info.error:
        text += f"\n\n**Failed:** {html.escape(info.error.splitlines()[0][:500])}"
    if info.status in ("stopped", "finished") and (info.run_dir / "adapter").is_dir():
        text += (
            f"\n\nAdapter `{info.run_id}` is in Compare and Evaluate (↻ to refresh their lists)."
        )
    return text


def progress_html(percent: float) -> str:
    return (
        '<div style="background:#e5e7eb;border-radius:4px;height:12px;width:100%">'
        f'<div style="background:#6366f1;height:12px;border-radius:4px;width:{percent:.1f}%">'
        f"</div></div><small>{percent:.0f}%</small>"
    )


def curves_figure(series: dict[str, list[dict[str, Any]]], keys: tuple[str, ...], title: str):
    """A plotly figure: one line per (run, key) over optimizer steps."""
    import plotly.graph_objects as go

    figure = go.Figure()
    for run_id, rows in series.items():
        for key in keys:
            points = [(row["step"], row[key]) for row in rows if key in row]
            if points:
                xs, ys = zip(*points, strict=True)
                name = key if len(series) == 1 else f"{run_id} {key}"
                figure.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=name))
    figure.update_layout(title=title, xaxis_title="step", height=320, margin={"t": 40, "b": 40})
    return figure


def accuracy_figure(series: dict[str, list[dict[str, Any]]], keys: tuple[str, ...] = ACCURACY_KEYS):
    """Task accuracy (%) over steps with ± one standard error, one line per (run, key)."""
    import plotly.graph_objects as go

    figure = go.Figure()
    for run_id, rows in series.items():
        measured = [row for row in rows if row.get("event") == "accuracy"]
        for key in keys:
            points = [row for row in measured if key in row]
            if not points:
                continue
            name = key if len(series) == 1 else f"{run_id} {key}"
            figure.add_trace(
                go.Scatter(
                    x=[row["step"] for row in points],
                    y=[100 * row[key] for row in points],
                    error_y={"type": "data", "visible": True,
                             "array": [100 * row.get(f"{key}_stderr", 0) for row in points]},
                    mode="lines+markers", name=name,
                )
            )  # fmt: skip
    n = next(
        (row.get("eval_n") for rows in series.values() for row in rows if row.get("eval_n")), 0
    )
    figure.update_layout(
        title=f"Task accuracy on {n} held-out problems (± 1 s.e.)" if n else "Task accuracy",
        xaxis_title="step", yaxis_title="%", yaxis_range=[0, 100], height=320,
        margin={"t": 40, "b": 40},
    )  # fmt: skip
    return figure


def follow(run_id: str | None) -> tuple[str, str, Any, Any, str, Any]:
    """Handler (timer): status, progress bar, loss plot, learning-rate plot, log tail, and the
    task-accuracy plot (None when the run measures none)."""
    if not run_id:
        return "No run selected.", progress_html(0), None, None, "", None
    info = runs.get_run(run_id)
    rows = runs.read_metrics(run_id)
    percent, eta = progress(info, rows)
    loss_keys = ("loss", "eval_loss")
    if info.config.get("method") == "grpo":
        loss_keys += ("reward",)
    measured = any(row.get("event") == "accuracy" for row in rows)
    return (
        status_markdown(info, eta, rows),
        progress_html(percent),
        curves_figure(
            {run_id: rows},
            loss_keys,
            "Reward and loss" if info.config.get("method") == "grpo" else "Loss (train and eval)",
        ),
        curves_figure({run_id: rows}, ("lr",), "Learning rate"),
        runs.log_tail(run_id, 40),
        accuracy_figure({run_id: rows}) if measured or info.config.get("eval_every") else None,
    )


def runs_table() -> tuple[dict[str, Any], list[str]]:
    """Handler: every run with its status (queued ones included), and the run ids."""
    table = []
    for info in runs.list_runs():
        best = runs.best_accuracy(runs.read_metrics(info.run_id))
        table.append(
            {
                "run": info.run_id,
                "status": info.status,
                "step": f"{info.step}/{info.max_steps}" if info.max_steps else "",
                "loss": round(info.last["loss"], 4) if "loss" in info.last else "",
                "eval_loss": round(info.last["eval_loss"], 4) if "eval_loss" in info.last else "",
                "reward": round(info.last["reward"], 3) if "reward" in info.last else "",
                "best accuracy": (
                    f"{100 * best['accuracy']:.1f}% @ step {best['step']}" if best else ""
                ),
                "recipe": info.config.get("recipe", ""),
                "model": info.config.get("model", ""),
                "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(info.created)),
            }
        )
    return dataframe_value(table, RUN_COLUMNS), [row["run"] for row in table]


def overlay(first: str | None, second: str | None) -> Any:
    """Handler: two runs' loss curves on one plot."""
    chosen = [run_id for run_id in (first, second) if run_id]
    if not chosen:
        return None
    series = {run_id: runs.read_metrics(run_id) for run_id in dict.fromkeys(chosen)}
    return curves_figure(series, ("loss", "eval_loss"), "Loss: runs compared")


def overlay_accuracy(first: str | None, second: str | None) -> Any:
    """Handler: two runs' task-accuracy curves (the format's grader) on one plot."""
    chosen = [run_id for run_id in (first, second) if run_id]
    if not chosen:
        return None
    series = {run_id: runs.read_metrics(run_id) for run_id in dict.fromkeys(chosen)}
    if not any(row.get("event") == "accuracy" for rows in series.values() for row in rows):
        return None
    return accuracy_figure(series, ("accuracy",))


def export_merged(run_id: str | None, user: str | None = None) -> str:
    """Handler: merge the run's adapter into its base, saved as `runs/<id>/merged`.

    It writes a whole model to the disk, so on a Space it is the owner's (`mathtutor.access`).
    """
    from mathtutor.export import gguf_problem, merge_adapter

    access.require("export", user)
    if not run_id:
        raise ValueError("Pick a finished run to export.")
    info = runs.get_run(run_id)
    adapter = info.run_dir / "adapter"
    if not adapter.is_dir():
        raise ValueError(f"run {run_id} has no adapter yet (status {info.status})")
    out = merge_adapter(adapter, info.run_dir / "merged")
    problem = gguf_problem()
    gguf = (
        f"GGUF: `python -m mathtutor.export {adapter} <folder> --gguf`"
        if problem is None
        else f"GGUF is not available here: {problem}."
    )
    return (
        f"Merged model saved to `{out}` (safetensors, with a card naming the adapter). Push it "
        f"with `python -m mathtutor.export {adapter} <new folder> --push you/name`. {gguf}"
    )


# --------------------------------------------------------------------------- layout
def _handle(function):
    """Wrap a handler so errors reach the browser as clear messages."""

    def wrapped(*args):
        try:
            return function(*args)
        except Exception as error:
            raise user_error(error) from error

    return wrapped


FIELDS_PER_ROW = 4


def build(ctx: AppContext, tab: gr.Tab) -> None:
    if on_zerogpu():
        gr.Markdown(ZEROGPU_NOTE, elem_id="train-zerogpu")
    with gr.Row():
        recipe = gr.Dropdown(
            recipe_choices(), value="bundled-quick", label="Recipe", elem_id="train-recipe",
            info="Seed-report recipes; bundled-quick runs on CPU in minutes.", scale=3,
        )  # fmt: skip
        upload = gr.File(
            label="Upload problems (dataset = upload)", file_types=[".jsonl", ".json", ".csv"],
            type="filepath", elem_id="train-upload", scale=2,
        )  # fmt: skip
    start = TrainConfig.from_yaml(RECIPES_DIR / "bundled-quick.yaml")
    widgets: list[gr.components.Component] = []
    by_name: dict[str, gr.components.Component] = {}
    for section, items in fields_by_section().items():
        with gr.Accordion(SECTION_TITLES[section], open=section in OPEN_SECTIONS):
            for first in range(0, len(items), FIELDS_PER_ROW):  # rows of a few, not one long row
                with gr.Row():
                    for item in items[first : first + FIELDS_PER_ROW]:
                        widget = field_widget(item, getattr(start, item.name), "train")
                        widgets.append(widget)
                        by_name[item.name] = widget
    with gr.Row():
        preview_button = gr.Button("Preview data", elem_id="train-preview-button")
        estimate_button = gr.Button("Estimate memory and time", elem_id="train-estimate-button")
        launch_button = gr.Button(
            "Launch", variant="primary", elem_id="train-launch",
            interactive=not on_zerogpu() and access.allowed("train", None),
        )  # fmt: skip
    gate = gr.Markdown(visible=False, elem_id="train-gate")
    preview_table = gr.Dataframe(
        label="Examples", interactive=False, wrap=True, elem_id="train-preview"
    )
    columns_panel = gr.Markdown(elem_id="train-columns")
    estimate_panel = gr.Markdown(elem_id="train-estimate")
    gr.Markdown("### Runs")
    with gr.Row():
        run_picker = gr.Dropdown([], label="Run", elem_id="train-run", scale=3)
        owner = access.allowed("train", None)  # visitors' buttons start disabled on a Space
        stop_button = gr.Button("Stop", elem_id="train-stop", scale=0, interactive=owner)
        resume_button = gr.Button("Resume", elem_id="train-resume", scale=0, interactive=owner)
    status = gr.Markdown(elem_id="train-status")
    progress_bar = gr.HTML(progress_html(0), elem_id="train-progress")
    with gr.Row():
        loss_plot = gr.Plot(label="Loss", elem_id="train-loss-plot")
        accuracy_plot = gr.Plot(label="Task accuracy", elem_id="train-accuracy-plot")
    with gr.Row():
        lr_plot = gr.Plot(label="Learning rate", elem_id="train-lr-plot")
    log = gr.Textbox(label="Log", lines=10, max_lines=10, autoscroll=True, elem_id="train-log")
    with gr.Row():
        export_button = gr.Button(
            "Export merged model (adapter folded into the base)", elem_id="train-export", scale=0
        )
        export_status = gr.Markdown(elem_id="train-export-status")
    runs_view = gr.Dataframe(label="All runs", interactive=False, elem_id="train-runs")
    with gr.Row():
        first = gr.Dropdown([], label="Compare run", elem_id="train-compare-a")
        second = gr.Dropdown([], label="with run", elem_id="train-compare-b")
    with gr.Row():
        compare_plot = gr.Plot(label="Loss curves overlaid", elem_id="train-compare-plot")
        compare_accuracy = gr.Plot(
            label="Accuracy curves overlaid", elem_id="train-compare-accuracy-plot"
        )
    timer = gr.Timer(2.0)

    def on_runs():
        table, ids = runs_table()
        return table, gr.Dropdown(choices=ids), gr.Dropdown(choices=ids), gr.Dropdown(choices=ids)

    def on_launch(profile: gr.OAuthProfile | None, *values):
        try:
            text, run_id = launch(list(values), signed_in_user(profile))
        except Exception as error:
            raise user_error(error) from error
        return text, gr.Dropdown(choices=runs_table()[1], value=run_id)

    def on_stop(run_id: str | None, profile: gr.OAuthProfile | None) -> str:
        try:
            return stop(run_id, signed_in_user(profile))
        except Exception as error:
            raise user_error(error) from error

    def on_resume(run_id: str | None, profile: gr.OAuthProfile | None) -> str:
        try:
            return resume(run_id, signed_in_user(profile))
        except Exception as error:
            raise user_error(error) from error

    def on_export(run_id: str | None, profile: gr.OAuthProfile | None) -> str:
        try:
            return export_merged(run_id, signed_in_user(profile))
        except Exception as error:
            raise user_error(error) from error

    def on_gate(profile: gr.OAuthProfile | None):
        may, note = gate_note("train", profile)
        return (
            gr.Button(interactive=may and not on_zerogpu()),
            *[gr.Button(interactive=may)] * 2,
            note,
        )

    run_lists = [runs_view, run_picker, first, second]
    recipe.change(_handle(load_recipe), [recipe, ctx.model_spec], widgets, api_name="train_recipe")
    upload.upload(
        lambda path: ("upload", path or ""),
        upload,
        [by_name["dataset"], by_name["dataset_path"]],
        api_name="train_upload",
    )
    preview_button.click(
        _handle(lambda *v: preview(list(v))), widgets, preview_table, api_name="train_preview"
    )
    preview_button.click(_handle(lambda *v: columns_markdown(list(v))), widgets, columns_panel)
    estimate_button.click(
        _handle(lambda *v: estimate_markdown(list(v))),
        widgets,
        estimate_panel,
        api_name="train_estimate",
    )
    launch_button.click(on_launch, widgets, [status, run_picker], api_name="train_launch").then(
        on_runs, None, run_lists
    )
    stop_button.click(on_stop, run_picker, status, api_name="train_stop")
    resume_button.click(on_resume, run_picker, status, api_name="train_resume")
    gated = [launch_button, stop_button, resume_button, gate]
    gr.on([tab.select], on_gate, None, gated, api_visibility="private")
    gr.on(None, on_gate, None, gated, api_visibility="private")  # page load, i.e. after sign-in
    follow_outputs = [status, progress_bar, loss_plot, lr_plot, log, accuracy_plot]
    run_picker.change(_handle(follow), run_picker, follow_outputs)
    timer.tick(_handle(follow), run_picker, follow_outputs, show_progress="hidden")
    timer.tick(lambda: runs_table()[0], None, runs_view, show_progress="hidden")
    gr.on([first.change, second.change], _handle(overlay), [first, second], compare_plot)
    gr.on(
        [first.change, second.change], _handle(overlay_accuracy), [first, second], compare_accuracy
    )
    log.change(None, None, None, js=SCROLL_LOG_JS)
    export_button.click(
        on_export, run_picker, export_status, concurrency_limit=1, api_name="train_export"
    )
    tab.select(on_runs, None, run_lists, api_name="train_runs")
