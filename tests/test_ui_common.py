"""Toasts: errors close on their own unless they need action; code spans show as code."""

from __future__ import annotations

from mathtutor.ui.common import ERROR_TOAST_S, toast_html, user_error


def test_error_toasts_close_unless_they_need_action():
    assert user_error(ValueError("bad field")).duration == ERROR_TOAST_S
    assert user_error(PermissionError("sign in first")).duration is None
    assert user_error(RuntimeError("boom")).duration is None  # unexpected: keep it readable
    assert user_error(ValueError("x"), needs_action=True).duration is None


def test_toast_messages_are_escaped_and_code_is_code():
    error = user_error(ValueError("run `hf auth login` then <retry> & wait"))
    assert error.message == "run <code>hf auth login</code> then &lt;retry&gt; &amp; wait"
    assert toast_html("a `b` c `d`") == "a <code>b</code> c <code>d</code>"


def test_download_folders_are_removed_after_an_hour(tmp_path, monkeypatch):
    """Exports and shares go to one root in the temp dir, and old ones are removed, so a
    Space's visitors cannot fill its disk."""
    import os
    import tempfile
    import time

    from mathtutor.ui.common import DOWNLOADS_KEPT_S, download_dir

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    old, recent = download_dir("export"), download_dir("share")
    (old / "run.jsonl").write_text("{}\n")
    past = time.time() - DOWNLOADS_KEPT_S - 60
    os.utime(old, (past, past))
    fresh = download_dir("votes")
    assert not old.exists() and recent.is_dir() and fresh.is_dir()
    assert fresh.parent == tmp_path / "mathtutor-downloads" and fresh.name.startswith("votes-")
