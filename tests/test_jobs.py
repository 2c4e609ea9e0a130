"""Fair scheduling: an evaluation runs as a background job and Compare does not wait for it.

Timing is never asserted: the model lock counts the forward steps it grants per priority
(`ModelLock.acquisitions`), so "Compare waited at most a step or two of the evaluation" is a
count of background steps granted while a Compare ran.
"""

from __future__ import annotations

import contextlib
import gc
import re
import sys
import threading
import time
import types

import pytest

from mathtutor import store
from mathtutor.chunks import chunk_seconds
from mathtutor.compare import compare_stream
from mathtutor.evaluate import EvalConfig, evaluate
from mathtutor.generate import GenerationSettings
from mathtutor.jobs import (
    INTERACTIVE_TURNS,
    Turns,
    current_job,
    start_evaluation,
    stop_job,
)
from mathtutor.models import BACKGROUND, INTERACTIVE, ModelLock, background_priority, load_model
from mathtutor.render import visible_text
from tests.conftest import serving

# Records fields that depend on when a run happened, not on what it computed.
RUN_FIELDS = ("seconds", "created", "run_id", "id")


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MATHTUTOR_HOME", str(tmp_path / "home"))
    yield tmp_path / "home"
    job = stop_job()  # a test that failed midway leaves no job running into the next test
    if job is not None:
        job.wait(60)


def long_config(model_dir, **changes) -> EvalConfig:
    """Many short problems in small batches: a run of a few hundred decoding steps."""
    values = dict(
        model=str(model_dir),
        dataset="arithmetic",
        num_samples=48,
        prompt_format="qa",
        max_new_tokens=24,
        batch_size=4,
    )
    return EvalConfig(**(values | changes))


def comparable(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in RUN_FIELDS} for r in records]


