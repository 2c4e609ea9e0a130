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
