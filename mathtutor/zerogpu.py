"""ZeroGPU: run a function on a Space's shared GPU with `@spaces.GPU`, and do nothing elsewhere.

On ZeroGPU hardware (`zero-a10g`) a Space has no GPU until a function decorated with
`spaces.GPU` is called; the call then holds a GPU for at most `duration` seconds. Hugging Face
sets `SPACES_ZERO_GPU` in that environment. Everywhere else (a laptop, a CPU Space, a Space
with a dedicated GPU) `gpu` returns the function unchanged, and the `spaces` package is never
imported. Chat and evaluation fit in a call; training does not (minutes per call at most), so
the UI asks for dedicated GPU hardware when `on_zerogpu()`.

    from mathtutor.zerogpu import gpu

    @gpu(duration=120)
    def evaluate_batch(...): ...
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def on_zerogpu() -> bool:
    """Whether this process runs on a ZeroGPU Space (`SPACES_ZERO_GPU` set to a true value)."""
    return os.environ.get("SPACES_ZERO_GPU", "").strip().lower() in ("1", "true", "yes")


def gpu(fn: F | None = None, *, duration: int = 60) -> Any:
    """`spaces.GPU(duration=...)` on ZeroGPU, the identity elsewhere; use bare or with arguments.

    Off ZeroGPU:

    >>> @gpu
    ... def add(a, b):
    ...     return a + b
    >>> add(2, 3)
    5
    >>> gpu(duration=30)(add) is add
    True
    """
    if not isinstance(duration, int) or duration < 1:
        raise ValueError(f"duration must be a positive number of seconds, got {duration!r}")

    def decorate(function: F) -> F:
        if not on_zerogpu():
            return function
        try:
            import spaces
        except ImportError as error:
            raise RuntimeError(
                "SPACES_ZERO_GPU is set but the `spaces` package is missing: add `spaces` to the "
                "Space's requirements.txt (spaces_config/requirements.txt has it)"
            ) from error
        return spaces.GPU(function, duration=duration)

    return decorate(fn) if fn is not None else decorate
