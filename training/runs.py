"""Training runs: directories, launching the CLI as a subprocess, the queue, stop and resume.

Every run lives in `home_dir()/runs/<run_id>/`:

    config.yaml     the resolved TrainConfig
    metrics.jsonl   one JSON object per log event (training/callbacks.py)
    log.txt         the subprocess's stdout and stderr
    checkpoints/    trainer checkpoints (resume continues from the last one)
    adapter/        the final LoRA adapter (full fine-tunes: model/), renamed into place whole
    README.md       model card draft
    STOP            present while a stop is requested
    launched_by     the Hub user who launched it, when one was signed in (queue bounds)

and has a row in the `train_runs` table of `mathtutor.store` with its status: queued, running,
stopping, stopped, finished or failed.

One run at a time per device. `launch(config)` always starts the subprocess at once; the
subprocess then waits, with status "queued", on an exclusive `fcntl` lock
(`runs/.device-<devices>.lock`) before it loads anything heavy, and takes its turn in launch
order (FIFO: it yields while an older queued run is alive). The kernel releases the lock when a
process dies, so a crashed run never blocks the queue, two launches at the same moment cannot
both run, and queued runs keep waiting even if the app restarts. Status is read back from the
store plus a check that the recorded process is still alive: a run whose process vanished is
marked failed with the last lines of its log as the error. The lock file is removed by its
last holder; `list_runs` removes those a killed run left, and empty run directories.

A run directory is reused only by `resume` (`check_reusable`); a resume continues from the last
complete checkpoint, drops metrics rows logged past it (`truncate_metrics`), and is refused when
that checkpoint is already the last step (`check_resumable`). A finished run keeps its newest
`keep_checkpoints` checkpoints (`prune_checkpoints`).
marked failed with the last lines of its log as the error. The queue is bounded per launching
user and overall (`mathtutor.access.check_run_queue`); a launch beyond it is refused.

    python -m training.runs            # list runs with their status
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mathtutor import access, cli, locks, store
from mathtutor.paths import check_id, home_dir
from training.config import TrainConfig

ACTIVE = ("queued", "running", "stopping")
REPO_ROOT = Path(__file__).resolve().parent.parent
_CHILDREN: dict[str, subprocess.Popen] = {}  # processes this app started, polled to reap them


@dataclass
class RunInfo:
    """A run as the app shows it."""

    run_id: str
    status: str
    run_dir: Path
    config: dict[str, Any]
    pid: int | None = None
    error: str | None = None
    created: float = 0.0
    updated: float = 0.0
    step: int = 0  # last logged optimizer step
    max_steps: int = 0
    last: dict[str, Any] = field(default_factory=dict)  # last metrics row with a loss/reward

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE


# ---------------------------------------------------------------- paths and ids
def runs_root() -> Path:
    root = home_dir() / "runs"
    root.mkdir(parents=True, exist_ok=True)
    return root


def run_dir(run_id: str) -> Path:
    """`home/runs/<run_id>`; the id is checked (`mathtutor.paths.check_id`) before any use."""
    check_id(run_id, "run_id")
    return runs_root() / run_id


def new_run_id(config: TrainConfig) -> str:
    """`<name>-<YYYYmmdd-HHMMSS>-<4 hex>`; name is run_name, recipe or method.

    >>> new_run_id(TrainConfig(recipe="bundled-quick")).startswith("bundled-quick-")
    True
    """
    name = config.run_name or config.recipe or f"{config.method}-{config.finetune}"
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-._")[:60].strip("-._") or "run"
    return f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"


def create_run(config: TrainConfig, run_id: str | None = None) -> Path:
    """Make the run directory with config.yaml and register it as queued.

    An existing run (a store row, or a directory with files in it) is refused: a run directory
    is reused only by `resume`. If anything fails here, the new directory is removed again.
    """
    run_id = run_id or new_run_id(config)
    directory = run_dir(run_id)
    existing = store.get_train_run(run_id)
    if existing is not None or (directory.is_dir() and any(directory.iterdir())):
        status = f" ({existing['status']})" if existing else ""
        raise ValueError(
            f"run_id {run_id!r} already exists{status}; choose another id or resume it"
        )
    directory.mkdir(parents=True, exist_ok=True)
    try:
        config.to_yaml(directory / "config.yaml")
        (directory / "metrics.jsonl").touch()
        store.upsert_train_run(run_id, status="queued", run_dir=directory, config=config.to_dict())
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return directory


def check_reusable(run_id: str, resume: bool) -> None:
    """Refuse a run directory that this process may not train in.

    A resume needs the run to exist and no other live process on it. A fresh start may use
    only the directory `launch` has just prepared for it: status queued and nothing trained.
    """
    row = store.get_train_run(run_id)
    directory = run_dir(run_id)
    other = row is not None and row["pid"] not in (None, os.getpid())
    if other and row["status"] in ACTIVE and store.process_alive(row["pid"], row["updated"]):
        raise ValueError(f"run {run_id} is {row['status']} in process {row['pid']}")
    if resume:
        if row is None or not (directory / "config.yaml").is_file():
            raise ValueError(f"--run_dir {directory}: no run there to resume")
        return
    trained = (directory / "checkpoints").is_dir() or any(
        (directory / name).exists() for name in ("adapter", "model")
    )
    if row is not None and (row["status"] != "queued" or trained or read_metrics(run_id)):
        raise ValueError(
            f"run_id {run_id!r} already exists ({row['status']}); choose another id or resume it"
        )


def check_resumable(directory: Path, max_steps: int = 0) -> Path | None:
    """The checkpoint a resume continues from (None: there is none, it starts over);
    refuses when the checkpoint already reached the last step.

    `max_steps` is the resumed config's (0: the step count the checkpoint's trainer planned).
    """
    checkpoint = last_checkpoint(directory)
    if checkpoint is None:
        return None
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    step, planned = int(state.get("global_step", 0)), max_steps or int(state.get("max_steps", 0))
    if planned and step >= planned:
        raise ValueError(
            f"run {directory.name}: its last checkpoint is step {step} of {planned}, nothing is "
            "left to train; launch a new run to train more"
        )
    return checkpoint


def checkpoint_step(checkpoint: Path | None) -> int:
    """The optimizer step a checkpoint was saved at (0 for None: the start)."""
    return int(checkpoint.name.split("-")[-1]) if checkpoint else 0


def truncate_metrics(run_id: str, step: int) -> int:
    """Drop metrics rows logged after `step` (a killed run's steps past its last checkpoint,
    trained again on resume), atomically; returns how many were dropped."""
    path = run_dir(run_id) / "metrics.jsonl"
    if not path.is_file():
        return 0
    rows = read_metrics(run_id)
    kept = [row for row in rows if int(row.get("step", 0)) <= step]
    temp = path.with_name(f".metrics.jsonl.tmp-{os.getpid()}")
    temp.write_text("".join(json.dumps(row) + "\n" for row in kept), encoding="utf-8")
    os.replace(temp, path)
    return len(rows) - len(kept)


def prune_checkpoints(directory: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` checkpoints of a finished run; returns the removed."""
    found = sorted(_checkpoints(directory), reverse=True)
    removed = [path for _, path in found[keep:]]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def last_checkpoint(directory: Path) -> Path | None:
    """The complete `checkpoints/checkpoint-<step>` with the highest step, if any."""
    found = _checkpoints(directory)
    return max(found)[1] if found else None


