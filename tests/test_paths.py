"""mathtutor.paths: the one id rule, the readable roots, and every caller that uses them.

Refused files are written outside every allowed root: in a fresh `tempfile.mkdtemp()` folder
(not under pytest's base temp, which conftest allows) or by pointing MATHTUTOR_DATA_DIRS
elsewhere.
"""

from __future__ import annotations

import doctest
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from mathtutor import paths
from mathtutor.data import load_problems, load_user_dataset
from mathtutor.evaluate import EvalConfig, export_run
from mathtutor.paths import allowed_roots, check_id, check_readable, check_repo_id, home_dir
from training import runs
from training.config import TrainConfig

REPO = Path(__file__).resolve().parent.parent
SECRET = "hf_SECRETtoken1234567890"
ROOTS_RULE = "is outside the allowed folders (uploads, home, GSM8K dir, MATHTUTOR_DATA_DIRS)"
REFUSED = re.escape(ROOTS_RULE)
BAD_IDS = [
    "..", ".", "../x", "../../../../victim", "/etc/passwd", "a/b", "a\\b", ".hidden", "x.",
    "-x", "x-", "a b", "café", "x" * 97, "x\x00y", "~", "",
]  # fmt: skip


@pytest.fixture
def outside() -> Path:
    """A folder outside every allowed root, holding a credentials file and a symlink target."""
    folder = Path(tempfile.mkdtemp(prefix="mathtutor-outside-"))
    (folder / "creds.jsonl").write_text(
        f'{{"question": "{SECRET}", "answer": "{SECRET}"}}\n', encoding="utf-8"
    )
    yield folder
    shutil.rmtree(folder)


# --------------------------------------------------------------------------- ids
@pytest.mark.parametrize(
    "value", ["a", "run-1", "bundled-quick", "qwen2.5-math-1.5b", "A_b.c-9", "x" * 96]
)
def test_good_ids_pass_unchanged(value):
    assert check_id(value, "run_id") == value


@pytest.mark.parametrize("value", BAD_IDS)
def test_bad_ids_are_refused_naming_the_field(value):
    with pytest.raises(ValueError, match=r"^run_id") as caught:
        check_id(value, "run_id")
    assert "\n" not in str(caught.value)


def test_non_string_ids_are_refused():
    for value in (None, 7, ["a"]):
        with pytest.raises(ValueError, match="run_id is empty"):
            check_id(value, "run_id")


def test_each_part_of_a_repo_id_is_an_id():
    assert check_repo_id("alice/gsm8k-lora") == "alice/gsm8k-lora"
    assert check_repo_id("gsm8k-lora") == "gsm8k-lora"
    for bad in ("../x", "alice/..", "alice/../x", "/x", "alice/", "al ice/x", "alice/.x"):
        with pytest.raises(ValueError, match="^repo_id"):
            check_repo_id(bad)


# --------------------------------------------------------------------------- roots
def test_roots_are_home_gsm8k_and_the_data_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("MATHTUTOR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MATHTUTOR_GSM8K_DIR", str(tmp_path / "gsm8k"))
    monkeypatch.setenv("MATHTUTOR_DATA_DIRS", os.pathsep.join([str(tmp_path / "a"), "", "b"]))
    assert allowed_roots() == [
        (tmp_path / "home").resolve(),
        (tmp_path / "gsm8k").resolve(),
        (tmp_path / "a").resolve(),
        Path("b").resolve(),
    ]
    assert home_dir() == tmp_path / "home" and home_dir().is_dir()


def test_files_under_a_root_or_in_the_upload_folder_are_readable(tmp_path, monkeypatch):
    monkeypatch.setenv("MATHTUTOR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MATHTUTOR_DATA_DIRS", str(tmp_path / "data"))
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "uploads"))
    for folder in ("home", "data", "uploads/0123abcd"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / folder / "set.jsonl").write_text("{}\n")
        assert check_readable(tmp_path / folder / "set.jsonl") == tmp_path / folder / "set.jsonl"
    monkeypatch.chdir(tmp_path / "data")
    assert check_readable("set.jsonl") == tmp_path / "data" / "set.jsonl"  # relative to cwd


def test_the_apps_private_files_in_home_are_never_read(tmp_path, monkeypatch):
    """The database and the students' saves sit in the home root but are not inputs."""
    monkeypatch.setenv("MATHTUTOR_HOME", str(tmp_path / "home"))
    for name in ("mathtutor.db", "tutor_saves.jsonl", "locks/eval-x.lock"):
        path = tmp_path / "home" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'{{"question": "{SECRET}", "answer": "1"}}\n')
        with pytest.raises(ValueError, match="private data") as caught:
            check_readable(path, "dataset_path")
        assert SECRET not in str(caught.value)
        with pytest.raises(ValueError, match="private data"):
            load_user_dataset(path)
    (tmp_path / "home" / "mine.jsonl").write_text("{}\n")
    assert check_readable(tmp_path / "home" / "mine.jsonl").name == "mine.jsonl"


