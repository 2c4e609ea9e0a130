"""Shared pieces of the Gradio tabs: the app context, model access, error messages.

Tabs never load models themselves: `loaded_model(spec)` returns the process-wide copy
(`mathtutor.models.load_model`) with every registered adapter of that base added, so an
adapter trained or pulled in one tab appears in every other tab without a restart.
"""

from __future__ import annotations

import html
import logging
import re
from dataclasses import dataclass
from typing import Any

import gradio as gr

from mathtutor import store
from mathtutor.models import BASE, LoadedModel, load_model, same_base

# Math delimiters for gr.Chatbot / gr.Markdown in every tab.
LATEX = [
    {"left": "$$", "right": "$$", "display": True},
    {"left": "\\(", "right": "\\)", "display": False},
    {"left": "\\[", "right": "\\]", "display": True},
]
ERROR_TOAST_S = 8  # an error toast closes on its own after this (unless it needs action)
GPU = "gpu"  # one queue for every event that runs the model (see DESIGN: single worker)
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