def _checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """(step, path) of the complete checkpoints: the trainer writes trainer_state.json last,
    so a checkpoint whose save was killed midway is not one."""
    found = []
    for path in (Path(directory) / "checkpoints").glob("checkpoint-*"):
        step = path.name.split("-")[-1]
        if step.isdigit() and (path / "trainer_state.json").is_file():
            found.append((int(step), path))
    return found


# ---------------------------------------------------------------- the device queue
def _lock_path() -> Path:
    devices = os.environ.get("CUDA_VISIBLE_DEVICES", "all").replace(",", "_") or "none"
    return runs_root() / f".device-{devices}.lock"


@contextlib.contextmanager
def device_lock(run_id: str, poll_seconds: float = 0.5) -> Iterator[bool]:
    """Hold the device for this run; yields False if the run was stopped while queued.

    Only the first process of a distributed launch (RANK 0) takes the lock.
    """
    if int(os.environ.get("RANK", "0")) != 0:
        yield True
        return
    stop_file = run_dir(run_id) / "STOP"
    path = _lock_path()
    while True:
        if stop_file.exists():
            yield False
            return
        handle = locks.try_lock(path)
        if handle is None:
            time.sleep(poll_seconds)
            continue
        if not _older_queued(run_id):
            break
        locks.release(handle, path)  # let the older run go first
        time.sleep(poll_seconds)
    try:
        yield True
    finally:
        locks.release(handle, path)


