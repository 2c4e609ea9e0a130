"""Problem sources: the shared GSM8K files, the offline Hub path, sampling, user uploads."""

from __future__ import annotations

import dataclasses
import doctest
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mathtutor import data, generators
from mathtutor.answers import parse_number
from mathtutor.data import (
    DATASETS,
    Problem,
    load_gsm8k,
    load_problems,
    load_user_dataset,
    sample,
    split_train_val,
)
from mathtutor.generators import generate
from mathtutor.prompts import target

REPO = Path(__file__).resolve().parent.parent


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def jsonl(*rows: object) -> str:
    return "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows)


def test_docstring_examples_hold():
    assert doctest.testmod(data).failed == 0


# ---------------------------------------------------------------- GSM8K


def test_gsm8k_from_the_shared_files(gsm8k_dir, monkeypatch):
    monkeypatch.setenv("MATHTUTOR_GSM8K_DIR", str(gsm8k_dir))
    test, train = load_gsm8k("test"), load_gsm8k("train")
    assert (len(test), len(train)) == (1319, 7473)
    first = test[0]
    assert first.id == "gsm8k-test-0" and first.source == "gsm8k/main/test"
    assert first.question.startswith("Janet\u2019s ducks lay 16 eggs per day.")
    assert first.answer == "18" and first.solution.endswith("#### 18")
    assert train[0].answer == "72" and train[17].id == "gsm8k-train-17"
    assert len({p.id for p in train}) == 7473
    assert all(p.answer and parse_number(p.answer) is not None for p in test + train)


def test_gsm8k_socratic_test_split(gsm8k_dir, monkeypatch):
    monkeypatch.setenv("MATHTUTOR_GSM8K_DIR", str(gsm8k_dir))
    socratic, main = load_gsm8k("test", "socratic"), load_gsm8k("test")
    assert len(socratic) == 1319 and socratic[17].id == "gsm8k-socratic-test-17"
    assert socratic[0].solution.startswith("How many eggs does Janet sell? ** ")
    assert [p.question for p in socratic] == [p.question for p in main]
    assert [p.answer for p in socratic] == [p.answer for p in main]
    with pytest.raises(FileNotFoundError, match=r"train_socratic\.jsonl.*MATHTUTOR_GSM8K_DIR"):
        load_gsm8k("train", "socratic")


def test_gsm8k_solutions_are_chat_targets_unchanged(gsm8k_dir):
    """The training target of a GSM8K problem is its own solution when the answer is plain."""
    problems = load_gsm8k("test", data_dir=gsm8k_dir)
    plain = [p for p in problems if p.solution.rstrip().endswith(f"\n#### {p.answer}")]
    assert len(plain) > 1300
    assert all(target("chat", p.solution, p.answer) == p.solution.strip() for p in plain)


def test_gsm8k_data_dir_wins_and_changed_files_are_read_again(tmp_path, monkeypatch):
    monkeypatch.setenv("MATHTUTOR_GSM8K_DIR", str(tmp_path / "elsewhere"))
    row = {"question": "What is 2 + 2?", "answer": "2 + 2 = <<2+2=4>>4\n#### 4"}
    write(tmp_path / "test.jsonl", jsonl(row))
    assert [p.answer for p in load_gsm8k("test", data_dir=tmp_path)] == ["4"]
    hits = data._read_gsm8k_file.cache_info().hits
    assert load_gsm8k("test", data_dir=tmp_path)[0].answer == "4"
    assert data._read_gsm8k_file.cache_info().hits == hits + 1
    write(tmp_path / "test.jsonl", jsonl(row, {"question": "And 10 * 10?", "answer": "#### 1,000"}))
    assert [p.answer for p in load_gsm8k("test", data_dir=tmp_path)] == ["4", "1000"]
    write(tmp_path / "test.jsonl", jsonl(row, "{not json"))
    with pytest.raises(ValueError, match=r"test\.jsonl line 2: not valid JSON"):
        load_gsm8k("test", data_dir=tmp_path)


