"""mathtutor: the Gradio app. Tutor, Compare, Evaluate, Train and Hub tabs over one core.

    python app.py                      # http://127.0.0.1:7860 (GRADIO_SERVER_PORT to change)

Importing this module builds the Blocks object `demo` and nothing else: no server starts and
no model loads until the first request (or the warm-up thread that `python app.py` starts).
"""

from __future__ import annotations

import logging
import os
import threading

import gradio as gr

from mathtutor import render
from mathtutor.models import BUNDLED
from mathtutor.ui import compare, evaluate, hub, train, tutor
from mathtutor.ui.common import AppContext, model_spec_choices

TITLE = "mathtutor"
INTRO = (
    "Put a small language model and its LoRA-tuned copies side by side on math word problems, "
    "fine-tune adapters, measure them on GSM8K, and share them on the Hugging Face Hub."
)
CSS = (
    """
.gradio-container { max-width: 1280px !important; }
.pane-head { display: flex; flex-wrap: wrap; gap: 0 12px; align-items: baseline; }
.pane-numbers { color: var(--body-text-color-subdued); font-size: 0.9em; }
.compare-diff tr.first-difference td { background: #ffe08a55; font-weight: 600; }
"""
    + render.CSS
)
# Runs once in the browser: toasts that stack (gradio closes a toast group only while it holds
# one message) close after their own duration, repeated messages are shown once, and the
# Train log box follows new lines.
JS = """
() => {
  const since = new WeakMap();
  setInterval(() => {
    for (const toast of document.querySelectorAll('[data-testid="toast-body"]')) {
      const seen = new Set();
      const items = toast.querySelectorAll('.toast-message-item');
      for (const item of items) {
        const text = item.textContent.trim();
        item.style.display = seen.has(text) ? 'none' : '';
        seen.add(text);
      }
      const timer = toast.querySelector('.timer');
      const seconds = timer ? parseFloat(timer.style.animationDuration) || 0 : 0;
      const last = since.get(toast);
      if (!last || last.count !== items.length) {
        since.set(toast, { count: items.length, time: Date.now() });
      } else if (seconds > 0 && items.length > 1 && Date.now() - last.time > seconds * 1000) {
        toast.querySelector('[data-testid="toast-close"]')?.click();
      }
    }
    for (const box of document.querySelectorAll('#train-log textarea')) {
      if (box.dataset.shown !== String(box.value.length)) {
        box.dataset.shown = String(box.value.length);
        box.scrollTop = box.scrollHeight;
      }
    }
  }, 500);
}
"""


def space_settings() -> dict:
    """A deployed Space's defaults (`mathtutor_space.json`), {} elsewhere or when unreadable."""
    from mathtutor.hub import read_space_settings

    try:
        return read_space_settings()
    except ValueError as error:
        logging.getLogger("mathtutor").warning("ignoring Space settings: %s", error)
        return {}


def default_model() -> str:
    """The starting base model: `MATHTUTOR_MODEL`, a deployed Space's choice, else bundled."""
    return os.environ.get("MATHTUTOR_MODEL") or space_settings().get("base_model") or BUNDLED


def precision_note() -> str:
    """The dtype Tutor, Compare and Evaluate (`auto`) run in here, shown under the picker."""
    from mathtutor.models import DTYPE_ENV, pick_device, resolve_dtype

    device = pick_device()
    try:
        dtype = resolve_dtype("auto", device)
    except ValueError as error:
        return f"Precision: {error}"
    source = f"{DTYPE_ENV}" if os.environ.get(DTYPE_ENV) else "auto for this hardware"
    return (
        f"Precision: **{dtype}** on {device} ({source}; bf16 greedy answers can differ from "
        f"fp32, so every evaluation records its dtype). Set {DTYPE_ENV} to change it."
    )


def build_demo() -> gr.Blocks:
    with gr.Blocks(title=TITLE) as blocks:
        gr.Markdown(f"# 🧮 {TITLE}\n{INTRO}")
        with gr.Row():
            model_spec = gr.Dropdown(
                model_spec_choices(),
                value=default_model(),
                allow_custom_value=True,
                label="Base model",
                info="'bundled' = SmolLM2-135M-Instruct shipped with the app; or a local "
                "directory; or a Hub id (needs the network).",
                elem_id="model-spec",
            )
        precision = gr.Markdown(elem_id="precision-note")
        blocks.load(precision_note, outputs=precision)
        with gr.Tabs() as tabs:
            ctx = AppContext(model_spec=model_spec, tabs=tabs)
            with gr.Tab("Tutor", id="tutor") as tab:
                tutor.build(ctx, tab)
            with gr.Tab("Compare", id="compare") as tab:
                compare.build(ctx, tab)
            with gr.Tab("Evaluate", id="evaluate") as tab:
                evaluate.build(ctx, tab)
            with gr.Tab("Train", id="train") as tab:
                train.build(ctx, tab)
            with gr.Tab("Hub", id="hub") as tab:
                hub.build(ctx, tab)
    return blocks


demo = build_demo()


def warm_up(spec: str, adapter: str | None = None) -> None:
    """Load the default model (and a Space's default adapter) in the background."""
    from mathtutor.ui.common import loaded_model

    try:
        loaded = loaded_model(spec)
        if adapter:
            from mathtutor.hub import pull_adapter

            pull_adapter(adapter, expected_base=loaded.base_model)
            loaded_model(spec)  # registers the pulled adapter on the shared base
    except Exception as error:  # the UI reports load errors on first use
        logging.getLogger("mathtutor").warning("warm-up of %s failed: %s", spec, error)


if __name__ == "__main__":
    from mathtutor.cli import configure_threads

    logging.basicConfig(level=logging.INFO)
    logging.getLogger("mathtutor").info("torch threads: %d", configure_threads())
    from training.runs import remove_leftovers

    for path in remove_leftovers():  # what killed runs and calls left behind
        logging.getLogger("mathtutor").info("removed leftover %s", path)
    adapter = space_settings().get("adapter")
    threading.Thread(target=warm_up, args=(default_model(), adapter), daemon=True).start()
    demo.queue(default_concurrency_limit=4).launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        css=CSS,
        js=JS,
        theme=gr.themes.Soft(),
    )
