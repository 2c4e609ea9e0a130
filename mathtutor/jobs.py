"""Background jobs: an evaluation runs in a thread of the app while Compare and Tutor stay quick.

`start_evaluation(config)` returns at once with an `EvalJob`; a thread runs
`mathtutor.evaluate.evaluate(config)` on the shared model and updates the job's progress after
every batch. Nothing ties the job to the browser that started it: a closed tab or a dropped
connection does not stop it, and any page can follow it with `current_job()` (the Evaluate tab
polls it with a timer). `stop_job()` asks it to stop after the current batch.

Each batch goes through `generate_chunk`: its forward steps take the model lock at background
priority (`mathtutor.models.background_priority`), so an interactive step waiting for the lock
goes first and a chat request waits a decoding step, not a whole run; on ZeroGPU the batch runs
in one `@spaces.GPU` call whose duration is sized to the batch (`chunk_seconds`).

    job = start_evaluation(EvalConfig(num_samples=50))
    job.done, job.total, job.eta()          # moving while it runs
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mathtutor.evaluate import EvalConfig, EvalReport
    from mathtutor.generate import Completion, GenerationSettings

log = logging.getLogger("mathtutor.jobs")
STATUSES = ("starting", "running", "finished", "stopped", "failed")


@dataclass
class EvalJob:
    """One evaluation running (or run) in the background, and how far it has got."""

    config: EvalConfig
    run_id: str | None = None  # known once the run is created (a resume knows it at once)
    status: str = "starting"
    done: int = 0  # (system, problem) records saved, resumed ones included
    total: int = 0
    error: str | None = None  # one line, when status is "failed"
    report: EvalReport | None = None
    started: float = field(default_factory=time.time)
    ended: float | None = None
    _first: tuple[float, int] | None = field(default=None, repr=False)  # (time, done)
    _last: tuple[float, int] | None = field(default=None, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.status in ("starting", "running")

    @property
    def stopping(self) -> bool:
        return self.running and self._stop.is_set()

    def rate(self) -> float | None:
        """Records per second measured in this job (records of a resumed run not counted)."""
        if self._first is None or self._last is None or self._last[1] <= self._first[1]:
            return None
        seconds = self._last[0] - self._first[0]
        return (self._last[1] - self._first[1]) / seconds if seconds > 0 else None

    def eta(self) -> float | None:
        """Seconds left at the measured rate; None before the first batch has finished."""
        rate = self.rate()
        if not self.running or rate is None:
            return None
        return (self.total - self.done) / rate

    def stop(self) -> None:
        """Ask the job to stop after its current batch (the run is then saved as stopped)."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends; False if `timeout` passed first."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def _progress(self, done: int, total: int) -> None:
        from mathtutor.evaluate import running_run

        now = time.time()
        if self._first is None:
            self._first = (now, done)
        self._last = (now, done)
        self.run_id = self.run_id or running_run()
        self.done, self.total, self.status = done, total, "running"


_JOBS_LOCK = threading.Lock()
_current: dict[str, EvalJob | None] = {"job": None}


def current_job() -> EvalJob | None:
    """The running evaluation job of this process, else the last one that ran."""
    return _current["job"]


def start_evaluation(config: EvalConfig) -> EvalJob:
    """Start `evaluate(config)` in a background thread and return its job at once.

    One job at a time: while one runs, a second start raises ValueError naming it.
    """
    with _JOBS_LOCK:
        job = _current["job"]
        if job is not None and job.running:
            where = f"run {job.run_id}, " if job.run_id else ""
            raise ValueError(
                f"an evaluation is already running ({where}{job.done}/{job.total} done): "
                "stop it or wait for it to finish before starting another"
            )
        job = EvalJob(config=config, run_id=config.run_id)
        job._thread = threading.Thread(
            target=_run, args=(job,), name="mathtutor-evaluation", daemon=True
        )
        _current["job"] = job
        job._thread.start()
    return job


def stop_job() -> EvalJob | None:
    """Ask the running job to stop after its current batch; returns it (None if none runs)."""
    job = _current["job"]
    if job is None or not job.running:
        return None
    job.stop()
    return job


def _run(job: EvalJob) -> None:
    from mathtutor.evaluate import evaluate

    try:
        report = evaluate(job.config, job._progress, job._stop.is_set)
    except BaseException as error:  # the thread's end: nothing above it would report it
        job.status = "failed"
        job.error = (
            str(error) if isinstance(error, ValueError) else f"{type(error).__name__}: {error}"
        )
        if not isinstance(error, ValueError):
            log.exception("evaluation job failed", exc_info=error)
    else:
        job.report, job.run_id, job.status = report, report.run_id, report.status
    finally:
        job.ended = time.time()


# --------------------------------------------------------------------------- one batch
# Seconds of one decoding step per transformer layer on a GPU, batch <= 64: small-batch decoding
# is bound by kernel launches, so a step costs about the same per layer whatever the width.
# Measured on an H200 with the bundled SmolLM2-135M (30 layers), see bench/bench_concurrency.py.
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
) -> list[Completion]:
    """One evaluation batch on the shared model `spec`, at background priority.

    Takes the model spec, not the loaded model, so the arguments cross to a ZeroGPU worker.
    """
    from mathtutor.models import load_model

    loaded = load_model(spec)
    layers = getattr(loaded.model.config, "num_hidden_layers", 32)
    run = _on_gpu(chunk_seconds(settings.max_new_tokens, layers))
    return run(spec, list(prompts), list(adapters), settings)


@functools.cache
def _on_gpu(seconds: int) -> Callable[..., Any]:
    """`_generate_background` behind `zerogpu.gpu(duration=seconds)`, made once per duration."""
    from mathtutor.zerogpu import gpu

    return gpu(duration=seconds)(_generate_background)


def _generate_background(
    spec: str, prompts: list[str], adapters: list[str], settings: GenerationSettings
) -> list[Completion]:
    from mathtutor.generate import generate_batch
    from mathtutor.models import background_priority, load_model

    with background_priority():
        loaded = load_model(spec)
        return generate_batch(loaded, prompts, adapters, settings, batch_size=len(prompts))
