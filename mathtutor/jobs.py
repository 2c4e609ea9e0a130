"""Scheduling model work: evaluations as background jobs, interactive requests in turns.

`start_evaluation(config)` returns at once with an `EvalJob`; a thread runs
`mathtutor.evaluate.evaluate(config)` on the shared model and updates the job's progress after
every batch. Nothing ties the job to the browser that started it: a closed tab or a dropped
connection does not stop it, and any page can follow it with `current_job()` (the Evaluate tab
polls it with a timer). `stop_job()` asks it to stop after the current batch.

Each batch goes through `generate_chunk`: its forward steps take the model lock at background
priority (`mathtutor.models.background_priority`), so an interactive step waiting for the lock
goes first and a chat request waits a decoding step, not a whole run; on ZeroGPU the batch runs
in one `@spaces.GPU` call whose duration is sized to the batch (`chunk_seconds`).

Interactive requests (Compare, Tutor) take `INTERACTIVE_TURNS` one at a time, first come first
served; one waiting for its turn shows `waiting_message` ("waiting: 2 ahead, ~8 s").

    job = start_evaluation(EvalConfig(num_samples=50))
    job.done, job.total, job.eta()          # moving while it runs
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mathtutor.evaluate import EvalConfig, EvalReport

log = logging.getLogger("mathtutor.jobs")


@dataclass
class EvalJob:
    """One evaluation running (or run) in the background, and how far it has got."""

    config: EvalConfig
    run_id: str | None = None  # known once the run is created (a resume knows it at once)
    started_by: str = "local"  # the client that started it (`access.client_key`)
    status: str = "starting"  # starting | running | finished | stopped | failed
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


def start_evaluation(config: EvalConfig, started_by: str = "local") -> EvalJob:
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
        job = EvalJob(config=config, run_id=config.run_id, started_by=started_by)
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


# --------------------------------------------------------------------------- interactive turns
class Turns:
    """First come, first served turns for interactive requests, with position and estimate.

    Compare and Tutor requests take turns (one at a time by default) so each runs at its solo
    speed; a request waiting for its turn learns how many are ahead of it and about how long
    that takes (the mean length of the last turns). A turn whose holder is garbage-collected
    without `leave()` (a streaming handler Gradio dropped) leaves the line by itself.

    >>> turns = Turns()
    >>> first, second = turns.join(), turns.join()
    >>> second.ahead(), first.ahead()
    (1, 0)
    >>> first.leave(); second.ahead()
    0
    """

    def __init__(self, slots: int = 1, remembered: int = 20) -> None:
        self.slots = slots
        self._condition = threading.Condition()
        self._line: list[int] = []  # ticket numbers, oldest first; the first `slots` are served
        self._began: dict[int, float] = {}  # ticket -> when its turn began
        self._lengths: deque[float] = deque(maxlen=remembered)
        self._next = 0

    def join(self) -> Turn:
        """Take a ticket at the back of the line."""
        with self._condition:
            ticket, self._next = self._next, self._next + 1
            self._line.append(ticket)
            self._start_served()
        return Turn(self, ticket)

    def mean_seconds(self) -> float | None:
        """Mean length of the last turns; None before the first one ended."""
        with self._condition:
            return sum(self._lengths) / len(self._lengths) if self._lengths else None

    def _ahead(self, ticket: int) -> int:
        with self._condition:
            if ticket not in self._line:
                return 0
            return max(0, self._line.index(ticket) - self.slots + 1)

    def _eta(self, ticket: int) -> float | None:
        mean = self.mean_seconds()
        with self._condition:
            if mean is None or ticket not in self._line:
                return None
            position = self._line.index(ticket)
            if position < self.slots:
                return 0.0
            now = time.monotonic()
            # Each slot frees when its turn ends; the ones ahead then take mean turns each.
            remaining = sorted(
                max(0.0, mean - (now - self._began.get(t, now))) for t in self._line[: self.slots]
            )
            rounds, slot = divmod(position - self.slots, self.slots)
            return remaining[slot] + rounds * mean

    def _wait(self, ticket: int, timeout: float) -> bool:
        with self._condition:
            if ticket in self._line[: self.slots]:
                return True
            self._condition.wait(timeout)
            return ticket in self._line[: self.slots]

    def _leave(self, ticket: int) -> None:
        with self._condition:
            if ticket not in self._line:
                return
            began = self._began.pop(ticket, None)
            if began is not None:
                self._lengths.append(time.monotonic() - began)
            self._line.remove(ticket)
            self._start_served()
            self._condition.notify_all()

    def _start_served(self) -> None:
        for ticket in self._line[: self.slots]:
            self._began.setdefault(ticket, time.monotonic())


class Turn:
    """One request's place in a `Turns` line."""

    def __init__(self, turns: Turns, ticket: int) -> None:
        self._turns, self.ticket = turns, ticket
        self._finalizer = weakref.finalize(self, turns._leave, ticket)

    def ahead(self) -> int:
        """Requests before this one (0 once it is this one's turn)."""
        return self._turns._ahead(self.ticket)

    def eta(self) -> float | None:
        """Seconds until this one's turn, from the mean turn; None until one was measured."""
        return self._turns._eta(self.ticket)

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for this one's turn; True when it has come."""
        return self._turns._wait(self.ticket, timeout)

    def leave(self) -> None:
        """End the turn (or give up waiting); the next in line goes."""
        self._finalizer()


INTERACTIVE_TURNS = Turns()  # Compare and Tutor, one at a time


def waiting_message(ahead: int, eta: float | None) -> str:
    """What a waiting request shows.

    >>> waiting_message(2, 7.2)
    'waiting: 2 ahead, ~8 s'
    >>> waiting_message(1, None)
    'waiting: 1 ahead'
    """
    return f"waiting: {ahead} ahead" + ("" if eta is None else f", ~{math.ceil(eta)} s")
