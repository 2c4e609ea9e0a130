"""The Tutor's practice-set panel: pick a file or a Hub dataset id, map its columns, preview it.

A thin view over `mathtutor.practice`: the form is built from the `tables.TableSource` and
`tables.ColumnMapping` fields (the same mapping Evaluate and Train use, `ui.common.field_widget`),
a new upload or Hub id shows its columns (`describe_practice`), and "Use this set" opens it
(`open_practice`, endpoint `tutor_practice`; `shown` renders it) into a server-side
`gr.State`, and the Tutor's "Give me a problem" then draws from it (`draw_problem`). The upload
is a `gr.File`: Gradio keeps it in its upload folder, and `tables.load_table` reads it only
after `paths.check_readable`, as Evaluate's upload is read. A bad file, Hub id or mapping is one
toast naming what was wrong; the set already open and the problem on screen stay.
"""

from __future__ import annotations

import dataclasses

import gradio as gr

from mathtutor import access, practice, tables
from mathtutor.ui.common import client_key, field_widget, signed_in_user, user_error

SOURCES = ("upload", "hub")  # where a practice set comes from: a file, a Hub dataset id
FILE_TYPES = [".jsonl", ".json", ".csv", ".parquet"]  # what `tables.load_table` reads


def _settings(
    source: str,
    path: str | None,
    settings: dict,
    request: gr.Request | None,
    profile: gr.OAuthProfile | None,
) -> tuple[tables.TableSource, tables.ColumnMapping]:
    """The source and mapping the panel names, after one request of the client's tutor
    allowance (a Hub id downloads a dataset); ValueError / PermissionError otherwise."""
    access.LIMITERS["tutor"].check(client_key(request, profile), signed_in_user(profile))
    if source not in SOURCES:
        raise ValueError(f"source {source!r}: expected one of {', '.join(SOURCES)}")
    if source == "hub":
        return practice.form_settings(None, settings)
    if not path:
        raise ValueError("Upload a JSONL / JSON / CSV / Parquet file first (or pick hub).")
    return practice.form_settings(path, {**settings, "hub_id": "", "config": "", "revision": ""})


def open_practice(
    source: str,
    path: str | None,
    settings: dict,
    request: gr.Request | None = None,
    profile: gr.OAuthProfile | None = None,
) -> practice.PracticeSet:
    """Open a practice set (an upload or a Hub dataset id, mapped by `settings`: `TableSource`
    and `ColumnMapping` field names); `shown` renders it."""
    try:
        return practice.open_set(*_settings(source, path, settings, request, profile))
    except Exception as error:
        raise user_error(error) from error


def shown(practice_set: practice.PracticeSet | None) -> tuple[str, gr.Button]:
    """(preview, back button) of the open set; none open: nothing, and no back button."""
    if not isinstance(practice_set, practice.PracticeSet):
        return "", gr.Button(visible=False)
    return practice_set.markdown(), gr.Button(visible=True)


def describe_practice(
    source: str,
    path: str | None,
    settings: dict,
    request: gr.Request | None = None,
    profile: gr.OAuthProfile | None = None,
) -> str:
    """The columns of a file just uploaded or a Hub id just typed, and whether the mapping
    fits them: nothing is opened yet, and only a source that cannot be read is a toast."""
    if source == "upload" and not path:
        return ""
    try:
        return practice.describe(*_settings(source, path, settings, request, profile))
    except Exception as error:
        raise user_error(error) from error


def draw_problem(practice_set: practice.PracticeSet) -> tuple[str, dict]:
    """(question, known) of a random row: its answer, type, choices and solution stay hidden."""
    try:
        problem = practice.draw(practice_set)
    except ValueError as error:
        raise user_error(error) from error
    known = {
        "problem": problem.question,
        "reference": problem.answer,
        "solution": problem.solution,
        "answer_type": problem.answer_type,
        "choices": list(problem.choices),
    }
    return problem.question, known


def build(practice_set: gr.State) -> None:
    """The panel (an accordion), its events writing the open set into `practice_set`."""
    widgets = {}
    with gr.Accordion(
        "📚 Practise from a dataset (your file or a Hub id)", open=False, elem_id="tutor-practice"
    ):
        with gr.Row():
            source = gr.Radio(
                list(SOURCES),
                value="upload",
                label="Problems from",
                info="A file you upload, or a Hugging Face Hub dataset id.",
                elem_id="tutor-practice-source",
                min_width=160,
            )
            upload = gr.File(
                label="Your problems (JSONL / JSON / CSV / Parquet)",
                file_types=FILE_TYPES,
                type="filepath",
                elem_id="tutor-practice-upload",
                min_width=240,
                height=120,
            )
        with gr.Row(visible=False) as hub_row:
            for spec in dataclasses.fields(tables.TableSource):
                if spec.name in practice.SOURCE_FIELDS:
                    widgets[spec.name] = field_widget(spec, spec.default, "tutor-practice")
        with gr.Row():
            for spec in dataclasses.fields(tables.ColumnMapping):
                widgets[spec.name] = field_widget(spec, spec.default, "tutor-practice")
        with gr.Row():
            use = gr.Button(
                "Use this set", variant="primary", size="sm", elem_id="tutor-practice-use"
            )
            leave = gr.Button(
                "✖ Back to generated problems",
                size="sm",
                visible=False,
                elem_id="tutor-practice-leave",
            )
        preview = gr.Markdown(elem_id="tutor-practice-preview")
    names = list(widgets)

    def on_open(request: gr.Request, profile: gr.OAuthProfile | None, kind, path, *values):
        return open_practice(kind, path, dict(zip(names, values, strict=True)), request, profile)

    def on_source(kind: str) -> tuple:
        return gr.File(visible=kind == "upload"), gr.Row(visible=kind == "hub")

    def on_describe(request: gr.Request, profile: gr.OAuthProfile | None, kind, path, *values):
        settings = dict(zip(names, values, strict=True))
        return describe_practice(kind, path, settings, request, profile)

    # Handlers that may refuse write into a gr.State and the view follows on success, so a
    # refusal is its toast alone: the preview on screen keeps its text and gets no "Error".
    described = gr.State("")
    source.change(on_source, source, [upload, hub_row])
    gr.on(
        [upload.upload, widgets["hub_id"].submit],
        on_describe,
        [source, upload, *widgets.values()],
        described,
        api_visibility="private",
    ).success(lambda text: text, described, preview, api_visibility="private")
    use.click(
        on_open, [source, upload, *widgets.values()], practice_set, api_name="tutor_practice"
    ).success(shown, practice_set, [preview, leave], api_visibility="private")
    leave.click(lambda: None, None, practice_set, api_visibility="private").then(
        shown, practice_set, [preview, leave], api_visibility="private"
    )