def test_paths_outside_the_roots_are_refused_without_content(tmp_path, monkeypatch, outside):
    monkeypatch.setenv("MATHTUTOR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MATHTUTOR_DATA_DIRS", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    (tmp_path / "data-evil").mkdir()  # shares the root's name as a prefix, is not inside it
    (tmp_path / "data-evil" / "x.jsonl").write_text(SECRET)
    refused = [
        "/etc/passwd",
        outside / "creds.jsonl",
        tmp_path / "data-evil" / "x.jsonl",
        tmp_path / "data" / ".." / "data-evil" / "x.jsonl",
        f"{home_dir()}/../../../../etc/passwd",
        REPO / ".env",
        outside / "no-such-file.jsonl",  # the same answer as for a file that exists
    ]
    for path in refused:
        with pytest.raises(ValueError) as caught:
            check_readable(path, "dataset_path")
        assert str(caught.value) == f"dataset_path: {path} {ROOTS_RULE}"
    for empty in ("", "  ", None):
        with pytest.raises(ValueError, match="dataset_path: no file given"):
            check_readable(empty, "dataset_path")


def test_a_symlink_out_of_an_allowed_root_is_refused(tmp_path, monkeypatch, outside):
    monkeypatch.setenv("MATHTUTOR_HOME", str(tmp_path / "home"))
    home = home_dir()
    (home / "link.jsonl").symlink_to(outside / "creds.jsonl")
    (home / "folder-link").symlink_to(outside, target_is_directory=True)
    (home / "inside.jsonl").write_text('{"question": "q?", "answer": "1"}\n')
    (home / "good-link.jsonl").symlink_to(home / "inside.jsonl")
    for path in (home / "link.jsonl", home / "folder-link" / "creds.jsonl"):
        with pytest.raises(ValueError, match=REFUSED) as caught:
            load_user_dataset(path)
        assert SECRET not in str(caught.value)
    assert [p.answer for p in load_user_dataset(home / "good-link.jsonl")] == ["1"]


def test_the_loaders_refuse_before_reading(outside):
    for path in ("/etc/passwd", outside / "creds.jsonl"):
        with pytest.raises(ValueError, match=REFUSED) as caught:
            load_problems("upload", path=path)
        message = str(caught.value)
        assert SECRET not in message and "root:" not in message


def test_configs_refuse_paths_and_ids_when_built(outside):
    for path in ("/etc/passwd", str(outside / "creds.jsonl")):
        with pytest.raises(ValueError, match=f"^dataset_path: .* {REFUSED}"):
            TrainConfig(dataset="upload", dataset_path=path)
        with pytest.raises(ValueError, match=f"^path: .* {REFUSED}"):
            EvalConfig(dataset="upload", path=path)
    assert TrainConfig(dataset="gsm8k", dataset_path="/etc/passwd").dataset == "gsm8k"  # unread
    with pytest.raises(ValueError, match="^run_id '../x'"):
        EvalConfig(run_id="../x")


def test_model_and_adapter_directories_are_confined_too(outside, tiny_model_dir):
    from mathtutor.models import _adapter_dir, resolve_model

    (outside / "config.json").write_text("{}")
    (outside / "adapter_config.json").write_text("{}")
    for spec in (str(outside), "/etc", "/no/such/dir", f"{tiny_model_dir}/../../../../etc"):
        with pytest.raises(ValueError, match=f"^model: {re.escape(spec)} {REFUSED}$"):
            resolve_model(spec)
        with pytest.raises(ValueError, match=f"^adapter: {re.escape(spec)} {REFUSED}$"):
            _adapter_dir(spec)
    assert resolve_model(str(tiny_model_dir)) == str(tiny_model_dir)


# --------------------------------------------------------------------------- id callers
def test_run_directories_and_exports_check_the_id(tmp_path):
    before = sorted(home_dir().rglob("*"))
    for bad in ("..", "../x", "/tmp/x", ".hidden"):
        with pytest.raises(ValueError, match="^run_id"):
            runs.run_dir(bad)
        with pytest.raises(ValueError, match="^run_id"):
            runs.get_run(bad)
        with pytest.raises(ValueError, match="^run_id"):
            export_run(bad, tmp_path / "out.jsonl")
    assert sorted(home_dir().rglob("*")) == before
    assert not (tmp_path / "out.jsonl").exists()


def test_new_run_ids_pass_the_id_rule():
    for name in ("_private", "../../up", "émoji 🧮 run", "...", "a" * 200):
        run_id = runs.new_run_id(TrainConfig(run_name=name))
        assert check_id(run_id, "run_id") == run_id


def test_recipe_names_are_ids():
    from mathtutor.ui.train import load_recipe

    assert load_recipe("bundled-quick")
    for bad in ("../../../etc/passwd", "/etc/passwd", "..", "bundled-quick/../x"):
        with pytest.raises(ValueError, match="^recipe"):
            load_recipe(bad)


def test_evaluate_cli_refuses_a_path_run_id_and_writes_nothing(tmp_path):
    home = tmp_path / "a" / "b" / "home"
    home.mkdir(parents=True)
    env = os.environ | {"MATHTUTOR_HOME": str(home), "PYTHONPATH": str(REPO)}
    before = sorted(tmp_path.rglob("*"))
    done = subprocess.run(
        [sys.executable, "-m", "mathtutor.evaluate", "--run_id", "../../../x"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert "run_id '../../../x': may only contain letters" in done.stderr
    assert sorted(tmp_path.rglob("*")) == before  # no lock folder, no victim file


def test_doctests():
    assert doctest.testmod(paths).failed == 0
