"""The evaluation engine on the tiny model: records, resume, stop, bad input, CLI, export."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mathtutor import store
from mathtutor.data import load_problems
from mathtutor.evaluate import (
    EvalConfig,
    config_from_args,
    evaluate,
    export_run,
    pick_backend,
    running_run,
)
from mathtutor.generate import GenerationSettings, generate_batch
from mathtutor.results import EvalSummary

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture()
def home(tmp_path, monkeypatch) -> Path:
    """A fresh data directory (and so a fresh database) for one test."""
    monkeypatch.setenv("MATHTUTOR_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def tiny_config(model_dir: Path, **changes) -> EvalConfig:
    values = {
        "model": str(model_dir),
        "systems": ["base"],
        "dataset": "arithmetic",
        "num_samples": 4,
        "max_new_tokens": 8,
        "batch_size": 4,
        "prompt_format": "qa",  # short prompts keep the tiny model fast
    }
    return EvalConfig(**(values | changes))


@pytest.fixture(scope="module")
def wordy_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """A tiny model that answers every prompt with the word "a" and stops: never a number.

    Layers write nothing (o_proj, down_proj zero), so the last hidden state is the current
    token's embedding; only its first coordinate survives the final norm. That coordinate is
    -1 for "a" and +1 for every other token, and the head maps +1 to "a" and -1 to EOS.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("wordy-model")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.tie_word_embeddings = False
    model = AutoModelForCausalLM.from_config(config)
    word, eos = tokenizer.convert_tokens_to_ids("a"), tokenizer.eos_token_id
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.embed_tokens.weight[:, 0] = 1.0
        model.model.embed_tokens.weight[word, 0] = -1.0
        model.model.norm.weight.zero_()
        model.model.norm.weight[0] = 1.0
        model.lm_head.weight.zero_()
        model.lm_head.weight[word, 0] = 1.0
        model.lm_head.weight[eos, 0] = -1.0
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


# --------------------------------------------------------------------------- config and CLI flags
def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="num_samples"):
        EvalConfig(num_samples=0)
    with pytest.raises(ValueError, match="temperature > 0"):
        EvalConfig(num_votes=3)
    with pytest.raises(ValueError, match="dataset 'mnist'"):
        EvalConfig(dataset="mnist")
    with pytest.raises(ValueError, match="path"):
        EvalConfig(dataset="upload")
    with pytest.raises(ValueError, match="more than once"):
        EvalConfig(systems=["base", "base"])
    with pytest.raises(ValueError, match="prompt_format"):
        EvalConfig(prompt_format="haiku")
    with pytest.raises(ValueError, match="backend"):
        EvalConfig(backend="tensorrt")


def test_cli_flags_are_the_config_fields():
    config = config_from_args(
        ["--num-samples", "5", "--systems", "base", "x", "--calculator", "--temperature", "0.5"]
    )
    assert config == EvalConfig(
        num_samples=5, systems=["base", "x"], calculator=True, temperature=0.5
    )
    assert config_from_args(["--num_samples", "7", "--batch_size", "3"]).batch_size == 3
    assert config_from_args(["--adapter", "a1"]).systems == ["base", "a1"]
    with pytest.raises(ValueError, match="num_samples"):
        config_from_args(["--num_samples", "0"])


def test_backend_choice_on_this_machine():
    import importlib.util

    import torch

    if importlib.util.find_spec("vllm") and torch.cuda.is_available():
        pytest.skip("vLLM is usable here; the fallback cannot be observed")
    assert pick_backend("auto") == "transformers"
    with pytest.raises(ValueError, match="vllm"):
        pick_backend("vllm")


