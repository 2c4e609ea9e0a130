"""Faithful rendering: every character of a completion survives; only delimited math is math."""

from __future__ import annotations

import inspect

import pytest

from mathtutor.checks import wrong_steps
from mathtutor.render import Mark, faithful_html, math_spans, slip_marks, visible_text

TEXTS = [
    "60*3 = 180 and 180*4 = 640",
    "3*4*5 boxes",
    "snake_case and _italics_ and __bold__",
    "# of apples\n## heading?\n- not a list",
    "<b>bold</b> <script>alert(1)</script> &amp; &lt;",
    "It costs $5 and $6, so $11 in all.",
    "Three quarters: \\(\\frac34\\) of 8 = 6",
    "display \\[x^2\\] and $$y_1 * y_2$$ and `code` ~strike~ [link](x)",
    "  leading spaces\n\n\ntrailing  \n",
    "step 1:\n    indented\n\ttabbed\t\tcolumns\n   \n  two",
]


@pytest.mark.parametrize("text", TEXTS)
def test_every_character_of_the_completion_is_visible(text):
    markup = faithful_html(text)
    assert visible_text(markup) == text
    assert "<b>" not in markup and "<script>" not in markup
    # gr.Chatbot runs every message through inspect.cleandoc: no blank may be lost to it.
    assert visible_text(inspect.cleandoc(markup)) == text


def test_only_delimited_math_is_marked_as_math():
    assert math_spans("It costs $5 and $6") == []
    markup = faithful_html("Three quarters: \\(\\frac34\\) and $$x*y$$ cost $5")
    assert markup.count('<span class="math">') == 2
    assert '<span class="math">\\(\\frac34\\)</span>' in markup
    assert "cost $5" in markup
    assert math_spans("\\(unclosed and $$ alone") == []


def test_slips_are_marked_in_place_without_changing_the_text():
    text = "60*3 = 180\n180*4 = 640\nSo the answer is 640."
    steps = wrong_steps(text)
    assert [s.claimed for s in steps] == ["640"]
    markup = faithful_html(text, slip_marks(steps))
    assert visible_text(markup) == text
    assert '<mark class="slip" title="actually 720" data-fix="= 720">180*4 = 640</mark>' in markup


def test_marks_overlapping_math_or_each_other_are_left_out():
    text = "\\(2*3 = 7\\) then 1+1 = 3"
    marks = [Mark(2, 9, "= 6"), Mark(17, 24, "= 2"), Mark(18, 24, "= x")]
    markup = faithful_html(text, marks)
    assert markup.count("<mark") == 1 and "1+1 = 3</mark>" in markup
    assert visible_text(markup) == text
