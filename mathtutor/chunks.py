"""One evaluation batch on the shared model, at background priority, sized for ZeroGPU.

`mathtutor.evaluate` runs each batch through `generate_chunk`: the decoding steps take the
model lock at background priority (`models.background_priority`), so interactive requests
(Compare, Tutor) go first, and on ZeroGPU the batch is one `zerogpu.gpu` call whose duration
`chunk_seconds` estimates from the batch's work. The background job that runs a whole
evaluation is `mathtutor.jobs`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mathtutor.generate import Completion, GenerationSettings

# --------------------------------------------------------------------------- one batch
# Seconds of one decoding step per transformer layer on a GPU, batch <= 64. Small-batch eager
# decoding is bound by kernel launches and Python, so a step costs about the same per layer
# whatever the width. An estimate (about 30 ms a step for the 30-layer bundled model), NOT
# measured here: no GPU was available; bench/bench_concurrency.py prints the measured figure
# on whatever device it runs, and `chunk_seconds` multiplies this by a safety factor of 3.
GPU_STEP_SECONDS_PER_LAYER = 0.001
GPU_CALL_OVERHEAD_SECONDS = 10  # attaching the GPU, prefill, grading slack
MAX_CHUNK_SECONDS = 300  # ZeroGPU refuses longer calls for most users


def chunk_seconds(max_new_tokens: int, num_layers: int, safety: float = 3.0) -> int:
    """ZeroGPU duration for one evaluation batch: its decoding steps, with a safety margin.

    >>> chunk_seconds(256, 30)
    34
    >>> chunk_seconds(4096, 80)
    300
    """
    steps = max_new_tokens * num_layers * GPU_STEP_SECONDS_PER_LAYER
    return min(MAX_CHUNK_SECONDS, GPU_CALL_OVERHEAD_SECONDS + math.ceil(safety * steps))


def generate_chunk(
    spec: str,
    prompts: Sequence[str],
    adapters: Sequence[str],
    settings: GenerationSettings,
    dtype: str = "auto",
) -> list[Completion]:
    """One evaluation batch on the shared model `spec` (in `dtype`), at background priority.

    Takes the model spec, not the loaded model, so the arguments cross to a ZeroGPU worker.
    """
    from mathtutor.models import load_model
    from mathtutor.zerogpu import on_zerogpu

    loaded = load_model(spec, dtype=dtype)
    layers = getattr(loaded.model.config, "num_hidden_layers", 32)
    run = _on_gpu(chunk_seconds(settings.max_new_tokens, layers), on_zerogpu())
    return run(spec, list(prompts), list(adapters), settings, dtype)


@functools.cache
def _on_gpu(seconds: int, zerogpu: bool) -> Callable[..., Any]:
    """`_generate_background` behind `zerogpu.gpu(duration=seconds)`, made once per duration
    (and per environment: `zerogpu` is only part of the cache key)."""
    from mathtutor.zerogpu import gpu

    return gpu(duration=seconds)(_generate_background)


def _generate_background(
    spec: str,
    prompts: list[str],
    adapters: list[str],
    settings: GenerationSettings,
    dtype: str = "auto",
) -> list[Completion]:
    from mathtutor.generate import generate_batch
    from mathtutor.models import background_priority, load_model

    with background_priority():
        loaded = load_model(spec, dtype=dtype)
        return generate_batch(loaded, prompts, adapters, settings, batch_size=len(prompts))
