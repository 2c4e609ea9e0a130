"""The Compare path: core function and tab handlers on a tiny real model; app import is cheap."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mathtutor.compare import clean_problem, compare_stream, settings_for
from mathtutor.generate import GenerationSettings

REPO_ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


def test_empty_and_huge_problems():
    with pytest.raises(ValueError, match="empty"):
        clean_problem("   ")
    problem, notice = clean_problem("7" * 100_000)
    assert len(problem) == 4000
    assert "100,000 characters" in notice


def test_compare_streams_two_panes_and_grades(tiny_loaded, tiny_adapter_dir):
    tiny_loaded.add_adapter(tiny_adapter_dir, "tuned")
    settings = GenerationSettings(max_new_tokens=12)
    steps = list(
        compare_stream(tiny_loaded, "What is 2 + 3?", ["base", "tuned"], "chat", settings, "5")
    )
    assert len(steps) >= 2
    final = steps[-1]
    assert [pane.system for pane in final] == ["base", "tuned"]
    assert all(pane.done and pane.grade is not None for pane in final)
    assert final[0].text != final[1].text
    assert all(pane.grade.reference == "5" for pane in final)


def test_compare_rejects_unknown_format(tiny_loaded):
    with pytest.raises(ValueError, match="prompt format"):
        next(compare_stream(tiny_loaded, "2+2?", ["base", "base"], "nope"))


def test_ui_handler_streams_and_reports_errors(tiny_model_dir):
    import gradio as gr

    from mathtutor.ui.compare import run_compare

    args = (
        str(tiny_model_dir),
        "base",
        "base",
        "Tom has 3 apples. He buys 4. How many?",
        "7",
        "chat",
        8,
        0.0,
        1.0,
        0,
        False,
    )
    outputs = list(run_compare(*args))
    left_chat, right_chat, left_md, right_md, notice = outputs[-1]
    assert left_chat[0]["content"].startswith("Tom has 3 apples")
    assert left_chat[1]["content"] == right_chat[1]["content"]  # same system, greedy
    assert "correct" in left_md and left_md == right_md and notice == ""
    # Stop marks a pane still streaming as stopped and keeps a finished pane's verdict.
    from mathtutor.ui.compare import mark_stopped

    assert mark_stopped(outputs[0][2], left_md) == ("*stopped*", left_md)
    with pytest.raises(gr.Error, match="empty"):
        list(run_compare(str(tiny_model_dir), "base", "base", "", "", "chat", 8, 0, 1, 0, False))
    with pytest.raises(gr.Error, match="could not be loaded from the Hub"):
        list(
            run_compare(
                "nobody/none-such-model", "base", "base", "2+2?", "", "chat", 8, 0, 1, 0, False
            )
        )


def test_importing_app_starts_nothing_and_loads_no_model():
    code = (
        "import sys, app; "
        "assert 'torch' not in sys.modules, 'torch imported'; "
        "import gradio as gr; assert isinstance(app.demo, gr.Blocks); print('ok')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")


def test_settings_for_keeps_every_generation_setting():
    """Compare adds the format's stops; no other setting may be dropped, a new one included."""
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class WithNewSetting(GenerationSettings):
        repetition_penalty: float = 1.0

    given = WithNewSetting(
        max_new_tokens=17,
        temperature=0.3,
        top_p=0.8,
        seed=5,
        stop=("\n\n",),
        calculator=True,
        repetition_penalty=1.3,
    )
    merged = settings_for("qa", given)
    for spec in dataclasses.fields(given):
        if spec.name != "stop":
            assert getattr(merged, spec.name) == getattr(given, spec.name), spec.name
    assert merged.stop == ("\n\n", "\nQ:")
    assert settings_for("qa").stop == ("\nQ:",)


def test_docstring_examples_hold():
    import doctest

    from mathtutor import compare

    assert doctest.testmod(compare).failed == 0