def _older_queued(run_id: str) -> bool:
    rows = store.list_train_runs()
    mine = next((row for row in rows if row["id"] == run_id), None)
    if mine is None:
        return False
    return any(
        row["status"] == "queued"
        and row["id"] != run_id
        and (row["created"], row["id"]) < (mine["created"], mine["id"])
        and _alive(row["id"], row["pid"], row["updated"])
        for row in rows
    )


# ---------------------------------------------------------------- status
def _alive(run_id: str, pid: int | None, recorded: float | None = None) -> bool:
    """Whether the run's process is still running (not exited, not a zombie).

    `recorded` is when the pid was last written: a process started after it is another
    program that reused the pid.
    """
    child = _CHILDREN.get(run_id)
    if child is not None:
        return child.poll() is None
    return store.process_alive(pid, recorded)


def _info(row: dict[str, Any]) -> RunInfo:
    info = RunInfo(
        run_id=row["id"],
        status=row["status"],
        run_dir=Path(row["run_dir"]),
        config=row["config"] or {},
        pid=row["pid"],
        error=row["error"],
        created=row["created"],
        updated=row["updated"],
    )
    starting = not info.pid and time.time() - info.created < 60  # created, not yet spawned
    if info.status in ACTIVE and not starting and not _alive(info.run_id, info.pid, row["updated"]):
        time.sleep(0.2)  # the process may be writing its final status right now
        fresh = store.get_train_run(info.run_id) or row
        if fresh["status"] in ACTIVE:
            info.error = (
                f"the training process (pid {info.pid}) ended without finishing. "
                f"Last log lines:\n{log_tail(info.run_id, 15)}"
            )
            store.upsert_train_run(
                info.run_id, status="failed", run_dir=info.run_dir, error=info.error
            )
            info.status = "failed"
        else:
            info.status, info.error = fresh["status"], fresh["error"]
    for row_metrics in reversed(read_metrics(info.run_id)):
        if "step" in row_metrics:
            info.step = info.step or int(row_metrics["step"])
            info.max_steps = info.max_steps or int(row_metrics.get("max_steps") or 0)
        if not info.last and ("loss" in row_metrics or "reward" in row_metrics):
            info.last = row_metrics
        if info.step and info.last:
            break
    return info


def get_run(run_id: str) -> RunInfo:
    row = store.get_train_run(check_id(run_id, "run_id"))
    if row is None:
        raise ValueError(f"no training run {run_id!r}")
    return _info(row)


def list_runs() -> list[RunInfo]:
    """All runs, newest first, with liveness checked (leftovers are removed at app start and
    at each launch, `remove_leftovers`, not at every listing: the Train tab polls this)."""
    return [_info(row) for row in store.list_train_runs()]


