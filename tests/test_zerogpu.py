"""The ZeroGPU decorator: identity off ZeroGPU, `spaces.GPU(fn, duration=...)` on it."""

from __future__ import annotations

import doctest
import sys
import types

import pytest

from mathtutor import zerogpu
from mathtutor.zerogpu import gpu, on_zerogpu


def add(a: int, b: int) -> int:
    return a + b


def test_identity_off_zerogpu(monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    monkeypatch.setitem(sys.modules, "spaces", None)  # importing spaces would fail: never tried
    assert not on_zerogpu()
    assert gpu(add) is add and gpu(duration=120)(add) is add
    assert doctest.testmod(zerogpu).failed == 0


def test_on_zerogpu_wraps_with_spaces_gpu(monkeypatch):
    # Stand-in for the `spaces` package, which exists only on Spaces (it imports gradio and
    # talks to the ZeroGPU scheduler); it records how it is called.
    calls = []
    fake = types.ModuleType("spaces")
    fake.GPU = lambda fn, duration: calls.append((fn, duration)) or (lambda *a: ("on-gpu", fn(*a)))
    monkeypatch.setitem(sys.modules, "spaces", fake)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert on_zerogpu()
    wrapped = gpu(duration=90)(add)
    assert calls == [(add, 90)] and wrapped(2, 3) == ("on-gpu", 5)


def test_zerogpu_without_spaces_says_what_to_install(monkeypatch):
    monkeypatch.setenv("SPACES_ZERO_GPU", "1")
    monkeypatch.setitem(sys.modules, "spaces", None)
    with pytest.raises(RuntimeError, match="add `spaces` to the Space's requirements.txt"):
        gpu(add)
    with pytest.raises(ValueError, match="duration must be a positive number of seconds"):
        gpu(add, duration=0)


def test_duration_sizing_is_pure_and_grows_with_the_work():
    from mathtutor import tutor

    assert zerogpu.gpu_seconds((256, 1)) < zerogpu.gpu_seconds((1024, 1))
    assert zerogpu.gpu_seconds((256, 1)) <= zerogpu.gpu_seconds((256, 16))
    assert zerogpu.gpu_seconds((4096, 64), (4096, 64)) == zerogpu.MAX_SECONDS
    hint_k2 = zerogpu.gpu_seconds(*tutor.gpu_work("hint", 2))
    assert hint_k2 < zerogpu.gpu_seconds(*tutor.gpu_work("hint", 16))
    assert tutor.gpu_work("check", "not a number") == tutor.gpu_work("check", tutor.MAX_K)
    with pytest.raises(ValueError, match="expected one of solve, hint, check"):
        tutor.gpu_work("train")
    with pytest.raises(ValueError, match="positive number of seconds or a function"):
        gpu(add, duration=True)


@pytest.fixture
def on_stand_in_zerogpu(monkeypatch):
    """SPACES_ZERO_GPU=1 and a stand-in `spaces` whose GPU() records (handler, seconds) per call.

    The UI modules are re-imported under it (their handlers are wrapped at import time) and
    re-imported plainly afterwards, so other tests see the ordinary handlers.
    """
    import functools
    import importlib
    import inspect

    from mathtutor.ui import compare as compare_ui
    from mathtutor.ui import tutor as tutor_ui

    calls: list[tuple[str, int]] = []

    def stand_in_gpu(function, duration=60):
        def seconds(args, kwargs) -> int:
            return duration(*args, **kwargs) if callable(duration) else duration

        if inspect.isgeneratorfunction(function):

            @functools.wraps(function)
            def wrapped(*args, **kwargs):
                calls.append((function.__name__, seconds(args, kwargs)))
                yield from function(*args, **kwargs)
        else:

            @functools.wraps(function)
            def wrapped(*args, **kwargs):
                calls.append((function.__name__, seconds(args, kwargs)))
                return function(*args, **kwargs)

        return wrapped

    fake = types.ModuleType("spaces")
    fake.GPU = stand_in_gpu
    monkeypatch.setitem(sys.modules, "spaces", fake)
    monkeypatch.setenv("SPACES_ZERO_GPU", "1")
    try:
        yield importlib.reload(tutor_ui), importlib.reload(compare_ui), calls
    finally:
        monkeypatch.delenv("SPACES_ZERO_GPU")
        importlib.reload(tutor_ui)
        importlib.reload(compare_ui)


def test_every_model_handler_runs_under_gpu_with_its_duration(on_stand_in_zerogpu, tiny_model_dir):
    import inspect

    from mathtutor import tutor

    tutor_ui, compare_ui, calls = on_stand_in_zerogpu
    spec = str(tiny_model_dir)
    problem = "Tom has 3 apples and buys 4 more. How many apples does he have?"
    known = {"problem": problem, "reference": "7"}
    # gradio reads the handler's signature to pass gr.Request: the wrapper must keep it
    assert "request" in inspect.signature(tutor_ui.show_solution).parameters

    *_, last = tutor_ui.show_solution(spec, "base", problem, False)
    assert last[0]  # a solution was rendered
    *_, hints = tutor_ui.give_hint(spec, "base", problem, None, [], None, False, 2.0)
    assert hints[0].startswith("💡")
    *_, (verdict, *_) = tutor_ui.check(spec, "base", problem, known, "7", "", None, False, 3.0)
    assert "✅ Correct" in verdict  # against the known reference
    *_, (revealed, *_) = tutor_ui.reveal_answer(
        spec, "base", problem, None, "", "", None, False, 2.0
    )
    assert "✅" not in revealed  # from k=2 samples of the tiny model: never a verified tick
    compare = compare_ui.run_compare(spec, "base", "base", problem, "", "chat", 12, 0, 1, 0, False)
    assert len(list(compare)) >= 2  # streamed

    seconds = zerogpu.gpu_seconds
    assert calls == [
        ("show_solution", seconds(*tutor.gpu_work("solve"))),
        ("give_hint", seconds(*tutor.gpu_work("hint", 2))),
        ("check", seconds(*tutor.gpu_work("check", 3))),
        ("reveal_answer", seconds(*tutor.gpu_work("check", 2))),
        ("run_compare", seconds((12, 2))),
    ]
    assert calls[1][1] < seconds(*tutor.gpu_work("hint", 16))  # k sizes the request


def test_handlers_are_plain_off_zerogpu(monkeypatch):
    from mathtutor.ui import tutor as tutor_ui

    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    in_turn_layer = tutor_ui.show_solution.__wrapped__  # `ui.common.in_turn`, outermost
    assert not hasattr(in_turn_layer, "__wrapped__")  # and no spaces.GPU layer below it
