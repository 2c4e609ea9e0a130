"""Paths: where the home directory is, which files may be read, and the one id rule.

A public Space is called directly, with any arguments, so every path a request names goes
through here before anything opens it:

- `home_dir()`: the one data directory, `$MATHTUTOR_HOME`, default `~/.cache/mathtutor`.
- `allowed_roots()`: the folders the operator lets the app read: the home directory,
  `$MATHTUTOR_GSM8K_DIR`, and the `os.pathsep`-separated `$MATHTUTOR_DATA_DIRS`.
- `upload_dir()`: where Gradio keeps the files it received as uploads (Gradio's own rule,
  `gradio.utils.get_upload_folder`: `$GRADIO_TEMP_DIR`, default `<tmp>/gradio`). Each upload
  sits in a folder named by a salted SHA-256 of its bytes, so one client cannot guess the path
  of another's upload.
- `check_readable(path, field)`: the resolved path (symlinks followed) if it lies in an upload
  or an allowed root, else a ValueError naming the field and the rule, never the content.
- `check_id(value, field)`: every id that becomes a file name (training and evaluation run
  ids, adapter names, recipe names, each part of a Hub repo id) matches `ID_PATTERN`, checked
  before any filesystem call.

Pure: no gradio, no torch. Nothing here reads a file.

>>> check_id("bundled-quick", "recipe")
'bundled-quick'
>>> check_id("../victim", "run_id")
Traceback (most recent call last):
ValueError: run_id '../victim': may only contain letters, digits, '-', '_' and '.'
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

HOME_ENV = "MATHTUTOR_HOME"
GSM8K_DIR_ENV = "MATHTUTOR_GSM8K_DIR"
DATA_DIRS_ENV = "MATHTUTOR_DATA_DIRS"
MAX_ID_LENGTH = 96  # the Hub's limit for a repo name part
# Letters, digits, '.', '_', '-'; first and last a letter or digit, so never '.', '..', a
# dotfile, an absolute path or a path with a separator.
ID_PATTERN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?")  # 96 at most
ROOTS_RULE = f"the allowed folders (uploads, home, GSM8K dir, {DATA_DIRS_ENV})"
# What the app itself keeps in the home directory about its users: never readable as a dataset,
# a model or an adapter, even though the home directory is an allowed root.
PRIVATE_IN_HOME = (
    "mathtutor.db",
    "mathtutor.db-wal",
    "mathtutor.db-shm",
    "tutor_saves.jsonl",
    "locks",
)


def home_dir() -> Path:
    """The one data directory: `$MATHTUTOR_HOME`, default `~/.cache/mathtutor` (created)."""
    home = Path(os.environ.get(HOME_ENV) or Path.home() / ".cache" / "mathtutor")
    home.mkdir(parents=True, exist_ok=True)
    return home


def upload_dir() -> Path:
    """Gradio's upload cache (`gradio.utils.get_upload_folder`, read without importing gradio)."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")


def allowed_roots() -> list[Path]:
    """The folders whose files may be read, resolved: home, the GSM8K dir, `$MATHTUTOR_DATA_DIRS`.

    >>> allowed_roots()[0] == home_dir().resolve()
    True
    """
    roots = [home_dir()]
    if os.environ.get(GSM8K_DIR_ENV):
        roots.append(Path(os.environ[GSM8K_DIR_ENV]))
    roots += [Path(part) for part in os.environ.get(DATA_DIRS_ENV, "").split(os.pathsep) if part]
    return [root.expanduser().resolve() for root in roots]


def check_readable(path: str | os.PathLike, field: str = "path") -> Path:
    """The resolved `path` if it is an upload or lies under an allowed root; ValueError if not.

    Symlinks are followed first, so a link inside a root that points outside is refused. The
    message names `field` and the rule, and shows only the path as given: it never says whether
    a refused file exists, nor what it holds.

    >>> check_readable("/etc/passwd", "dataset_path")
    Traceback (most recent call last):
    ValueError: dataset_path: /etc/passwd is outside the allowed folders (uploads, home, GSM8K dir, MATHTUTOR_DATA_DIRS)
    """
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise ValueError(f"{field}: no file given")
    if "\x00" in str(path):
        raise ValueError(f"{field}: the path contains a NUL character")
    resolved = Path(path).resolve()
    if _inside(resolved, upload_dir().resolve()):
        return resolved
    home = home_dir().resolve()
    if any(_inside(resolved, home / name) for name in PRIVATE_IN_HOME):
        raise ValueError(
            f"{field}: {_shown(path)} is the app's own private data, never read as input"
        )
    if any(_inside(resolved, root) for root in allowed_roots()):
        return resolved
    raise ValueError(f"{field}: {_shown(path)} is outside {ROOTS_RULE}")


def _shown(path: str | os.PathLike) -> str:
    return str(path) if len(str(path)) <= 200 else str(path)[:197] + "..."


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def check_id(value: object, field: str) -> str:
    """`value` if it is a safe id (`ID_PATTERN`), else a ValueError naming `field` and the rule.

    >>> check_id("20261201-101500-a1b2c3", "run_id")
    '20261201-101500-a1b2c3'
    >>> check_id(".hidden", "adapter name")
    Traceback (most recent call last):
    ValueError: adapter name '.hidden': must start and end with a letter or digit
    """
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field} is empty: expected letters, digits, '-', '_' and '.'")
    if ID_PATTERN.fullmatch(value):
        return value
    shown = value if len(value) <= 40 else value[:37] + "..."
    where = f"{field} {shown!r}"
    if len(value) > MAX_ID_LENGTH:
        raise ValueError(f"{where}: is longer than {MAX_ID_LENGTH} characters")
    if not re.fullmatch(r"[A-Za-z0-9._-]+", value):
        raise ValueError(f"{where}: may only contain letters, digits, '-', '_' and '.'")
    raise ValueError(f"{where}: must start and end with a letter or digit")


def check_repo_id(repo_id: object, field: str = "repo_id") -> str:
    """`owner/name` (or a bare `name`) with each part a safe id (`check_id`).

    >>> check_repo_id("alice/gsm8k-lora")
    'alice/gsm8k-lora'
    >>> check_repo_id("alice/../../x")
    Traceback (most recent call last):
    ValueError: repo_id 'alice/../../x' has more than one '/': expected 'owner/name'
    """
    if not isinstance(repo_id, str) or not repo_id.strip():
        raise ValueError(f"{field} is empty: expected 'owner/name', e.g. 'alice/gsm8k-lora'")
    if repo_id != repo_id.strip():
        raise ValueError(f"{field} {repo_id!r} has leading or trailing spaces")
    parts = repo_id.split("/")
    if len(parts) > 2:
        raise ValueError(f"{field} {repo_id!r} has more than one '/': expected 'owner/name'")
    for label, part in zip(["owner", "name"][-len(parts) :], parts, strict=True):
        if not part:
            raise ValueError(f"{field} {repo_id!r}: the {label} is empty: expected 'owner/name'")
        check_id(part, f"{field} {repo_id!r}: the {label}")
    return repo_id
