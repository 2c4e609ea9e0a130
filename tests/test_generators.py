"""Generated problems: answers checked by brute force / recomputation, never by the generator."""

from __future__ import annotations

import ast
import doctest
import operator
import re
from fractions import Fraction

import pytest

from mathtutor import generators
from mathtutor.generators import KINDS, generate, question_split, random_problem
from mathtutor.prompts import target

DIFFICULTIES = ("easy", "medium", "hard")
ANNOTATION = re.compile(r"<<([^<>=]+)=([^<>]+)>>")
NUMBER = re.compile(r"\d+(?:\.\d+)?")

# ---------------------------------------------------------------- independent helpers

_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def evaluate(expression: str) -> Fraction:
    """Exact value of + - * / ( ) arithmetic, written for these tests (no eval)."""

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return Fraction(ast.get_source_segment(expression, node))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](walk(node.left), walk(node.right))
        raise AssertionError(f"unexpected syntax in {expression!r}")

    return walk(ast.parse(expression, mode="eval"))


def parse_linear(text: str) -> tuple[int, int]:
    """'5x - 10' -> (5, -10); '-x' -> (-1, 0); '7' -> (0, 7)."""
    match = re.fullmatch(r"(?:(-?\d*)x)?\s*(?:([+-]?)\s*(\d+))?", text.strip())
    assert match and text.strip(), text
    coefficient_text, sign, constant_text = match.groups()
    if coefficient_text is None:
        coefficient = 0
    else:
        coefficient = {"": 1, "-": -1}.get(coefficient_text) or int(coefficient_text)
    constant = int(constant_text) * (-1 if sign == "-" else 1) if constant_text else 0
    return coefficient, constant


INEQUALITY = re.compile(
    r"For how many integers \$x\$ in the range \$\[(-?\d+), (-?\d+)\]\$ is the inequality "
    r"\$(.+?) (<|\\leq|>|\\geq) (.+?)\$ satisfied\?"
)
COMPARE = {"<": operator.lt, "\\leq": operator.le, ">": operator.gt, "\\geq": operator.ge}


def brute_force_count(question: str) -> int:
    match = INEQUALITY.fullmatch(question)
    assert match, question
    low, high, left, op, right = match.groups()
    p, q = parse_linear(left)
    r, s = parse_linear(right)
    return sum(COMPARE[op](p * x + q, r * x + s) for x in range(int(low), int(high) + 1))


def check_annotations(solution: str) -> list[Fraction]:
    """Every <<expr=result>> is right and the text after it repeats the result."""
    results = []
    for match in ANNOTATION.finditer(solution):
        expression, claimed = match.groups()
        assert evaluate(expression) == Fraction(claimed), match.group(0)
        assert solution[match.end() :].startswith(claimed), match.group(0)
        results.append(Fraction(claimed))
    return results


# ---------------------------------------------------------------- tests


def test_docstring_examples_hold():
    assert doctest.testmod(generators).failed == 0


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_inequality_answers_match_brute_force(difficulty):
    problems = generate("inequalities", 500, seed=11, difficulty=difficulty)
    flips = empty = everything = 0
    for problem in problems:
        expected = brute_force_count(problem.question)
        assert problem.answer == str(expected), problem
        assert problem.solution.endswith(f"\n#### {expected}")
        results = check_annotations(problem.solution)
        if expected > 0:
            assert results[-1] == expected, problem.solution
        flips += "sign flips" in problem.solution
        empty += expected == 0
        low, high = map(int, re.findall(r"\[(-?\d+), (-?\d+)\]", problem.question)[0])
        everything += expected == high - low + 1
    assert empty > 0 and everything > 0
    if difficulty == "easy":
        assert flips == 0  # easy keeps a positive x coefficient
    else:
        assert flips > 50


def test_inequalities_cover_every_sign_and_cancelling_sides():
    problems = generate("inequalities", 500, seed=2, difficulty="hard")
    for sign in ("<", "\\leq", ">", "\\geq"):
        assert any(f" {sign} " in p.question for p in problems), sign
    assert any("The x terms cancel" in p.solution for p in problems)


def test_inequality_target_in_boxed_style():
    problem = generate("inequalities", 1, seed=4)[0]
    text = target("qwen-boxed", problem.solution, problem.answer)
    assert text.endswith(f"\\boxed{{{problem.answer}}}$.")
    assert "####" not in text


