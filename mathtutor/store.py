"""Store: the one SQLite database of evaluation runs and records, training runs, adapters, votes.

The file lives at `home_dir()/mathtutor.db`. Every write is a transaction; WAL mode lets the
app read while an evaluation or a training subprocess writes. A file that is not a mathtutor
database is never overwritten: `connect` raises a ValueError that names it.

    python -m mathtutor.store            # print the tables and their row counts
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mathtutor import cli
from mathtutor.paths import home_dir

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS eval_runs (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    status TEXT NOT NULL,              -- running | stopped | finished | failed
    config TEXT NOT NULL,              -- JSON of the evaluation config
    summary TEXT,                      -- JSON of metrics once computed
    error TEXT,
    pid INTEGER,                       -- process evaluating it (liveness of "running")
    pid_started REAL                   -- when that process took it (a later pid is a reuse)
);
CREATE TABLE IF NOT EXISTS eval_records (
    run_id TEXT NOT NULL REFERENCES eval_runs(id) ON DELETE CASCADE,
    system TEXT NOT NULL,              -- "base" or an adapter name
    problem_id TEXT NOT NULL,
    position INTEGER NOT NULL,         -- index of the problem in the run's sample
    data TEXT NOT NULL,                -- JSON: question, reference, completion, verdicts, ...
    PRIMARY KEY (run_id, system, problem_id)
);
CREATE TABLE IF NOT EXISTS train_runs (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    status TEXT NOT NULL,              -- queued | running | stopping | stopped | finished | failed
    run_dir TEXT NOT NULL,
    config TEXT NOT NULL,              -- JSON of the training config
    pid INTEGER,
    error TEXT
);
CREATE TABLE IF NOT EXISTS adapters (
    name TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    base_model TEXT NOT NULL,
    source TEXT NOT NULL,              -- "train:<run id>", "hub:<repo id>", "local"
    created REAL NOT NULL,
    info TEXT                          -- JSON: recipe, metrics, hub url, ...
);
CREATE TABLE IF NOT EXISTS votes (    -- blind A/B votes of the Compare tab (arena)
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    base_model TEXT NOT NULL,          -- Hub id of the base the systems share
    problem TEXT NOT NULL,
    left_system TEXT NOT NULL,         -- as shown: left pane, right pane
    right_system TEXT NOT NULL,
    outcome TEXT NOT NULL,             -- left | right | tie | both_wrong
    settings TEXT NOT NULL             -- JSON: prompt format, generation settings, seeds
);
"""
VOTE_OUTCOMES = ("left", "right", "tie", "both_wrong")
# Columns added after a table first shipped: `connect` adds them to older databases.
_ADDED_COLUMNS = {"eval_runs": {"pid": "INTEGER", "pid_started": "REAL"}}
_LOCK = threading.Lock()


def default_path() -> Path:
    return home_dir() / "mathtutor.db"


def connect(path: str | Path | None = None) -> sqlite3.Connection:
    """Open (creating if needed) the database; refuse files that are not ours."""
    path = Path(path) if path else default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.stat().st_size > 0:
        with open(path, "rb") as handle:
            if handle.read(16) != b"SQLite format 3\x00":
                raise ValueError(
                    f"{path} is not a SQLite database (corrupt or another file); it was left "
                    "untouched. Move it away or set MATHTUTOR_HOME to another directory."
                )
    connection = sqlite3.connect(path, timeout=30, check_same_thread=False)
    connection.row_factory = sqlite3.Row
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA foreign_keys=ON")
        with connection:
            connection.executescript(_SCHEMA)
            _add_missing_columns(connection)
            connection.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
    except sqlite3.DatabaseError as error:
        connection.close()
        raise ValueError(f"{path} is not a usable mathtutor database: {error}") from error
    return connection


def _add_missing_columns(connection: sqlite3.Connection) -> None:
    """Tolerant migration: a database made by an older version gains the new columns (NULL)."""
    for table, columns in _ADDED_COLUMNS.items():
        have = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
        for name, kind in columns.items():
            if name not in have:
                connection.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


def process_alive(pid: int | None, since: float | None = None) -> bool:
    """Whether process `pid` is still running (not exited, not a zombie) on this machine.

    `since` is a time the process was known to run: a process created after it is another
    program that reused the pid.

    >>> import os, time
    >>> process_alive(os.getpid(), time.time()), process_alive(None)
    (True, False)
    """
    if not pid:
        return False
    try:
        import psutil
    except ImportError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return since is None or process.create_time() <= since + 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


@contextmanager
def transaction(path: str | Path | None = None) -> Iterator[sqlite3.Connection]:
    """A connection inside one transaction (committed on success, rolled back on error)."""
    connection = connect(path)
    try:
        with _LOCK, connection:
            yield connection
    finally:
        connection.close()