def wait_until(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


# --------------------------------------------------------------------------- the lock
def test_a_waiting_interactive_step_goes_before_a_waiting_background_step():
    lock, order = ModelLock(grace=0.0), []

    def take(kind: str) -> None:
        context = background_priority() if kind == BACKGROUND else contextlib.nullcontext()
        with context, lock:
            order.append(kind)

    lock.acquire()  # held by "the evaluation's current step"
    background = threading.Thread(target=take, args=(BACKGROUND,))
    background.start()
    wait_until(lambda: len(lock._waiting[BACKGROUND]) == 1)
    interactive = threading.Thread(target=take, args=(INTERACTIVE,))
    interactive.start()
    wait_until(lambda: len(lock._waiting[INTERACTIVE]) == 1)
    lock.release()
    background.join(10)
    interactive.join(10)
    assert order == [INTERACTIVE, BACKGROUND]
    assert lock.acquisitions == {INTERACTIVE: 2, BACKGROUND: 1}


def test_background_steps_leave_a_grace_after_an_interactive_step():
    lock, order = ModelLock(grace=30.0), []
    with lock:  # an interactive step
        pass

    def background() -> None:
        with background_priority(), lock:
            order.append(BACKGROUND)

    thread = threading.Thread(target=background, daemon=True)
    thread.start()
    wait_until(lambda: len(lock._waiting[BACKGROUND]) == 1)
    for _ in range(3):  # the next steps of the same request are not overtaken
        with lock:
            order.append(INTERACTIVE)
    assert order == [INTERACTIVE] * 3
    lock.grace = 0.0
    with lock:  # wakes the waiter, which now finds the grace over
        pass
    thread.join(10)
    assert order == [INTERACTIVE] * 3 + [BACKGROUND]


def test_the_lock_can_be_released_from_another_thread():
    lock = ModelLock()
    lock.acquire()
    thread = threading.Thread(target=lock.release)
    thread.start()
    thread.join(10)
    assert not lock.locked()
    with pytest.raises(RuntimeError, match="unlocked"):
        lock.release()


# --------------------------------------------------------------------------- the job
def test_compare_during_an_evaluation_waits_only_a_step_and_records_are_identical(
    home, tiny_model_dir
):
    loaded = load_model(str(tiny_model_dir))
    settings = GenerationSettings(max_new_tokens=16)
    solo_before = loaded.lock.acquisitions[INTERACTIVE]
    *_, solo = compare_stream(loaded, "What is 2 + 3?", ["base", "base"], "qa", settings)
    solo_steps = loaded.lock.acquisitions[INTERACTIVE] - solo_before

    job = start_evaluation(long_config(tiny_model_dir))
    assert current_job() is job
    with pytest.raises(ValueError, match="already running"):
        start_evaluation(long_config(tiny_model_dir))
    wait_until(lambda: loaded.lock.acquisitions[BACKGROUND] > 0)  # the evaluation is decoding
    waits = []
    for problem in ("What is 2 + 3?", "Tom has 4 apples and eats 1. How many are left?"):
        background = loaded.lock.acquisitions[BACKGROUND]
        interactive = loaded.lock.acquisitions[INTERACTIVE]
        *_, panes = compare_stream(loaded, problem, ["base", "base"], "qa", settings)
        assert all(pane.done for pane in panes)
        waits.append(loaded.lock.acquisitions[BACKGROUND] - background)
        if problem == "What is 2 + 3?":  # the same request as alone: same steps, same text
            assert loaded.lock.acquisitions[INTERACTIVE] - interactive == solo_steps
            assert [pane.text for pane in panes] == [pane.text for pane in solo]
    assert job.running, "the evaluation should still be running after the Compare requests"
    # At most the evaluation step in flight when each Compare arrived (plus one for luck).
    assert all(wait <= 2 for wait in waits), waits
    assert job.wait(300) and job.status == "finished", job.error
    assert job.done == job.total == 48 and job.eta() is None and job.rate()

    alone = evaluate(long_config(tiny_model_dir))
    assert comparable(store.load_records(job.run_id)) == comparable(
        store.load_records(alone.run_id)
    )


def test_stop_ends_the_job_after_a_batch_and_resume_finishes_it(home, tiny_model_dir):
    loaded = load_model(str(tiny_model_dir))
    job = start_evaluation(long_config(tiny_model_dir, num_samples=24))
    wait_until(lambda: job.done > 0 or not job.running)
    assert job.run_id and (job.eta() is None or job.eta() >= 0)
    assert stop_job() is job
    assert job.wait(120) and job.status == "stopped"
    assert 0 < job.done < 24 and store.get_eval_run(job.run_id)["status"] == "stopped"
    assert stop_job() is None  # nothing running

    resumed = start_evaluation(EvalConfig(run_id=job.run_id))
    assert resumed.run_id == job.run_id  # known at once for a resume
    assert resumed.wait(120) and resumed.status == "finished", resumed.error
    assert len(store.load_records(job.run_id)) == 24
    assert loaded.lock.acquisitions[BACKGROUND] > 0


def test_a_failing_job_reports_one_line(home, tiny_model_dir):
    job = start_evaluation(EvalConfig(run_id="no-such-run"))
    assert job.wait(60) and job.status == "failed"
    assert job.error.startswith("run_id 'no-such-run': no such evaluation run")


def test_chunk_duration_grows_with_the_work():
    assert chunk_seconds(64, 30) < chunk_seconds(512, 30) < chunk_seconds(512, 60)
    assert chunk_seconds(4096, 200) == 300


# --------------------------------------------------------------------------- the real app
@pytest.fixture()
def app_url(home, tiny_model_dir, monkeypatch):
    """The whole app (`app.build_demo`) on the tiny model, served on a free port."""
    monkeypatch.setenv("MATHTUTOR_MODEL", str(tiny_model_dir))
    import app

    with serving(app.build_demo()) as url:
        yield url


def start_inputs(model_dir, **changes) -> list:
    """The Evaluate form's values in the order its Start event sends them."""
    from mathtutor.ui import evaluate as tab

    values = {f.name: f.default for f in tab.FORM_FIELDS}
    values.update(dataset="arithmetic", num_samples=48, prompt_format="qa")
    values.update(max_new_tokens=24, batch_size=4)
    values.update(changes)
    main = [f.name for f in tab.FORM_FIELDS if f.name in tab.MAIN_FIELDS]
    upload = [f.name for f in tab.FORM_FIELDS if f.name in tab.UPLOAD_FIELDS]
    rest = [f.name for f in tab.FORM_FIELDS if f.name not in (*main, *upload)]
    return [str(model_dir), ["base"], None, *(values[name] for name in main + upload + rest)]


def compare_inputs(model_dir, problem: str) -> list:
    # spec, left, right, problem, reference, format, max tokens, temperature, top_p, seed, calc
    return [str(model_dir), "base", "base", problem, "", "qa", 16, 0, 1, 0, False]


def test_compare_through_the_app_is_not_queued_behind_an_evaluation(app_url, tiny_model_dir):
    from gradio_client import Client

    loaded = load_model(str(tiny_model_dir))
    problem = "Sam has 7 pens and buys 5 more. How many pens?"
    *_, solo = compare_stream(
        loaded, problem, ["base", "base"], "qa", GenerationSettings(max_new_tokens=16)
    )
    client = Client(app_url, verbose=False)
    status, *_ = client.predict(*start_inputs(tiny_model_dir), api_name="/eval_start")
    assert "starting" in status or "running" in status  # Start returned at once
    job = current_job()
    wait_until(lambda: loaded.lock.acquisitions[BACKGROUND] > 0)
    loaded.lock.history.clear()
    left, right, *_ = client.predict(
        *compare_inputs(tiny_model_dir, problem), api_name="/run_compare"
    )
    assert job.running, "the evaluation should outlast the Compare request"
    steps = list(loaded.lock.history)
    first, last = steps.index(INTERACTIVE), len(steps) - 1 - steps[::-1].index(INTERACTIVE)
    during = steps[first : last + 1]
    assert during.count(INTERACTIVE) == len(during) - during.count(BACKGROUND)
    # The Compare's steps ran back to back: no evaluation step slipped between them.
    assert during.count(BACKGROUND) <= 2, during
    shown = [visible_text(chat[-1]["content"][0]["text"]) for chat in (left, right)]
    assert shown == [pane.text if pane.text.strip() else "…" for pane in solo]  # as alone
    client.close()
    assert job.wait(300) and job.status == "finished", job.error


def test_the_job_survives_the_client_disconnecting(app_url, tiny_model_dir):
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    inputs = start_inputs(tiny_model_dir, num_samples=64, max_new_tokens=32, batch_size=2)
    client.predict(*inputs, api_name="/eval_start")
    client.close()  # the browser tab is closed
    job = current_job()
    assert job.running, (job.status, job.error)
    later = Client(app_url, verbose=False)  # a new page re-attaches to the running job
    status, *_ = later.predict(None, api_name="/on_tick")
    assert job.status in ("starting", "running") and ("running" in status or "starting" in status)
    later.close()
    assert job.wait(300) and job.status == "finished", job.error
    assert len(store.load_records(job.run_id)) == 64


# --------------------------------------------------------------------------- interactive turns
def test_turns_are_first_come_first_served_with_an_estimate_from_measured_turns():
    turns = Turns()
    first = turns.join()
    second, third = turns.join(), turns.join()
    assert (first.ahead(), second.ahead(), third.ahead()) == (0, 1, 2)
    assert third.eta() is None  # nothing measured yet
    assert first.wait(0) and not second.wait(0)
    time.sleep(0.05)
    first.leave()
    assert second.wait(0) and third.ahead() == 1
    mean = turns.mean_seconds()
    assert mean >= 0.05 and 0 < third.eta() <= mean
    del second  # a dropped handler's turn leaves the line by itself
    gc.collect()
    assert third.ahead() == 0 and third.wait(0)
    third.leave()
    third.leave()  # leaving twice is harmless


def test_a_waiting_compare_through_the_app_says_how_many_are_ahead(app_url, tiny_model_dir):
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    inputs = compare_inputs(tiny_model_dir, "What is 6 times 7?")
    client.predict(*inputs, api_name="/run_compare")  # one measured turn: an estimate exists
    held = INTERACTIVE_TURNS.join()  # a request in progress
    try:
        waiting = client.submit(*inputs, api_name="/run_compare")
        wait_until(lambda: any("waiting" in str(output) for output in waiting.outputs()))
    finally:
        held.leave()
    waiting.result(timeout=120)
    notices = [output[7] for output in waiting.outputs() if "waiting" in str(output[7])]
    assert notices and re.fullmatch(r"waiting: 1 ahead, ~\d+ s", notices[0]), notices
    assert waiting.outputs()[-1][7] == ""  # the notice clears once its turn has come
    client.close()


def test_on_zerogpu_each_evaluation_batch_is_one_gpu_call_sized_to_it(
    home, tiny_model_dir, monkeypatch
):
    # Stand-in for `spaces` (it exists only on Spaces), as in tests/test_zerogpu.py.
    calls = []

    def spaces_gpu(fn, duration):
        def on_gpu(*args):
            calls.append((duration, len(args[1])))
            return fn(*args)

        return on_gpu

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=spaces_gpu))
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    report = evaluate(long_config(tiny_model_dir, num_samples=10, max_new_tokens=8))
    assert report.status == "finished" and report.num_records == 10
    layers = load_model(str(tiny_model_dir)).model.config.num_hidden_layers
    seconds = chunk_seconds(8, layers)
    assert calls == [(seconds, 4), (seconds, 4), (seconds, 2)]  # batch size 4, 10 problems