@pytest.mark.parametrize(
    ("difficulty", "min_steps", "max_steps"), [("easy", 1, 2), ("medium", 2, 3), ("hard", 3, 5)]
)
def test_arithmetic_solutions_are_consistent(difficulty, min_steps, max_steps):
    constants = {Fraction(n) for n in (2, 3, 12, 36, 60, 100)}  # half/twice, units, percent
    for problem in generate("arithmetic", 300, seed=5, difficulty=difficulty):
        results = check_annotations(problem.solution)
        assert min_steps <= len(results) <= max_steps, problem.solution
        assert problem.solution.endswith(f"\n#### {problem.answer}")
        assert re.fullmatch(r"\d+(\.\d+)?", problem.answer), problem.answer
        assert Fraction(problem.answer) == results[-1]
        # every operand comes from the question, an earlier step, or a conversion constant
        known = {Fraction(n) for n in NUMBER.findall(problem.question)} | constants
        for match in ANNOTATION.finditer(problem.solution):
            for operand in NUMBER.findall(match.group(1)):
                assert Fraction(operand) in known, (operand, problem.question, problem.solution)
            known.add(Fraction(match.group(2)))


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_two_step_problems_take_two_whole_number_steps(difficulty):
    for problem in generate("two-step", 300, seed=2, difficulty=difficulty):
        results = check_annotations(problem.solution)
        assert len(results) == 2, problem.solution
        assert problem.solution.endswith(f"\n#### {problem.answer}")
        assert re.fullmatch(r"\d+", problem.answer), problem.answer
        assert Fraction(problem.answer) == results[-1]
        # every operand comes from the question or the first step ("twice" is the 2)
        known = {Fraction(n) for n in NUMBER.findall(problem.question)} | {Fraction(2)}
        for match in ANNOTATION.finditer(problem.solution):
            for operand in NUMBER.findall(match.group(1)):
                assert Fraction(operand) in known, (operand, problem.question, problem.solution)
            known.add(Fraction(match.group(2)))


def test_two_step_easy_keeps_operands_small_and_harder_levels_grow():
    def largest_operand(difficulty):
        return max(
            Fraction(operand)
            for p in generate("two-step", 300, seed=4, difficulty=difficulty)
            for match in ANNOTATION.finditer(p.solution)
            for operand in NUMBER.findall(match.group(1))
        )

    easy, medium, hard = (largest_operand(d) for d in DIFFICULTIES)
    assert easy <= 200 < hard  # easy: times tables and sums a 135M model can learn to do
    assert easy < medium < hard


def test_arithmetic_covers_the_reported_error_categories():
    questions = [p.question for d in DIFFICULTIES for p in generate("arithmetic", 100, 3, d)]
    for phrase in (
        "per hour",
        "minutes",
        "football field",
        "yards",
        "inches",
        "centimeters",
        "twice as many",
        "half as many",
        "% off",
        "% tip",
        "sales tax",
        "each",
    ):
        assert any(phrase in q for q in questions), phrase


def test_rate_time_and_discount_recomputed_from_the_question():
    checked = 0
    for problem in generate("arithmetic", 200, seed=9, difficulty="easy"):
        rate = re.fullmatch(
            r"A \w+ travels at (\d+) \w+ per hour\. How many \w+ does it travel in ([\d.]+) hours\?",
            problem.question,
        )
        sale = re.fullmatch(
            r"A \w+ costs \$(\d+)\. It is on sale for (\d+)% off\. What is the sale price in dollars\?",
            problem.question,
        )
        if rate:
            assert Fraction(problem.answer) == Fraction(rate[1]) * Fraction(rate[2])
        elif sale:
            price, off = Fraction(sale[1]), Fraction(sale[2])
            assert Fraction(problem.answer) == price * (100 - off) / 100
        checked += bool(rate or sale)
    assert checked > 40


def test_generation_is_deterministic_and_distinct():
    for kind in KINDS:
        first = generate(kind, 200, seed=7, difficulty="medium")
        assert first == generate(kind, 200, seed=7, difficulty="medium")
        assert first != generate(kind, 200, seed=8, difficulty="medium")
        assert len({p.question for p in first}) == 200
        assert [p.id for p in first[:2]] == [f"{kind}-7-0", f"{kind}-7-1"]
        assert first[0].source == f"generator:{kind}/medium"


def test_train_and_test_splits_never_share_a_question():
    train = generate("inequalities", 400, seed=0, difficulty="easy", split="train")
    test = generate("inequalities", 100, seed=0, difficulty="easy", split="test")
    assert not {p.question for p in train} & {p.question for p in test}
    assert {question_split(p.question) for p in train} == {"train"}
    assert {question_split(p.question) for p in test} == {"test"}
    assert test[0].id == "inequalities-test-0-0"


def test_random_problem_uses_the_given_rng():
    import random

    one = random_problem("arithmetic", "hard", random.Random(3))
    assert one == random_problem("arithmetic", "hard", random.Random(3))
    assert one.id == ""


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ("geometry", 5),
            "unknown generator kind 'geometry': expected one of inequalities, arithmetic, two-step",
        ),
        (("arithmetic", 0), "num_problems must be a positive integer, got 0"),
        (
            ("arithmetic", 5, 0, "expert"),
            "unknown difficulty 'expert': expected one of easy, medium, hard",
        ),
    ],
)
def test_bad_arguments_are_named(arguments, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        generate(*arguments)
