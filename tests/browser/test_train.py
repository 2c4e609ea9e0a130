"""Train tab in headless Chromium: launch a tiny LoRA run, watch the loss curve grow, stop it;
launch one with task-accuracy evaluation and watch the accuracy curve grow.

The user picks "(custom)" (the form fills with defaults on the app's base model, the tiny
llama), makes the run small (generated arithmetic problems, short sequences, rank 4), and
launches it: the run starts as a subprocess of the CLI, the Train tab's timer draws its loss
curve, the user stops it, and the adapter saved so far shows up in the Compare tab.
"""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import (
    choose,
    markdown,
    open_accordion,
    open_app,
    open_tab,
    screenshot,
    toasts,
    type_until_held,
)

pytestmark = pytest.mark.browser
expect = pytest.importorskip(
    "playwright.sync_api", reason="Python playwright is not installed"
).expect

START_S = 180_000  # ms: the run's subprocess imports torch/transformers/trl before step 1
STOP_S = 120_000  # ms: the run saves a checkpoint and its adapter, then exits


def set_number(page, elem_id: str, value: float) -> None:
    type_until_held(page.locator(f"#{elem_id} input[type=number]"), value, key="Tab")


def loss_points(page) -> int:
    """Markers drawn on the loss plot (one per logged step)."""
    return page.locator("#train-loss-plot .scatterlayer .point").count()


def tiny_run_form(page, max_steps: int, save_steps: int) -> None:
    """Fill the (custom) form for a tiny run: 64 generated arithmetic problems, no validation
    split, rank 4, batch 2, sequences of 640 byte tokens (~300 for the prompt)."""
    choose(page, "train-dataset", "arithmetic")
    set_number(page, "train-num-train-samples", 64)
    set_number(page, "train-val-fraction", 0)
    open_accordion(page, "LoRA adapter")
    set_number(page, "train-lora-rank", 4)
    open_accordion(page, "Optimization")
    set_number(page, "train-max-steps", max_steps)
    set_number(page, "train-batch-size", 2)
    set_number(page, "train-max-seq-length", 640)
    set_number(page, "train-save-steps", save_steps)


def launch(page) -> str:
    """Click Launch and return the new run's id; fail at once with the text of an error toast
    (a refused launch shows one, which closes on its own after a few seconds)."""
    page.locator("#train-launch").click()
    # The status line says "Launched <id>" for an instant, then follows the picked run.
    handle = page.wait_for_function(
        "(() => { const run = document.querySelector('#train-run input[role=combobox]');"
        " if (run && run.value) return 'run:' + run.value;"
        " const toast = document.querySelector('[data-testid=toast-body].error');"
        " return toast ? 'error:' + toast.innerText : null; })()"
    )
    kind, _, text = handle.json_value().partition(":")
    if kind == "error":
        pytest.fail(f"launch refused: {' '.join(text.split())}", pytrace=False)
    return text


def test_launch_watch_the_curve_and_stop(app, page, tiny_model_dir):
    open_app(page, app, "Train")
    choose(page, "train-recipe", "(custom)")
    expect(page.locator("#train-model textarea, #train-model input").first).to_have_value(
        str(tiny_model_dir)
    )
    tiny_run_form(page, max_steps=5000, save_steps=5)  # far more steps than run before Stop

    run_id = launch(page)
    picked = page.locator("#train-run input[role=combobox]")
    expect(picked).to_have_value(re.compile(r"^sft-"))
    status = markdown(page, "train-status")
    expect(status).to_contain_text(run_id)

    # The timer (every 2 s) redraws the curve: wait for a few points, then for more.
    expect(status).to_contain_text(
        re.compile(r" — (running|failed|finished|stopped)"), timeout=START_S
    )
    assert " — running" in status.inner_text(), status.inner_text()
    page.wait_for_function(
        "document.querySelectorAll('#train-loss-plot .scatterlayer .point').length >= 3",
        timeout=START_S,
    )
    seen = loss_points(page)
    page.wait_for_function(
        f"document.querySelectorAll('#train-loss-plot .scatterlayer .point').length > {seen}",
        timeout=60_000,
    )
    expect(status).to_contain_text(re.compile(r"step \d+/5000 · loss \d"))
    expect(page.locator("#train-log textarea")).not_to_have_value("")
    screenshot(page, "train")

    page.locator("#train-stop").click()
    expect(status).to_contain_text("stopped", timeout=STOP_S)
    expect(status).to_contain_text(f"Adapter {run_id} is in Compare and Evaluate")
    steps = int(re.search(r"step (\d+)/5000", status.inner_text()).group(1))
    assert 0 < steps < 5000

    # The adapter saved at Stop is a system in Compare without a restart.
    open_tab(page, "Compare")
    page.locator("#compare-refresh").click()
    choose(page, "compare-right-system", run_id)


