"""Compare tab in headless Chromium: base vs a LoRA adapter side by side on the tiny model.

A user opens the app, picks the adapter for the right pane, types a problem and a reference
answer, and presses Compare: both panes fill, and under each the extracted answer (or "No
final answer found") and a correct/incorrect mark appear. Bad input gives a toast, never a
stack trace; the GSM8K and generator buttons fill the problem box.
"""

from __future__ import annotations

import json
import re

import pytest

from mathtutor import store
from tests.browser.conftest import (
    ADAPTER,
    ARTIFACTS,
    bot_messages,
    choose,
    markdown,
    open_accordion,
    open_app,
    prepare_home,
    running_app,
    screenshot,
    set_slider,
    textbox,
    toasts,
    user_messages,
)

pytestmark = pytest.mark.browser
expect = pytest.importorskip(
    "playwright.sync_api", reason="Python playwright is not installed"
).expect

PROBLEM = "Tom has 3 apples and buys 4 more. How many apples does he have?"
ANSWER_MARK = re.compile(r"Answer: \S|No final answer found")
VERDICT = re.compile(r"\b(correct|incorrect)\b")
GENERATION_S = 120_000  # ms: 2 x 32 tokens on the tiny model, generous for a loaded CI box


def short_generation(page, max_new_tokens: int = 32) -> None:
    """Keep the tiny model's answers short (greedy is the default)."""
    open_accordion(page, "Generation settings")
    set_slider(page, "Max new tokens", max_new_tokens)


def test_compare_streams_base_and_adapter_with_answer_marks(app, page):
    open_app(page, app, "Compare")
    choose(page, "compare-left-system", "base")
    choose(page, "compare-right-system", ADAPTER)
    # The `qa` format (Phi-2's "Q: ...\nA:") makes the random tiny model print visible
    # characters under greedy decoding (in the chat format it prints only newlines).
    choose(page, "compare-format", "qa")
    textbox(page, "compare-problem").fill(PROBLEM)
    textbox(page, "compare-reference").fill("7")
    short_generation(page)
    page.locator("#compare-run").click()

    texts = {}
    for side in ("left", "right"):
        answer = markdown(page, f"compare-{side}-answer")
        expect(answer).to_contain_text(ANSWER_MARK, timeout=GENERATION_S)
        expect(answer).to_contain_text(VERDICT)
        expect(answer).to_contain_text("reference 7")  # the tiny model is never right
        expect(user_messages(page, f"compare-{side}-chat")).to_contain_text(PROBLEM)
        messages = bot_messages(page, f"compare-{side}-chat")
        expect(messages).to_have_count(1)
        texts[side] = messages.inner_text().strip()
        assert texts[side], f"the {side} pane's answer is empty"
    # Greedy decoding on one base: only the adapter can make the right pane differ.
    assert texts["left"] != texts["right"], "the adapter did not change the answer"
    expect(toasts(page)).to_have_count(0)
    screenshot(page, "compare")


def test_empty_problem_shows_an_error_toast_not_a_trace(app, page):
    open_app(page, app, "Compare")
    textbox(page, "compare-problem").fill("   ")
    page.locator("#compare-run").click()
    toast = toasts(page).first
    expect(toast).to_be_visible()
    expect(toast).to_contain_text("empty")
    assert "Traceback" not in toast.inner_text()
    assert "Traceback" not in page.locator("body").inner_text()
    expect(bot_messages(page, "compare-left-chat")).to_have_count(0)


def test_overlong_problem_is_cut_with_a_visible_notice(app, page):
    open_app(page, app, "Compare")
    textbox(page, "compare-problem").fill("Tom has 3 apples. " * 6000)  # 108,000 characters
    short_generation(page, 16)
    page.locator("#compare-run").click()
    expect(markdown(page, "compare-notice")).to_contain_text("only the first", timeout=GENERATION_S)
    expect(markdown(page, "compare-left-answer")).to_contain_text(ANSWER_MARK, timeout=GENERATION_S)
    expect(toasts(page)).to_have_count(0)


def test_gsm8k_button_fills_problem_and_reference(app, page, gsm8k_dir):
    answers = {}
    for line in (gsm8k_dir / "test.jsonl").read_text().splitlines():
        row = json.loads(line)
        answers[row["question"].strip()] = row["answer"].split("####")[-1].strip()
    open_app(page, app, "Compare")
    problem = textbox(page, "compare-problem")
    expect(problem).to_have_value("")
    page.locator("#compare-random-gsm8k").click()
    expect(problem).not_to_have_value("")
    question = problem.input_value().strip()
    assert question in answers, f"not a GSM8K test question: {question[:80]!r}"
    expected = answers[question].replace(",", "")
    assert textbox(page, "compare-reference").input_value().replace(",", "") == expected


def test_generator_button_fills_problem_and_numeric_reference(app, page):
    open_app(page, app, "Compare")
    page.locator("#compare-generate").click()
    expect(textbox(page, "compare-problem")).not_to_have_value("")
    expect(textbox(page, "compare-reference")).to_have_value(re.compile(r"^-?[\d,./]+$"))


