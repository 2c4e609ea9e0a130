"""Shared pieces of the Gradio tabs: the app context, model access, error messages, who asks.

Tabs never load models themselves: `loaded_model(spec)` returns the process-wide copy
(`mathtutor.models.load_model`) with every registered adapter of that base added, so an
adapter trained or pulled in one tab appears in every other tab without a restart.

Who is asking: handlers take `profile: gr.OAuthProfile | None`, which gradio fills in from the
sign-in session cookie (`gr.LoginButton`; None when not signed in or when the app has no
sign-in), and pass `signed_in_user(profile)` to `mathtutor.access`, the one gate.
"""

from __future__ import annotations

import dataclasses
import functools
import html
import inspect
import logging
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from mathtutor import access, jobs, store
from mathtutor.models import BASE, LoadedModel, load_model, same_base
from mathtutor.ui import stops

# Math delimiters for gr.Chatbot / gr.Markdown in every tab.
LATEX = [
    {"left": "$$", "right": "$$", "display": True},
    {"left": "\\(", "right": "\\)", "display": False},
    {"left": "\\[", "right": "\\]", "display": True},
]
ERROR_TOAST_S = 8  # an error toast closes on its own after this (unless it needs action)
DOWNLOADS_KEPT_S = 3600  # a download's folder (export, share) is removed after this
GPU = "gpu"  # the Gradio queue of the interactive events that run the model (Compare, Tutor)
# Events of that queue admitted at once; admitted ones then take turns one at a time
# (`in_turn`), and a waiting one says so. Beyond this many, Gradio's own queue holds them.
GPU_LIMIT = 16
# The most often a streaming handler sends its output to the browser (and once at the end):
# a page re-rendering every token of a fast model freezes, and Stop cannot be clicked.
UPDATE_EVERY_S = 0.1
WAIT_POLL_SECONDS = 1.0  # how often a waiting streaming request updates its "waiting" line
log = logging.getLogger("mathtutor.ui")


@dataclass
class AppContext:
    """Components that tabs share: the base-model picker and the Compare inputs."""

    model_spec: gr.Dropdown
    tabs: gr.Tabs
    compare_problem: gr.Textbox | None = None
    compare_reference: gr.Textbox | None = None


def loaded_model(spec: str) -> LoadedModel:
    """The shared base model for `spec`, with every registered adapter of that base loaded."""
    loaded = load_model(spec or "bundled")
    sync_adapters(loaded)
    return loaded


def sync_adapters(loaded: LoadedModel) -> list[str]:
    """Add registered adapters of this base that are not loaded yet; returns warnings."""
    warnings = []
    known = {path for path in loaded.adapters.values()}
    for adapter in store.list_adapters():
        if not same_base(adapter["base_model"], loaded.base_model):
            continue
        from pathlib import Path

        path = Path(adapter["path"]).resolve()
        if path in known:
            continue
        try:
            loaded.add_adapter(path, adapter["name"])
        except ValueError as error:  # a broken adapter must not take the app down
            warnings.append(str(error))
            log.warning("skipping adapter %s: %s", adapter["name"], error)
    return warnings


def registered_adapters(spec: str) -> list[str]:
    """Adapter names registered for this base, without loading the model."""
    from mathtutor.models import BUNDLED, BUNDLED_HUB_ID, base_model_id

    base = BUNDLED_HUB_ID if spec in ("", BUNDLED) else base_model_id(spec)
    return [a["name"] for a in store.list_adapters() if same_base(a["base_model"], base)]


def system_choices(spec: str) -> list[str]:
    """ "base" followed by the adapters of this base: the choices of every model picker."""
    names = [BASE]
    for name in registered_adapters(spec):
        if name not in names:
            names.append(name)
    return names


def user_error(error: BaseException, needs_action: bool | None = None) -> gr.Error:
    """A clear message for the browser; the stack trace goes to the server log only.

    The toast closes after `ERROR_TOAST_S` seconds, except when the user must act on it
    (`needs_action`; by default a PermissionError, e.g. signing in, and unexpected errors).
    """
    if isinstance(error, gr.Error):
        return error
    if isinstance(error, (ValueError, FileNotFoundError, PermissionError, TimeoutError)):
        message = str(error)
        sticky = isinstance(error, PermissionError)
    else:
        log.exception("unexpected error in a handler", exc_info=error)
        message = f"Something went wrong ({type(error).__name__}: {str(error)[:300]})"
        sticky = True
    if needs_action is not None:
        sticky = needs_action
    duration = None if sticky else ERROR_TOAST_S
    return gr.Error(toast_html(message), duration=duration, print_exception=False)


def toast_html(message: str) -> str:
    """A message for a toast (which renders HTML): text escaped, `code` spans as <code>.

    >>> toast_html("run `hf auth login` <then> retry")
    'run <code>hf auth login</code> &lt;then&gt; retry'
    """
    escaped = html.escape(message, quote=False)
    return re.sub(r"`([^`\n]+)`", r"<code>\1</code>", escaped)


def signed_in_user(profile: gr.OAuthProfile | None) -> str | None:
    """The Hub user name of the signed-in visitor, None when nobody is signed in."""
    return getattr(profile, "username", None) or None


def client_key(request: gr.Request | None, profile: gr.OAuthProfile | None) -> str:
    """Who fair use is counted for (`access.client_key`): the user, else the client's IP."""
    client = getattr(request, "client", None)
    headers = getattr(request, "headers", None) or {}
    return access.client_key(signed_in_user(profile), getattr(client, "host", None), headers)