def _rows(query: str, args: tuple = (), path: str | Path | None = None) -> list[dict[str, Any]]:
    connection = connect(path)
    try:
        return [dict(row) for row in connection.execute(query, args).fetchall()]
    finally:
        connection.close()


def _decode(row: dict[str, Any], *fields: str) -> dict[str, Any]:
    for name in fields:
        if row.get(name):
            row[name] = json.loads(row[name])
    return row


# --------------------------------------------------------------------------- evaluation runs
def create_eval_run(run_id: str, config: dict, path: str | Path | None = None) -> None:
    """A new run, "running" in this process (its pid is recorded for the liveness check)."""
    now = time.time()
    with transaction(path) as db:
        db.execute(
            "INSERT INTO eval_runs (id, created, updated, status, config, pid, pid_started) "
            "VALUES (?,?,?,?,?,?,?)",
            (run_id, now, now, "running", json.dumps(config), os.getpid(), now),
        )


def claim_eval_run(run_id: str, path: str | Path | None = None) -> None:
    """Mark a resumed run "running" in this process (pid recorded, old error cleared)."""
    now = time.time()
    with transaction(path) as db:
        db.execute(
            "UPDATE eval_runs SET status='running', error=NULL, pid=?, pid_started=?, updated=? "
            "WHERE id=?",
            (os.getpid(), now, now, run_id),
        )


def _checked_eval_run(row: dict[str, Any], path: str | Path | None) -> dict[str, Any]:
    """A "running" row whose process is gone is marked failed, with the reason and progress.

    Rows from before the pid column (pid NULL) cannot be running in a live process of this
    version, so they count as dead too.
    """
    if row["status"] != "running" or process_alive(row.get("pid"), row.get("pid_started")):
        return row
    config = row["config"] or {}
    total = int(config.get("num_samples") or 0) * len(
        config.get("labels") or config.get("systems") or []
    )
    done = row.get("num_records")
    if done is None:
        done = len(done_keys(row["id"], path))
    who = f"process {row['pid']}" if row.get("pid") else "the evaluating process"
    error = f"{who} ended without finishing (killed?) at {done}/{total or '?'}; Resume continues"
    with transaction(path) as db:  # only if no one claimed or finished it meanwhile
        changed = db.execute(
            "UPDATE eval_runs SET status='failed', error=? WHERE id=? AND status='running' "
            "AND pid IS ?",
            (error, row["id"], row.get("pid")),
        ).rowcount
    if changed:
        row.update(status="failed", error=error)
        return row
    fresh = _rows("SELECT * FROM eval_runs WHERE id=?", (row["id"],), path)
    return {**row, **_decode(fresh[0], "config", "summary")} if fresh else row


def update_eval_run(
    run_id: str,
    *,
    status: str | None = None,
    summary: dict | None = None,
    error: str | None = None,
    path: str | Path | None = None,
) -> None:
    with transaction(path) as db:
        if status is not None:
            db.execute("UPDATE eval_runs SET status=? WHERE id=?", (status, run_id))
        if summary is not None:
            db.execute("UPDATE eval_runs SET summary=? WHERE id=?", (json.dumps(summary), run_id))
        if error is not None:
            db.execute("UPDATE eval_runs SET error=? WHERE id=?", (error, run_id))
        db.execute("UPDATE eval_runs SET updated=? WHERE id=?", (time.time(), run_id))


def get_eval_run(run_id: str, path: str | Path | None = None) -> dict[str, Any] | None:
    """The run, or None; a "running" run whose process died reads as failed (see below)."""
    rows = _rows("SELECT * FROM eval_runs WHERE id=?", (run_id,), path)
    return _checked_eval_run(_decode(rows[0], "config", "summary"), path) if rows else None


def list_eval_runs(path: str | Path | None = None) -> list[dict[str, Any]]:
    """Newest first, with the number of records saved so far, liveness checked."""
    rows = _rows(
        "SELECT r.*, (SELECT COUNT(*) FROM eval_records e WHERE e.run_id = r.id) AS num_records "
        "FROM eval_runs r ORDER BY created DESC",
        path=path,
    )
    return [_checked_eval_run(_decode(row, "config", "summary"), path) for row in rows]


def delete_eval_run(run_id: str, path: str | Path | None = None) -> None:
    with transaction(path) as db:
        db.execute("DELETE FROM eval_records WHERE run_id=?", (run_id,))
        db.execute("DELETE FROM eval_runs WHERE id=?", (run_id,))


def save_records(
    run_id: str, records: list[dict[str, Any]], path: str | Path | None = None
) -> None:
    """Save finished records atomically; each needs `system`, `problem_id`, `position`."""
    with transaction(path) as db:
        db.executemany(
            "INSERT OR REPLACE INTO eval_records VALUES (?,?,?,?,?)",
            [(run_id, r["system"], r["problem_id"], r["position"], json.dumps(r)) for r in records],
        )
        db.execute("UPDATE eval_runs SET updated=? WHERE id=?", (time.time(), run_id))


