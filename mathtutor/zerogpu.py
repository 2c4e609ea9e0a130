"""ZeroGPU: run a function on a Space's shared GPU with `@spaces.GPU`, and do nothing elsewhere.

On ZeroGPU hardware (`zero-a10g`) a Space has no GPU until a function decorated with
`spaces.GPU` is called; the call then holds a GPU for at most `duration` seconds, and a
shorter request is queued sooner. Hugging Face sets `SPACES_ZERO_GPU` in that environment.
Everywhere else (a laptop, a CPU Space, a Space with a dedicated GPU) `gpu` returns the
function unchanged, and the `spaces` package is never imported.

Which handlers run under it: Compare's Run and every Tutor action that runs the model (solve,
hint, check, reveal), each with a duration sized to its own work by `gpu_seconds` (the number
of decode steps and rows it may run; `duration` may be a function of the handler's arguments,
as `spaces.GPU` allows). Evaluation runs in chunks, each chunk one call, and
`gpu_seconds((max_new_tokens, rows))` sizes a chunk too. Training does not fit in a call
(minutes per call at most), so the Train and Hub tabs ask for dedicated GPU hardware when
`on_zerogpu()`.

    from mathtutor.zerogpu import gpu, gpu_seconds

    @gpu(duration=lambda problem, max_new_tokens: gpu_seconds((max_new_tokens, 2)))
    def run(problem, max_new_tokens): ...
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

# Sizing (not measured on ZeroGPU: no such Space was at hand; conservative for a model of
# up to ~2B parameters). The decoding loop runs one Python step per token, ~20-50 ms on a
# shared GPU slice whatever the batch, and a wide batch costs somewhat more per step.
STEP_SECONDS = 0.05
ROWS_PER_STEP_DOUBLING = 64  # a batch this wide is taken to cost twice a single row's step
SETUP_SECONDS = 10  # weights onto the GPU, the first kernels, adapters
MAX_SECONDS = 300  # the longest call asked for; longer work is split into calls (evaluation)


def on_zerogpu() -> bool:
    """Whether this process runs on a ZeroGPU Space (`SPACES_ZERO_GPU` set to a true value)."""
    return os.environ.get("SPACES_ZERO_GPU", "").strip().lower() in ("1", "true", "yes")


def gpu_seconds(*decodes: tuple[int, int]) -> int:
    """Seconds to ask ZeroGPU for: decoding runs of (max_new_tokens, rows), one after another.

    Pure, so a handler's duration can be computed from its arguments before the GPU is
    requested (evaluation chunks use it too: one run of (max_new_tokens, rows in the chunk)).

    >>> gpu_seconds((256, 1)), gpu_seconds((256, 2)), gpu_seconds((80, 3), (256, 5))
    (23, 24, 28)
    >>> gpu_seconds((4096, 64))
    300
    """
    seconds = float(SETUP_SECONDS)
    for max_new_tokens, rows in decodes:
        steps, width = max(0, int(max_new_tokens)), max(1, int(rows))
        seconds += steps * STEP_SECONDS * (1 + width / ROWS_PER_STEP_DOUBLING)
    return min(MAX_SECONDS, math.ceil(seconds))


def gpu(fn: F | None = None, *, duration: int | Callable[..., int] = 60) -> Any:
    """`spaces.GPU(duration=...)` on ZeroGPU, the identity elsewhere; use bare or with arguments.

    `duration` is seconds, or a function called with the handler's own arguments that returns
    seconds (`spaces.GPU` calls it before each call, to size the request).

    Off ZeroGPU:

    >>> @gpu
    ... def add(a, b):
    ...     return a + b
    >>> add(2, 3)
    5
    >>> gpu(duration=30)(add) is add
    True
    """
    if not callable(duration) and (
        isinstance(duration, bool) or not isinstance(duration, int) or duration < 1
    ):
        raise ValueError(
            f"duration must be a positive number of seconds or a function, got {duration!r}"
        )

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
