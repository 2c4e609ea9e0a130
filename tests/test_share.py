"""Shared comparisons: ids are checked, records round-trip, Markdown keeps every character."""

from __future__ import annotations

import json

import pytest

from mathtutor import share

RECORD = {
    "problem": "Put 3*4*5 boxes in `rows`.",
    "reference": "60",
    "prompt_format": "qa",
    "settings": {"max_new_tokens": 32, "seed": 0},
    "vote": "right",
    "panes": [
        {"system": "base", "text": "3*4*5 = 60 ``` oops", "answer": "60", "verdict": "correct"},
        {"system": "tuned", "text": "# _60_ <b>", "answer": None, "verdict": ""},
    ],
}


def test_save_load_round_trip_and_markdown(tmp_path):
    share_id = share.save(RECORD, tmp_path)
    assert share.SHARE_ID.fullmatch(share_id)
    loaded = share.load(share_id, tmp_path)
    assert {k: loaded[k] for k in RECORD} == RECORD
    markdown = share.to_markdown(loaded)
    assert "````\n3*4*5 = 60 ``` oops\n````" in markdown  # a fence longer than the text's
    assert "```\n# _60_ <b>\n```" in markdown
    assert "## Right: tuned" in markdown and "Blind vote: **right**" in markdown


@pytest.mark.parametrize("bad", ["../etc/passwd", "0123", "0123456789ABCDEF", "", None, "a" * 17])
def test_bad_ids_never_reach_the_file_system(bad, tmp_path):
    with pytest.raises(ValueError, match="16 hex digits"):
        share.load(bad, tmp_path)


def test_missing_and_malformed_shares(tmp_path):
    with pytest.raises(ValueError, match="no such shared comparison"):
        share.load("0" * 16, tmp_path)
    (tmp_path / ("1" * 16 + ".json")).write_text(json.dumps({"problem": "x", "panes": []}))
    with pytest.raises(ValueError, match="two panes"):
        share.load("1" * 16, tmp_path)
    with pytest.raises(ValueError, match="non-empty"):
        share.save({**RECORD, "problem": " "}, tmp_path)
