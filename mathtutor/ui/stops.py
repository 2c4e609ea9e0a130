"""Stop buttons that ask a streaming run to end, instead of cancelling its Gradio event.

Gradio's `cancels=` aborts the browser's event stream, and an event still listening on that
stream then shows a red "Error" over its outputs, covering the partial text a user stopped
to read (issue 12: about half of ten Stops in a row). So a run here ends itself:

- the run's trigger gets `run_js(name, position)`: the browser makes a fresh random token for
  each run, remembers it as the latest run of `name`, and passes it to the handler as input
  number `position` (a hidden textbox);
- the token travels in a hidden textbox (`token_box()`), and `connect_stop(button, box,
  name)` wires the Stop button: `stop_js(name)` sends that token to `stop_handler`
  (endpoint `<name>_stop`);
- the handler runs its steps through `until_stopped(steps, token)` (the Tutor), or asks
  `stopped(token)` at each step itself (Compare, which must not send the step in hand
  before marking its panes); either way the decoding generator is closed in the handler's
  own thread (which holds the model's lock), and the handler shows its output as stopped.

A Stop that comes while the run still waits in the queue is kept, so the run ends as soon as
it starts. Tokens are 12-40 lowercase letters and digits; at most `KEPT` are remembered
(oldest forgotten first), so a caller sending endless tokens costs bounded memory.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any, TypeVar

T = TypeVar("T")

KEPT = 4096  # stopped tokens remembered at once
TOKEN = re.compile(r"[0-9a-z]{12,40}")

_lock = threading.Lock()
_stopped: OrderedDict[str, None] = OrderedDict()


def run_js(name: str, position: int) -> str:
    """Browser code for a run's trigger: a new token for run `name` into input `position`."""
    return (
        "(...args) => { const token = Math.random().toString(36).slice(2, 12)"
        " + Date.now().toString(36); (window.__mathtutorRuns ||= {})"
        f"[{name!r}] = token; args[{position}] = token; return args; }}"
    )


def stop_js(name: str) -> str:
    """Browser code for a Stop button: the token of the latest run of `name` ('' if none)."""
    return f"() => [(window.__mathtutorRuns || {{}})[{name!r}] || '']"


def request_stop(token: str) -> bool:
    """Mark run `token` stopped; False (and nothing kept) for a malformed token."""
    if not isinstance(token, str) or not TOKEN.fullmatch(token):
        return False
    with _lock:
        _stopped[token] = None
        _stopped.move_to_end(token)
        while len(_stopped) > KEPT:
            _stopped.popitem(last=False)
    return True


def stopped(token: str | None) -> bool:
    """Whether a Stop came for run `token` (never for an empty or missing token)."""
    if not token:
        return False
    with _lock:
        return token in _stopped


def until_stopped(steps: Iterator[T], token: str | None) -> Iterator[T]:
    """The items of `steps` until a Stop comes for run `token` (the item in hand when it comes
    is the last); `steps` is then closed here, in the caller's thread, which holds the
    model's lock. Ask `stopped(token)` afterwards to tell a Stop from the natural end."""
    try:
        for step in steps:
            yield step
            if stopped(token):
                return
    finally:
        close = getattr(steps, "close", None)
        if close is not None:
            close()


def stop_handler(token: str) -> None:
    """Handler of a Stop button (`stop_js` supplies the token); returns nothing."""
    request_stop(token)


def token_box() -> Any:
    """The hidden input that carries a run's token (empty by default, so API callers that
    never stop need not send one)."""
    import gradio as gr

    return gr.Textbox("", visible=False)


def connect_stop(button: Any, box: Any, name: str) -> None:
    """Make `button` stop the latest run of `name` (endpoint `<name>_stop`; outside the queue,
    so it is never waiting behind the run it stops)."""
    button.click(stop_handler, box, None, js=stop_js(name), queue=False, api_name=f"{name}_stop")