def gate_note(action: str, profile: gr.OAuthProfile | None) -> tuple[bool, gr.Markdown]:
    """(may act, a note saying why not) for an owner-only button, as the page loads."""
    reason = access.refusal(action, signed_in_user(profile))
    return reason is None, gr.Markdown(f"🔒 {reason}" if reason else "", visible=bool(reason))


def model_spec_choices() -> list[str]:
    """Specs that load here: the bundled model, cached local models, and current loads."""
    from mathtutor.models import cached_models, loaded_models

    choices = cached_models()
    for loaded in loaded_models():
        if loaded.spec not in choices:
            choices.append(loaded.spec)
    return choices


def dataframe_value(rows: list[dict[str, Any]], columns: list[str]) -> dict[str, Any]:
    """Rows of dicts as a gr.Dataframe value with fixed columns."""
    return {"headers": columns, "data": [[row.get(c, "") for c in columns] for row in rows]}


def field_widget(spec: dataclasses.Field, value: Any, prefix: str) -> gr.components.Component:
    """The form component of one config dataclass field (`EvalConfig`, `TrainConfig`).

    Built from the field alone: its type, `metadata["help"]` as `info=`, `metadata["choices"]`
    as a dropdown, `metadata["range"]` as a slider; `elem_id` is `<prefix>-<field-name>`. No
    `minimum=` on numbers: Gradio's range message does not name the field, the config's
    validation does ("num_samples must be between 1 and 100000, got 0").
    """
    name, meta = spec.name, spec.metadata
    common = {
        "label": name.replace("_", " ").capitalize(),
        "info": meta["help"],
        "elem_id": f"{prefix}-{name.replace('_', '-')}",
    }
    if "choices" in meta:
        return gr.Dropdown(list(meta["choices"]), value=value, **common)
    if spec.type == "bool":
        return gr.Checkbox(value=value, **common)
    if "range" in meta and spec.type == "float":
        low, high = meta["range"]
        return gr.Slider(low, high, value=value, step=0.05, **common)
    if "range" in meta and meta["range"][1] <= 4096:
        low, high = meta["range"]
        return gr.Slider(low, high, value=value, step=1, **common)
    if spec.type == "int | None":  # e.g. batch size: empty or 0 means automatic
        common["info"] = f"{meta['help']} 0 = automatic."
        return gr.Number(value=value, precision=0, minimum=0, **common)
    if spec.type.startswith("int"):
        return gr.Number(value=value, precision=0, **common)
    if spec.type == "float":
        return gr.Number(value=value, step=1e-8, **common)
    return gr.Textbox(value=",".join(value) if isinstance(value, list) else value, **common)


def in_turn(
    outputs: int = 1, notice: int | None = None, token: str | None = None
) -> Callable[[Callable], Callable]:
    """Run a model handler in its turn (`mathtutor.jobs.INTERACTIVE_TURNS`, first come first
    served), telling a waiting user their place: "waiting: 2 ahead, ~8 s".

    A streaming handler shows that line in its output number `notice` (of `outputs`, the other
    outputs are left as they are) and updates it every `WAIT_POLL_SECONDS`; a plain handler
    shows it once as a toast. Put it outside `zerogpu.gpu`, so no GPU is held while waiting.
    A streaming handler whose argument `token` names its run (`mathtutor.ui.stops`) leaves
    the line at once when that run is stopped while it waits.
    """

    def decorate(handler: Callable) -> Callable:
        if inspect.isgeneratorfunction(handler):
            signature = inspect.signature(handler)

            @functools.wraps(handler)
            def streaming(*args, **kwargs):
                run = signature.bind_partial(*args, **kwargs).arguments.get(token) if token else ""
                turn = jobs.INTERACTIVE_TURNS.join()
                try:
                    waited = False
                    while not turn.wait(WAIT_POLL_SECONDS if waited else 0):
                        waited = True
                        halted = stops.stopped(run)
                        if notice is not None:
                            update = [gr.skip()] * outputs
                            update[notice] = (
                                "⏹ Stopped before its turn came."
                                if halted
                                else jobs.waiting_message(turn.ahead(), turn.eta())
                            )
                            yield tuple(update) if outputs > 1 else update[0]
                        if halted:
                            return
                    yield from handler(*args, **kwargs)
                finally:
                    turn.leave()

            return streaming

        @functools.wraps(handler)
        def plain(*args, **kwargs):
            turn = jobs.INTERACTIVE_TURNS.join()
            try:
                if not turn.wait(0):
                    gr.Info(jobs.waiting_message(turn.ahead(), turn.eta()))
                    while not turn.wait(WAIT_POLL_SECONDS):
                        pass
                return handler(*args, **kwargs)
            finally:
                turn.leave()

        return plain

    return decorate


def download_dir(kind: str) -> Path:
    """A new folder for one download (`kind`: "export", "share", "votes"), under one root in
    the temp dir; folders older than `DOWNLOADS_KEPT_S` are removed first, so a public Space's
    visitors exporting all day cannot fill its disk (gradio serves its own copy of the file).
    """
    root = Path(tempfile.gettempdir()) / "mathtutor-downloads"
    root.mkdir(exist_ok=True)
    cutoff = time.time() - DOWNLOADS_KEPT_S
    for old in root.iterdir():
        try:
            if old.is_dir() and not old.is_symlink() and old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            continue  # removed by another request meanwhile
    return Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=root))
