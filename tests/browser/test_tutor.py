"""Tutor tab in headless Chromium at phone width (390x844): a student's whole flow.

The student gets a problem, asks for two hints one at a time, submits a wrong answer and then
the right one, and sees "not yet" and then "correct". The problem comes from the GSM8K button
so that the test knows the answer (from the shared test.jsonl); the app keeps it server-side.
The page must fit the phone's width (no sideways scrolling).
"""

from __future__ import annotations

import json
import re

import pytest

from tests.browser.conftest import markdown, open_app, open_tab, screenshot, textbox, toasts

pytestmark = pytest.mark.browser
expect = pytest.importorskip(
    "playwright.sync_api", reason="Python playwright is not installed"
).expect

MODEL_S = 120_000  # ms: three 80-token hint candidates on the tiny model, on a loaded CI box


def gsm8k_answers(gsm8k_dir) -> dict[str, str]:
    answers = {}
    for line in (gsm8k_dir / "test.jsonl").read_text().splitlines():
        row = json.loads(line)
        answers[row["question"].strip()] = row["answer"].split("####")[-1].strip()
    return answers


def pick_mode(page, mode: str) -> None:
    page.locator("#tutor-mode").get_by_label(mode, exact=True).check()


def test_student_flow_on_a_phone(app, phone_page, gsm8k_dir):
    page = phone_page
    open_app(page, app)
    expect(page.get_by_role("tab", name="Tutor", exact=True)).to_have_attribute(
        "aria-selected", "true"
    )  # the first tab a visitor sees

    problem = textbox(page, "tutor-problem")
    page.locator("#tutor-new-problem").click()
    expect(problem).not_to_have_value("")
    generated = problem.input_value()
    page.locator("#tutor-gsm8k").click()
    expect(problem).not_to_have_value(generated)
    question = problem.input_value().strip()
    answers = gsm8k_answers(gsm8k_dir)
    assert question in answers, f"not a GSM8K test question: {question[:80]!r}"
    answer = answers[question].replace(",", "")

    pick_mode(page, "Give me a hint")
    page.locator("#tutor-hint").click()
    hints = markdown(page, "tutor-hints")
    expect(hints).to_contain_text("Hint 1:", timeout=MODEL_S)
    expect(page.locator("#tutor-hint")).to_be_hidden()
    page.locator("#tutor-next-hint").click()
    expect(hints).to_contain_text("Hint 2:", timeout=MODEL_S)
    expect(hints).to_contain_text("Earlier hints")
    assert "####" not in hints.inner_text()  # a hint never gives the final answer line

    pick_mode(page, "Check my answer")
    field = textbox(page, "tutor-answer")
    verdict = markdown(page, "tutor-verdict")
    field.fill(str(int(answer) + 1) if answer.lstrip("-").isdigit() else "0")
    page.locator("#tutor-check").click()
    expect(verdict).to_contain_text("Not yet", timeout=MODEL_S)
    expect(verdict).to_contain_text("known answer")
    assert not re.search(rf"\b{re.escape(answer)}\b", verdict.inner_text()), "answer revealed"
    field.fill(answer)
    field.press("Enter")
    expect(verdict).to_contain_text("Correct!", timeout=MODEL_S)
    expect(toasts(page)).to_have_count(0)

    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"the page is {overflow}px wider than the phone screen"
    screenshot(page, "tutor-phone")


def test_hint_for_an_empty_problem_is_a_clear_message(app, phone_page):
    page = phone_page
    open_app(page, app, "Tutor")
    pick_mode(page, "Give me a hint")
    page.locator("#tutor-hint").click()
    toast = toasts(page).first
    expect(toast).to_be_visible()
    assert "Traceback" not in toast.inner_text()
    expect(markdown(page, "tutor-hints")).to_have_text("")


def test_every_tab_is_reachable_on_a_phone(app, phone_page):
    """Tabs that do not fit the phone's width fold into gradio's "More tabs" menu."""
    page = phone_page
    open_app(page, app)
    labels = page.get_by_role("tab").all_inner_texts()
    assert "Tutor" in labels, labels
    for label in ["Compare", "Evaluate", "Train", "Hub", "Tutor"]:
        open_tab(page, label)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"the {label} tab is {overflow}px wider than the phone screen"
