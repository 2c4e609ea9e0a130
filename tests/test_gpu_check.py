"""The GPU check (`bench/gpu_check.py`): its dry mode runs every row on the tiny model on CPU.

The dry mode is what CI can run; the CUDA mode uses the same row functions with real sizes.
"""

from __future__ import annotations

import doctest
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "bench" / "gpu_check.py"
ROWS = [
    "setup", "hardware", "parity tiny bfloat16", "parity tiny float32", "throughput batch 1",
    "throughput batch 2", "throughput batch 4", "memory over repeated decoding",
    "evaluation engine", "sft (LoRA, bundled-quick)", "grpo (LoRA, bundled-quick)",
    "qlora (4-bit)", "vllm", "unsloth",
]  # fmt: skip


def _module(monkeypatch):
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_check", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory, gsm8k_dir):
    """`python bench/gpu_check.py --dry --out DIR` as a user runs it, in a fresh home."""
    out = tmp_path_factory.mktemp("gpu-check")
    env = dict(os.environ, MATHTUTOR_HOME=str(out / "home"), OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry", "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    return done, out


def test_dry_mode_runs_every_row_and_writes_the_table(dry_run):
    done, out = dry_run
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["mode"].startswith("dry") and report["command"].endswith("--dry")
    rows = {row["name"]: row for row in report["rows"]}
    assert list(rows) == ROWS
    for row in report["rows"]:
        assert set(row) == {"name", "status", "seconds", "budget_s", "figures", "detail"}
        assert row["status"] in ("pass", "not available"), row
        assert row["seconds"] <= row["budget_s"] + 1
    for dtype in ("bfloat16", "float32"):
        figures = rows[f"parity tiny {dtype}"]["figures"]
        assert figures["decode == generate"] == "2/2"
        assert figures["mixed adapters == alone"] == "6/6"
        assert figures["adapters change the output"] == "yes"
    assert rows["throughput batch 4"]["figures"]["decoding loop"].endswith("tokens/s")
    assert "problems/min" in rows["evaluation engine"]["figures"]["engine"]
    for name in ("sft (LoRA, bundled-quick)", "grpo (LoRA, bundled-quick)"):
        assert rows[name]["figures"]["steps"] == 2
        assert " -> " in rows[name]["figures"]["held-out accuracy"]
    markdown = (out / "gpu_check.md").read_text()
    table = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert table[0] == "| check | status | figures | s (limit) |"
    assert [line.split(" | ")[0][2:] for line in table[2:]] == ROWS


def test_unavailable_rows_say_why(dry_run):
    _, out = dry_run
    rows = {row["name"]: row for row in json.loads((out / "gpu_check.json").read_text())["rows"]}
    unavailable = [row for row in rows.values() if row["status"] == "not available"]
    for row in unavailable:
        assert row["detail"].startswith("not available here: ")
        assert len(row["detail"]) > len("not available here: ") + 5
    if importlib.util.find_spec("vllm") is None:
        assert "vllm is not installed" in rows["vllm"]["detail"]
    if importlib.util.find_spec("unsloth") is None:
        assert rows["unsloth"]["detail"] == (
            "not available here: unsloth is not installed (pip install unsloth)"
        )


def test_a_failing_or_slow_row_is_recorded_and_the_check_goes_on(tmp_path, monkeypatch):
    gpu_check = _module(monkeypatch)
    assert doctest.testmod(gpu_check).failed == 0
    monkeypatch.setitem(gpu_check.BUDGETS, "hardware", 0.3)
    check = gpu_check.Check(
        dry=True, device="cpu", out=tmp_path, deadline=time.monotonic() + 60,
        sizes=gpu_check.SIZES["dry"], models={}, main_model="",
    )  # fmt: skip

    def broken(check):
        raise ValueError("no such thing")

    def unavailable(check):
        raise gpu_check.Unavailable("needs a CUDA GPU")

    slow = check.run("slow", "hardware", lambda check: time.sleep(5) or {})
    failed = check.run("broken", "setup", broken)
    missing = check.run("missing", "setup", unavailable)
    held = check.run("held", "setup", lambda check: {"x": 1, "_ok": False, "_why": "x != 2"})
    assert (slow.status, slow.detail) == ("fail", "ran past its 0 s time limit")
    assert slow.seconds < 2
    assert (failed.status, failed.detail) == ("fail", "ValueError: no such thing")
    assert "no such thing" in (tmp_path / "gpu_check-errors.log").read_text()
    assert (missing.status, missing.detail) == (
        "not available",
        "not available here: needs a CUDA GPU",
    )
    assert (held.status, held.figures, held.detail) == ("fail", {"x": 1}, "x != 2")
    check.deadline = time.monotonic()  # the whole check's budget is spent
    skipped = check.run("late", "setup", lambda check: {})
    assert skipped.status == "skipped"
