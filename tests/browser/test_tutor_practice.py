"""The Tutor's practice set in headless Chromium: a student uploads a file whose questions are
split over two columns, maps them with a template, gets a problem from it, takes a hint from
the row's own solution and checks an answer instantly against the row's answer. A template
naming a missing column is a toast naming the columns found, and the problem on screen stays.

    pytest -m browser tests/browser/test_tutor_practice.py
"""

from __future__ import annotations

import json
import re

import pytest

from tests.browser.conftest import (
    markdown,
    open_accordion,
    open_app,
    screenshot,
    textbox,
    toasts,
    wait_without_error,
)

pytestmark = pytest.mark.browser
expect = pytest.importorskip(
    "playwright.sync_api", reason="Python playwright is not installed"
).expect

ROWS = [
    {
        "Body": f"A baker makes {n} trays of {n + 2} rolls and sells {n} rolls.",
        "Question": "How many rolls are left?",
        "Answer": str(n * (n + 2) - n),
        "Solution": f"How many rolls are made? ** {n} * {n + 2} = <<{n}*{n + 2}={n * (n + 2)}>>"
        f"{n * (n + 2)} rolls.\nHow many are left? ** {n * (n + 2)} - {n} = "
        f"<<{n * (n + 2)}-{n}={n * (n + 2) - n}>>{n * (n + 2) - n}\n#### {n * (n + 2) - n}",
    }
    for n in (3, 4, 5)
]
ANSWERS = {f"{row['Body']} {row['Question']}": row["Answer"] for row in ROWS}


def close_toasts(page) -> None:
    """Close the error toasts on screen (they would otherwise stay for 8 s)."""
    for button in page.locator("[data-testid=toast-body].error [data-testid=toast-close]").all():
        button.click()
    expect(toasts(page)).to_have_count(0)


def use_set(page, template: str) -> None:
    textbox(page, "tutor-practice-question-template").fill(template)
    textbox(page, "tutor-practice-answer-field").fill("Answer")
    textbox(page, "tutor-practice-solution-field").fill("Solution")
    page.locator("#tutor-practice-use").click()


def test_practise_from_an_uploaded_set(app, page, tmp_path):
    path = tmp_path / "bakery.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS), encoding="utf-8")
    open_app(page, app, "Tutor")
    open_accordion(page, "Practise from a dataset")
    page.locator("#tutor-practice-upload input[type=file]").set_input_files(str(path))
    preview = markdown(page, "tutor-practice-preview")
    expect(preview).to_contain_text("3 rows")  # the columns, before the mapping fits
    expect(preview).to_contain_text("columns found: Body, Question, Answer, Solution")

    use_set(page, "{Body} {Prompt}")  # a column that is not there: one toast naming it
    expect(toasts(page).first).to_contain_text(
        "no column 'Prompt'; columns found: Body, Question, Answer, Solution"
    )
    close_toasts(page)
    use_set(page, "{Body} {Question}")
    wait_without_error(page, preview.filter(has_text="answer type: number"))
    expect(preview).to_contain_text("A baker makes 3 trays of 5 rolls and sells 3 rolls.")
    for answer in ANSWERS.values():
        assert f"`{answer}`" not in preview.inner_text()  # answers stay hidden

    problem = textbox(page, "tutor-problem")
    page.locator("#tutor-new-problem").click()
    expect(problem).to_have_value(re.compile(r"A baker makes \d trays"))
    question = problem.input_value().strip()
    assert question in ANSWERS, question
    answer = ANSWERS[question]

    page.locator("#tutor-mode").get_by_label("Give me a hint", exact=True).check()
    page.locator("#tutor-hint").click()
    expect(markdown(page, "tutor-hints")).to_contain_text("How many rolls are made?")
    expect(markdown(page, "tutor-progress")).to_contain_text("From the known solution")

    page.locator("#tutor-mode").get_by_label("Check my answer", exact=True).check()
    textbox(page, "tutor-answer").fill(str(int(answer) + 1))
    page.locator("#tutor-check").click()
    verdict = markdown(page, "tutor-verdict")
    expect(verdict).to_contain_text("Not yet")
    textbox(page, "tutor-answer").fill(answer)
    page.locator("#tutor-check").click()
    expect(verdict).to_contain_text("✅ Correct!")
    expect(markdown(page, "tutor-progress")).to_contain_text("checked against a known answer")

    use_set(page, "{Prompt}")  # a bad mapping later loses nothing on screen
    expect(toasts(page).first).to_contain_text("no column 'Prompt'")
    expect(problem).to_have_value(question)
    expect(verdict).to_contain_text("✅ Correct!")
    expect(preview).to_contain_text("answer type: number")
    expect(page.locator("#tutor-practice-preview").get_by_text("Error", exact=True)).to_have_count(
        0
    )
    screenshot(page, "tutor-practice")