@pytest.fixture()
def own_app(chromium, tiny_model_dir, tiny_adapter_dir, tmp_path):
    """An app of its own, for a test that may leave the shared one wedged."""
    home = prepare_home(tmp_path / "home", tiny_model_dir, tiny_adapter_dir)
    with running_app(home, tiny_model_dir) as started:
        yield started


def test_stop_mid_answer_then_compare_again(own_app, page):
    """Stop during generation must leave the model usable for the next Compare."""
    open_app(page, own_app, "Compare")
    choose(page, "compare-right-system", ADAPTER)
    textbox(page, "compare-problem").fill(PROBLEM)
    short_generation(page, 1024)
    page.locator("#compare-run").click()
    left_answer = markdown(page, "compare-left-answer")
    expect(left_answer).to_contain_text("generating", timeout=GENERATION_S)
    page.locator("#compare-stop").click()
    expect(left_answer).to_contain_text("stopped", timeout=GENERATION_S)
    set_slider(page, "Max new tokens", 16)
    page.locator("#compare-run").click()
    expect(left_answer).to_contain_text(ANSWER_MARK, timeout=GENERATION_S)
    expect(markdown(page, "compare-right-answer")).to_contain_text(ANSWER_MARK)
    expect(toasts(page)).to_have_count(0)
    # A generator closed from another thread than the one that took the model's lock
    # prints "RuntimeError: cannot release un-acquired lock" here and leaves the lock held.
    log = own_app.log_tail(50_000)
    assert "Traceback" not in log, f"the app printed a traceback after Stop:\n{log[-3000:]}"


# --------------------------------------------------------------------------- faithful, arena, share
TRICKY = "Put 3*4*5 boxes in _rows_ of # 2, <b>bold</b> costs $5 and $6, or \\(\\frac34\\) each."


def compare_once(page, problem: str = PROBLEM, blind: bool = False) -> None:
    """Fill the form (qa format, short greedy answers) and run; wait until both panes finish."""
    choose(page, "compare-left-system", "base")
    choose(page, "compare-right-system", ADAPTER)
    choose(page, "compare-format", "qa")
    if blind:
        page.locator("#compare-blind input[type=checkbox]").check()
    textbox(page, "compare-problem").fill(problem)
    short_generation(page, 24)
    page.locator("#compare-run").click()
    for side in ("left", "right"):
        expect(markdown(page, f"compare-{side}-answer")).to_contain_text(
            ANSWER_MARK, timeout=GENERATION_S
        )


def saved_share(home, link_text: str) -> dict:
    share_id = re.search(r"share=([0-9a-f]{16})", link_text)[1]
    return json.loads((home / "shares" / f"{share_id}.json").read_text())


def test_panes_show_every_character_and_share_round_trips(own_app, page):
    open_app(page, own_app, "Compare")
    compare_once(page, TRICKY)
    for side in ("left", "right"):
        shown = user_messages(page, f"compare-{side}-chat").locator(".faithful")
        # KaTeX typesets the delimited math; the text outside it is exactly the problem.
        expect(shown.locator(".math .katex")).to_have_count(1)
        outside = shown.evaluate(
            "el => { const c = el.cloneNode(true); c.querySelectorAll('.math')"
            ".forEach(m => m.replaceWith('MATH')); return c.textContent; }"
        )
        assert outside == TRICKY.replace("\\(\\frac34\\)", "MATH")
        expect(shown.locator("b")).to_have_count(0)  # <b> shown, not applied
        expect(page.locator(f"#compare-{side}-head")).to_contain_text("tokens")
    expect(page.locator("#compare-left-head")).to_contain_text("base")
    expect(page.locator("#compare-right-head")).to_contain_text(ADAPTER)

    page.locator("#compare-share").click()
    link = markdown(page, "compare-permalink")
    expect(link).to_contain_text("share=")
    record = saved_share(own_app.home, link.inner_text())
    assert record["problem"] == TRICKY
    for side, pane in zip(("left", "right"), record["panes"], strict=True):
        text = bot_messages(page, f"compare-{side}-chat").locator(".faithful").text_content()
        assert text == pane["text"], f"the {side} pane's text is not the completion"
    expect(page.locator("#compare-share-files")).to_contain_text(".md")

    share_id = re.search(r"share=([0-9a-f]{16})", link.inner_text())[1]
    page.goto(f"{own_app.url}?share={share_id}")
    expect(markdown(page, "compare-notice")).to_contain_text(share_id, timeout=60_000)
    expect(textbox(page, "compare-problem")).to_have_value(TRICKY)
    for side, pane in zip(("left", "right"), record["panes"], strict=True):
        messages = bot_messages(page, f"compare-{side}-chat").locator(".faithful")
        expect(messages).to_have_count(1)
        assert messages.text_content() == pane["text"]
        expect(page.locator(f"#compare-{side}-head")).to_contain_text(pane["system"])


