"""Evaluate on a Hub dataset id, in headless Chromium, against the project's test Hub.

The test Hub (tests/hub_server.py) serves `alice/word-problems`, a Parquet dataset whose
questions are split over a `Body` and a `Question` column. The user picks dataset "hub",
types the id, sees its columns, writes the two-column template `{Body} {Question}`, sees three
mapped rows, runs the evaluation, and reads the results and the error browser as for GSM8K.
"""

from __future__ import annotations

import pytest

from tests.browser.conftest import (
    choose,
    markdown,
    open_accordion,
    open_app,
    prepare_home,
    running_app,
    set_slider,
    table_rows,
    textbox,
    toasts,
    type_until_held,
    wait_without_error,
)
from tests.hub_server import dataset_card, hub_server, parquet_bytes  # noqa: F401  (a fixture)

pytestmark = pytest.mark.browser
expect = pytest.importorskip(
    "playwright.sync_api", reason="Python playwright is not installed"
).expect

REPO_ID = "alice/word-problems"
ROWS = [
    {"Body": f"A shelf holds {i} books and {i + 1} boxes.", "Question": "How many items?",
     "Answer": 2 * i + 1}
    for i in range(6)
]  # fmt: skip
NUM_PROBLEMS = 3


@pytest.fixture(scope="module")
def hub_data_app(chromium, hub_server, tiny_model_dir, tmp_path_factory):  # noqa: F811
    hub_server.reset()
    hub_server.add_repo(
        REPO_ID,
        {
            "README.md": dataset_card({"default": {"test": "data/test-*.parquet"}}),
            "data/test-00000-of-00001.parquet": parquet_bytes(ROWS),
        },
    )
    home = prepare_home(tmp_path_factory.mktemp("hub-data-home"), tiny_model_dir, None)
    env = {
        "HF_ENDPOINT": hub_server.url,
        "HF_HUB_OFFLINE": "0",  # the test Hub is 127.0.0.1
        "HF_DATASETS_OFFLINE": "0",
        "HF_HUB_DISABLE_XET": "1",
        "HF_HOME": str(home / "hf-home"),
    }
    with running_app(home, tiny_model_dir, env) as started:
        yield started


def test_evaluate_a_hub_dataset_with_a_two_column_template(hub_data_app, page):
    open_app(page, hub_data_app, "Evaluate")
    choose(page, "eval-dataset", "hub")
    hub_id = textbox(page, "eval-hub-id")
    hub_id.fill(REPO_ID)
    hub_id.press("Enter")
    preview = markdown(page, "eval-preview")
    expect(preview).to_contain_text("6 rows")
    expect(preview).to_contain_text("Body")  # the columns found, before any template fits
    template = textbox(page, "eval-question-template")
    template.fill("{Body} {Question}")
    answer = textbox(page, "eval-answer-field")
    answer.fill("Answer")
    answer.press("Tab")
    expect(preview).to_contain_text("A shelf holds 0 books and 1 boxes. How many items?")
    expect(preview).to_contain_text("answer type: number")
    expect(preview).to_contain_text("A shelf holds 2 books")  # the third mapped row

    type_until_held(page.locator("#eval-num-samples input[type=number]"), NUM_PROBLEMS, "Tab")
    open_accordion(page, "Settings")
    set_slider(page, "Max new tokens", 12)
    type_until_held(page.locator("#eval-batch-size input[type=number]"), 4, "Tab")
    page.locator("#eval-start").click()
    done = markdown(page, "eval-status").filter(has_text=f"finished: {NUM_PROBLEMS} records")
    wait_without_error(page, done, 180_000)
    expect(page.locator("#eval-results-table")).to_contain_text("base")
    expect(table_rows(page, "eval-errors-table")).to_have_count(NUM_PROBLEMS)
    expect(page.locator("#eval-errors-table")).to_contain_text("How many items?")
    expect(toasts(page)).to_have_count(0)


def test_a_missing_template_column_is_named(hub_data_app, page):
    open_app(page, hub_data_app, "Evaluate")
    choose(page, "eval-dataset", "hub")
    hub_id = textbox(page, "eval-hub-id")
    hub_id.fill(REPO_ID)
    hub_id.press("Enter")
    template = textbox(page, "eval-question-template")
    template.fill("{Body} {Prompt}")
    template.press("Tab")
    expect(markdown(page, "eval-preview")).to_contain_text(
        "no column 'Prompt'; columns found: Body, Question, Answer"
    )