def remove_leftovers(min_age_seconds: float = 60.0) -> list[Path]:
    """Delete what failed or killed calls left: device lock files no process holds, and run
    directories that hold nothing (or only an empty metrics.jsonl and config.yaml) and have no
    store row. Directories younger than `min_age_seconds` may be a launch in progress."""
    removed = locks.remove_stale(runs_root(), ".device-*.lock")
    known = {row["id"] for row in store.list_train_runs()}
    for directory in runs_root().iterdir():
        if directory.name in known or not directory.is_dir() or directory.is_symlink():
            continue
        files = list(directory.iterdir())
        empty = all(
            path.name == "config.yaml" or (path.name == "metrics.jsonl" and not path.stat().st_size)
            for path in files
        )
        if empty and time.time() - directory.stat().st_mtime > min_age_seconds:
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(directory)
    return removed


def read_metrics(run_id: str, since: int = 0) -> list[dict[str, Any]]:
    """Rows of the run's metrics.jsonl from line `since` on; a half-written last line is skipped."""
    path = run_dir(run_id) / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = []
    with open(path, encoding="utf-8") as handle:
        for index, line in enumerate(handle):
            if index < since or not line.endswith("\n"):
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def best_accuracy(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The task-accuracy row with the highest accuracy (the first such step), or None.

    >>> best_accuracy([{"event": "accuracy", "step": 0, "accuracy": 0.1},
    ...                {"event": "accuracy", "step": 4, "accuracy": 0.5},
    ...                {"event": "accuracy", "step": 8, "accuracy": 0.5}])["step"]
    4
    """
    best = None
    for row in rows:
        measured = row.get("event") == "accuracy" and isinstance(row.get("accuracy"), (int, float))
        if measured and (best is None or row["accuracy"] > best["accuracy"]):
            best = row
    return best


def best_accuracy_fields(directory: Path, keep_best_by: str = "last") -> dict[str, Any]:
    """`mathtutor.model_card.TrainingSummary` fields for a run's best held-out accuracy."""
    path = Path(directory) / "metrics.jsonl"
    rows = []
    if path.is_file():
        for line in path.read_text("utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    best = best_accuracy([row for row in rows if isinstance(row, dict)])
    if best is None:
        return {}
    return {
        "best_step": int(best["step"]),
        "best_accuracy": float(best["accuracy"]),
        "best_accuracy_stderr": best.get("accuracy_stderr"),
        "best_accuracy_n": int(best.get("eval_n") or 0) or None,
        "adapter_is_best": keep_best_by == "accuracy",
    }


def log_tail(run_id: str, lines: int = 40) -> str:
    path = run_dir(run_id) / "log.txt"
    if not path.is_file():
        return ""
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - 64_000))
        text = handle.read().decode("utf-8", errors="replace")
    text = text.replace("\r", "\n")  # progress bars
    return "\n".join([line for line in text.splitlines() if line.strip()][-lines:])


# ---------------------------------------------------------------- launch, stop, resume
def check_launchable(config: TrainConfig, memory: tuple[str, float] | None = None) -> None:
    """What can be checked before starting a process: model modules, the data, and that the
    memory estimate fits the device (`memory`: (device, free GB), probed when None)."""
    from training.config import check_model
    from training.data import load_training_problems
    from training.estimate import check_fits

    check_model(config)
    load_training_problems(config)
    if config.eval_every:
        from training.data import load_eval_problems

        load_eval_problems(config)
    check_fits(config, memory)


def _spawn(run_id: str, config: TrainConfig, resume: bool) -> None:
    directory = run_dir(run_id)
    command = [
        sys.executable, "-m", f"training.{config.method}",
        "--config", str(directory / "config.yaml"), "--run_dir", str(directory),
    ]  # fmt: skip
    if resume:
        command.append("--resume")
    env = dict(os.environ, PYTHONUNBUFFERED="1", MATHTUTOR_RUN_LOG="stdout")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    with open(directory / "log.txt", "ab") as log:
        log.write(f"$ {' '.join(command)}\n".encode())
        log.flush()
        child = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    _CHILDREN[run_id] = child
    store.upsert_train_run(run_id, status="queued", run_dir=directory, pid=child.pid)


