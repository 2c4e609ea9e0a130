"""Any dataset: Hub ids through `datasets.load_dataset` against the test Hub, local files,
column templates, multiple choice, answer-type inference, presets and the offline error."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest

from mathtutor import tables
from mathtutor.data import load_problems, sample
from mathtutor.evaluate import EvalConfig
from mathtutor.tables import ColumnMapping, TableSource, infer_answer_type, load_table, preview
from tests import hub_server as test_hub
from tests.hub_server import dataset_card, free_port_url, jsonl_bytes, parquet_bytes

hub, hub_server, hub_datasets = test_hub.hub, test_hub.hub_server, test_hub.hub_datasets

WORDS = [
    {"Body": f"Tom has {i} apples and buys 2 more.", "Question": "How many now?", "Answer": i + 2}
    for i in range(12)
]
CHOICE_ROWS = [
    {"q": "2 + 2 = ?", "options": ["3", "4", "5"], "gold": "B", "key": "m1"},
    {"q": "Capital of France?", "options": ["Rome", "Paris"], "gold": "Paris", "key": "m2"},
]


@pytest.fixture
def words_repo(hub_datasets):
    """A Parquet dataset with two configs (main: test + train, small: test) and a JSONL one."""
    hub_datasets.add_repo(
        "alice/words",
        {
            "README.md": dataset_card(
                {
                    "main": {"test": "main/test-*.parquet", "train": "main/train-*.parquet"},
                    "small": {"test": "small/test.parquet"},
                }
            ),
            "main/test-00000-of-00001.parquet": parquet_bytes(WORDS),
            "main/train-00000-of-00001.parquet": parquet_bytes(WORDS[:5]),
            "small/test.parquet": parquet_bytes(WORDS[:2]),
        },
    )
    hub_datasets.add_repo(
        "alice/choices",
        {
            "README.md": dataset_card({"default": {"validation": "data/validation.jsonl"}}),
            "data/validation.jsonl": jsonl_bytes(CHOICE_ROWS),
        },
    )
    return hub_datasets


def test_hub_parquet_configs_and_splits(words_repo):
    table = load_table(TableSource("alice/words", "main", "test"))
    assert table.columns == ("Body", "Question", "Answer") and table.num_rows == 12
    assert load_table(TableSource("alice/words", "main", "train")).num_rows == 5
    assert load_table(TableSource("alice/words", "small", "test")).num_rows == 2
    assert any(path.startswith("/api/datasets/alice/words") for _, path, _ in words_repo.requests)


def test_two_column_template_through_load_problems(words_repo):
    mapping = ColumnMapping("{Body} {Question}", "Answer")
    problems = load_problems(
        "hub", "test", hub_id="alice/words", hub_config="main", mapping=mapping
    )
    assert len(problems) == 12
    first = problems[0]
    assert first.question == "Tom has 0 apples and buys 2 more. How many now?"
    assert first.answer == "2" and first.answer_type == "number"
    assert first.id == "alice/words:main/test-0"
    drawn = load_problems(
        "hub", "test", num_samples=4, seed=3, hub_id="alice/words", hub_config="main",
        mapping=mapping,
    )  # fmt: skip
    assert drawn == sample(problems, 4, seed=3)  # the same draw as every other dataset


def test_table_is_loaded_once_per_source(words_repo):
    source = TableSource("alice/words", "main", "test")
    load_table(source)
    before = len(words_repo.requests)
    assert load_table(source).num_rows == 12
    assert len(words_repo.requests) == before  # the second call is served from memory


def test_revision_reads_that_branch(words_repo):
    words_repo.add_repo(
        "alice/words",
        {"main/test-00000-of-00001.parquet": parquet_bytes(WORDS[:3])},
        branch="v2",
    )
    assert load_table(TableSource("alice/words", "main", "test", "v2")).num_rows == 3
    assert load_table(TableSource("alice/words", "main", "test")).num_rows == 12


def test_missing_template_column_is_named_with_the_columns_found(words_repo):
    mapping = ColumnMapping("{Body} {Prompt}", "Answer")
    with pytest.raises(
        ValueError, match=r"no column 'Prompt'; columns found: Body, Question, Answer"
    ):
        load_problems("hub", "test", hub_id="alice/words", hub_config="main", mapping=mapping)
    shown = preview(TableSource("alice/words", "main", "test"), mapping)
    assert shown.columns == ("Body", "Question", "Answer") and "Prompt" in shown.error
    assert "`Body`" in shown.markdown() and "⚠️" in shown.markdown()


def test_preview_maps_three_rows(words_repo):
    shown = preview(
        TableSource("alice/words", "main", "test"), ColumnMapping("{Body} {Question}", "Answer")
    )
    assert shown.num_rows == 12 and shown.answer_type == "number" and not shown.error
    assert [p.answer for p in shown.problems] == ["2", "3", "4"]
    assert "12 rows" in shown.markdown() and "How many now?" in shown.markdown()


def test_unknown_split_config_and_repo_are_one_line_errors(words_repo):
    for source, needle in (
        (TableSource("alice/words", "main", "dev"), "dev"),
        (TableSource("alice/words", "large", "test"), "large"),
        (TableSource("alice/nothing", "", "test"), "alice/nothing"),
    ):
        with pytest.raises(ValueError, match=needle) as caught:
            load_table(source)
        assert "\n" not in str(caught.value)


def test_offline_is_a_clear_one_line_error(hub_datasets, monkeypatch):
    import datasets.config
    from huggingface_hub import constants

    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", free_port_url())  # nothing listens
    monkeypatch.setattr(constants, "ENDPOINT", datasets.config.HF_ENDPOINT)
    monkeypatch.setenv("HF_ENDPOINT", datasets.config.HF_ENDPOINT)
    with pytest.raises(ValueError, match=r"not reachable from here \(offline\)") as caught:
        load_table(TableSource("cais/hle", "", "test"))
    assert "\n" not in str(caught.value)


def test_preset_against_its_hub_id_offline(monkeypatch):
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # the suite's default
    tables.clear_cache()
    config = EvalConfig(preset="hle")
    assert (config.hub_id, config.prompt_format, config.answer_type) == ("cais/hle", "hle", "exact")
    with pytest.raises(ValueError, match=r"hub_id 'cais/hle'.*offline") as caught:
        load_problems("hub", "test", hub_id=config.hub_id, mapping=config.mapping())
    assert "\n" not in str(caught.value)


def test_preset_runs_against_the_named_hub_id(hub_datasets):
    rows = [{"problem": "Find $x$ if $x + 1 = 3$.", "answer": "2", "id": "p1"}]
    hub_datasets.add_repo("math-ai/aime25", {"test.jsonl": jsonl_bytes(rows)})
    config = EvalConfig(preset="aime-2025", num_samples=1)
    assert config.max_new_tokens == 4000 and config.prompt_format == "qwen-boxed"
    problems = load_problems(
        "hub", config.split, num_samples=1, hub_id=config.hub_id, mapping=config.mapping()
    )
    assert problems[0].question.startswith("Find $x$") and problems[0].answer == "2"


def test_multiple_choice_list_column(words_repo):
    mapping = ColumnMapping("{q}", "gold", id_field="key", choices_field="options")
    problems = load_problems("hub", "validation", hub_id="alice/choices", mapping=mapping)
    assert [p.id for p in problems] == ["m1", "m2"]
    assert problems[0].answer_type == "choice" and problems[0].choices == ("3", "4", "5")
    assert problems[0].question == "2 + 2 = ?\n\nA. 3\nB. 4\nC. 5"
    assert problems[1].answer == "B"  # the gold given as the choice's text


def test_lettered_choice_columns_in_a_csv_file(mathtutor_home):
    path = Path(mathtutor_home) / "mc.csv"
    path.write_text("stem,A,B,C,D,correct\nWhich is prime?,4,6,7,9,C\nHalf of 8?,2,4,6,8,B\n")
    mapping = ColumnMapping("{stem}", "correct", choices_field="A,B,C,D")
    problems = load_problems("upload", path=path, mapping=mapping)
    assert problems[0].choices == ("4", "6", "7", "9") and problems[0].answer == "C"
    bad = ColumnMapping("{stem}", "correct", choices_field="A,B,E")
    with pytest.raises(ValueError, match=r"choices_field: .* no column 'E'"):
        load_problems("upload", path=path, mapping=bad)


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".parquet"])
def test_local_files_through_the_same_loader(mathtutor_home, suffix):
    rows = [{"context": "A box holds 4 pens.", "ask": "How many in 3 boxes?", "sol": "12"}]
    path = Path(mathtutor_home) / f"local{suffix}"
    if suffix == ".parquet":
        path.write_bytes(parquet_bytes(rows))
    elif suffix == ".json":
        path.write_text(json.dumps(rows))
    elif suffix == ".csv":
        path.write_text("context,ask,sol\nA box holds 4 pens.,How many in 3 boxes?,12\n")
    else:
        path.write_bytes(jsonl_bytes(rows))
    mapping = ColumnMapping("{context} {ask}", "sol")
    (problem,) = load_problems("upload", path=path, mapping=mapping)
    assert problem.question == "A box holds 4 pens. How many in 3 boxes?" and problem.answer == "12"


def test_files_outside_the_allowed_folders_are_refused():
    outside = Path(tempfile.mkdtemp(prefix="mathtutor-outside-")) / "x.parquet"  # no root
    outside.write_bytes(parquet_bytes([{"question": "q", "answer": 1}]))
    try:
        with pytest.raises(ValueError, match=r"path: .* outside the allowed folders"):
            load_table(TableSource(path=str(outside)))
        with pytest.raises(ValueError, match=r"path: .* outside the allowed folders"):
            load_problems("upload", path=outside, mapping=ColumnMapping("{question}", "answer"))
    finally:
        shutil.rmtree(outside.parent)


def test_mapping_validation():
    with pytest.raises(ValueError, match="names no column"):
        ColumnMapping("What is it?", "answer")
    with pytest.raises(ValueError, match="not a plain column name"):
        ColumnMapping("{0}", "answer")
    with pytest.raises(ValueError, match="not a plain column name"):
        ColumnMapping("{a.__class__}", "answer")
    with pytest.raises(ValueError, match="answer_type 'words'"):
        ColumnMapping("{q}", "a", answer_type="words")
    assert ColumnMapping("{{literal}} {q}", "a").template_fields == ("q",)
    with pytest.raises(ValueError, match="hub_id"):
        TableSource("../etc/passwd", "", "test")
    with pytest.raises(ValueError, match="split"):
        TableSource("alice/words", "", "test[:10]")


def test_answer_type_inference():
    assert infer_answer_type(["12", "1,000", "#### 7"]) == "number"
    assert infer_answer_type(["\\frac{1}{2}", "\\sqrt{2}"]) == "latex"
    assert infer_answer_type(["x+1", "3"]) == "latex"
    assert infer_answer_type(["Paris", "the Riemann hypothesis"]) == "exact"
    assert infer_answer_type(["A"], has_choices=True) == "choice"


def test_non_number_answer_of_a_number_dataset_is_named():
    with pytest.raises(ValueError, match=r"column 'a' is not a number \('Paris'\)"):
        ColumnMapping("{q}", "a", answer_type="number").problem({"q": "x", "a": "Paris"}, 0, "s")


def test_evaluate_on_a_hub_dataset_with_stated_confidence(
    words_repo, tiny_model_dir, tmp_path, monkeypatch
):
    from mathtutor import store
    from mathtutor.evaluate import evaluate

    monkeypatch.setenv("MATHTUTOR_HOME", str(tmp_path / "home"))
    config = EvalConfig(
        model=str(tiny_model_dir), dataset="hub", hub_id="alice/words", hub_config="main",
        question_template="{Body} {Question}", answer_field="Answer", answer_type="exact",
        prompt_format="hle", num_samples=3, max_new_tokens=6, batch_size=3,
    )  # fmt: skip
    report = evaluate(config)
    records = store.load_records(report.run_id)
    assert len(records) == 3 and all(r["answer_type"] == "exact" for r in records)
    assert all("confidence" in r for r in records)
    assert records[0]["question"].endswith("How many now?")
    base = report.summary.systems["base"]
    assert base.stated_n == 3 and base.confidence_missing == sum(
        r["confidence"] is None for r in records
    )
    assert report.summary.grader == "exact" and report.summary.answer_type == "exact"
    stored = store.get_eval_run(report.run_id)["config"]
    assert stored["hub_id"] == "alice/words" and stored["question_template"] == "{Body} {Question}"


def test_train_reads_a_hub_dataset_through_the_same_mapping(words_repo):
    from training.config import TrainConfig
    from training.data import grpo_rows, load_training_problems

    config = TrainConfig(
        dataset="hub", hub_id="alice/words", hub_config="main", hub_split="train",
        question_template="{Body} {Question}", answer_field="Answer", val_fraction=0.0,
    )  # fmt: skip
    train, _ = load_training_problems(config)
    assert len(train) == 5 and train[0].question.endswith("buys 2 more. How many now?")
    row = grpo_rows(train[:1], config, None)[0]
    assert row["answer_type"] == "number" and row["answer"] == "2"
    with pytest.raises(ValueError, match="question_template"):
        TrainConfig(dataset="hub", hub_id="alice/words", question_template="no columns")


def test_evaluate_and_train_tabs_preview_the_same_mapping(words_repo):
    from mathtutor.ui import evaluate as eval_tab
    from mathtutor.ui import train as train_tab
    from training.config import TrainConfig

    form = {f.name: f.default for f in eval_tab.FORM_FIELDS} | {
        "dataset": "hub", "hub_id": "alice/words", "hub_config": "main",
        "question_template": "{Body} {Question}", "answer_field": "Answer",
    }  # fmt: skip
    shown = eval_tab.preview_dataset(None, form)
    assert "12 rows" in shown and "Tom has 2 apples and buys 2 more. How many now?" in shown
    config = TrainConfig(
        dataset="hub", hub_id="alice/words", hub_config="main", hub_split="train",
        question_template="{Body} {Question}", answer_field="Answer",
    )  # fmt: skip
    trained = train_tab.columns_markdown([getattr(config, f.name) for f in train_tab.FORM_FIELDS])
    assert "5 rows" in trained and "Tom has 2 apples" in trained
    assert eval_tab.preview_dataset(None, form | {"dataset": "gsm8k"}) == ""
    assert "Type a Hub dataset id" in eval_tab.preview_dataset(None, form | {"hub_id": ""})
    assert eval_tab.preset_form("hle")["hub_id"] == "cais/hle"


def test_eval_config_checks_the_dataset_settings_by_name():
    with pytest.raises(ValueError, match="hub_id is empty"):
        EvalConfig(dataset="hub")
    with pytest.raises(ValueError, match=r"question_template '\{x': expected '\}'"):
        EvalConfig(dataset="hub", hub_id="alice/words", question_template="{x")
    with pytest.raises(ValueError, match="split 'dev': dataset 'gsm8k' has test and train"):
        EvalConfig(split="dev")
    assert EvalConfig(dataset="hub", hub_id="alice/words", split="validation").split == "validation"
    with pytest.raises(ValueError, match="preset 'mmlu' is not one of"):
        EvalConfig(preset="mmlu")
    given = EvalConfig(preset="hle", prompt_format="qwen-boxed")  # a field set away from its
    assert given.prompt_format == "qwen-boxed" and given.hub_id == "cais/hle"  # default is kept


def test_a_hub_dataset_over_the_size_limit_is_refused_before_download(words_repo, monkeypatch):
    monkeypatch.setattr(tables, "MAX_HUB_BYTES", 1000)
    with pytest.raises(ValueError, match=r"hub_id 'alice/words': its files add up to .* limit"):
        load_table(TableSource("alice/words", "main", "test"))
    downloads = [path for _, path, _ in words_repo.requests if "/resolve/" in path]
    assert not any(path.endswith(".parquet") for path in downloads)
