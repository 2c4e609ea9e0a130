"""Runs as the app starts them: the CLI in a subprocess, the device queue, stop/resume, crashes,
a write error while saving, and the CLI under `accelerate launch`.

Each test starts real `python -m training.sft` processes on the tiny model (10-30 s each on
two shared cores, mostly imports), so they are marked slow.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mathtutor import store
from tests.conftest import tiny_train_config
from training import runs

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # subprocesses on two shared cores


def wait_for(condition, timeout=300.0, what="condition"):
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise TimeoutError(what)
        time.sleep(0.2)


def logged_steps(run_id: str) -> list[int]:
    return [row["step"] for row in runs.read_metrics(run_id) if "loss" in row]


def test_launch_runs_the_cli_as_a_subprocess(tiny_model_dir):
    run_id = runs.launch(tiny_train_config(tiny_model_dir, run_name="launched"))
    assert run_id.startswith("launched-")
    info = runs.wait(run_id, timeout=300)
    assert info.status == "finished", info.error
    assert (info.step, logged_steps(run_id)) == (2, [1, 2])
    log = runs.log_tail(run_id, 200)
    assert "-m training.sft --config" in log and "unsloth not used: no CUDA" in log
    assert run_id in [adapter["name"] for adapter in store.list_adapters()]
    assert (info.run_dir / "adapter" / "adapter_model.safetensors").is_file()


def test_two_launches_at_once_run_one_after_the_other(tiny_model_dir):
    configs = [tiny_train_config(tiny_model_dir, max_steps=6, run_name=f"pair{i}") for i in (1, 2)]
    ids: list[str] = []
    start = threading.Barrier(2)

    def launch(config):
        start.wait()  # both at the same moment
        ids.append(runs.launch(config, check=False))

    threads = [threading.Thread(target=launch, args=(config,)) for config in configs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seen_queued = False
    while True:
        statuses = [runs.get_run(run_id).status for run_id in ids]
        assert statuses.count("running") <= 1, statuses
        seen_queued |= "queued" in statuses and "running" in statuses
        if all(status not in runs.ACTIVE for status in statuses):
            break
        time.sleep(0.1)
    assert statuses == ["finished", "finished"]
    assert seen_queued  # the second one waited, visibly
    spans = []
    for run_id in ids:
        rows = runs.read_metrics(run_id)
        spans.append((rows[0]["time"], rows[-1]["time"]))  # "begin" .. "end" events
    spans.sort()
    assert spans[0][1] <= spans[1][0]  # no overlap: one at a time on the device


def test_a_crashing_subprocess_is_marked_failed_and_its_log_kept(tiny_model_dir, tmp_path):
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not safetensors at all")
    run_id = runs.launch(tiny_train_config(broken), check=False)
    info = runs.wait(run_id, timeout=300)
    assert info.status == "failed"
    assert "safetensors" in info.error.lower() or "header" in info.error.lower(), info.error
    assert "Traceback" in runs.log_tail(run_id, 400)
    assert not (info.run_dir / "adapter").exists()


def test_runs_survive_an_app_restart_and_a_killed_one_is_found_failed(tiny_model_dir):
    run_id = runs.launch(tiny_train_config(tiny_model_dir, max_steps=5000, save_steps=10000))
    wait_for(lambda: logged_steps(run_id), what="first step")
    runs._CHILDREN.pop(run_id)  # as after an app restart: only the store and the pid remain
    info = runs.get_run(run_id)
    assert info.status == "running" and info.step >= 1
    os.killpg(info.pid, signal.SIGKILL)  # out of memory, a segfault, kill -9
    wait_for(lambda: runs.get_run(run_id).status == "failed", 30, "failed status")
    info = runs.get_run(run_id)
    assert "ended without finishing" in info.error and "step 1/5000" in info.error


def test_stop_then_resume_through_the_app_path(tiny_model_dir):
    config = tiny_train_config(tiny_model_dir, max_steps=400, batch_size=4, save_steps=10000)
    run_id = runs.launch(config)
    wait_for(lambda: logged_steps(run_id), what="first step")
    assert runs.stop(run_id) in ("stopping", "running")
    info = runs.wait(run_id, timeout=120)
    assert info.status == "stopped", info.error
    stopped_at = runs.last_checkpoint(info.run_dir)
    step = int(stopped_at.name.split("-")[1])
    assert 1 <= step < 400 and (info.run_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert run_id in [adapter["name"] for adapter in store.list_adapters()]
    runs.resume(run_id)
    wait_for(lambda: max(logged_steps(run_id)) > step + 1, what="steps after resume")
    runs.stop(run_id)
    info = runs.wait(run_id, timeout=120)
    assert info.status == "stopped"
    steps = logged_steps(run_id)
    assert steps[: steps.index(step) + 1] == list(range(1, step + 1))
    assert steps[steps.index(step) + 1] == step + 1  # resumed at the checkpoint's step
    with pytest.raises(ValueError, match="no training run"):
        runs.resume(run_id + "-missing")


def test_killed_after_a_checkpoint_then_resumed_at_its_step_with_one_row_per_step(
    tiny_model_dir,
):
    config = tiny_train_config(tiny_model_dir, max_steps=24, save_steps=4)
    run_id = runs.launch(config)
    directory = runs.run_dir(run_id)

    def past_a_checkpoint() -> bool:  # killed between two checkpoints, steps logged after one
        step = runs.checkpoint_step(runs.last_checkpoint(directory))
        logged = logged_steps(run_id)
        return step >= 4 and bool(logged) and logged[-1] % 4 in (1, 2) and logged[-1] > step

    deadline = time.time() + 300
    while not past_a_checkpoint():
        assert time.time() < deadline and runs.get_run(run_id).is_active, "no checkpoint in time"
        time.sleep(0.01)
    os.killpg(runs.get_run(run_id).pid, signal.SIGKILL)
    wait_for(lambda: runs.get_run(run_id).status == "failed", 30, "failed status")
    step = runs.checkpoint_step(runs.last_checkpoint(directory))
    assert max(logged_steps(run_id)) > step  # steps the resume trains again
    runs.resume(run_id)
    info = runs.wait(run_id, timeout=300)
    assert info.status == "finished", info.error
    assert f"resuming from {directory / 'checkpoints' / f'checkpoint-{step}'}" in runs.log_tail(
        run_id, 400
    )
    assert logged_steps(run_id) == list(range(1, 25))  # each step once, none missing
    begins = [row["step"] for row in runs.read_metrics(run_id) if row.get("event") == "begin"]
    assert begins == [0, step]
    assert [path.name for path in (directory / "checkpoints").glob("checkpoint-*")] == [
        "checkpoint-24"
    ]  # keep_checkpoints=1: the last one
    assert (info.run_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert not list(runs.runs_root().glob(".device-*.lock"))  # released and removed


def test_a_write_error_while_saving_fails_cleanly(tiny_model_dir, tmp_path):
    """The OS refuses the adapter's bytes (a per-file size limit stands in for a full disk)."""
    home = tmp_path / "home"
    env = dict(os.environ, MATHTUTOR_HOME=str(home), PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    config = tiny_train_config(tiny_model_dir, lora_rank=64)  # ~0.5 MB of adapter weights
    config_path = tmp_path / "config.yaml"
    config.to_yaml(config_path)

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of killing us
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    result = subprocess.run(
        [sys.executable, "-m", "training.sft", "--config", str(config_path)],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=300, preexec_fn=limit_file_size,
    )  # fmt: skip
    assert result.returncode != 0
    (row,) = store.list_train_runs(path=home / "mathtutor.db")
    assert row["status"] == "failed"
    # the trainer's final checkpoint is written first, so that is where the write fails
    assert "File too large" in row["error"] and "A write failed" in row["error"]
    run_dir = Path(row["run_dir"])
    assert not (run_dir / "adapter").exists()
    assert not list(run_dir.glob("adapter.tmp-*"))
    assert store.list_adapters(path=home / "mathtutor.db") == []


def test_the_cli_runs_under_accelerate_launch(tiny_model_dir, tmp_path):
    config_path = tmp_path / "config.yaml"
    tiny_train_config(tiny_model_dir, run_name="accelerated").to_yaml(config_path)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    accelerate = shutil.which(
        "accelerate", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    )
    assert accelerate, "accelerate's command-line tool is not installed"
    command = [
        accelerate, "launch", "--num_processes", "1", "--cpu",
        "-m", "training.sft", "--config", str(config_path), "--max_steps", "2",
    ]  # fmt: skip
    result = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "finished: accelerated-" in result.stdout
    run_id = result.stdout.split("finished: ")[1].split()[0]
    assert runs.get_run(run_id).status == "finished"