def test_in_turn_shows_the_wait_in_the_notice_output_then_runs_the_handler():
    import gradio as gr

    from mathtutor.ui.common import in_turn

    @in_turn(outputs=2, notice=1)
    def streaming(text: str):
        yield text, "notice"

    @in_turn()
    def plain(text: str) -> str:
        return text.upper()

    held = INTERACTIVE_TURNS.join()
    outputs = streaming("answer")
    solution, notice = next(outputs)
    assert notice == "waiting: 1 ahead" or notice.startswith("waiting: 1 ahead, ~")
    assert solution == gr.skip()  # the solution output is left as it is
    finished = []
    thread = threading.Thread(target=lambda: finished.append(plain("queued")))
    thread.start()
    time.sleep(0.2)
    assert finished == []  # the plain handler waits for its turn too
    held.leave()
    assert list(outputs) == [("answer", "notice")]
    thread.join(10)
    assert finished == ["QUEUED"]


def test_a_run_stopped_while_it_waits_leaves_its_turn_without_running():
    """`in_turn(token=...)`: a Stop (`ui.stops`) for a run still waiting for its turn ends it
    there, saying so in the notice output; the handler never runs and the line moves on."""
    import gradio as gr

    from mathtutor.ui import stops
    from mathtutor.ui.common import in_turn

    ran = []

    @in_turn(outputs=2, notice=1, token="run_token")
    def streaming(text: str, run_token: str = ""):
        ran.append(text)
        yield text, "notice"

    held = INTERACTIVE_TURNS.join()
    try:
        outputs = streaming("answer", run_token="waitingrun000001")
        assert next(outputs)[1].startswith("waiting: 1 ahead")
        stops.request_stop("waitingrun000001")
        assert list(outputs) == [(gr.skip(), "⏹ Stopped before its turn came.")]
        assert ran == []
        other = streaming("other", run_token="notstopped000001")
        assert next(other)[1].startswith("waiting: 1 ahead")  # the stopped one left the line
    finally:
        held.leave()
    assert list(other) == [("other", "notice")] and ran == ["other"]