# --------------------------------------------------------------------------- the engine
def test_same_problems_for_every_system_in_mixed_batches(
    home, tiny_model_dir, tiny_adapter_dir, gsm8k_dir
):
    progress = []
    config = tiny_config(
        tiny_model_dir, systems=["base", str(tiny_adapter_dir)], dataset="gsm8k", num_samples=4
    )
    report = evaluate(config, on_progress=lambda done, total: progress.append((done, total)))
    assert report.status == "finished" and report.num_records == 8
    assert progress == [(done, 8) for done in range(9)]  # every record as its row finishes
    records = store.load_records(report.run_id)
    expected = [p.id for p in load_problems("gsm8k", num_samples=4, seed=0)]
    labels = report.summary.order
    assert labels[0] == "base" and len(labels) == 2
    for label in labels:
        rows = sorted((r for r in records if r["system"] == label), key=lambda r: r["position"])
        assert [r["problem_id"] for r in rows] == expected
    base = {r["problem_id"]: r["completion"] for r in records if r["system"] == "base"}
    tuned = {r["problem_id"]: r["completion"] for r in records if r["system"] == labels[1]}
    assert base != tuned  # the adapter really was applied to its rows
    record = records[0]
    for key in ("question", "answer", "completion", "extracted", "is_correct", "strict_correct",
                "flexible_correct", "category", "finish_reason", "seconds", "wrong_steps"):  # fmt: skip
        assert key in record
    assert record["finish_reason"] in ("eos", "stop", "length")
    assert record["seconds"] > 0
    summary = EvalSummary.from_dict(store.get_eval_run(report.run_id)["summary"])
    assert summary == report.summary  # stored and read back unchanged
    assert summary.systems["base"].n == 4
    (comparison,) = summary.comparisons
    assert comparison.a == "base" and comparison.n == 4
    assert store.get_eval_run(report.run_id)["status"] == "finished"


def test_records_equal_one_by_one_greedy_decoding(home, tiny_model_dir, tiny_adapter_dir):
    """Continuous batching (2 slots refilled from 12 rows, base and adapter mixed) saves the
    same completions as decoding each prompt alone."""
    from mathtutor.models import load_model
    from mathtutor.prompts import render, stop_sequences

    config = tiny_config(
        tiny_model_dir, systems=["base", str(tiny_adapter_dir)], num_samples=6, batch_size=2,
        max_new_tokens=16,
    )  # fmt: skip
    report = evaluate(config)
    loaded = load_model(str(tiny_model_dir), device="cpu")
    settings = GenerationSettings(max_new_tokens=16, stop=tuple(stop_sequences("qa")))
    records = store.load_records(report.run_id)
    assert len(records) == 12 and report.summary.dtype == "float32"
    names = dict(zip(report.summary.order, ["base", loaded.names[-1]], strict=True))
    for record in records:
        prompt = render("qa", record["question"], loaded.tokenizer)
        (alone,) = generate_batch(loaded, [prompt], names[record["system"]], settings)
        assert (record["completion"], record["num_tokens"]) == (alone.text, alone.num_tokens)


def test_model_that_never_emits_a_number(home, wordy_model_dir):
    config = tiny_config(wordy_model_dir, num_samples=5, max_new_tokens=12, prompt_format="chat")
    report = evaluate(config)
    records = store.load_records(report.run_id)
    assert len(records) == 5
    assert all(r["completion"] == "a" and r["finish_reason"] == "eos" for r in records)
    assert all(r["category"] == "no-answer" and r["extracted"] is None for r in records)
    assert not any(r["is_correct"] or r["strict_correct"] or r["flexible_correct"] for r in records)
    base = report.summary.systems["base"]
    assert base.accuracy.value == 0.0 and base.format_rate == 0.0
    assert base.category("no-answer") == 5


def test_stop_then_resume_skips_finished_records(home, tiny_model_dir):
    config = tiny_config(tiny_model_dir, num_samples=6, batch_size=2)
    seen: list[int] = []

    def should_stop() -> bool:  # asked between decoding steps
        return bool(seen) and seen[-1] >= 2

    stopped = evaluate(
        config, on_progress=lambda done, _: seen.append(done), should_stop=should_stop
    )
    assert stopped.status == "stopped" and 2 <= stopped.num_records < 6
    assert stopped.num_records == seen[-1]  # every finished problem was saved, no other
    assert store.get_eval_run(stopped.run_id)["status"] == "stopped"
    before = {(r["system"], r["problem_id"]): r for r in store.load_records(stopped.run_id)}

    progress = []
    resumed = evaluate(
        EvalConfig(run_id=stopped.run_id, batch_size=2),  # settings come from the stored run
        on_progress=lambda done, total: progress.append(done),
    )
    assert resumed.status == "finished" and resumed.num_records == 6
    assert progress == list(range(stopped.num_records, 7))  # only unfinished problems ran
    after = {(r["system"], r["problem_id"]): r for r in store.load_records(stopped.run_id)}
    for key, record in before.items():
        assert after[key] == record  # untouched, same timestamp
    assert resumed.config.num_samples == 6 and resumed.config.dataset == "arithmetic"


