"""Synthetic math problems with exact answers and GSM8K-style worked solutions.

Three kinds, all deterministic for a given seed:

- ``inequalities``: the Qwen2.5-Math report's task (seed 003), "For how many integers $x$ in the
  range $[a, b]$ is the inequality $f_1(x) < f_2(x)$ satisfied?" with linear sides. The count is
  computed by solving the inequality (exact fractions), not by trying every x.
- ``arithmetic``: short word problems on the error categories the reports name: rate x time
  (seed 002's "60 miles per hour ... 1.5 hours"), unit conversion (seed 002's football fields in
  yards), "half as many" / "twice as many" (seed 001), percentages, and multi-step totals.
- ``two-step``: templated two-step word problems with small whole numbers (buy then give away,
  packs plus what was there, twice as many then together, change from a bill, a trip in two
  legs, sharing then adding). Small enough that a 135M model can learn to solve them in a few
  minutes of CPU LoRA, so the ``bundled-quick`` recipe has a task whose accuracy visibly moves;
  ``medium`` and ``hard`` scale the operands up.

Every calculation in a solution carries a GSM8K calculator annotation ``<<a*b=c>>`` and the last
line is ``#### N``. Answers are integers or terminating decimals.

>>> problem = generate("inequalities", 1, seed=3)[0]
>>> problem.solution.splitlines()[-1] == f"#### {problem.answer}"
True
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable
from fractions import Fraction

from mathtutor.problem import Problem

KINDS: dict[str, str] = {
    "inequalities": "Count the integers in [a, b] satisfying a linear inequality (seed 003).",
    "arithmetic": "Word problems: rate x time, units, half/twice as many, percentages, totals.",
    "two-step": "Two-step word problems with small whole numbers (the CPU quick-demo task).",
}
DIFFICULTIES = ("easy", "medium", "hard")

# ---------------------------------------------------------------- formatting helpers


def _num(value: Fraction | int) -> str:
    """Exact decimal text of a terminating value: 12, 12.5, -0.25."""
    value = Fraction(value)
    if value.denominator == 1:
        return str(value.numerator)
    for digits in range(1, 9):
        scaled = value * 10**digits
        if scaled.denominator == 1:
            text = f"{abs(scaled.numerator):0{digits + 1}d}"
            sign = "-" if value < 0 else ""
            return f"{sign}{text[:-digits]}.{text[-digits:]}".rstrip("0")
    raise AssertionError(f"{value} is not a terminating decimal")


def _arg(value: Fraction | int) -> str:
    """A number as an operand: negatives in parentheses so '5 - (-4)' reads right."""
    return f"({_num(value)})" if value < 0 else _num(value)


def _calc(expression: str, value: Fraction | int, prefix: str = "") -> str:
    """GSM8K style: '48 / 2 = <<48/2=24>>24' (prefix such as '$' goes before the annotation)."""
    result = _num(value)
    return f"{expression} = {prefix}<<{expression.replace(' ', '')}={result}>>{result}"


def _money(value: Fraction | int) -> str:
    value = Fraction(value)
    return f"${value.numerator}" if value.denominator == 1 else f"${float(value):.2f}"


def _linear(coefficient: int, constant: int) -> str:
    """LaTeX for coefficient*x + constant: 'x', '-3x + 2', '7'."""
    if coefficient == 0:
        return str(constant)
    x_term = {1: "x", -1: "-x"}.get(coefficient, f"{coefficient}x")
    if constant == 0:
        return x_term
    return f"{x_term} {'+' if constant > 0 else '-'} {abs(constant)}"


# ---------------------------------------------------------------- inequalities

_LATEX = {"<": "<", "<=": "\\leq", ">": ">", ">=": "\\geq"}
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}
_HOLDS: dict[str, Callable[[Fraction, Fraction], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
# (coefficient bound, constant bound, range half-width, chance that the x terms cancel)
_INEQUALITY_LEVELS = {
    "easy": (6, 20, 20, 0.0),
    "medium": (9, 20, 60, 0.05),
    "hard": (20, 60, 200, 0.1),
}


def _inequality(difficulty: str, rng: random.Random) -> tuple[str, str, Fraction]:
    max_coef, max_const, width, cancel_chance = _INEQUALITY_LEVELS[difficulty]
    if difficulty == "easy":  # positive x coefficient, constant right side, range from >= 0
        p, r = rng.randint(1, max_coef), 0
        low = rng.randint(0, 10)
        high = low + rng.randint(10, width)
    else:
        p, r = rng.randint(-max_coef, max_coef), rng.randint(-max_coef, max_coef)
        if rng.random() < cancel_chance:
            r = p
        while p == 0 and r == 0:
            p = rng.randint(-max_coef, max_coef)
        low, high = rng.randint(-width, 0), rng.randint(1, width)
    q, s = rng.randint(-max_const, max_const), rng.randint(-max_const, 2 * max_const)
    op = rng.choice(list(_LATEX))
    question = (
        f"For how many integers $x$ in the range $[{low}, {high}]$ is the inequality "
        f"${_linear(p, q)} {_LATEX[op]} {_linear(r, s)}$ satisfied?"
    )
    c, d = p - r, s - q
    lines = [
        "Move the x terms to the left side and the constants to the right side.",
        f"The coefficient of x is {_calc(f'{p} - {_arg(r)}', c)}.",
        f"The constant on the right is {_calc(f'{s} - {_arg(q)}', d)}.",
        f"So the inequality becomes {_linear(c, 0) if c else '0'} {op} {d}.",
    ]
    if c == 0:
        holds = _HOLDS[op](Fraction(0), Fraction(d))
        lines.append(
            f"The x terms cancel, and 0 {op} {d} is {'true' if holds else 'false'} for every x."
        )
        lo, hi = (low, high) if holds else (1, 0)
    else:
        bound, op_x = Fraction(d, c), (op if c > 0 else _FLIP[op])
        flip = ", which is negative, so the inequality sign flips" if c < 0 else ""
        if bound.denominator == 1:
            lines.append(
                f"Divide both sides by {c}{flip}: x {op_x} {_calc(f'{d} / {_arg(c)}', bound)}."
            )
        else:
            floor = math.floor(bound)
            lines.append(
                f"Divide both sides by {c}{flip}: x {op_x} {bound}, "
                f"and {bound} lies between {floor} and {floor + 1}."
            )
        # The integers allowed: x < t means x <= ceil(t) - 1, x <= t means x <= floor(t), etc.
        if op_x in ("<", "<="):
            top = math.ceil(bound) - 1 if op_x == "<" else math.floor(bound)
            lines.append(f"So the integers that work are x <= {top}.")
            lo, hi = low, min(high, top)
        else:
            bottom = math.floor(bound) + 1 if op_x == ">" else math.ceil(bound)
            lines.append(f"So the integers that work are x >= {bottom}.")
            lo, hi = max(low, bottom), high
    if lo > hi:
        lines.append(f"No integer in [{low}, {high}] satisfies it, so the count is 0.")
        count = 0
    else:
        count = hi - lo + 1
        lines.append(
            f"In [{low}, {high}] these are x = {lo} to {hi}: {_calc(f'{hi} - {_arg(lo)} + 1', count)} integers."
        )
    return question, "\n".join(lines), Fraction(count)


# ---------------------------------------------------------------- arithmetic word problems

_NAMES = ("Maya", "Liam", "Ava", "Noah", "Zoe", "Omar", "Priya", "Lucas", "Mei", "Diego", "Sara")
_THINGS = ("stickers", "marbles", "shells", "cards", "stamps", "beads")
_ITEMS = ("jacket", "bike", "lamp", "backpack", "guitar", "tent")
_CONVERSIONS = (("yards", "feet", 3), ("feet", "inches", 12), ("meters", "centimeters", 100))
_Steps = list[str]


def _rate_time(difficulty: str, rng: random.Random) -> tuple[str, _Steps, Fraction]:
    vehicle, unit = rng.choice((("car", "miles"), ("train", "miles"), ("cyclist", "kilometers")))
    v1, v2 = rng.randrange(20, 81, 2), rng.randrange(20, 81, 2)
    t1 = Fraction(rng.choice(("1.5", "2", "2.5", "3", "4")))
    t2 = Fraction(rng.choice(("0.5", "1", "1.5", "2", "3")))
    if difficulty == "easy":
        question = f"A {vehicle} travels at {v1} {unit} per hour. How many {unit} does it travel in {_num(t1)} hours?"
        return question, [f"It travels {_calc(f'{v1} * {_num(t1)}', v1 * t1)} {unit}."], v1 * t1
    if difficulty == "medium":
        question = (
            f"A {vehicle} travels at {v1} {unit} per hour for {_num(t1)} hours, then at {v2} {unit} "
            f"per hour for {_num(t2)} hours. How many {unit} does it travel in total?"
        )
        d1, d2 = v1 * t1, v2 * t2
        steps = [
            f"First part: {_calc(f'{v1} * {_num(t1)}', d1)} {unit}.",
            f"Second part: {_calc(f'{v2} * {_num(t2)}', d2)} {unit}.",
            f"In total: {_calc(f'{_num(d1)} + {_num(d2)}', d1 + d2)} {unit}.",
        ]
        return question, steps, d1 + d2
    minutes = rng.choice((12, 15, 24, 30, 36, 45, 48))
    hours = Fraction(minutes, 60)
    question = (
        f"A {vehicle} travels at {v1} {unit} per hour for {minutes} minutes, then at {v2} {unit} "
        f"per hour for {_num(t2)} hours. How many {unit} does it travel in total?"
    )
    d1, d2 = v1 * hours, v2 * t2
    steps = [
        f"{minutes} minutes is {_calc(f'{minutes} / 60', hours)} hours.",
        f"First part: {_calc(f'{v1} * {_num(hours)}', d1)} {unit}.",
        f"Second part: {_calc(f'{v2} * {_num(t2)}', d2)} {unit}.",
        f"In total: {_calc(f'{_num(d1)} + {_num(d2)}', d1 + d2)} {unit}.",
    ]
    return question, steps, d1 + d2


def _units(difficulty: str, rng: random.Random) -> tuple[str, _Steps, Fraction]:
    name = rng.choice(_NAMES)
    if difficulty == "easy":
        (big, small, factor), amount = rng.choice(_CONVERSIONS), rng.randint(2, 40)
        question = f"{name} has a rope that is {amount} {big} long. How long is it in {small}?"
        return (
            question,
            [f"It is {_calc(f'{amount} * {factor}', amount * factor)} {small} long."],
            Fraction(amount * factor),
        )
    if difficulty == "medium":
        fields, yards = rng.randint(2, 9), rng.choice((100, 120, 200))
        question = (
            f"{name}'s potato launcher throws a potato {fields} football fields. A football field is "
            f"{yards} yards long. How many feet does the potato fly?"
        )
        total_yards = fields * yards
        steps = [
            f"The potato flies {_calc(f'{fields} * {yards}', total_yards)} yards.",
            f"A yard is 3 feet, so that is {_calc(f'{total_yards} * 3', total_yards * 3)} feet.",
        ]
        return question, steps, Fraction(total_yards * 3)
    total_yards, coat_feet = rng.randint(4, 12), rng.randint(2, 5)
    scarf_inches = rng.randint(6, 30)
    question = (
        f"A tailor has {total_yards} yards of fabric. She uses {coat_feet} feet for a coat and "
        f"{scarf_inches} inches for a scarf. How many inches of fabric are left?"
    )
    total_inches, coat_inches = total_yards * 36, coat_feet * 12
    left = total_inches - coat_inches - scarf_inches
    steps = [
        f"A yard is 3 feet, so she has {_calc(f'{total_yards} * 3', total_yards * 3)} feet.",
        f"That is {_calc(f'{total_yards * 3} * 12', total_inches)} inches.",
        f"The coat uses {_calc(f'{coat_feet} * 12', coat_inches)} inches.",
        f"Left over: {_calc(f'{total_inches} - {coat_inches} - {scarf_inches}', left)} inches.",
    ]
    return question, steps, Fraction(left)


def _comparisons(difficulty: str, rng: random.Random) -> tuple[str, _Steps, Fraction]:
    a_name, b_name, c_name = rng.sample(_NAMES, 3)
    thing = rng.choice(_THINGS)
    a = rng.randrange(4, 61, 2)
    if difficulty == "easy":
        twice = rng.random() < 0.5
        b = a * 2 if twice else a // 2
        question = (
            f"{a_name} has {a} {thing}. {b_name} has {'twice' if twice else 'half'} as many {thing}"
            f" as {a_name}. How many {thing} do they have together?"
        )
        first = _calc(f"{a} * 2", b) if twice else _calc(f"{a} / 2", b)
        return (
            question,
            [f"{b_name} has {first} {thing}.", f"Together: {_calc(f'{a} + {b}', a + b)} {thing}."],
            Fraction(a + b),
        )
    b = a * 2
    fewer = rng.randint(1, b - 1)
    c = b - fewer
    setup = (
        f"{a_name} has {a} {thing}. {b_name} has twice as many {thing} as {a_name}, and {c_name} "
        f"has {fewer} fewer {thing} than {b_name}."
    )
    steps = [
        f"{b_name} has {_calc(f'{a} * 2', b)} {thing}.",
        f"{c_name} has {_calc(f'{b} - {fewer}', c)} {thing}.",
    ]
    total = a + b + c
    if difficulty == "medium":
        steps.append(f"In all: {_calc(f'{a} + {b} + {c}', total)} {thing}.")
        return f"{setup} How many {thing} do the three have in all?", steps, Fraction(total)
    price = Fraction(rng.choice((5, 10, 20, 25, 50)), 100)
    question = f"{setup} Each of the {thing} sells for {_money(price)}. How many dollars are all their {thing} worth?"
    steps.append(f"Together they have {_calc(f'{a} + {b} + {c}', total)} {thing}.")
    steps.append(f"They are worth {_calc(f'{total} * {_num(price)}', total * price, '$')}.")
    return question, steps, total * price


def _percentages(difficulty: str, rng: random.Random) -> tuple[str, _Steps, Fraction]:
    item, name = rng.choice(_ITEMS), rng.choice(_NAMES)
    price = rng.randrange(20, 401, 20)
    off = rng.randrange(5, 61, 5)
    saving = Fraction(price * off, 100)
    sale = price - saving
    if difficulty == "easy":
        question = f"A {item} costs ${price}. It is on sale for {off}% off. What is the sale price in dollars?"
        steps = [
            f"The discount is {_calc(f'{price} * {off} / 100', saving, '$')}.",
            f"The sale price is {_calc(f'{price} - {_num(saving)}', sale, '$')}.",
        ]
        return question, steps, sale
    if difficulty == "medium":
        bill, tip_percent, people = (
            rng.randrange(20, 401, 20),
            rng.choice((10, 15, 20, 25)),
            rng.choice((2, 4, 5)),
        )
        tip = Fraction(bill * tip_percent, 100)
        question = (
            f"{name} and friends have a dinner bill of ${bill}. They add a {tip_percent}% tip and "
            f"split the total equally among {people} people. How many dollars does each person pay?"
        )
        steps = [
            f"The tip is {_calc(f'{bill} * {tip_percent} / 100', tip, '$')}.",
            f"The total is {_calc(f'{bill} + {_num(tip)}', bill + tip, '$')}.",
            f"Each person pays {_calc(f'{_num(bill + tip)} / {people}', (bill + tip) / people, '$')}.",
        ]
        return question, steps, (bill + tip) / people
    tax_percent = rng.choice((5, 8, 10))
    tax = sale * tax_percent / 100
    question = (
        f"A {item} costs ${price}. {name} buys it at {off}% off and then pays {tax_percent}% sales "
        f"tax on the sale price. How many dollars does {name} pay?"
    )
    steps = [
        f"The discount is {_calc(f'{price} * {off} / 100', saving, '$')}.",
        f"The sale price is {_calc(f'{price} - {_num(saving)}', sale, '$')}.",
        f"The tax is {_calc(f'{_num(sale)} * {tax_percent} / 100', tax, '$')}.",
        f"{name} pays {_calc(f'{_num(sale)} + {_num(tax)}', sale + tax, '$')}.",
    ]
    return question, steps, sale + tax


def _totals(difficulty: str, rng: random.Random) -> tuple[str, _Steps, Fraction]:
    name = rng.choice(_NAMES)
    boxes, per_box = rng.randint(3, 12), rng.randint(6, 24)
    if difficulty == "easy":
        given = rng.randint(1, boxes * per_box - 1)
        question = (
            f"{name} buys {boxes} boxes of pencils with {per_box} pencils in each box and gives "
            f"away {given} pencils. How many pencils does {name} have left?"
        )
        total = boxes * per_box
        steps = [
            f"{name} buys {_calc(f'{boxes} * {per_box}', total)} pencils.",
            f"Left: {_calc(f'{total} - {given}', total - given)} pencils.",
        ]
        return question, steps, Fraction(total - given)
    cents = (0, 25, 50, 75) if difficulty == "hard" else (0,)
    notebook = rng.randint(1, 6) + Fraction(rng.choice(cents), 100)
    pen = rng.randint(1, 4) + Fraction(rng.choice(cents), 100)
    notebooks, pens = rng.randint(2, 9), rng.randint(2, 12)
    cost_a, cost_b = notebooks * notebook, pens * pen
    total = cost_a + cost_b
    purchase = f"{name} buys {notebooks} notebooks at {_money(notebook)} each and {pens} pens at {_money(pen)} each."
    steps = [
        f"The notebooks cost {_calc(f'{notebooks} * {_num(notebook)}', cost_a, '$')}.",
        f"The pens cost {_calc(f'{pens} * {_num(pen)}', cost_b, '$')}.",
        f"Altogether: {_calc(f'{_num(cost_a)} + {_num(cost_b)}', total, '$')}.",
    ]
    if difficulty == "medium":
        return f"{purchase} How many dollars does {name} spend?", steps, total
    paid = next(bill for bill in (20, 50, 100, 200) if bill > total)
    question = f"{purchase} {name} pays with a ${paid} bill. How many dollars of change does {name} get back?"
    steps.append(f"The change is {_calc(f'{paid} - {_num(total)}', paid - total, '$')}.")
    return question, steps, paid - total


# ---------------------------------------------------------------- two-step word problems

# Upper bounds grow with difficulty; every answer stays a whole number.
_TWO_STEP_SCALE = {"easy": 1, "medium": 3, "hard": 10}
_VEHICLES = (("car", "miles"), ("bus", "miles"), ("cyclist", "kilometers"))


def _two_step(difficulty: str, rng: random.Random) -> tuple[str, _Steps, Fraction]:
    """One of six two-operation templates; operands small at ``easy`` (times tables, sums < 100)."""
    k = _TWO_STEP_SCALE[difficulty]
    name, other = rng.sample(_NAMES, 2)
    thing = rng.choice(_THINGS)
    template = rng.randrange(6)
    if template == 0:  # buy, then give away
        a, b = rng.randint(2, 30 * k), rng.randint(2, 20 * k)
        c = rng.randint(1, a + b - 1)
        question = (
            f"{name} has {a} {thing}. {name} buys {b} more and then gives {c} to {other}. "
            f"How many {thing} does {name} have now?"
        )
        steps = [
            f"After buying, {name} has {_calc(f'{a} + {b}', a + b)} {thing}.",
            f"After giving some away: {_calc(f'{a + b} - {c}', a + b - c)} {thing}.",
        ]
        return question, steps, Fraction(a + b - c)
    if template == 1:  # packs, plus what was there
        packs, per_pack, had = rng.randint(2, 9), rng.randint(2, 10 * k), rng.randint(1, 30 * k)
        question = (
            f"{name} had {had} {thing} and buys {packs} packs with {per_pack} {thing} in each "
            f"pack. How many {thing} does {name} have now?"
        )
        bought = packs * per_pack
        steps = [
            f"The packs hold {_calc(f'{packs} * {per_pack}', bought)} {thing}.",
            f"Now {name} has {_calc(f'{had} + {bought}', had + bought)} {thing}.",
        ]
        return question, steps, Fraction(had + bought)
    if template == 2:  # twice as many, then together
        a = rng.randint(2, 25 * k)
        question = (
            f"{name} has {a} {thing}. {other} has twice as many {thing} as {name}. "
            f"How many {thing} do they have together?"
        )
        steps = [
            f"{other} has {_calc(f'{a} * 2', 2 * a)} {thing}.",
            f"Together they have {_calc(f'{a} + {2 * a}', 3 * a)} {thing}.",
        ]
        return question, steps, Fraction(3 * a)
    if template == 3:  # change from a bill
        item = rng.choice(_ITEMS)
        price, count = rng.randint(2, 9 * k), rng.randint(2, 5)
        cost = price * count
        paid = next(bill for bill in (20, 50, 100, 200, 500) if bill > cost)
        question = (
            f"A toy {item} costs ${price}. {name} buys {count} of them and pays with a ${paid} "
            f"bill. How many dollars of change does {name} get?"
        )
        steps = [
            f"They cost {_calc(f'{count} * {price}', cost, '$')}.",
            f"The change is {_calc(f'{paid} - {cost}', paid - cost, '$')}.",
        ]
        return question, steps, Fraction(paid - cost)
    if template == 4:  # a trip in two legs
        vehicle, unit = rng.choice(_VEHICLES)
        speed, hours = rng.randrange(10, 10 * k + 41, 5), rng.randint(2, 4)
        more = rng.randint(3, 30 * k)
        question = (
            f"A {vehicle} travels at {speed} {unit} per hour for {hours} hours and then goes "
            f"{more} {unit} more. How many {unit} does it travel in total?"
        )
        first = speed * hours
        steps = [
            f"In {hours} hours it goes {_calc(f'{speed} * {hours}', first)} {unit}.",
            f"In total: {_calc(f'{first} + {more}', first + more)} {unit}.",
        ]
        return question, steps, Fraction(first + more)
    friends, each = rng.randint(2, 6), rng.randint(2, 10 * k)  # share equally, then get more
    total, extra = friends * each, rng.randint(1, 10 * k)
    question = (
        f"{name} shares {total} {thing} equally among {friends} friends. Then each friend gets "
        f"{extra} more {thing}. How many {thing} does each friend have?"
    )
    steps = [
        f"Each friend first gets {_calc(f'{total} / {friends}', each)} {thing}.",
        f"Then each has {_calc(f'{each} + {extra}', each + extra)} {thing}.",
    ]
    return question, steps, Fraction(each + extra)


_ARITHMETIC = (_rate_time, _units, _comparisons, _percentages, _totals)

# ---------------------------------------------------------------- public functions


def random_problem(kind: str, difficulty: str, rng: random.Random) -> Problem:
    """One problem drawn with ``rng``; its ``id`` is left empty (``generate`` numbers them).

    >>> p = random_problem("arithmetic", "easy", random.Random(1))
    >>> p.solution.endswith("#### " + p.answer)
    True
    """
    _check(kind, difficulty)
    if kind == "inequalities":
        question, body, answer = _inequality(difficulty, rng)
    else:
        make = _two_step if kind == "two-step" else rng.choice(_ARITHMETIC)
        question, steps, answer = make(difficulty, rng)
        body = "\n".join(steps)
    text = _num(answer)
    return Problem(
        id="",
        question=question,
        answer=text,
        solution=f"{body}\n#### {text}",
        source=f"generator:{kind}/{difficulty}",
    )


def generate(
    kind: str,
    num_problems: int,
    seed: int = 0,
    difficulty: str = "medium",
    split: str | None = None,
) -> list[Problem]:
    """``num_problems`` distinct problems; the same arguments give the same list.

    ``split`` ("train" or "test") keeps only problems whose question hashes into that split (one
    in ten go to test), so a train set and a test set never share a question, whatever the seeds.
    Ids are ``<kind>-<seed>-<i>``, or ``<kind>-<split>-<seed>-<i>`` with a split.

    >>> [p.id for p in generate("arithmetic", 2, seed=5)]
    ['arithmetic-5-0', 'arithmetic-5-1']
    """
    _check(kind, difficulty)
    if isinstance(num_problems, bool) or not isinstance(num_problems, int) or num_problems < 1:
        raise ValueError(f"num_problems must be a positive integer, got {num_problems!r}")
    if split not in (None, "train", "test"):
        raise ValueError(f"split must be 'train', 'test' or None, got {split!r}")
    rng = random.Random(f"{kind}:{difficulty}:{seed}:{split}")  # str seeds are stable across runs
    problems: list[Problem] = []
    seen: set[str] = set()
    prefix = f"{kind}-{split}-{seed}" if split else f"{kind}-{seed}"
    for _ in range(num_problems * 200):
        problem = random_problem(kind, difficulty, rng)
        if problem.question in seen or (split and question_split(problem.question) != split):
            continue
        seen.add(problem.question)
        problems.append(
            Problem(
                f"{prefix}-{len(problems)}",
                problem.question,
                problem.answer,
                problem.solution,
                problem.source,
            )
        )
        if len(problems) == num_problems:
            return problems
    raise ValueError(
        f"could only generate {len(problems)} distinct {difficulty} {kind} problems, "
        f"{num_problems} were asked for: ask for fewer"
    )


def question_split(question: str) -> str:
    """'test' for one question in ten (by a stable hash of its text), 'train' for the rest.

    >>> question_split("What is 2 + 3?") in ("train", "test")
    True
    """
    return (
        "test"
        if int.from_bytes(hashlib.sha256(question.encode()).digest()[:8], "big") % 10 == 0
        else "train"
    )


def _check(kind: str, difficulty: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown generator kind {kind!r}: expected one of {', '.join(KINDS)}")
    if difficulty not in DIFFICULTIES:
        raise ValueError(
            f"unknown difficulty {difficulty!r}: expected one of {', '.join(DIFFICULTIES)}"
        )