def accuracy_points(page) -> int:
    """Markers on the task-accuracy plot (4 series: accuracy, strict, flexible, format)."""
    return page.locator("#train-accuracy-plot .scatterlayer .point").count()


def test_accuracy_curve_grows_while_the_run_trains(app, page, tiny_model_dir):
    """Issue 13: a tiny run with task-accuracy evaluation every other step; the accuracy plot
    gets its step-0 point, then more as the run goes; the log box follows its last line.

    200 steps (101 evaluations, the most a run may hold): the tiny llama takes well under
    0.1 s a step on a fast machine, and a 12-step run could finish between two polls."""
    open_app(page, app, "Train")
    choose(page, "train-recipe", "(custom)")
    tiny_run_form(page, max_steps=200, save_steps=100)
    open_accordion(page, "Task accuracy during training")
    set_number(page, "train-eval-every", 2)
    set_number(page, "train-eval-num-problems", 3)
    set_number(page, "train-eval-max-new-tokens", 8)
    set_number(page, "train-eval-max-share", 1)
    choose(page, "train-keep-best-by", "accuracy")

    run_id = launch(page)
    status = markdown(page, "train-status")
    page.wait_for_function(
        "document.querySelectorAll('#train-accuracy-plot .scatterlayer .point').length >= 4",
        timeout=START_S,
    )
    seen = accuracy_points(page)
    page.wait_for_function(
        f"document.querySelectorAll('#train-accuracy-plot .scatterlayer .point').length > {seen}",
        timeout=START_S,
    )
    expect(page.locator("#train-accuracy-plot")).to_contain_text("3 held-out problems")
    expect(status).to_contain_text(re.compile(r"Task accuracy: accuracy \d+\.\d% ± "))
    expect(status).to_contain_text("evaluation takes")
    expect(status).to_contain_text("finished", timeout=2 * START_S)
    # 0, 2, ..., 200: 101 evaluations, four series each
    page.wait_for_function(
        "document.querySelectorAll('#train-accuracy-plot .scatterlayer .point').length >= 404",
        timeout=30_000,
    )
    log = page.locator("#train-log textarea")
    page.wait_for_function(
        "(() => { const t = document.querySelector('#train-log textarea');"
        " return t && t.scrollHeight > t.clientHeight"
        " && t.scrollTop + t.clientHeight >= t.scrollHeight - 4; })()",
        timeout=30_000,
    )
    expect(log).to_have_value(re.compile("evaluation took"))
    runs_table = page.locator("#train-runs")
    expect(runs_table).to_contain_text(re.compile(r"\d+\.\d% @ step \d+"))
    assert run_id in runs_table.inner_text()
    screenshot(page, "train-accuracy")


def test_a_negative_learning_rate_is_refused_with_the_field_named(app, page):
    open_app(page, app, "Train")
    open_accordion(page, "Optimization")
    set_number(page, "train-learning-rate", -0.001)
    page.locator("#train-launch").click()
    toast = toasts(page).first
    expect(toast).to_contain_text("learning_rate: must be positive")
    assert "Traceback" not in toast.inner_text()
    expect(markdown(page, "train-status")).not_to_contain_text("Launched")