def test_resume_of_unknown_run_is_a_clear_error(home, tiny_model_dir):
    with pytest.raises(ValueError, match="no such evaluation run"):
        evaluate(tiny_config(tiny_model_dir, run_id="nope"))


def test_failure_marks_the_run_failed(home, tiny_model_dir):
    def explode(done: int, total: int) -> None:
        if done:
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        evaluate(tiny_config(tiny_model_dir, batch_size=2), on_progress=explode)
    (run,) = store.list_eval_runs()
    assert run["status"] == "failed" and "disk full" in run["error"]
    assert run["num_records"] == 1  # the finished problem was saved before the failure


def test_sample_size_zero_or_larger_than_dataset(home, tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="num_samples"):
        tiny_config(tiny_model_dir, num_samples=0)
    upload = tmp_path / "three.jsonl"
    upload.write_text(
        "".join(
            json.dumps({"question": f"What is {i} + 1?", "answer": i + 1}) + "\n" for i in range(3)
        )
    )
    config = tiny_config(tiny_model_dir, dataset="upload", path=str(upload), num_samples=5)
    with pytest.raises(ValueError, match=r"dataset 'upload'.*between 1 and 3"):
        evaluate(config)
    assert store.list_eval_runs() == []  # bad input leaves no half-made run behind
    report = evaluate(
        tiny_config(tiny_model_dir, dataset="upload", path=str(upload), num_samples=3)
    )
    assert report.num_records == 3


def test_upload_without_a_usable_answer_column(home, tiny_model_dir, tmp_path):
    upload = tmp_path / "mine.csv"
    upload.write_text("question,result\nWhat is 2 + 2?,4\n")
    with pytest.raises(ValueError, match="missing column 'answer'"):
        evaluate(tiny_config(tiny_model_dir, dataset="upload", path=str(upload), num_samples=1))
    upload.write_text("question,answer\nWhat is 2 + 2?,not given\nWhat is 3 + 3?,6\n")
    with pytest.raises(ValueError, match="line 2"):
        evaluate(tiny_config(tiny_model_dir, dataset="upload", path=str(upload), num_samples=1))
    # the right column named explicitly works
    upload.write_text("question,result\nWhat is 2 + 2?,4\n")
    config = tiny_config(
        tiny_model_dir, dataset="upload", path=str(upload), num_samples=1, answer_field="result"
    )
    assert evaluate(config).num_records == 1


def test_two_evaluations_at_once(home, tiny_model_dir):
    release = threading.Event()
    first_started = threading.Event()
    results: dict[str, object] = {}

    def hold() -> bool:
        first_started.set()
        release.wait(timeout=60)
        return False

    def run_first():
        results["first"] = evaluate(tiny_config(tiny_model_dir, batch_size=2), should_stop=hold)

    thread = threading.Thread(target=run_first)
    thread.start()
    assert first_started.wait(timeout=60)
    running = running_run()
    assert running is not None
    with pytest.raises(ValueError, match=f"already running \\(run {running}\\)"):
        evaluate(tiny_config(tiny_model_dir, seed=1))

    def run_second():  # queued behind the first one
        results["second"] = evaluate(tiny_config(tiny_model_dir, seed=1), wait=True)

    queued = threading.Thread(target=run_second)
    queued.start()
    time.sleep(0.3)
    assert "second" not in results  # still waiting for the lock
    release.set()
    thread.join(timeout=120)
    queued.join(timeout=120)
    first, second = results["first"], results["second"]
    assert first.run_id != second.run_id
    assert first.num_records == second.num_records == 4
    for report in (first, second):
        records = store.load_records(report.run_id)
        ids = {p.id for p in load_problems("arithmetic", num_samples=4, seed=report.config.seed)}
        assert {r["problem_id"] for r in records} == ids