def test_gsm8k_missing_directory_names_the_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv("MATHTUTOR_GSM8K_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"\$MATHTUTOR_GSM8K_DIR.*openai/gsm8k"):
        load_gsm8k("test")
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'validation'"):
        load_gsm8k("validation")


def test_gsm8k_offline_hub_error_names_both_ways(tmp_path):
    """No local dir and an offline Hub: one error naming the env var, the Hub id and the cause."""
    env = {k: v for k, v in os.environ.items() if k != "MATHTUTOR_GSM8K_DIR"}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    env.pop("HF_DATASETS_CACHE", None)
    code = (
        "from mathtutor.data import load_gsm8k\n"
        "try:\n    load_gsm8k('test')\nexcept ValueError as error:\n    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    message = result.stdout.strip()
    assert result.returncode == 0, result.stderr
    assert "MATHTUTOR_GSM8K_DIR" in message and "openai/gsm8k" in message, message
    assert "Hub error:" in message and "\n" not in message


# ---------------------------------------------------------------- sampling


def numbered(count: int) -> list[Problem]:
    return [Problem(f"p{i}", f"question {i}", str(i)) for i in range(count)]


def test_sample_is_seeded_without_replacement_and_prefix_stable():
    problems = numbered(50)
    ten = sample(problems, 10, seed=3)
    assert ten == sample(problems, 10, seed=3)
    assert ten != sample(problems, 10, seed=4)
    assert len(set(ten)) == 10
    assert sample(problems, 25, seed=3)[:10] == ten
    assert sorted(sample(problems, 50, seed=3), key=lambda p: int(p.answer)) == problems


@pytest.mark.parametrize("count", [0, 51, -1])
def test_sample_size_errors_name_both_numbers(count):
    with pytest.raises(ValueError, match=f"between 1 and 50.*got {count}"):
        sample(numbered(50), count)


def test_split_train_val():
    problems = numbered(40)
    train, val = split_train_val(problems, 0.25, seed=1)
    assert (len(train), len(val)) == (30, 10)
    assert sorted(train + val, key=lambda p: int(p.answer)) == problems
    assert (train, val) == split_train_val(problems, 0.25, seed=1)
    assert val != split_train_val(problems, 0.25, seed=2)[1]
    with pytest.raises(ValueError, match="val_fraction must be between 0 and 1"):
        split_train_val(problems, 1.0)
    with pytest.raises(ValueError, match="cannot split 1 problems"):
        split_train_val(numbered(1), 0.5)


# ---------------------------------------------------------------- uploads


def test_upload_jsonl_with_every_answer_style(tmp_path):
    path = write(
        tmp_path / "mine.jsonl",
        jsonl(
            {
                "question": "Natalia sold 48 and half as many. Total?",
                "answer": "48/2 = 24\n#### 72",
            },
            "",
            {"question": "What is 2 + 3?", "answer": 5},
            {"question": "Half of one?", "answer": "\\boxed{\\frac{1}{2}}"},
            {"question": "Price?", "answer": "$1,250.00", "id": "price-q"},
        ),
    )
    problems = load_user_dataset(path)
    assert [p.id for p in problems] == ["mine-1", "mine-3", "mine-4", "price-q"]
    assert [p.answer for p in problems] == ["72", "5", "1/2", "1250"]
    assert problems[0].solution == "48/2 = 24\n#### 72" and problems[1].solution == ""
    assert problems[0].source == "upload:mine.jsonl"


def test_upload_jsonl_bad_rows_are_named_by_line_and_field(tmp_path):
    path = write(
        tmp_path / "bad.jsonl",
        jsonl(
            {"question": "ok?", "answer": "1"},
            {"question": "ok too?", "answer": "2"},
            '{"question": "broken", ',
            {"question": "   ", "answer": "3"},
            {"question": "no answer"},
            {"question": "words", "answer": "a lot of apples"},
            ["not", "an", "object"],
        ),
    )
    with pytest.raises(ValueError) as caught:
        load_user_dataset(path)
    message = str(caught.value)
    assert message.startswith("bad.jsonl: 5 invalid row(s) of 7:")
    assert "line 3: not valid JSON" in message
    assert "line 4: field 'question' is missing or empty" in message
    assert "line 5: field 'answer' is missing or empty" in message
    assert "line 6: field 'answer' is not a number" in message
    assert "line 7: expected an object" in message
    assert "line 1" not in message


def test_upload_lists_at_most_five_rows_and_a_little_of_each(tmp_path):
    rows = [{"question": f"q{i}", "answer": "no number " + "x" * 100} for i in range(25)]
    with pytest.raises(ValueError) as caught:
        load_user_dataset(write(tmp_path / "many.jsonl", jsonl(*rows)))
    message = str(caught.value)
    assert "25 invalid row(s)" in message and "line 5:" in message
    assert "line 6:" not in message and "... and 20 more" in message
    assert "'no number xxxxxxxxxxxxxxxxx...'" in message and "x" * 30 not in message


def test_upload_lists_a_bounded_number_of_short_column_names(tmp_path):
    header = ",".join(f"column{i}-" + "y" * 50 for i in range(30))
    with pytest.raises(ValueError) as caught:
        load_user_dataset(write(tmp_path / "wide.csv", header + "\n" + "1," * 29 + "1\n"))
    message = str(caught.value)
    assert "missing column 'question'" in message and "(30 in all)" in message
    assert "column9-" in message and "column10-" not in message and "y" * 30 not in message


def test_upload_csv_with_custom_columns(tmp_path):
    text = (
        'problem,final\n"A train goes 60 mph for 1.5 hours, how far?",90\n"Multi\nline?",#### 7\n'
    )
    path = write(tmp_path / "set.csv", text)
    problems = load_user_dataset(path, question_field="problem", answer_field="final")
    assert [(p.id, p.answer) for p in problems] == [("set-2", "90"), ("set-4", "7")]
    assert problems[1].question == "Multi\nline?"
    with pytest.raises(
        ValueError, match=r"set\.csv: missing column 'question'; columns found: problem, final"
    ):
        load_user_dataset(path)
    bad = write(tmp_path / "bad.csv", "question,answer\nfine?,3\nbroken?,\n")
    with pytest.raises(ValueError, match="line 3: field 'answer' is missing or empty"):
        load_user_dataset(bad)


def test_upload_json_list_and_data_object(tmp_path):
    rows = [{"question": "1 + 1?", "answer": "2"}, {"question": "2 + 2?", "answer": "4"}]
    plain = load_user_dataset(write(tmp_path / "list.json", json.dumps(rows)))
    wrapped = load_user_dataset(write(tmp_path / "wrapped.json", json.dumps({"data": rows})))
    assert [p.answer for p in plain] == [p.answer for p in wrapped] == ["2", "4"]
    assert plain[1].id == "list-2"
    with pytest.raises(ValueError, match="item 2: field 'answer' is missing or empty"):
        load_user_dataset(write(tmp_path / "x.json", json.dumps([rows[0], {"question": "q"}])))
    with pytest.raises(ValueError, match=r"broken\.json line 1 column \d+: not valid JSON"):
        load_user_dataset(write(tmp_path / "broken.json", '[{"question": '))
    with pytest.raises(ValueError, match="expected a JSON list of objects"):
        load_user_dataset(write(tmp_path / "number.json", "42"))


def test_upload_format_is_sniffed_without_a_known_extension(tmp_path):
    as_jsonl = write(
        tmp_path / "a.txt",
        jsonl({"question": "q?", "answer": "1"}, {"question": "r?", "answer": "2"}),
    )
    as_csv = write(tmp_path / "b.txt", "question,answer\nq?,1\n")
    assert [p.answer for p in load_user_dataset(as_jsonl)] == ["1", "2"]
    assert [p.answer for p in load_user_dataset(as_csv)] == ["1"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.jsonl", b"", r"empty\.jsonl is empty"),
        ("blank.csv", b"  \n\n", r"blank\.csv is empty \(only whitespace\)"),
        ("model.jsonl", b"PK\x03\x04\x00\x00binary", "looks binary"),
        ("latin.csv", "question,answer\ncaf\u00e9?,1\n".encode("latin-1"), "not UTF-8 text"),
        (
            "dupes.jsonl",
            jsonl(
                {"question": "a", "answer": 1, "id": "x"}, {"question": "b", "answer": 2, "id": "x"}
            ).encode(),
            "line 2: duplicate id 'x'",
        ),
    ],
)
def test_upload_rejects_unusable_files(tmp_path, name, content, message):
    with pytest.raises(ValueError, match=message):
        load_user_dataset(write(tmp_path / name, content))


def test_upload_size_limit_and_missing_file(tmp_path):
    path = write(tmp_path / "big.jsonl", jsonl(*[{"question": "q?", "answer": "1"}] * 10))
    with pytest.raises(ValueError, match=r"big\.jsonl is \d+ bytes, over the limit of 50 bytes"):
        load_user_dataset(path, max_bytes=50)
    assert len(load_user_dataset(path)) == 10
    with pytest.raises(ValueError, match="no such file"):
        load_user_dataset(tmp_path / "missing.jsonl")


def test_missing_json_field_lists_the_fields_found(tmp_path):
    path = write(tmp_path / "fields.jsonl", jsonl({"prompt": "q?", "target": "1"}))
    with pytest.raises(
        ValueError, match="missing column 'question'; columns found: prompt, target"
    ):
        load_user_dataset(path)


def problems_file(problems: list[Problem], path: Path) -> Path:
    return write(path, jsonl(*(dataclasses.asdict(p) for p in problems)))


def test_problem_rows_read_back_with_their_ids(tmp_path):
    problems = generate("arithmetic", 20, seed=2, difficulty="hard")
    again = load_user_dataset(problems_file(problems, tmp_path / "set.jsonl"))
    assert [(p.id, p.question, p.answer, p.solution) for p in again] == [
        (p.id, p.question, p.answer, p.solution) for p in problems
    ]


# ---------------------------------------------------------------- load_problems


def test_load_problems_from_every_dataset(gsm8k_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("MATHTUTOR_GSM8K_DIR", str(gsm8k_dir))
    generated = {"inequalities", "arithmetic", "two-step"}
    assert set(DATASETS) == {"gsm8k", "gsm8k-socratic", "upload", "hub"} | generated
    assert set(data.GENERATED) == generated == set(generators.KINDS)
    five = load_problems("gsm8k", num_samples=5, seed=1)
    assert five == sample(load_gsm8k("test"), 5, seed=1)
    assert len(load_problems("gsm8k", split="train")) == 7473
    assert load_problems("gsm8k-socratic", num_samples=3)[0].id.startswith("gsm8k-socratic-test-")
    assert len(load_problems("inequalities")) == data.GENERATED_SIZES["test"]
    upload = problems_file(numbered(4), tmp_path / "up.jsonl")
    assert [p.id for p in load_problems("upload", path=upload, num_samples=4, seed=0)] == [
        p.id for p in sample(numbered(4), 4, seed=0)
    ]


def test_generated_train_and_test_never_overlap():
    for kind in data.GENERATED:
        train = load_problems(kind, split="train", num_samples=300, seed=0, difficulty="easy")
        test = load_problems(kind, split="test", num_samples=100, seed=0, difficulty="easy")
        assert not {p.question for p in train} & {p.question for p in test}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dataset": "mnist"}, "unknown dataset 'mnist': expected one of gsm8k, gsm8k-socratic"),
        ({"dataset": "upload"}, "dataset 'upload' needs path"),
        ({"dataset": "arithmetic", "split": "dev"}, "split must be 'train' or 'test', got 'dev'"),
    ],
)
def test_load_problems_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_problems(**kwargs)