def load_records(run_id: str, path: str | Path | None = None) -> list[dict[str, Any]]:
    rows = _rows(
        "SELECT data FROM eval_records WHERE run_id=? ORDER BY position, system", (run_id,), path
    )
    return [json.loads(row["data"]) for row in rows]


def done_keys(run_id: str, path: str | Path | None = None) -> set[tuple[str, str]]:
    """(system, problem_id) pairs already saved: a resumed run skips them."""
    rows = _rows("SELECT system, problem_id FROM eval_records WHERE run_id=?", (run_id,), path)
    return {(row["system"], row["problem_id"]) for row in rows}


# --------------------------------------------------------------------------- training runs
def upsert_train_run(
    run_id: str,
    *,
    status: str,
    run_dir: str | Path,
    config: dict | None = None,
    pid: int | None = None,
    error: str | None = None,
    path: str | Path | None = None,
) -> None:
    now = time.time()
    with transaction(path) as db:
        exists = db.execute("SELECT 1 FROM train_runs WHERE id=?", (run_id,)).fetchone()
        if exists:
            db.execute(
                "UPDATE train_runs SET status=?, updated=?, pid=COALESCE(?, pid), "
                "error=COALESCE(?, error), config=COALESCE(?, config) WHERE id=?",
                (status, now, pid, error, json.dumps(config) if config else None, run_id),
            )
        else:
            db.execute(
                "INSERT INTO train_runs VALUES (?,?,?,?,?,?,?,?)",
                (run_id, now, now, status, str(run_dir), json.dumps(config or {}), pid, error),
            )


def get_train_run(run_id: str, path: str | Path | None = None) -> dict[str, Any] | None:
    rows = _rows("SELECT * FROM train_runs WHERE id=?", (run_id,), path)
    return _decode(rows[0], "config") if rows else None


def list_train_runs(path: str | Path | None = None) -> list[dict[str, Any]]:
    rows = _rows("SELECT * FROM train_runs ORDER BY created DESC", path=path)
    return [_decode(row, "config") for row in rows]


# --------------------------------------------------------------------------- adapters
def register_adapter(
    name: str,
    adapter_dir: str | Path,
    base_model: str,
    source: str,
    info: dict | None = None,
    path: str | Path | None = None,
) -> None:
    """Record an adapter so Compare, Evaluate and Hub list it (replaces a same-named one)."""
    with transaction(path) as db:
        db.execute(
            "INSERT OR REPLACE INTO adapters VALUES (?,?,?,?,?,?)",
            (name, str(adapter_dir), base_model, source, time.time(), json.dumps(info or {})),
        )


def list_adapters(path: str | Path | None = None) -> list[dict[str, Any]]:
    """Registered adapters whose directory still exists, newest first."""
    rows = _rows("SELECT * FROM adapters ORDER BY created DESC", path=path)
    return [_decode(row, "info") for row in rows if Path(row["path"]).is_dir()]


def remove_adapter(name: str, path: str | Path | None = None) -> None:
    with transaction(path) as db:
        db.execute("DELETE FROM adapters WHERE name=?", (name,))


# --------------------------------------------------------------------------- votes
def add_vote(
    base_model: str,
    problem: str,
    systems: tuple[str, str],
    outcome: str,
    settings: dict,
    path: str | Path | None = None,
) -> int:
    """Record one blind vote (`outcome` in `VOTE_OUTCOMES`); returns its id."""
    if outcome not in VOTE_OUTCOMES:
        raise ValueError(f"vote {outcome!r}: expected one of {', '.join(VOTE_OUTCOMES)}")
    left, right = systems
    with transaction(path) as db:
        cursor = db.execute(
            "INSERT INTO votes (created, base_model, problem, left_system, right_system, outcome,"
            " settings) VALUES (?,?,?,?,?,?,?)",
            (time.time(), base_model, problem, left, right, outcome, json.dumps(settings)),
        )
        return int(cursor.lastrowid)


def list_votes(base_model: str | None = None, path: str | Path | None = None) -> list[dict]:
    """Votes, oldest first; only those on `base_model` when given."""
    query, args = "SELECT * FROM votes", ()
    if base_model is not None:
        query, args = query + " WHERE base_model=?", (base_model,)
    rows = _rows(query + " ORDER BY id", args, path=path)
    return [_decode(row, "settings") for row in rows]


def main(argv: list[str] | None = None) -> None:
    """Print the number of rows in each table of the database."""
    cli.ArgumentParser(
        prog="python -m mathtutor.store",
        description="Row counts of the mathtutor database.",
        epilog=cli.DEBUG_HELP,
    ).parse_args(argv)
    connection = connect()
    for table in ("eval_runs", "eval_records", "train_runs", "adapters", "votes"):
        count = connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        print(f"{table:14s} {count}")
    connection.close()


if __name__ == "__main__":
    sys.exit(cli.run(main))
