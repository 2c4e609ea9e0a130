"""Arithmetic steps in worked solutions: a safe calculator, step finding and step checking.

``safe_eval`` is a small recursive-descent evaluator over exact fractions (never ``eval``):
``+ - * / // % ** ( )``, unary minus, decimals, thousands separators (``1,000``), ``x``/``×``/
``\\times``/``·`` for times, ``÷``/``\\div`` for division, ``^`` for power, ``$`` ignored.
Written-math conventions: ``%`` right after a number is a percent (``25% * 80 == 20``) unless
an operand follows it, when it is modulo (``10 % 3 == 1``); ``1 1/2`` is a mixed number;
``2(3 + 4)`` multiplies; a tight fraction after a spaced division sign is one number
(``25 / 1/3 == 75``). Limits, all reported as ``ValueError`` naming the expression: at most
200 characters, parentheses 20 deep, 40 digits per number, and every intermediate value (and
its denominator) at most 10**30, checked *before* a power is computed (``9**9**9`` fails at
once). Nothing longer is ever evaluated in part: a step whose left side is longer than 200
characters comes back unchecked (``actual`` and ``is_correct`` None, never a wrong verdict
computed from its tail), and the calculator inserts nothing after it.

``find_steps`` reads GSM8K calculator annotations (``<<48/2=24>>``) and plain equations
(``3 * 4 + 2 = 14``, ``$5 x 3 = $15``, chains ``a = b = c``). It skips what only looks like
arithmetic: ``x = 5``, algebra (``X*2 - 40 = 250``), dates, clock times (``0900-0130``),
ranges (``weeks 1-2``). A claimed result written with decimals may be the exact value rounded
to those decimals (``10/3 = 3.33`` is correct, as GSM8K authors write it); a whole-number
claim must be exact. A claim in ``%``, ``percent`` or ``cents`` may also be 100 times the
value (``1/4 = 25%``, ``$2.50 - $2.24 = 26 cents``).

>>> [(s.expression, s.claimed, s.is_correct) for s in find_steps("So 48/2 = 24 and 24+48 = 70.")]
[('48/2', '24', True), ('24+48', '70', False)]
>>> calculator_result("She sold <<48/2=")
'24'
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from fractions import Fraction

MAX_CHARS = 200
MAX_DEPTH = 20
MAX_DIGITS = 40
MAX_MAGNITUDE = 10**30

_TOKEN = re.compile(r"\s*(?:(?P<number>\d+(?:\.\d*)?|\.\d+)|(?P<op>\*\*|//|[-+*/%()]))")
_OPERAND_START = re.compile(r"\s*[\d.(]")
_END = "end of expression"
_PLAIN_NUMBER = re.compile(r"\s*(\d{1,30})(?:\.(\d{0,10}))?\s*")
_TIGHT = {"*": operator.mul, "/": operator.truediv, "//": operator.floordiv, "%": operator.mod}
_BINARY = {**_TIGHT, "+": operator.add, "-": operator.sub}


@dataclass(frozen=True)
class Step:
    """One arithmetic step found in a text."""

    expression: str  # the left side as written, e.g. "48/2" or "$5 x 3"
    claimed: str  # the right side as written, e.g. "24" or "$15"
    actual: Fraction | None  # exact value of expression; None when it cannot be evaluated
    is_correct: bool | None  # claimed matches actual; None when either is unknown
    start: int  # offset of the step in the text (for highlighting)
    end: int  # offset just past the step
    kind: str  # "annotation" (<<48/2=24>>) or "equation" (48 / 2 = 24)


_SPELLINGS = str.maketrans({"−": "-", "–": "-", "$": None, "×": "*", "·": "*", "÷": "/"})
_LATEX_OPERATOR = re.compile(r"\\(times|cdot|div)")
_LETTER_TIMES = re.compile(r"(?<=[\d).%])\s*[xX]\s*(?=[\d(.])")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_MIXED = re.compile(r"(?<![\d./])(\d+)[^\S\n]+(\d+/\d+)(?![\d./])")
_DIVIDE_BY_FRACTION = re.compile(r"(/\s+)(\d+(?:\.\d+)?/\d+(?:\.\d+)?)(?![\d./])")


def _canonical(expression: str) -> str:
    """Spell operators the one way the tokenizer reads them."""
    text = expression.replace("\\$", "").translate(_SPELLINGS).replace("^", "**")
    if "\\" in text:
        text = _LATEX_OPERATOR.sub(lambda m: "/" if m[1] == "div" else "*", text)
    if "x" in text or "X" in text:
        text = _LETTER_TIMES.sub("*", text)
    if "," in text:
        text = _THOUSANDS.sub("", text)
    if " " in text and "/" in text:
        # 1 1/2 is a mixed number; "25 / 1/3" divides by the fraction 1/3, as it is written
        text = _MIXED.sub(r"(\1+\2)", text)
        text = _DIVIDE_BY_FRACTION.sub(r"\1(\2)", text)
    return text


def _tokenize(expression: str) -> list[str]:
    text, tokens, position = _canonical(expression), [], 0
    end = len(text.rstrip())
    while position < end:
        match = _TOKEN.match(text, position)
        if match is None:
            raise ValueError(f"unexpected {text[position:].strip()[0]!r} in {expression!r}")
        number = match["number"]
        if number is not None and len(number.replace(".", "").lstrip("0")) > MAX_DIGITS:
            raise ValueError(f"number longer than {MAX_DIGITS} digits in {expression!r}")
        # a percent sign followed by an operand is modulo, otherwise it is "per hundred"
        if match["op"] == "%" and not _OPERAND_START.match(text, match.end()):
            tokens.append("percent")
        else:
            tokens.append(number if number is not None else match["op"])
        position = match.end()
    return tokens


def _parse(expression: str) -> tuple:
    """Syntax tree of tuples: ``("num", Fraction)``, ``(op, left, right)``, ``("neg"|"pct", x)``."""
    if len(expression) > MAX_CHARS:
        raise ValueError(f"expression longer than {MAX_CHARS} characters: {expression[:40]!r}...")
    tokens = _tokenize(expression)
    if not tokens:
        raise ValueError(f"empty expression {expression!r}")
    tokens.append(_END)
    position = 0

    def take() -> str:
        nonlocal position
        position += 1
        return tokens[position - 1]

    def sum_(depth: int) -> tuple:  # the loose operators
        node = product(depth)
        while tokens[position] in ("+", "-"):
            node = (take(), node, product(depth))
        return node

    def implicit_times() -> bool:  # 2(3 + 4), (1/2) 278: a product without a sign
        following = tokens[position]
        return following == "(" or (tokens[position - 1] == ")" and following[0] in "0123456789.")

    def product(depth: int) -> tuple:
        node = unary(depth)
        while tokens[position] in _TIGHT or implicit_times():
            operation = take() if tokens[position] in _TIGHT else "*"
            node = (operation, node, unary(depth))
        return node

    def unary(depth: int) -> tuple:
        if tokens[position] in ("-", "+"):
            sign = take()
            operand = unary(depth)
            return ("neg", operand) if sign == "-" else operand
        base = atom(depth)
        while tokens[position] == "percent":
            take()
            base = ("pct", base)
        if tokens[position] == "**":
            take()
            return ("**", base, unary(depth))  # right-associative, -2**2 == -4 as in Python
        return base

    def atom(depth: int) -> tuple:
        token = take() if tokens[position] != _END else _END
        if token == "(":
            if depth >= MAX_DEPTH:
                raise ValueError(f"parentheses nested deeper than {MAX_DEPTH} in {expression!r}")
            node = sum_(depth + 1)
            if tokens[position] != ")":
                raise ValueError(f"missing ')' in {expression!r}")
            take()
            return node
        if token[0] in "0123456789.":
            return ("num", _decimal(*token.partition(".")[::2]))
        raise ValueError(f"unexpected {token!r} in {expression!r}")

    tree = sum_(0)
    if tokens[position] != _END:
        raise ValueError(f"unexpected {tokens[position]!r} in {expression!r}")
    return tree


def _power(base: Fraction, exponent: Fraction, expression: str) -> Fraction:
    if exponent.denominator != 1:
        root = _exact_root(base, exponent.denominator)
        if root is None:
            raise ValueError(f"{base} ** {exponent} is not a rational number in {expression!r}")
        base, exponent = root, Fraction(exponent.numerator)
    if base == 0 and exponent < 0:
        raise ValueError(f"division by zero in {expression!r}")
    if base in (0, 1, -1):
        return base ** int(exponent)
    digits = abs(exponent) * math.log10(max(abs(base.numerator), base.denominator))
    if digits > math.log10(MAX_MAGNITUDE) + 1:
        raise ValueError(f"{base} ** {exponent} is too large in {expression!r}")
    return base ** int(exponent)


def _exact_root(value: Fraction, degree: int) -> Fraction | None:
    if degree > 12 or (value < 0 and degree % 2 == 0):
        return None

    def integer_root(n: int) -> int | None:
        guess = round(abs(n) ** (1 / degree))
        return next((r for r in (guess - 1, guess, guess + 1) if r >= 0 and r**degree == n), None)

    numerator, denominator = integer_root(abs(value.numerator)), integer_root(value.denominator)
    if numerator is None or denominator is None:
        return None
    return Fraction(numerator if value >= 0 else -numerator, denominator)


def _evaluate(node: tuple, expression: str) -> Fraction:
    kind = node[0]
    if kind == "num":
        value = node[1]
    elif kind == "neg":
        value = -_evaluate(node[1], expression)
    elif kind == "pct":
        value = _evaluate(node[1], expression) / 100
    else:
        left, right = _evaluate(node[1], expression), _evaluate(node[2], expression)
        if kind in ("/", "//", "%") and right == 0:
            raise ValueError(f"division by zero in {expression!r}")
        if kind == "**":
            value = _power(left, right, expression)
        else:
            value = _BINARY[kind](left, right)
            value = value if kind != "//" else Fraction(value)  # Fraction // gives an int
    if (
        abs(value.numerator) > MAX_MAGNITUDE * value.denominator
        or value.denominator > MAX_MAGNITUDE
    ):
        raise ValueError(f"intermediate value beyond 10**30 in {expression!r}")
    return value


def _decimal(whole: str, decimals: str) -> Fraction:
    if not decimals:
        return Fraction(int(whole or "0"))
    return Fraction(int(whole + decimals), 10 ** len(decimals))


def safe_eval(expression: str) -> Fraction:
    """The exact value of an arithmetic expression, or ValueError naming it.

    >>> safe_eval("3 * 4 + 2"), safe_eval("$1,200 x 3"), safe_eval("2^10 ÷ 4"), safe_eval("25% * 80")
    (Fraction(14, 1), Fraction(3600, 1), Fraction(256, 1), Fraction(20, 1))
    >>> safe_eval("1/0")
    Traceback (most recent call last):
    ...
    ValueError: division by zero in '1/0'
    """
    plain = _PLAIN_NUMBER.fullmatch(expression)  # most claims: quick, and within the limits
    if plain is not None:
        return _decimal(plain[1], plain[2] or "")
    return _evaluate(_parse(expression), expression)


def format_value(value: Fraction) -> str:
    """A value as a model should write it: whole numbers plain, else at most 6 decimals.

    >>> format_value(Fraction(24)), format_value(Fraction(10, 3)), format_value(Fraction(-1, 8))
    ('24', '3.333333', '-0.125')
    """
    if value.denominator == 1:
        return str(value.numerator)
    scaled = math.floor(abs(value) * 10**6 + Fraction(1, 2))  # round half up, away from zero
    whole, fraction = divmod(scaled, 10**6)
    text = f"{whole}.{fraction:06d}".rstrip("0").rstrip(".")
    return text if value > 0 or text == "0" else "-" + text


# --- finding steps ---------------------------------------------------------------------------
# A run of characters that can belong to an arithmetic expression, within one line.
_RUN_CHAR = r"(?:[\d.,$%+\-*/×÷·^()xX−–]|[^\S\n]|\\times|\\cdot|\\div|\\\$)"
_RUN_BEFORE = re.compile(rf"{_RUN_CHAR}+$")
_RUN_AFTER = re.compile(rf"{_RUN_CHAR}+")
_OPERATORS = "+-*/×÷^·xX−–"
_LATEX_OPERATORS = ("\\times", "\\cdot", "\\div")
_ANNOTATION = re.compile(r"<<([^<>]*)>>")
_EQUALS = re.compile(r"(?<![=<>!])=(?![=>])")
_DATE = re.compile(r"\d{1,4}([-/])\d{1,2}\1\d{1,4}")
_RANGE = re.compile(r"(\d+)-(\d+)")  # "weeks 1-2" when the first is smaller
_ZERO_PADDED = re.compile(r"(?<![\d.,])0\d")  # 0900-0130: clock times and codes, not numbers
_SPELLED_MIXED = re.compile(r"\d[^\S\n]+and[^\S\n]+$")  # "1 and 1/4": a mixed number
_MIXED_CLAIM = re.compile(r"[^\S\n]*\$?\d+[^\S\n]+(?:and[^\S\n]+)?\(?\d+/\d+\)?")
_PER_HUNDRED = re.compile(r"\s*(?:%|cents?\b|percent\b|per cent\b)", re.IGNORECASE)
_CLAIM_DECIMALS = re.compile(r"\s*-?\$?-?[\d,]*\.(\d+)\s*%?\s*")


def _has_operator(tree: tuple) -> bool:
    return tree[0] != "num" and (tree[0] not in ("neg", "pct") or _has_operator(tree[1]))


def _expression_before(text: str, end: int) -> tuple[int, str, tuple | None] | None:
    """The longest expression with an operator that ends at ``end``: (start, text, tree).

    None when the expression goes on to the left into a variable (``X*2 - 40``, ``M + 4``).
    Only the last ``MAX_CHARS`` characters are read; when the expression may go on to the
    left of them, the tree is None and the text is ``"..."`` + those characters: too long
    to check, never a suffix evaluated as if it were the whole.
    """
    line_start = text.rfind("\n", 0, end) + 1
    # A few characters more than MAX_CHARS: spaces before the longest accepted expression,
    # or a "\\times" cut by the window, are still seen (a longer candidate fails to parse).
    window = max(line_start, end - MAX_CHARS - 8)
    run = _RUN_BEFORE.search(text, window, end)
    if run is None:
        return None
    cut = run.start() - window < 8 and _continues_left(text, line_start, run.start())
    too_long = (run.start(), "..." + text[run.start() : end].strip(), None)
    for start in range(run.start(), end):
        previous = text[start - 1] if start > 0 else " "
        if text[start] in "0123456789.($-−\\" and not (previous.isdigit() or previous == "."):
            candidate = text[start:end].strip()
            if len(candidate) > MAX_CHARS:  # what starts here is too long: only its tail is left
                cut = True
                continue
            try:
                tree = _parse(candidate)
            except ValueError:
                continue
            before = text[run.start() : start].strip()
            if before and (before[-1] in _OPERATORS or before.endswith(_LATEX_OPERATORS)):
                return too_long if cut else None
            if cut and (not before or before[-1] in "()%$\\"):
                return too_long
            if not _has_operator(tree):
                return None
            return start, candidate, tree
    return None


def _continues_left(text: str, line_start: int, position: int) -> bool:
    """Whether expression characters go on to the left of ``position`` (spaces skipped)."""
    while position > line_start and text[position - 1] in " \t":
        position -= 1
    if position == line_start:
        return False
    return _RUN_BEFORE.search(text, max(line_start, position - 8), position) is not None


def _expression_after(text: str, start: int) -> tuple[int, str] | None:
    """The longest number or expression starting at ``start``: (end, text).

    None when it goes on into a variable or another number (``3S + 1``, ``30 + M``, ``18 000``).
    """
    run = _RUN_AFTER.match(text, start)
    if run is None:
        return None
    mixed = _MIXED_CLAIM.match(text, start)
    if mixed is not None:
        return mixed.end(), mixed.group().strip()
    # a claim longer than MAX_CHARS cannot parse: only shorter ones are tried (bounded work)
    for end in range(min(run.end(), start + MAX_CHARS + 8), start, -1):
        candidate = text[start:end].strip().rstrip(".,$")
        if not candidate or candidate[-1] in _OPERATORS + "(" or not re.search(r"\d", candidate):
            continue
        try:
            _parse(candidate)
        except ValueError:
            continue
        claim_end = start + len(text[start:end].rstrip().rstrip(".,$"))
        rest = text[claim_end : run.end()].strip()
        if (rest and (rest[0] in _OPERATORS or rest[0].isdigit())) or (
            claim_end < len(text) and text[claim_end].isalpha()
        ):
            return None
        return claim_end, candidate
    return None


def _claim_is_correct(actual: Fraction | None, claimed: str, per_hundred: bool) -> bool | None:
    """Whether ``claimed`` states ``actual`` (or, ``per_hundred``, 100 times it), maybe rounded."""
    if actual is None:
        return None
    number = claimed.replace("%", "")
    if " and " in number:  # "1 and 1/3"
        number = re.sub(r"\s+and\s+\(?(\d+/\d+)\)?", r" \1", number)
    try:
        value = safe_eval(number)
    except ValueError:
        return None
    targets = (actual, actual * 100) if per_hundred else (actual,)
    if value in targets:
        return True
    decimals = _CLAIM_DECIMALS.fullmatch(claimed)
    if decimals is None:
        return False
    unit = Fraction(1, 10 ** len(decimals[1]))
    for target in targets:  # claimed may be target rounded to its decimals, half up or down
        scaled = target / unit
        nearest = {math.floor(scaled + Fraction(1, 2)), math.ceil(scaled - Fraction(1, 2))}
        if any(n * unit == value for n in nearest):
            return True
    return False


def _step(expression: str, claimed: str, start: int, end: int, kind: str, text: str) -> Step:
    try:
        actual = safe_eval(expression)
    except ValueError:
        actual = None
    per_hundred = "%" in claimed or _PER_HUNDRED.match(text, end) is not None
    is_correct = _claim_is_correct(actual, claimed, per_hundred)
    return Step(expression, claimed, actual, is_correct, start, end, kind)


def find_steps(text: str) -> list[Step]:
    """Every checkable arithmetic step in ``text``, in order of position.

    A plain equation is taken only when its left side has an operator (so ``x = 5`` and
    ``14 = 14`` are not steps), both sides are numbers (not ``X*2 - 40 = 250``), and it is
    not a date or a clock time; one around a ``<<...>>`` annotation is left to the annotation.
    A left side longer than ``MAX_CHARS`` is returned unchecked, its expression ``"..."`` +
    its last ``MAX_CHARS`` characters.

    >>> [(s.expression, s.claimed, s.is_correct) for s in find_steps("3 * 4 + 2 = 12 + 2 = 15")]
    [('3 * 4 + 2', '12 + 2', True), ('12 + 2', '15', False)]
    >>> [(s.kind, s.claimed, s.is_correct) for s in find_steps("10/3=<<10/3=3.33>>3.33 each")]
    [('annotation', '3.33', True)]
    """
    steps, masked = [], list(text)
    for match in _ANNOTATION.finditer(text):
        masked[match.start() : match.end()] = " " * (match.end() - match.start())
        if "=" in match[1]:
            expression, claimed = (part.strip() for part in match[1].rsplit("=", 1))
            step = _step(expression, claimed, match.start(), match.end(), "annotation", text)
            steps.append(step)
    annotations = [(step.start, step.end) for step in steps]
    masked_text = "".join(masked)
    for equals in _EQUALS.finditer(masked_text):
        left = _expression_before(masked_text, equals.start())
        right = _expression_after(masked_text, equals.end()) if left is not None else None
        if left is None or right is None:
            continue
        (start, expression, tree), (end, claimed) = left, right
        if (
            _DATE.search(expression)
            or ((bounds := _RANGE.fullmatch(expression)) and int(bounds[1]) < int(bounds[2]))
            or _ZERO_PADDED.search(expression + " " + claimed)
            or (_SPELLED_MIXED.search(masked_text, 0, start) and re.match(r"\d+/", expression))
            or any(start < a_end and a_start < end for a_start, a_end in annotations)
        ):
            continue
        if tree is None:  # longer than MAX_CHARS: reported, not checked
            steps.append(Step(expression, claimed, None, None, start, end, "equation"))
        else:
            steps.append(_step(expression, claimed, start, end, "equation", masked_text))
    return sorted(steps, key=lambda step: step.start)


def wrong_steps(text: str) -> list[Step]:
    """The steps of ``text`` whose claimed result is wrong.

    >>> [s.expression for s in wrong_steps("She has 5 x 3 = 16 apples, 16 - 1 = 15 left.")]
    ['5 x 3']
    """
    return [step for step in find_steps(text) if step.is_correct is False]


def calculator_result(text_so_far: str) -> str | None:
    """The value to write next when generation just reached ``expression =`` or ``<<expr=``.

    Called at every generated token, so it returns at once unless the text ends with ``=``
    (and optional spaces). It inserts only what ``safe_eval`` evaluates whole: an expression
    longer than ``MAX_CHARS`` characters gets None (the model writes its own result).

    >>> calculator_result("so 3 * 4 + 2 = "), calculator_result("x = "), calculator_result("7 / 0 =")
    ('14', None, None)
    >>> calculator_result("1+" * 99 + "1 ="), calculator_result("1+" * 100 + "1 =")
    ('100', None)
    """
    if not text_so_far[-40:].rstrip(" \t").endswith("="):
        return None
    body = text_so_far.rstrip(" \t")[:-1]
    opened = body.rfind("<<")
    try:
        if opened != -1 and ">>" not in body[opened:]:
            return format_value(safe_eval(body[opened + 2 :].rsplit("=", 1)[-1]))
        found = _expression_before(body, len(body))
        if found is None or found[2] is None:
            return None
        return format_value(_evaluate(found[2], found[1]))
    except ValueError:
        return None