def test_corrupt_database_is_refused_and_left_untouched(home, tiny_model_dir):
    home.mkdir(parents=True)
    database = home / "mathtutor.db"
    garbage = b"this is not a database\x00\x01" * 50
    database.write_bytes(garbage)
    with pytest.raises(ValueError, match="not a SQLite database"):
        evaluate(tiny_config(tiny_model_dir))
    assert database.read_bytes() == garbage


def test_self_consistency_votes_and_calibration(home, tiny_model_dir):
    config = tiny_config(tiny_model_dir, num_votes=3, temperature=1.0, batch_size=6)
    report = evaluate(config)
    records = store.load_records(report.run_id)
    assert len(records) == 4
    for record in records:
        assert len(record["votes"]) == 3
        assert record["vote_share"] in (0.0, 1 / 3, 2 / 3, 1.0)
    assert len({v["completion"] for r in records for v in r["votes"]}) > 4  # samples differ
    base = report.summary.systems["base"]
    assert base.majority.n == 4
    assert 0.0 <= base.calibration_error <= 1.0


def test_export_jsonl_and_csv_round_trip(home, tiny_model_dir, tmp_path):
    report = evaluate(tiny_config(tiny_model_dir))
    records = store.load_records(report.run_id)
    jsonl = export_run(report.run_id, tmp_path / "out" / "run.jsonl")
    assert [json.loads(line) for line in jsonl.read_text().splitlines()] == records
    table = export_run(report.run_id, tmp_path / "run.csv", format="csv")
    with open(table, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(records)
    for row, record in zip(rows, records, strict=True):
        assert row["completion"] == record["completion"]  # newlines and quotes survive
        assert row["problem_id"] == record["problem_id"]
        assert json.loads(row["wrong_steps"]) == record["wrong_steps"]
        assert row["is_correct"] == str(record["is_correct"])
    with pytest.raises(ValueError, match="format"):
        export_run(report.run_id, tmp_path / "run.xml", format="xml")
    with pytest.raises(ValueError, match="no such evaluation run"):
        export_run("missing", tmp_path / "x.jsonl")


# --------------------------------------------------------------------------- as a user runs it
def _cli(args: list[str], home: Path) -> subprocess.Popen:
    env = os.environ | {"MATHTUTOR_HOME": str(home), "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "mathtutor.evaluate", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_cli_end_to_end(home, tiny_model_dir, tiny_adapter_dir, gsm8k_dir):
    args = ["--model", str(tiny_model_dir), "--adapter", str(tiny_adapter_dir), "--dataset"]
    args += ["gsm8k", "--num-samples", "3", "--max-new-tokens", "8", "--prompt_format", "qa"]
    process = _cli(args, home)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert "accuracy %" in stdout and "McNemar exact p" in stdout
    run_id = stdout.strip().splitlines()[-1].split()[1].rstrip(":")
    run = store.get_eval_run(run_id)
    assert run["status"] == "finished" and run["config"]["prompt_format"] == "qa"
    assert len(store.load_records(run_id)) == 6
    assert "[6/6]" in stderr  # progress lines


def _comparable(records: list[dict]) -> list[dict]:
    """Records without what differs between two runs of the same work: times."""
    return [{k: v for k, v in r.items() if k not in ("created", "seconds")} for r in records]


@pytest.mark.slow
def test_killed_mid_run_shows_failed_then_resume_equals_an_uninterrupted_run(
    home, tiny_model_dir, tiny_adapter_dir
):
    from mathtutor.models import clear_cache

    # The killed run labels the adapter as a fresh process does; so must the runs in this
    # process (an earlier test may have loaded the same adapter under another name).
    clear_cache()
    args = ["--model", str(tiny_model_dir), "--systems", "base", str(tiny_adapter_dir)]
    args += ["--dataset", "arithmetic", "--num_samples", "16", "--max_new_tokens", "24"]
    args += ["--batch_size", "2", "--prompt_format", "qa"]
    process = _cli(args, home)
    deadline = time.monotonic() + 240
    runs: list[dict] = []
    try:
        while time.monotonic() < deadline and process.poll() is None:
            runs = store.list_eval_runs() if (home / "mathtutor.db").exists() else []
            if runs and runs[0]["num_records"] >= 2:
                break
            time.sleep(0.02)
        assert process.poll() is None, "the run finished before it could be killed"
        assert runs and runs[0]["num_records"] >= 2, "no records within the time limit"
        assert runs[0]["status"] == "running" and runs[0]["pid"] == process.pid
        with pytest.raises(ValueError, match="being evaluated by another process"):
            evaluate(EvalConfig(run_id=runs[0]["id"]))  # never two writers on one run
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    (run,) = store.list_eval_runs()
    saved = store.load_records(run["id"])
    assert 2 <= len(saved) < 32  # whole problems only (each record is saved as it finishes)
    assert run["status"] == "failed"  # its process is gone: not "running" forever
    assert run["error"] == (
        f"process {process.pid} ended without finishing (killed?) at {len(saved)}/32; "
        "Resume continues"
    )
    progress = []
    report = evaluate(
        EvalConfig(run_id=run["id"], batch_size=2),
        on_progress=lambda done, total: progress.append(done),
    )
    assert progress[0] == len(saved)  # nothing finished was generated again
    assert report.status == "finished" and report.num_records == 32
    assert store.get_eval_run(run["id"])["error"] is None
    assert list((home / "locks").glob("*.lock")) == []  # the killed run's lock file is gone
    after = store.load_records(run["id"])
    by_key = {(r["system"], r["problem_id"]): r for r in after}
    for record in saved:
        assert by_key[(record["system"], record["problem_id"])] == record  # untouched

    uninterrupted = evaluate(
        tiny_config(
            tiny_model_dir,
            systems=["base", str(tiny_adapter_dir)],
            num_samples=16,
            max_new_tokens=24,
            batch_size=2,
        )
    )
    assert _comparable(store.load_records(uninterrupted.run_id)) == _comparable(after)
    for name, system in report.summary.systems.items():  # (times aside)
        assert system.accuracy == uninterrupted.summary.systems[name].accuracy
        assert system.categories == uninterrupted.summary.systems[name].categories


def test_a_database_from_before_the_pid_columns_opens_and_its_running_run_reads_failed(home):
    home.mkdir(parents=True)
    old = sqlite3.connect(home / "mathtutor.db")
    old.executescript(
        "CREATE TABLE eval_runs (id TEXT PRIMARY KEY, created REAL NOT NULL, updated REAL NOT "
        "NULL, status TEXT NOT NULL, config TEXT NOT NULL, summary TEXT, error TEXT);"
    )
    old.execute(
        "INSERT INTO eval_runs VALUES ('old', 1, 1, 'running', ?, NULL, NULL)",
        (json.dumps({"num_samples": 5, "systems": ["base"], "labels": ["base"]}),),
    )
    old.commit()
    old.close()
    (run,) = store.list_eval_runs()
    assert run["status"] == "failed" and run["pid"] is None
    assert run["error"] == (
        "the evaluating process ended without finishing (killed?) at 0/5; Resume continues"
    )


def test_an_existing_run_id_with_other_settings_is_refused(home, tiny_model_dir):
    report = evaluate(tiny_config(tiny_model_dir, num_samples=2))
    with pytest.raises(ValueError, match=r"already exists \(finished\) with num_samples 2, not 3"):
        evaluate(tiny_config(tiny_model_dir, num_samples=3, run_id=report.run_id))
    again = evaluate(EvalConfig(run_id=report.run_id))  # a resume of a finished run: a no-op
    assert again.status == "finished" and again.num_records == 2


def test_a_refused_call_leaves_no_lock_file(home, tiny_model_dir):
    with pytest.raises(ValueError, match="no such evaluation run"):
        evaluate(tiny_config(tiny_model_dir, run_id="nope"))
    assert list((home / "locks").glob("*")) == []
    stale = home / "locks" / "eval-gone.lock"
    stale.write_text("12345")  # what a killed evaluation leaves
    evaluate(tiny_config(tiny_model_dir, num_samples=1))
    assert not stale.exists()
