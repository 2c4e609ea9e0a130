"""Evaluate tab in headless Chromium: a small run, the error browser, "Send to Compare".

The user evaluates base and the tiny adapter on four generated arithmetic problems (short
answers keep it fast), sees the results table and the accuracy chart, filters the error table,
opens one problem, and sends it to the Compare tab, which opens with that problem and its
answer filled in.
"""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import (
    ADAPTER,
    choose,
    markdown,
    open_accordion,
    open_app,
    set_slider,
    table_cell,
    table_rows,
    textbox,
    toasts,
    type_until_held,
    wait_without_error,
)

pytestmark = pytest.mark.browser
expect = pytest.importorskip(
    "playwright.sync_api", reason="Python playwright is not installed"
).expect

NUM_PROBLEMS = 4
RUN_S = 180_000  # ms: 2 systems x 4 problems x 24 tokens on the tiny model, on a loaded CI box


def test_evaluate_filter_open_and_send_to_compare(app, page):
    open_app(page, app, "Evaluate")
    choose(page, "eval-systems", ADAPTER, multiselect=True)
    expect(page.locator("#eval-systems .token")).to_have_count(2)  # base and the adapter
    choose(page, "eval-dataset", "arithmetic")
    type_until_held(page.locator("#eval-num-samples input[type=number]"), NUM_PROBLEMS, "Tab")
    open_accordion(page, "Settings")
    set_slider(page, "Max new tokens", 24)
    # see test_default_settings_start_a_run: the default (empty) fails
    type_until_held(page.locator("#eval-batch-size input[type=number]"), 8, "Tab")

    page.locator("#eval-start").click()
    status = markdown(page, "eval-status")
    done = status.filter(has_text=f"finished: {2 * NUM_PROBLEMS} records")
    wait_without_error(page, done, RUN_S)
    run_id = re.search(r"Run (\S+) finished", status.inner_text()).group(1)
    expect(page.locator("#eval-run input[role=combobox]")).to_have_value(
        re.compile(re.escape(run_id))
    )
    results = page.locator("#eval-results-table")
    expect(results).to_contain_text("base")
    expect(results).to_contain_text(ADAPTER)
    expect(page.locator("#eval-accuracy-plot .js-plotly-plot")).to_be_visible()

    # The error browser: every problem listed, then filtered.
    errors = "eval-errors-table"
    expect(table_rows(page, errors)).to_have_count(NUM_PROBLEMS)
    page.locator("#eval-filter").get_by_label("both right", exact=True).check()
    expect(table_rows(page, errors)).to_have_count(0)  # a random tiny model is never right
    page.locator("#eval-filter").get_by_label("both wrong", exact=True).check()
    expect(table_rows(page, errors)).to_have_count(NUM_PROBLEMS)
    first_id = table_cell(page, errors, 0, 0).inner_text().strip()
    search = textbox(page, "eval-search")
    search.fill(first_id)
    search.press("Enter")
    expect(table_rows(page, errors)).to_have_count(1)
    question = table_cell(page, errors, 0, 1).inner_text().strip().rstrip("…")
    reference = table_cell(page, errors, 0, 2).inner_text().strip()

    # Open the problem: its question, reference and both systems' completions.
    table_cell(page, errors, 0, 1).click()
    expect(page.locator("#eval-problem input[role=combobox]")).to_have_value(first_id)
    detail = page.locator("#eval-detail")
    expect(detail).to_contain_text(question)
    expect(detail).to_contain_text("Reference")
    expect(detail).to_contain_text(f"{ADAPTER}:")
    expect(detail).to_contain_text("base:")

    page.locator("#eval-send-compare").click()
    expect(page.get_by_role("tab", name="Compare", exact=True)).to_have_attribute(
        "aria-selected", "true"
    )
    problem = textbox(page, "compare-problem")
    expect(problem).to_have_value(re.compile("^" + re.escape(question)))
    expect(textbox(page, "compare-reference")).to_have_value(reference)
    expect(toasts(page)).to_have_count(0)


def test_zero_problems_is_refused_with_the_field_named(app, page):
    open_app(page, app, "Evaluate")
    choose(page, "eval-dataset", "arithmetic")
    type_until_held(page.locator("#eval-num-samples input[type=number]"), 0, "Tab")
    page.locator("#eval-start").click()
    toast = toasts(page).first
    expect(toast).to_contain_text("num_samples must be between 1 and")
    assert "Traceback" not in toast.inner_text()


def test_default_settings_start_a_run(app, page):
    """Start with every setting left as it is (only the sample size made small)."""
    open_app(page, app, "Evaluate")
    choose(page, "eval-dataset", "arithmetic")
    count = page.locator("#eval-num-samples input[type=number]")
    count.fill("1")
    count.press("Tab")
    open_accordion(page, "Settings")
    set_slider(page, "Max new tokens", 16)
    page.locator("#eval-start").click()
    done = markdown(page, "eval-status").filter(has_text="finished: 1 records")
    wait_without_error(page, done, RUN_S)
