"""Grounded tutoring on real GSM8K socratic problems: hints from the solution's own steps,
first-wrong-step feedback on perturbed student working. Pure functions, no model."""

from __future__ import annotations

import json
import random
from fractions import Fraction

import pytest

from mathtutor import generators, grounding
from mathtutor.answers import parse_number, reference_answer
from mathtutor.hints import next_hint, reveals_answer

JANET = (
    "How many eggs does Janet sell? ** Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n"
    "How much does Janet make at the farmers' market? ** She makes 9 * 2 = $<<9*2=18>>18 every "
    "day at the farmer’s market.\n#### 18"
)


@pytest.fixture(scope="module")
def socratic(gsm8k_dir) -> list[dict]:
    lines = (gsm8k_dir / "test_socratic.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines[:300]]


def annotation_results(solution: str) -> list[Fraction]:
    """The `<<a=b>>` results in order, read independently of grounding (plain string split)."""
    results = []
    for chunk in solution.split("####")[0].split("<<")[1:]:
        expression, result = chunk.split(">>")[0].rsplit("=", 1)
        if any(op in expression.strip().lstrip("-") for op in "+-*/("):
            results.append(Fraction(parse_number(result)))
    return results


def test_grounded_hints_are_the_reference_steps_and_hide_the_answer(socratic):
    checked = 0
    for row in socratic:
        question, solution = row["question"], row["answer"]
        steps = grounding.reference_steps(solution)
        if not steps:  # algebra ("Let X be ...") has no arithmetic step: model hints
            continue
        values = iter(s.value for s in steps)  # every annotation, in order (a plain equation
        assert all(r in values for r in annotation_results(solution)), question[:60]  # also counts)
        answer = reference_answer(solution)
        shown: list[str] = []
        for index in range(len(steps)):
            hint = next_hint(None, question, shown, solution=solution)
            assert hint.source == "grounded" and hint.step == steps[index]
            assert not reveals_answer(hint.text, answer, question), (question[:60], hint.text)
            later = grounding.hidden_values(steps, index, question)
            assert not grounding.numbers_in(hint.text) & later, hint.text
            shown.append(hint.text)
        done = next_hint(None, question, shown, solution=solution)
        assert done.source == "done" and not reveals_answer(done.text, answer, question)
        checked += len(steps)
    assert checked > 600


def test_socratic_sub_questions_become_the_hints():
    steps = grounding.reference_steps(JANET)
    first = grounding.grounded_hint(steps, 0, "Janet's ducks lay 16 eggs per day ...")
    assert first.text == "How many eggs does Janet sell? Use 16, 3 and 4."
    second = grounding.grounded_hint(steps, 1, "")
    assert second.text.startswith("How much does Janet make") and "18" not in second.text
    with pytest.raises(ValueError, match="hint number"):
        grounding.grounded_hint(steps, 2, "")


def test_main_and_generator_solutions_are_grounded_too(gsm8k_dir):
    row = json.loads((gsm8k_dir / "train.jsonl").open().readline())  # Natalia's clips
    steps = grounding.reference_steps(row["answer"])
    assert [s.result for s in steps] == ["24", "72"]
    hint = grounding.grounded_hint(steps, 0, row["question"])
    assert hint.text == "Natalia sold 48 ÷ 2 = ___ clips in May. What number goes in the blank?"
    for seed in range(20):
        problem = generators.random_problem("arithmetic", "medium", random.Random(seed))
        steps = grounding.reference_steps(problem.solution)
        assert steps and steps[-1].value == Fraction(parse_number(problem.answer))
        for index in range(len(steps) - 1):
            text = grounding.grounded_hint(steps, index, problem.question).text
            assert not reveals_answer(text, problem.answer, problem.question), text


def test_first_wrong_step_points_at_the_changed_step(socratic):
    rng = random.Random(0)
    cases = hits = clean = 0
    for row in socratic:
        steps = grounding.reference_steps(row["answer"])
        if len(steps) < 2:
            continue
        changed = rng.randrange(len(steps))
        working = grounding.student_working(steps, changed, rng.choice(("slip", "operand")))
        feedback = grounding.first_wrong_step(working, steps, row["question"])
        cases += 1
        if feedback.departs_at is not None and feedback.reference_index == changed:
            line = working.count("\n", 0, feedback.student_steps[feedback.departs_at].start)
            hits += line == changed
        clean += grounding.first_wrong_step(grounding.student_working(steps), steps).on_track
    # misses: a wrong value that equals another step's, GSM8K quirks such as <<30/100%1000=300>>
    assert cases >= 200 and hits / cases >= 0.85, (hits, cases)
    assert clean / cases >= 0.95, (clean, cases)  # the unchanged working is rarely blamed


def test_feedback_names_the_step_not_later_ones():
    steps = grounding.reference_steps(JANET)
    slip = grounding.first_wrong_step("16 - 3 - 4 = 10\n10 * 2 = 20", steps)
    assert (slip.departs_at, slip.reference_index) == (0, 0)
    assert "**step 1** of 2" in slip.message and "How many eggs does Janet sell?" in slip.message
    assert "the solution gets **9**" in slip.message and "should be **9**" in slip.message
    assert "18" not in slip.message  # the later step (the answer) stays hidden
    wrong = grounding.first_wrong_step("16 - 3 - 4 = 9\n9 * 3 = 27", steps)
    assert (wrong.departs_at, wrong.reference_index) == (1, 1) and "`9 * 3 = 27`" in wrong.message
    assert "18" not in wrong.message and wrong.slips == ()  # right sums, wrong step
    merged = grounding.first_wrong_step("16-3=13, 13-4=9, 9*2=18", steps)
    assert merged.on_track and "matches all 2 steps" in merged.message
    early = grounding.first_wrong_step("16 - 3 - 4 = 9", steps)
    assert (
        early.reference_index == 1 and early.departs_at is None and "stops before" in early.message
    )


def test_decimals_without_a_leading_zero_are_numbers():
    steps = grounding.reference_steps(
        "What part comes in? ** .6 * .5 = <<.6*.5=.3>>.3\n"
        "What part stays? ** .3 * .8 = <<.3*.8=.24>>.24\n#### .24"
    )
    assert grounding.operands(steps[1].expression) == (Fraction(3, 10), Fraction(4, 5))
    assert grounding.student_working(steps, 0, "operand") == "1.6 * .5 = 0.8\n0.8 * .8 = 0.64"
    wrong = grounding.first_wrong_step("1.6 * .5 = 0.8\n0.8 * .8 = 0.64", steps)
    assert (wrong.departs_at, wrong.reference_index) == (0, 0)
    assert grounding.numbers_in("$.50 each, .3 of 2/3") == {Fraction(1, 2), Fraction(3, 10),
                                                            Fraction(2, 3)}  # fmt: skip
    revealing = grounding.reference_steps(
        "Is it .3 of the class? ** .6 * .5 = <<.6*.5=.3>>.3\n"
        "What part stays? ** .3 * .8 = <<.3*.8=.24>>.24\n#### .24"
    )
    hint = grounding.grounded_hint(revealing, 0, ".6 come in, .5 stay, .8 are done").text
    assert hint == "Is it ___ of the class? What number goes in the blank?"  # result hidden


def test_a_shortcut_that_reaches_a_later_value_is_accepted():
    """2*200+100 = 500, 200+500 = 700 (GSM8K test): 3*200+100 is the total by a valid
    shortcut, so only the step after it is extra."""
    steps = grounding.reference_steps(
        "Smith? ** 2*200+100=<<2*200+100=500>>500\nTotal? ** 200+500=<<200+500=700>>700\n#### 700"
    )
    shortcut = grounding.first_wrong_step("3 * 200 + 100 = 700\n200 + 700 = 900", steps)
    assert (shortcut.departs_at, shortcut.reference_index) == (1, None)
    assert "`200 + 700 = 900` is not one the solution needs" in shortcut.message


def test_rephrasing_that_changes_or_reveals_a_number_is_discarded():
    steps = grounding.reference_steps(JANET)
    hint = grounding.grounded_hint(steps, 0, "16 eggs, 3 for breakfast, 4 for muffins")
    problem = "16 eggs, 3 for breakfast, 4 for muffins"
    assert grounding.safe_rephrasing(
        "How many eggs are left to sell after 3 and 4?", hint, steps, problem
    )
    assert not grounding.safe_rephrasing("Janet sells 9 eggs, right?", hint, steps, problem)
    assert not grounding.safe_rephrasing("How many of the 17 eggs?", hint, steps, problem)
    assert not grounding.safe_rephrasing(
        "How many eggs are left to sell after", hint, steps, problem
    )


def test_an_uploaded_problem_with_a_solution_is_grounded(tmp_path):
    from mathtutor import data

    row = {
        "question": "Tom has 3 boxes of 12 pens and gives away 5 pens. How many pens are left?",
        "answer": "31",
        "solution": "Tom has 3 * 12 = <<3*12=36>>36 pens.\nHe keeps 36 - 5 = <<36-5=31>>31.\n#### 31",
    }
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps(row) + "\n")
    (problem,) = data.load_user_dataset(path)
    steps = grounding.reference_steps(problem.solution)
    assert [s.result for s in steps] == ["36", "31"]
    hint = next_hint(None, problem.question, [], solution=problem.solution)
    assert hint.source == "grounded" and "36" not in hint.text and "31" not in hint.text
    feedback = grounding.first_wrong_step("3 * 12 = 36\n36 - 6 = 30", steps, problem.question)
    assert (feedback.departs_at, feedback.reference_index) == (1, 1)
