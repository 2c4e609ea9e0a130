"""The Tutor's practice set: a file or a Hub dataset id mapped by `tables.ColumnMapping`, drawn
one row at a time; grounded hints from a row's solution, instant checks in the row's answer
type, and one-line errors naming what was wrong. The handlers are the real tab handlers.

    pytest tests/test_practice.py
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
from pathlib import Path

import gradio as gr
import pytest

from mathtutor import hints, practice, tables, verdicts
from mathtutor.tables import ColumnMapping, TableSource
from tests import hub_server as test_hub
from tests.hub_server import dataset_card, parquet_bytes

hub, hub_server, hub_datasets = test_hub.hub, test_hub.hub_server, test_hub.hub_datasets

ROWS = [
    {
        "Body": "Janet's ducks lay 16 eggs per day. She eats 3 and bakes with 4.",
        "Question": "She sells the rest at $2 each. How much does she make?",
        "Answer": "18",
        "Solution": "How many eggs does Janet sell? ** 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\n"
        "How much does she make? ** 9 * 2 = $<<9*2=18>>18\n#### 18",
    },
    {
        "Body": "Ann has 10 pens and gives away 4.",
        "Question": "How many pens are left?",
        "Answer": "6",
        "Solution": "",
    },
]
TEMPLATE = "{Body} {Question}"
JANET = f"{ROWS[0]['Body']} {ROWS[0]['Question']}"
CHOICE_ROWS = [
    {"q": "Which is half of 8?", "A": "2", "B": "4", "C": "6", "gold": "B"},
    {"q": "Which is twice 3?", "A": "6", "B": "5", "C": "9", "gold": "A"},
]
LATEX_ROWS = [{"problem": "Simplify 1/sqrt(2).", "answer": "\\frac{\\sqrt{2}}{2}"}]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_csv(path: Path, rows: list[dict], columns: list[str] | None = None) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns or list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(autouse=True)
def fresh_tables():
    tables.clear_cache()
    yield
    tables.clear_cache()


def mapping(**changes) -> ColumnMapping:
    fields = {"question_template": TEMPLATE, "answer_field": "Answer", "solution_field": "Solution"}
    return ColumnMapping(**(fields | changes))


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_two_question_columns_and_a_template(tmp_path, kind):
    path = (write_jsonl if kind == "jsonl" else write_csv)(tmp_path / f"set.{kind}", ROWS)
    opened = practice.open_set(TableSource(path=str(path)), mapping())
    assert opened.num_rows == 2 and opened.mapping.answer_type == "number"
    shown = opened.markdown()
    assert f"upload:set.{kind}**: 2 rows" in shown and "`Body`, `Question`" in shown
    assert JANET in shown and "18" not in shown.replace(JANET, "")  # no answers in the preview
    drawn = {practice.draw(opened, seed).question for seed in range(12)}
    assert drawn == {JANET, f"{ROWS[1]['Body']} {ROWS[1]['Question']}"}
    problem = next(practice.draw(opened, s) for s in range(12) if practice.draw(opened, s).solution)
    assert (problem.answer, problem.answer_type) == ("18", "number")


def test_a_row_with_a_solution_is_tutored_from_it(tmp_path):
    opened = practice.open_set(
        TableSource(path=str(write_jsonl(tmp_path / "s.jsonl", ROWS))), mapping()
    )
    problem = next(p for p in (practice.draw(opened, s) for s in range(12)) if p.solution)
    assert hints.is_grounded(problem.solution)
    first = hints.next_hint(None, problem.question, [], solution=problem.solution)  # no model
    assert first.source == "grounded" and first.text.startswith("How many eggs does Janet sell?")
    assert "18" not in first.text
    check = verdicts.check_answer(
        None, problem.question, "27", problem.answer, "16 - 3 - 4 = 9\n9 * 3 = 27",
        solution=problem.solution,
    )  # fmt: skip
    assert check.status == "incorrect" and "**step 2** of 2" in check.message
    right = verdicts.check_answer(None, problem.question, "18", problem.answer)
    assert right.status == "correct" and "✅ Correct!" in right.message


def test_a_missing_column_names_the_columns_found(tmp_path):
    source = TableSource(path=str(write_jsonl(tmp_path / "s.jsonl", ROWS)))
    with pytest.raises(ValueError) as caught:
        practice.open_set(source, mapping(question_template="{Body} {Prompt}"))
    message = str(caught.value)
    assert message == (
        "question_template: upload:s.jsonl has no column 'Prompt'; columns found: Body, "
        "Question, Answer, Solution"
    )


def test_bad_inputs_are_one_line_errors_naming_what_was_wrong(tmp_path, monkeypatch):
    import datasets.config

    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"Body": "x", \n not json at all\n', encoding="utf-8")
    empty = write_csv(tmp_path / "empty.csv", [], ["Body", "Question", "Answer"])
    blank = write_jsonl(tmp_path / "blank.jsonl", [{"Body": "a", "Question": "b", "Answer": ""}])
    outside = Path(tempfile.mkdtemp(prefix="mathtutor-outside-"))
    try:
        write_jsonl(outside / "secret.jsonl", ROWS)
        monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # the suite's default
        cases = [
            (TableSource(path=str(broken)), r"broken\.jsonl: could not be read as json"),
            (TableSource(path=str(empty)), r"empty\.csv holds no rows"),
            (TableSource(path=str(blank)), r"row 0: column 'Answer' is missing or empty"),
            (TableSource(path=str(outside / "secret.jsonl")), r"path: .* is outside the allowed"),
            (TableSource(hub_id="nobody/nothing-here"), r"hub_id 'nobody/nothing-here'.*offline"),
        ]
        for source, expected in cases:
            with pytest.raises(ValueError, match=expected) as caught:
                practice.open_set(source, mapping(solution_field=""))
            assert "\n" not in str(caught.value), str(caught.value)
            assert "Janet" not in str(caught.value)  # never the content of a refused file
    finally:
        shutil.rmtree(outside)
    with pytest.raises(ValueError, match="question_template is 301 characters, over 300"):
        practice.form_settings(None, {"hub_id": "a/b", "question_template": "{x}" + "y" * 298})
    with pytest.raises(ValueError, match="answer_field: expected text, got int"):
        practice.form_settings(None, {"hub_id": "a/b", "answer_field": 3})


def test_choice_latex_and_exact_answers_are_checked_instantly_in_their_type(tmp_path):
    path = write_jsonl(tmp_path / "choices.jsonl", CHOICE_ROWS)
    opened = practice.open_set(
        TableSource(path=str(path)), ColumnMapping("{q}", "gold", choices_field="A,B,C")
    )
    assert opened.mapping.answer_type == "choice"
    problem = next(p for p in (practice.draw(opened, s) for s in range(12)) if "half" in p.question)
    assert problem.question.endswith("A. 2\nB. 4\nC. 6") and problem.answer == "B"

    def status(answer: str, reference: str, kind: str, choices=(), **kwargs) -> verdicts.Verdict:
        return verdicts.check_answer(
            None, problem.question, answer, reference, answer_type=kind, choices=choices, **kwargs
        )

    assert [status(a, "B", "choice", problem.choices).status for a in ("b", "(B)", "4", "A")] == [
        "correct", "correct", "correct", "incorrect",
    ]  # fmt: skip
    unread = status("banana", "B", "choice", problem.choices)
    assert unread.status == "unreadable" and "letter of your choice" in unread.message
    revealed = status("", "B", "choice", problem.choices, reveal=True)
    assert "The answer is **B** (4)." in revealed.message

    latex = practice.open_set(
        TableSource(path=str(write_jsonl(tmp_path / "latex.jsonl", LATEX_ROWS))),
        ColumnMapping("{problem}", "answer"),
    )
    problem = practice.draw(latex, 0)
    assert problem.answer_type == "latex"  # inferred, as Evaluate infers it
    answers = [
        ("\\dfrac{\\sqrt2}{2}", "correct"),
        ("\\frac{1}{\\sqrt{2}}", "correct"),
        ("1/2", "incorrect"),
    ]
    for answer, expected in answers:
        assert status(answer, problem.answer, "latex").status == expected, answer
    assert status("The Riemann  hypothesis.", "the riemann hypothesis", "exact").is_correct
    assert status("Euler", "the riemann hypothesis", "exact").status == "incorrect"


def last(frames):
    *_, final = frames
    return final


def test_practice_through_the_tab_handlers(tmp_path):
    """Open a set, get a problem from it, ask a hint and check an answer: all instant."""
    from mathtutor.ui import practice as practice_tab
    from mathtutor.ui import tutor as tab

    path = write_csv(tmp_path / "set.csv", ROWS)
    request = gr.Request(session_hash="practice")
    settings = {
        "question_template": TEMPLATE,
        "answer_field": "Answer",
        "solution_field": "Solution",
    }
    described = practice_tab.describe_practice("upload", str(path), {}, request)  # just uploaded
    assert "**upload:set.csv**: 2 rows" in described and "no column 'question'" in described
    assert "columns found: Body, Question, Answer, Solution" in described
    assert "press **Use this set**" in practice_tab.describe_practice("upload", str(path), settings)
    opened = practice_tab.open_practice("upload", str(path), settings, request)
    preview, leave = practice_tab.shown(opened)
    assert "2 rows" in preview and leave.visible and not practice_tab.shown(None)[1].visible
    with pytest.raises(gr.Error, match="no column 'Prompt'; columns found: Body, Question"):
        practice_tab.open_practice(
            "upload", str(path), {**settings, "question_template": "{Prompt}"}, request
        )
    with pytest.raises(gr.Error, match="Upload a JSONL / JSON / CSV / Parquet file first"):
        practice_tab.open_practice("upload", None, settings, request)

    for _ in range(50):
        problem, known, solution, *_ = tab.pick_problem("easy", opened)
        if problem == JANET:
            break
    assert problem == JANET and solution == "" and known["reference"] == "18"
    spec = "never-loaded"  # a known answer and solution: no model is needed for any of this
    args = (spec, "base", problem, known)
    hint_md, *_ = last(tab.give_hint(*args, [], None, True, 3, request=request))
    assert "How many eggs does Janet sell?" in hint_md
    verdict, _, status, _ = last(tab.check(*args, "17", "", None, True, 3, request=request))
    assert "Not yet" in verdict and "known answer" in status
    verdict, *_ = last(tab.check(*args, "18", "", None, True, 3, request=request))
    assert "✅ Correct!" in verdict
    shown, *_ = last(tab.show_solution(spec, "base", problem, True, known, request=request))
    assert "Worked solution from the problem's source" in shown and "18" in shown

    # multiple choice: graded as a choice, not as a number
    choices = write_jsonl(tmp_path / "choices.jsonl", CHOICE_ROWS)
    opened = practice_tab.open_practice(
        "upload", str(choices), {"question_template": "{q}", "answer_field": "gold",
                                 "choices_field": "A,B,C"}, request,
    )  # fmt: skip
    problem, known, *_ = tab.pick_problem("easy", opened)
    args = (spec, "base", problem, known)
    right = known["reference"]
    verdict, *_ = last(tab.check(*args, right.lower(), "", None, True, 3, request=request))
    assert "✅ Correct!" in verdict
    assert tab.pick_problem("easy", None)[1]["reference"]  # closed: generated problems again


def test_a_hub_dataset_id_as_the_practice_set(hub_datasets):
    hub_datasets.add_repo(
        "alice/practice",
        {
            "README.md": dataset_card({"default": {"test": "data/test-*.parquet"}}),
            "data/test-00000-of-00001.parquet": parquet_bytes(ROWS),
        },
    )
    source, columns = practice.form_settings(
        None,
        {"hub_id": "alice/practice", "split": "", "question_template": TEMPLATE,
         "answer_field": "Answer", "solution_field": "Solution"},
    )  # fmt: skip
    opened = practice.open_set(source, columns)
    assert opened.label == "alice/practice:test" and opened.num_rows == 2
    assert practice.draw(opened, 0).source == "alice/practice:test"
    with pytest.raises(ValueError, match="alice/practice:validation"):
        practice.open_set(TableSource("alice/practice", split="validation"), columns)


def test_a_model_hint_never_states_a_text_answer():
    """A row without a solution gets model hints; an exact answer is hidden like a number."""
    problem = "Name the mathematician who proved Fermat's last theorem."
    hint = "Think of a British mathematician. Was it Andrew Wiles?"
    assert hints.check_model_hint(hint, problem, [], "Andrew Wiles") == (
        "Think of a British mathematician."
    )
    assert hints.reveals_answer("Who was Euler?", "Euler", "Was it Euler or Gauss?") is False
