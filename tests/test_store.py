"""The SQLite store: runs, records, adapters; a foreign or corrupt file is never overwritten."""

from __future__ import annotations

import pytest

from mathtutor import store


def test_eval_run_round_trip(tmp_path):
    db = tmp_path / "m.db"
    store.create_eval_run("run1", {"dataset": "gsm8k"}, path=db)
    store.save_records(
        "run1",
        [{"system": "base", "problem_id": "p1", "position": 0, "is_correct": True}],
        path=db,
    )
    assert store.done_keys("run1", path=db) == {("base", "p1")}
    store.update_eval_run("run1", status="finished", summary={"acc": 1.0}, path=db)
    [run] = store.list_eval_runs(path=db)
    assert run["status"] == "finished" and run["summary"] == {"acc": 1.0}
    assert run["num_records"] == 1
    assert store.load_records("run1", path=db)[0]["is_correct"] is True
    store.delete_eval_run("run1", path=db)
    assert store.list_eval_runs(path=db) == []


def test_corrupt_database_is_refused_and_left_untouched(tmp_path):
    db = tmp_path / "m.db"
    db.write_bytes(b"this is not sqlite at all" * 10)
    before = db.read_bytes()
    with pytest.raises(ValueError, match="not a SQLite database"):
        store.connect(db)
    assert db.read_bytes() == before


def test_truncated_sqlite_file_is_a_clear_error(tmp_path):
    db = tmp_path / "m.db"
    store.create_eval_run("run1", {}, path=db)
    data = db.read_bytes()
    db.write_bytes(data[:100] + b"\x00garbage" * 64)
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"m.db{suffix}").unlink(missing_ok=True)
    before = db.read_bytes()
    with pytest.raises(ValueError, match="m.db"):
        store.list_eval_runs(path=db) and store.create_eval_run("run2", {}, path=db)
    assert db.read_bytes() == before


def test_train_runs_and_adapters(tmp_path):
    db = tmp_path / "m.db"
    store.upsert_train_run(
        "t1", status="running", run_dir=tmp_path, config={"lr": 1}, pid=5, path=db
    )
    store.upsert_train_run("t1", status="finished", run_dir=tmp_path, path=db)
    run = store.get_train_run("t1", path=db)
    assert run["status"] == "finished" and run["pid"] == 5 and run["config"] == {"lr": 1}
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    store.register_adapter("tuned", adapter, "base/model", "train:t1", {"steps": 2}, path=db)
    store.register_adapter("gone", tmp_path / "missing", "base/model", "local", path=db)
    assert [a["name"] for a in store.list_adapters(path=db)] == ["tuned"]
