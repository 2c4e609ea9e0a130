"""Faithful text: a model's completion as HTML that shows every character it generated.

Markdown is the wrong renderer for model output: `60*3 = 180*4` loses its stars to italics,
`# of boxes` becomes a heading, `<b>` vanishes into the page. `faithful_html` escapes every
character, keeps line breaks (`white-space: pre-wrap`), and re-enables only math the text
itself delimits (`$$...$$`, `\\(...\\)`, `\\[...\\]`, the same delimiters as `LATEX` in
`mathtutor.ui.common`): those spans are wrapped in `<span class="math">` and left for the
browser's KaTeX to typeset. `$5 and $6` stays money. Marks (arithmetic slips) are highlighted
in place; the correction is an attribute (`data-fix`, shown by CSS), never inserted text, so
the text content of the HTML is exactly the completion.

    >>> faithful_html("60*3 = <b>180</b>")
    '<div class="faithful">60*3 = &lt;b&gt;180&lt;/b&gt;</div>'
    >>> visible_text(faithful_html("\\\\(\\\\frac34\\\\) of $5 and $6"))
    '\\\\(\\\\frac34\\\\) of $5 and $6'
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from html.parser import HTMLParser
from typing import NamedTuple

# (left, right) math delimiters, longest left first so "$$" is not read as two "$".
MATH_DELIMITERS = (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"))


class Mark(NamedTuple):
    """A span of the text to highlight, with the note shown beside it (e.g. "= 540")."""

    start: int
    end: int
    note: str
    title: str = ""  # the tooltip; the note when empty


def math_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each delimited math span, delimiters included, left to right.

    >>> math_spans("a \\\\(x\\\\) b $$y$$ $5 and $6")
    [(2, 7), (10, 15)]
    """
    spans, position = [], 0
    while True:
        found = [
            (text.find(left, position), left, right)
            for left, right in MATH_DELIMITERS
            if text.find(left, position) != -1
        ]
        if not found:
            return spans
        start, left, right = min(found, key=lambda item: item[0])
        end = text.find(right, start + len(left) + 1)  # math needs at least one character
        if end == -1:
            position = start + len(left)
            continue
        spans.append((start, end + len(right)))
        position = end + len(right)


def faithful_html(text: str, marks: Iterable[Mark] = ()) -> str:
    """HTML showing `text` exactly, delimited math marked for KaTeX, `marks` highlighted."""
    spans = math_spans(text)
    inside = [False] * (len(text) + 1)
    for start, end in spans:
        inside[start:end] = [True] * (end - start)
    opens: dict[int, Mark] = {}
    for mark in sorted(marks, key=lambda m: m.start):
        in_text = 0 <= mark.start < mark.end <= len(text)
        if in_text and not any(inside[mark.start : mark.end]) and _apart(mark, opens.values()):
            opens[mark.start] = mark
    before: dict[int, list[str]] = {}  # tags to write before the character at an offset
    for start, end in spans:
        before.setdefault(start, []).append('<span class="math">')
        before.setdefault(end, []).insert(0, "</span>")
    for mark in opens.values():
        note, title = html.escape(mark.note), html.escape(mark.title or mark.note)
        before.setdefault(mark.start, []).append(
            f'<mark class="slip" title="{title}" data-fix="{note}">'
        )
        before.setdefault(mark.end, []).insert(0, "</mark>")
    parts, position = [], 0
    for offset in sorted(before):
        parts.append(html.escape(text[position:offset]))
        parts.extend(before[offset])
        position = offset
    parts.append(html.escape(text[position:]))
    return f'<div class="faithful">{_keep_whitespace("".join(parts))}</div>'


_LINE_START_SPACE = re.compile(r"(?<=\n)[^\S\n]")


def _keep_whitespace(markup: str) -> str:
    """Tabs and each line's first blank as character references.

    gr.Chatbot passes a message string through `inspect.cleandoc`, which expands tabs and
    strips the lines' common indentation; a reference is not whitespace to it, so the text
    keeps every blank (the browser decodes `&#9;` back to a tab).
    """
    markup = _LINE_START_SPACE.sub(lambda m: f"&#{ord(m[0])};", markup)
    return markup.replace("\t", "&#9;")


def _apart(mark: Mark, others: Iterable[Mark]) -> bool:
    return all(mark.start >= other.end or mark.end <= other.start for other in others)


def slip_marks(steps: Iterable) -> list[Mark]:
    """Marks for wrong arithmetic steps (`checks.Step`s or their stored dicts)."""
    from mathtutor.checks import format_value

    marks = []
    for step in steps:
        get = step.get if isinstance(step, dict) else lambda key, s=step: getattr(s, key)
        actual = get("actual")
        if actual is None:
            value = "?"
        else:
            value = actual if isinstance(actual, str) else format_value(actual)
        marks.append(Mark(int(get("start")), int(get("end")), f"= {value}", f"actually {value}"))
    return marks


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def visible_text(markup: str) -> str:
    """The text content of `markup` (what a browser shows, before KaTeX typesets math)."""
    parser = _Text()
    parser.feed(markup)
    parser.close()
    return "".join(parser.parts)


# The CSS the app adds for faithful text (line breaks kept, slips marked, fix shown after).
CSS = """
.faithful { white-space: pre-wrap; overflow-wrap: anywhere; }
mark.slip { background: #ffe08a; border-radius: 3px; padding: 0 2px; }
mark.slip[data-fix]::after { content: " ✎ " attr(data-fix); font-size: 0.8em; color: #8a5a00; }
"""