def launched_by(info: RunInfo) -> str | None:
    """The user who launched the run (None: nobody signed in, e.g. locally or the CLI)."""
    path = info.run_dir / "launched_by"
    if not path.is_file():
        return None
    return path.read_text("utf-8").strip() or None


@contextlib.contextmanager
def _queue_slot(user: str | None) -> Iterator[None]:
    """Refuse a run beyond the queue bounds; held across the check and the run's creation so
    two launches at once cannot both take the last place."""
    with open(runs_root() / ".launch.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            access.check_run_queue(user, [launched_by(i) for i in list_runs() if i.is_active])
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def launch(config: TrainConfig, check: bool = True, user: str | None = None) -> str:
    """Validate, create the run directory and start the CLI in a subprocess; returns the run id.

    The run shows "queued" until the device is free (see the module docstring). `user` is the
    signed-in user launching it, counted against the queue bounds (PermissionError beyond).
    """
    if check:
        check_launchable(config)
    remove_leftovers()
    with _queue_slot(user):
        directory = create_run(config)
        if user:
            (directory / "launched_by").write_text(user + "\n", encoding="utf-8")
        _spawn(directory.name, config, resume=False)
    return directory.name


def stop(run_id: str) -> str:
    """Ask a run to stop at its next step boundary (it saves a checkpoint and its adapter)."""
    info = get_run(run_id)
    if not info.is_active:
        return info.status
    (info.run_dir / "STOP").write_text(f"requested at {time.ctime()}\n")
    status = "stopping" if info.status == "running" else info.status
    store.upsert_train_run(run_id, status=status, run_dir=info.run_dir)
    return status


def resume(run_id: str, user: str | None = None) -> str:
    """Continue a stopped or failed run from its last checkpoint, in a new subprocess.

    `user` is counted against the queue bounds as in `launch`.
    """
    info = get_run(run_id)
    if info.is_active:
        raise ValueError(f"run {run_id} is {info.status}; stop it before resuming")
    if info.status == "finished":
        raise ValueError(f"run {run_id} already finished; launch a new run to train more")
    config = TrainConfig.from_yaml(info.run_dir / "config.yaml")
    if check_resumable(info.run_dir, config.max_steps) is None:
        raise ValueError(f"run {run_id} has no checkpoint to resume from; launch it again")
    (info.run_dir / "STOP").unlink(missing_ok=True)
    with _queue_slot(user):
        store.upsert_train_run(run_id, status="queued", run_dir=info.run_dir, error="")
        _spawn(run_id, config, resume=True)
    return run_id


def wait(run_id: str, timeout: float = 600, poll_seconds: float = 0.5) -> RunInfo:
    """Block until the run is no longer queued/running/stopping (tests, benchmarks)."""
    deadline = time.time() + timeout
    while True:
        info = get_run(run_id)
        if not info.is_active:
            return info
        if time.time() > deadline:
            raise TimeoutError(f"run {run_id} still {info.status} after {timeout:.0f} s")
        time.sleep(poll_seconds)


def main(argv: list[str] | None = None) -> None:
    """List the training runs with their status, step and last loss (or reward)."""
    cli.ArgumentParser(
        prog="python -m training.runs",
        description="List training runs.",
        epilog=cli.DEBUG_HELP,
    ).parse_args(argv)
    for info in list_runs():
        loss = info.last.get("loss", info.last.get("reward", ""))
        print(f"{info.run_id:50s} {info.status:9s} step {info.step}/{info.max_steps} {loss}")


if __name__ == "__main__":
    sys.exit(cli.run(main))
