"""Shared comparisons: one Compare result as JSON and Markdown, saved under a permalink id.

A record holds the problem, reference, prompt format and generation settings, both panes
(system name, completion exactly as generated, answer, verdict, numbers) and the blind vote
if there was one. `save` writes `home_dir()/shares/<id>.json`; the app reopens it from
`?share=<id>`. Ids are 16 hex digits, checked by `check_id` before any path is built.

    python -m mathtutor.share <id>          # print a saved comparison as Markdown
"""

from __future__ import annotations

import json
import re
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from mathtutor import cli

SHARE_ID = re.compile(r"[0-9a-f]{16}")  # the one rule for a share id
VERSION = 1


def check_id(share_id: str) -> str:
    """`share_id` if it is a share id, else ValueError (never a path of any other shape).

    >>> check_id("0123456789abcdef")
    '0123456789abcdef'
    """
    if not isinstance(share_id, str) or not SHARE_ID.fullmatch(share_id):
        raise ValueError(f"share id {str(share_id)[:40]!r}: expected 16 hex digits")
    return share_id


def shares_dir() -> Path:
    from mathtutor.models import home_dir

    return home_dir() / "shares"


def check_record(record: Any) -> dict[str, Any]:
    """A record as `save` writes it, or ValueError naming what is wrong."""
    if not isinstance(record, dict):
        raise ValueError("shared comparison: expected a JSON object")
    if not isinstance(record.get("problem"), str) or not record["problem"].strip():
        raise ValueError("shared comparison: 'problem' must be a non-empty string")
    panes = record.get("panes")
    if not isinstance(panes, list) or len(panes) != 2:
        raise ValueError("shared comparison: 'panes' must be a list of two panes")
    for index, pane in enumerate(panes):
        if not isinstance(pane, dict) or not all(
            isinstance(pane.get(key), str) for key in ("system", "text")
        ):
            raise ValueError(f"shared comparison: pane {index} needs 'system' and 'text' strings")
    if not isinstance(record.get("settings", {}), dict):
        raise ValueError("shared comparison: 'settings' must be an object")
    return record


def save(record: dict[str, Any], directory: Path | None = None) -> str:
    """Write the record under a new id and return the id."""
    record = check_record({"version": VERSION, "created": time.time(), **record})
    directory = directory or shares_dir()
    directory.mkdir(parents=True, exist_ok=True)
    share_id = secrets.token_hex(8)
    target = directory / f"{share_id}.json"
    partial = target.with_suffix(".part")
    partial.write_text(json.dumps(record, indent=1, ensure_ascii=False))
    partial.replace(target)
    return share_id


def load(share_id: str, directory: Path | None = None) -> dict[str, Any]:
    """The record saved under `share_id` (ValueError if there is none or it is unreadable)."""
    path = (directory or shares_dir()) / f"{check_id(share_id)}.json"
    try:
        return check_record(json.loads(path.read_text()))
    except FileNotFoundError:
        raise ValueError(f"share {share_id}: no such shared comparison here") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"share {share_id}: {path} is not valid JSON ({error})") from None


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks in `text` (so the text stays verbatim)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def to_markdown(record: dict[str, Any]) -> str:
    """The comparison as Markdown; completions in code fences so every character survives.

    >>> md = to_markdown({"problem": "2*3?", "panes": [
    ...     {"system": "base", "text": "2*3 = 6"}, {"system": "tuned", "text": "6"}]})
    >>> "```\\n2*3 = 6\\n```" in md
    True
    """
    fence = _fence(record["problem"])
    lines = [
        "# mathtutor comparison",
        "",
        "## Problem",
        "",
        f"{fence}\n{record['problem']}\n{fence}",
    ]
    if record.get("reference"):
        lines += ["", f"Reference answer: `{record['reference']}`"]
    settings = {"prompt_format": record.get("prompt_format"), **(record.get("settings") or {})}
    lines += [
        "",
        "Settings: " + ", ".join(f"{k}={v}" for k, v in settings.items() if v is not None),
    ]
    if record.get("vote"):
        lines += ["", f"Blind vote: **{record['vote']}**"]
    for side, pane in zip(("Left", "Right"), record["panes"], strict=True):
        fence = _fence(pane["text"])
        verdict = pane.get("verdict") or ""
        lines += [
            "",
            f"## {side}: {pane['system']}",
            "",
            f"Answer: `{pane.get('answer')}` {verdict}".rstrip(),
            "",
            f"{fence}\n{pane['text']}\n{fence}",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = cli.ArgumentParser(
        prog="python -m mathtutor.share", description=__doc__.split("\n")[0]
    )
    parser.add_argument("share_id")
    print(to_markdown(load(parser.parse_args(argv).share_id)), end="")


if __name__ == "__main__":
    sys.exit(cli.run(main))
