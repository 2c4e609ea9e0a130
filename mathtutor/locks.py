"""Lock files: an exclusive OS lock per file, and the file removed by its last holder.

The evaluation run lock (`home/locks/eval-<run id>.lock`) and the training device queue
(`home/runs/.device-<devices>.lock`) both use these. The kernel drops an `fcntl.flock` when
its holder dies, even by SIGKILL, so a crash never wedges anything; what a killed holder
leaves is only the file, which `remove_stale` deletes.

Removing a lock file is safe because every taker checks, once it holds the lock, that the
path still names the file it locked (same inode); if the last holder removed it in the
meantime, the taker opens the path again. A holder removes the file before it unlocks.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # Windows: no OS lock; the callers' in-process locks still apply
    fcntl = None  # type: ignore[assignment]


def try_lock(path: str | Path) -> IO[str] | None:
    """Take the lock on `path` without waiting: the open file, or None if a process holds it.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "x.lock"
    >>> handle = try_lock(path)
    >>> try_lock(path) is None, path.exists()
    (True, True)
    >>> release(handle, path); path.exists()
    False
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = open(path, "a+")  # noqa: SIM115 (held open while locked; closed by release)
        if fcntl is None:
            return handle
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        try:
            same = os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return handle
        handle.close()  # its last holder removed it after we opened it: lock the new file


def release(handle: IO[str], path: str | Path) -> None:
    """Remove the lock file, then drop the lock (this order keeps `try_lock` exclusive)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    if fcntl is not None:
        fcntl.flock(handle, fcntl.LOCK_UN)
    handle.close()


def holder(path: str | Path) -> str:
    """What the holder wrote into the lock file (its pid), or "?"."""
    try:
        return Path(path).read_text().strip() or "?"
    except OSError:
        return "?"


def remove_stale(directory: str | Path, pattern: str) -> list[Path]:
    """Delete the lock files matching `pattern` that no live process holds; returns them."""
    removed = []
    for path in sorted(Path(directory).glob(pattern)):
        handle = try_lock(path) if fcntl is not None else None
        if handle is not None:
            release(handle, path)
            removed.append(path)
    return removed