def test_stop_never_covers_the_panes_with_an_error_badge(own_app, page):
    open_app(page, own_app, "Compare")
    choose(page, "compare-right-system", ADAPTER)
    choose(page, "compare-format", "qa")
    textbox(page, "compare-problem").fill(PROBLEM)
    short_generation(page, 512)
    panes = page.locator("#compare-left-chat, #compare-right-chat")
    answer = markdown(page, "compare-left-answer")
    for attempt in range(10):
        page.locator("#compare-run").click()
        expect(answer).to_contain_text("generating", timeout=GENERATION_S)
        page.wait_for_timeout(150 * (attempt % 3))
        page.locator("#compare-stop").click()
        # Stopped mid-answer, or (on a fast machine) finished just before the click.
        expect(answer).to_contain_text(re.compile(r"stopped|Answer: |No final answer"))
        page.wait_for_timeout(300)
        expect(panes.get_by_text("Error", exact=True)).to_have_count(0)
        expect(bot_messages(page, "compare-left-chat").locator(".faithful")).to_have_count(1)
    expect(toasts(page)).to_have_count(0)


def region_screenshot(page, name: str, first: str, last: str) -> None:
    """tests/_artifacts/<name>.png: the page from element `first` down to element `last`
    (docs/arena.png and docs/leaderboard.png in the README are these, copied)."""
    scroll = page.evaluate("window.scrollY")  # boxes are in viewport coordinates
    top = page.locator(first).bounding_box()["y"] + scroll - 40
    bottom = page.locator(last).bounding_box()
    bottom = bottom["y"] + scroll + bottom["height"] + 16
    ARTIFACTS.mkdir(exist_ok=True)
    clip = {"x": 0, "y": max(0, top), "width": page.viewport_size["width"], "height": bottom - top}
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True, clip=clip)


def leaderboard_systems(page) -> list[str]:
    open_accordion(page, "Leaderboard")
    cells = page.locator('#compare-leaderboard [data-testid^="cell-"][data-col="0"]')
    expect(cells.first).to_be_visible()
    return [" ".join(cell.inner_text().split()) for cell in cells.all()]


def test_blind_vote_hides_names_until_the_vote_and_survives_a_restart(
    chromium, tiny_model_dir, tiny_adapter_dir, tmp_path, page
):
    home = prepare_home(tmp_path / "home", tiny_model_dir, tiny_adapter_dir)
    with running_app(home, tiny_model_dir) as app:
        open_app(page, app, "Compare")
        compare_once(page, PROBLEM, blind=True)
        heads = page.locator("#compare-left-head, #compare-right-head")
        expect(heads).to_have_text([re.compile("System A"), re.compile("System B")])
        for name in ("base", ADAPTER):
            expect(heads.filter(has_text=name)).to_have_count(0)
        expect(page.locator("#compare-vote-row")).to_be_visible()
        region_screenshot(page, "arena", "#compare-left-head", "#compare-vote-row")
        page.locator("#compare-vote-left").click()
        expect(markdown(page, "compare-notice")).to_contain_text("Vote recorded")
        winner = page.locator("#compare-left-head .pane-system").inner_text()
        assert winner.split(" · ")[0] in ("base", ADAPTER)
        expect(page.locator("#compare-right-head")).not_to_contain_text("System B")
        assert leaderboard_systems(page)[0] == winner.split(" · ")[0]
        page.locator("#compare-vote-tie").click()  # a second vote on the same pair is refused
        expect(toasts(page).first).to_contain_text("already has your vote")
    with running_app(home, tiny_model_dir) as restarted:
        open_app(page, restarted, "Compare")
        systems = leaderboard_systems(page)
        assert sorted(systems) == sorted(["base", ADAPTER]) and systems[0] == winner.split(" · ")[0]
        page.wait_for_timeout(1000)  # the tab's own refresh of the table
        expect(page.locator("#compare-leaderboard [data-testid=cell-1-0]")).to_be_visible()
        region_screenshot(page, "leaderboard", "#compare-leaderboard", "#compare-export-votes")
    votes = store.list_votes(path=home / "mathtutor.db")
    assert [(v["outcome"], v["problem"]) for v in votes] == [("left", PROBLEM)]


def test_error_toasts_do_not_stack_and_close_on_their_own(app, page):
    open_app(page, app, "Compare")
    textbox(page, "compare-problem").fill("   ")
    for _ in range(3):
        page.locator("#compare-run").click()
        page.wait_for_timeout(400)
    expect(toasts(page)).to_have_count(1)  # one group ...
    items = page.locator("[data-testid=toast-body].error .toast-message-item")
    expect(items.filter(visible=True)).to_have_count(1)  # ... showing the message once
    expect(toasts(page).first).to_contain_text("empty")
    expect(toasts(page)).to_have_count(0, timeout=20_000)  # ERROR_TOAST_S, then gone
