"""The Compare path: core function and tab handlers on a tiny real model; app import is cheap."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mathtutor.compare import clean_problem, compare_stream, first_difference, settings_for
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


def test_compare_panes_carry_timing(tiny_loaded):
    settings = GenerationSettings(max_new_tokens=8)
    *_, final = compare_stream(tiny_loaded, "What is 2 + 3?", ["base", "base"], "qa", settings)
    for pane in final:
        assert pane.num_tokens > 0 and pane.first_token_s is not None
        assert 0 < pane.first_token_s <= pane.seconds
        assert pane.tokens_per_s is None or pane.tokens_per_s > 0


def test_first_difference_marks_the_step_and_both_values():
    left = "60*3 = 180\n180*4 = 720\nSo 720."
    right = "3*60 = 180\n180*4 = 640\nSo 640."
    difference = first_difference(left, right)
    assert difference.index == 1
    assert difference.left_values == ["180", "720"] and difference.right_values == ["180", "640"]
    assert first_difference(left, left).index is None
    assert first_difference("2+2 = 4", "2+2 = 4 and 4*2 = 8").index == 1


ARGS = (
    "base",
    "base",
    "Tom has 3*4 apples. He buys 4. How many?",
    "7",
    "qa",
    8,
    0.0,
    1.0,
    0,
    False,
)


def test_ui_handler_streams_and_reports_errors(tiny_model_dir):
    import gradio as gr

    from mathtutor.render import visible_text
    from mathtutor.ui.compare import run_compare

    outputs = list(run_compare(str(tiny_model_dir), *ARGS))
    left_chat, right_chat, left_md, right_md, left_head, _, diff, notice, state = outputs[-1]
    assert visible_text(left_chat[0]["content"]) == ARGS[2]  # the star survives
    assert visible_text(left_chat[1]["content"]) == state["panes"][0]["text"]
    assert left_chat[1]["content"] == right_chat[1]["content"]  # same system, greedy
    assert "correct" in left_md and left_md == right_md and notice == ""
    assert "base · " in left_head and "tokens" in left_head and "Same text." in diff
    with pytest.raises(gr.Error, match="empty"):
        list(run_compare(str(tiny_model_dir), "base", "base", "", "", "chat", 8, 0, 1, 0, False))
    with pytest.raises(gr.Error, match="two different systems"):
        list(run_compare(str(tiny_model_dir), *ARGS, True))
    with pytest.raises(gr.Error, match="could not be loaded from the Hub"):
        list(
            run_compare(
                "nobody/none-such-model", "base", "base", "2+2?", "", "chat", 8, 0, 1, 0, False
            )
        )


def test_stop_ends_the_run_at_its_next_step_and_keeps_the_text(tiny_model_dir):
    """Stop (`ui.stops`) ends a streaming Compare in its own thread: the partial text stays,
    the answer lines say stopped, and the model is free for the next run at once."""
    from mathtutor.ui import stops
    from mathtutor.ui.compare import STOPPED, run_compare

    args = (*ARGS[:5], 64, *ARGS[6:], False)  # 64 tokens: far more than it decodes here
    run = run_compare(str(tiny_model_dir), *args, "stopthisrun0001")
    first = next(run)
    assert not first[-1]["panes"][0]["done"]
    assert stops.request_stop("stopthisrun0001")
    rest = list(run)
    assert len(rest) == 1, "the run went on after its Stop"
    *_, state = rest[-1]
    assert rest[-1][2] == rest[-1][3] == STOPPED
    assert state["panes"][0]["text"] and not state["panes"][0]["done"]
    # A run stopped before it starts ends at once, without touching the model.
    assert stops.request_stop("stoppedbefore001")
    [(*_, ahead)] = list(run_compare(str(tiny_model_dir), *args, "stoppedbefore001"))
    assert ahead["answers"] == [STOPPED, STOPPED] and ahead["panes"][0]["text"] == ""
    # Another run (another token) is not stopped, and the model was left usable.
    *_, last = list(run_compare(str(tiny_model_dir), *ARGS, False, "anotherrun000001"))
    assert all(p["done"] for p in last[-1]["panes"])
    # Malformed tokens are refused and never kept.
    assert not stops.request_stop("../etc") and not stops.request_stop("x" * 100)
    assert not stops.stopped("") and not stops.stopped(None)


def test_blind_vote_reveals_names_and_feeds_the_leaderboard(tiny_model_dir, tiny_adapter_dir):
    import gradio as gr

    from mathtutor import share, store
    from mathtutor.ui.compare import (
        leaderboard_value,
        open_shared,
        regenerate_right,
        run_compare,
        share_comparison,
        vote,
    )

    store.register_adapter("blind-tuned", tiny_adapter_dir, str(tiny_model_dir), "test")
    spec = str(tiny_model_dir)
    args = (spec, "base", "blind-tuned", *ARGS[2:], True)
    *_, last = run_compare(*args)
    heads, state = last[4:6], last[-1]
    assert all("System " in head for head in heads) and not any("base" in h for h in heads)
    assert sorted(state["systems"]) == ["base", "blind-tuned"]
    with pytest.raises(gr.Error, match="Vote first"):
        list(regenerate_right(state))
    record = share.load(share_comparison(state)[1].split("share=")[1].split("]")[0])
    assert [p["system"] for p in record["panes"]] == ["System A", "System B"]  # still hidden
    before = len(store.list_votes())
    outputs = vote("left", state, None)
    voted = outputs[8]
    assert voted["vote"] == "left" and len(store.list_votes()) == before + 1
    assert state["systems"][0] in outputs[4] and state["systems"][1] in outputs[5]
    board = leaderboard_value(spec)
    winner = state["systems"][0]
    assert board["data"][0][0] == winner and outputs[9] == board
    with pytest.raises(gr.Error, match="already has your vote"):
        vote("tie", voted, None)
    *_, again = regenerate_right(voted)
    assert again[-1]["panes"][0] == voted["panes"][0] and "seed" in again[-2]
    files, link = share_comparison(voted)
    share_id = link.split("share=")[1].split("]")[0]
    record = share.load(share_id)
    assert [p["text"] for p in record["panes"]] == [p["text"] for p in voted["panes"]]
    assert record["vote"] == "left" and record["panes"][0]["system"].startswith(winner)
    assert ".md" in str(files.value) and ".json" in str(files.value)

    request = type("Request", (), {"query_params": {"share": share_id}})()
    reopened = open_shared(request)
    with pytest.raises(gr.Error, match="read only"):
        list(regenerate_right(reopened[8]))
    assert (
        reopened[9] == record["problem"]
        and reopened[8]["panes"][1]["text"] == record["panes"][1]["text"]
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


def test_leaderboard_accuracy_is_from_the_latest_finished_evaluation(tiny_model_dir):
    from mathtutor import store
    from mathtutor.ui.compare import latest_accuracy

    spec = str(tiny_model_dir)

    def run(run_id: str, status: str, value: float) -> None:
        store.create_eval_run(run_id, {"model": spec, "labels": ["base"]})
        summary = {"systems": {"base": {"strict": {"value": value}}}}
        store.update_eval_run(run_id, status=status, summary=summary)

    run("acc-old", "finished", 0.1)
    run("acc-new", "finished", 0.3)
    run("acc-stopped", "stopped", 0.9)  # newest, but not a finished evaluation
    assert latest_accuracy(spec)["base"] == 0.3
    assert "base" not in latest_accuracy("someone/other-model")
