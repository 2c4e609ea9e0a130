"""Final-answer extraction, normalization and grading for math word problems.

Two families of modes, deliberately different:

* ``strict`` and ``flexible`` reproduce lm-evaluation-harness's ``gsm8k`` task exactly
  (regex filters, ``take_first``, ``exact_match`` with its ``regexes_to_ignore``). Matching
  there is on *strings*: ``#### 72.0`` is wrong against ``72``, as it is in lm-eval, so
  numbers from this app can be compared with published lm-eval numbers.
* ``boxed`` and ``auto`` are *numeric*: the extracted answer and the reference are parsed to
  exact fractions and compared (``72.0 == 72``, ``1,000 == 1000``, ``\\frac{1}{2} == 0.5``).

Numeric comparison (``answers_match``): exact ``Fraction`` equality when both sides are
written exactly (integers, fractions, decimals with at most 5 places). When either side
looks rounded (6 or more decimal places, or scientific notation such as ``3.3e-7``) the
values may differ by a relative 1e-6 or an absolute 1e-9. A percent sign is dropped, so
``50%`` equals ``50`` (GSM8K writes the answer to "what percent ..." as ``50``) and does not
equal ``0.5``. Strings that are not numbers compare after normalization (case, spaces).

>>> grade("48 / 2 = 24, so 48 + 24 = 72 clips.\\n#### 72", "... #### 72")
Grade(is_correct=True, extracted='72', reference='72', method='strict')
>>> extract_answer("The total is \\\\boxed{\\\\frac{3}{4}} of the pie.")
'3/4'
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import NamedTuple

MODES = ("strict", "flexible", "boxed", "auto", "answer-line", "latex", "choice", "exact")
# What a dataset's answers are; each is graded by the mode of the same name, except `number`,
# which is graded by the prompt format's numeric mode (see `prompts.PromptFormat.grader_for`).
ANSWER_TYPES = ("number", "latex", "choice", "exact")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# --- lm-evaluation-harness gsm8k, verbatim facts -------------------------------------------
# Source: EleutherAI/lm-evaluation-harness, lm_eval/tasks/gsm8k/gsm8k.yaml (version 3.0):
#   strict-match:     regex "#### (\-?[0-9\.\,]+)", then take_first      (first findall hit)
#   flexible-extract: regex "(-?[$0-9.,]{2,})|(-?[0-9]+)", group_select -1 (last hit)
#   exact_match:      ignore_case true, ignore_punctuation false,
#                     regexes_to_ignore [",", "\$", "(?s).*#### ", "\.$"]
# RegexFilter (lm_eval/filters/extraction.py) takes the first non-empty group of a tuple
# match, strips it, and falls back to "[invalid]".
LM_EVAL_INVALID = "[invalid]"
_LM_EVAL_STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
_LM_EVAL_FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
_LM_EVAL_IGNORE = (",", r"\$", r"(?s).*#### ", r"\.$")


def lm_eval_strict(text: str) -> str:
    """lm-eval ``strict-match`` filter: the first ``#### N``, else ``[invalid]``.

    >>> lm_eval_strict("so 3 + 4 = 7\\n#### 7\\n#### 8")
    '7'
    >>> lm_eval_strict("The answer is 7.")
    '[invalid]'
    """
    matches = _LM_EVAL_STRICT.findall(text)
    return matches[0].strip() if matches else LM_EVAL_INVALID


def lm_eval_flexible(text: str) -> str:
    """lm-eval ``flexible-extract`` filter: the last number-like run, else ``[invalid]``.

    >>> lm_eval_flexible("She pays $1,200. Then 5 more.")
    '5'
    >>> lm_eval_flexible("It costs $1,200.")
    '$1,200.'
    """
    matches = _LM_EVAL_FLEXIBLE.findall(text)
    if not matches:
        return LM_EVAL_INVALID
    groups = [group for group in matches[-1] if group]
    return groups[0].strip()


def _lm_eval_normalize(text: str) -> str:
    """What lm-eval's ``exact_match`` compares: ignored regexes removed, lower-cased.

    ``exact_match`` works on numpy fixed-width strings: they drop trailing NUL characters,
    and ``np.char.lower`` keeps the width, cutting a lower-case form that grew (``İ``).
    """
    for pattern in _LM_EVAL_IGNORE:
        if pattern == r"(?s).*#### ":
            # same result as re.sub (greedy: all up to the last "#### "), without its
            # quadratic time on long text that has no "#### "
            text = text.rsplit("#### ", 1)[-1]
        else:
            text = re.sub(pattern, "", text)
    return text.lower()[: len(text)].rstrip("\x00")


def lm_eval_match(prediction: str, reference: str) -> bool:
    """lm-eval ``exact_match`` for gsm8k; ``reference`` may be the full GSM8K solution.

    >>> lm_eval_match("$1,000.", "Add them up.\\n#### 1000")
    True
    >>> lm_eval_match("1000.0", "#### 1000")
    False
    """
    return _lm_eval_normalize(prediction) == _lm_eval_normalize(reference)


# --- numbers -------------------------------------------------------------------------------
_SMALL_WORDS = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
]  # fmt: skip
_NUMBER_WORDS = {word: value for value, word in enumerate(_SMALL_WORDS)}
_TENS_WORDS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_NUMBER_WORDS.update({word: 10 * (index + 2) for index, word in enumerate(_TENS_WORDS)})
_SCALE_WORDS = {"thousand": 1000, "million": 1000_000}
_MULTIPLIER_WORDS = {"hundred": 100, "dozen": 12}
_ALL_NUMBER_WORDS = {*_NUMBER_WORDS, *_SCALE_WORDS, *_MULTIPLIER_WORDS, "half"}

_LITERAL = r"(?:\d[\d,]*(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?"
_NUMERIC_ANSWER = re.compile(
    rf"""\s*(?P<sign>[-+]|minus\s|negative\s)?\s*(?:\$\s*)?(?P<sign2>[-+])?\s*
    (?: (?P<whole>\d+)\s+(?P<mixed_num>\d+)\s*/\s*(?P<mixed_den>\d+)
      | (?P<num>{_LITERAL})(?:\s*/\s*(?P<den>{_LITERAL}))? )
    \s*(?P<percent>%|percent|per\s*cent)?
    (?P<unit>\s*[^\W\d_](?:[^\d]|\^[23])*?)?\s*\.?\s*""",
    re.VERBOSE,
)
_MAX_NUMBER_CHARS = 400  # longer "answers" are not answers; also keeps int() under its limit


class _Parsed(NamedTuple):
    value: Fraction
    is_exact: bool  # False for 6+ decimal places or scientific notation (probably rounded)
    is_fraction: bool  # written as a/b, \frac, a mixed number or "half"


def _literal(text: str) -> tuple[Fraction, bool] | None:
    """A decimal literal (commas dropped) as (value, is_exact)."""
    text = text.replace(",", "")
    mantissa, _, exponent = text.partition("e")
    if exponent and abs(int(exponent)) > 100:
        return None
    decimals = len(mantissa.partition(".")[2])
    return Fraction(text.rstrip(".") if not exponent else text), not exponent and decimals < 6


def _clean_latex(text: str) -> str:
    """LaTeX answer markup to plain text: ``\\frac{1}{2}`` -> ``1/2``, ``\\text{ cm}`` -> ``cm``."""
    text = text.strip().replace("−", "-")
    if len(text) > 2 and text[0] == text[-1] == "$":
        text = text[1:-1]  # $\frac{1}{2}$ is math mode, not dollars
    for _ in range(3):  # innermost first, a few levels of nesting
        text = re.sub(r"\\(?:text\w*|math\w*|mbox|operatorname)\s*\{([^{}]*)\}", r" \1 ", text)
        text = re.sub(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}", r"\1/\2", text)
    text = re.sub(r"\\[dt]?frac\s*(\d)\s*(\d)", r"\1/\2", text)
    text = re.sub(r"\^\s*\{?\\circ\}?|\\circ|°|\\left|\\right|\\[()\[\]]", "", text)
    text = re.sub(r"\\[,!;: ]", "", text).replace("{,}", ",")
    text = text.replace("\\$", "$").replace("\\%", "%").replace("\\cdot", "*")
    return text.replace("\\times", "*").replace("{", "").replace("}", "").strip()


def _parse_words(text: str) -> _Parsed | None:
    """Number words up to millions: ``one hundred and five``, ``a dozen``, ``twelve cm``."""
    tokens = text.lower().replace("-", " ").replace(",", " ").rstrip(".").split()
    negative = bool(tokens) and tokens[0] in ("minus", "negative")
    tokens = tokens[1:] if negative else tokens
    total, current, used, index = 0, Fraction(0), 0, 0
    while index < len(tokens):
        token, following = tokens[index], tokens[index + 1 : index + 2]
        if token in _NUMBER_WORDS:
            current += _NUMBER_WORDS[token]
        elif token in _MULTIPLIER_WORDS:
            current = (current or 1) * _MULTIPLIER_WORDS[token]
        elif token in _SCALE_WORDS:
            total, current = total + (current or 1) * _SCALE_WORDS[token], Fraction(0)
        elif token == "half" and (used == 0 or tokens[index - 1] == "a"):
            current += Fraction(1, 2)
        elif (
            token in ("a", "an", "and") and following and following[0] in {*_ALL_NUMBER_WORDS, "a"}
        ):
            index += 1
            continue
        else:
            break
        used, index = used + 1, index + 1
    if used == 0 or any(token in _ALL_NUMBER_WORDS for token in tokens[index:]):
        return None
    value = (total + current) * (-1 if negative else 1)
    return _Parsed(value, True, value.denominator != 1)


def _parse(text: str) -> _Parsed | None:
    text = _clean_latex(text)
    if len(text) > _MAX_NUMBER_CHARS:
        return None
    match = _NUMERIC_ANSWER.fullmatch(text.lower())
    if match is None:
        return _parse_words(text) if text and not any(c.isdigit() for c in text) else None
    if match["sign"] and match["sign2"]:
        return None
    negative = (match["sign"] or "").strip() in ("-", "minus", "negative") or match["sign2"] == "-"
    if match["whole"] is not None:
        whole, numerator, denominator = (
            int(match[key]) for key in ("whole", "mixed_num", "mixed_den")
        )
        if denominator == 0:
            return None
        value, is_exact, is_fraction = whole + Fraction(numerator, denominator), True, True
    else:
        numerator = _literal(match["num"])
        denominator = _literal(match["den"]) if match["den"] else (Fraction(1), True)
        if numerator is None or denominator is None or denominator[0] == 0:
            return None
        value = numerator[0] / denominator[0]
        is_exact, is_fraction = numerator[1] and denominator[1], match["den"] is not None
    return _Parsed(-value if negative else value, is_exact, is_fraction)


def parse_number(text: str) -> Fraction | None:
    """The number a short answer states, exactly, or None when it is not one number.

    Drops ``$``, ``,``, ``%``, a trailing ``.``, a leading ``+`` and trailing unit words.

    >>> [str(parse_number(t)) for t in ["$1,200.50", "1 1/2", "25%", "12 cm", "-7"]]
    ['2401/2', '3/2', '25', '12', '-7']
    >>> [str(parse_number(t)) for t in ["one hundred and five", "a dozen", "\\\\frac{3}{4}"]]
    ['105', '12', '3/4']
    >>> parse_number("3 apples and 4 pears") is None
    True
    """
    parsed = _parse(text)
    return None if parsed is None else parsed.value


def _format(parsed: _Parsed) -> str:
    value = parsed.value
    if value.denominator == 1:
        return str(value.numerator)
    places = next((k for k in range(40) if (10**k) % value.denominator == 0), None)
    if parsed.is_fraction or places is None:
        return f"{value.numerator}/{value.denominator}"
    digits = str(abs(value.numerator) * 10**places // value.denominator).rjust(places + 1, "0")
    return ("-" if value < 0 else "") + digits[:-places] + "." + digits[-places:]


def _normalize(text: str) -> str:
    """Canonical answer text: ``72``, ``-3.5``, ``1/2``; non-numbers lower-cased, no spaces."""
    parsed = _parse(text)
    if parsed is not None:
        return _format(parsed)
    cleaned = re.sub(r"\s+", "", _clean_latex(text)).lower()
    return cleaned.removeprefix("+").replace("$", "").rstrip(".")


def answers_match(a: str, b: str) -> bool:
    """Whether two answers are the same number (or the same normalized text).

    >>> answers_match("1,000", "1000"), answers_match("$5", "5.00"), answers_match("1/2", "0.5")
    (True, True, True)
    >>> answers_match("50%", "50"), answers_match("50%", "0.5"), answers_match("0.333333", "1/3")
    (True, False, True)
    """
    parsed_a, parsed_b = _parse(a), _parse(b)
    if parsed_a is not None and parsed_b is not None:
        if parsed_a.is_exact and parsed_b.is_exact:
            return parsed_a.value == parsed_b.value
        x, y = parsed_a.value, parsed_b.value
        return abs(x - y) <= max(Fraction(1, 10**6) * max(abs(x), abs(y)), Fraction(1, 10**9))
    if parsed_a is not None or parsed_b is not None:
        return False
    return _normalize(a) == _normalize(b) != ""


# --- extraction ------------------------------------------------------------------------------
# A number as models write it: sign (not a binary minus after a digit), $, thousands groups,
# decimals, a/b, a mixed number, \frac{a}{b}, %.
_CORE = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"
_NUMBER = (
    rf"(?:(?<![\d)\]}}])(?<![\d)\]}}]\s)[-−+])?(?:\\?\$\s*-?)?"
    rf"(?:\\[dt]?frac\{{\s*-?(?:{_CORE})\s*\}}\{{\s*-?(?:{_CORE})\s*\}}"
    rf"|(?:\d+\s+(?=\d+\s*/\s*\d))?(?:{_CORE})(?:\s*/\s*(?:{_CORE}))?)(?:\s*\\?%)?"
)
_LEAD = r"[\s:*$\\(\[]*"
_STRICT = re.compile(rf"####\s*(?:\\?\$\s*)?(?P<answer>{_NUMBER})")
_ANSWER_IS = re.compile(rf"answer\s*(?:is|=)\s*:?{_LEAD}(?P<answer>{_NUMBER})", re.IGNORECASE)
_A_COLON = re.compile(
    rf"^[ \t*#>]*(?:final\s+)?(?:a|answer)[ \t*]*:[ \t*$\\(\[]*(?P<answer>{_NUMBER})[^\n\d]*$",
    re.IGNORECASE | re.MULTILINE,
)
_ANY_NUMBER = re.compile(_NUMBER)
_BOXED = re.compile(r"(?<![A-Za-z])\\?(?:boxed|fbox)\s*\{")


def _last_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}``, nested braces included."""
    starts = [match.end() - 1 for match in _BOXED.finditer(text)]
    if not starts:
        return None
    opened, closing = [], {}  # one pass pairs every brace, so unclosed ones cost no rescans
    for brace in re.finditer(r"[{}]", text):
        if brace[0] == "{":
            opened.append(brace.start())
        elif opened:
            closing[opened.pop()] = brace.start()
    start = next((start for start in reversed(starts) if start in closing), None)
    return None if start is None else text[start + 1 : closing[start]]


def _extract(text: str, mode: str) -> tuple[str | None, str | None]:
    """(normalized answer, method that found it) for one mode."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: expected one of {', '.join(MODES)}")
    if mode in ("strict", "flexible"):
        raw = lm_eval_strict(text) if mode == "strict" else lm_eval_flexible(text)
        return (None, None) if raw == LM_EVAL_INVALID else (_lm_eval_normalize(raw), mode)
    if mode == "auto" and (match := _STRICT.search(text)):
        return _normalize(match["answer"]), "strict"
    boxed = _last_boxed(text)
    if boxed is not None and _normalize(boxed):
        return _normalize(boxed), "boxed"
    if mode == "boxed":
        return None, None
    for method, pattern in (("answer-is", _ANSWER_IS), ("a-colon", _A_COLON)):
        matches = list(pattern.finditer(text))
        if matches:
            return _normalize(matches[-1]["answer"]), method
    numbers = _ANY_NUMBER.findall(text)
    return (_normalize(numbers[-1]), "flexible") if numbers else (None, None)


def extract_answer(text: str, mode: str = "auto") -> str | None:
    """The final answer a completion states, normalized, or None when there is none.

    ``auto`` tries ``#### N``, the last ``\\boxed{}``, "the answer is N", a line "A: N" /
    "Answer: N", then the last number. ``strict``/``flexible`` return the string lm-eval
    compares (``None`` where lm-eval says ``[invalid]``).

    >>> extract_answer("So she has 3 + 4 = 7 apples. The answer is 7.")
    '7'
    >>> extract_answer("x = 1\\nA: $1,250.00\\n"), extract_answer("no digits", mode="flexible")
    ('1250', None)
    """
    return _extract(text, mode)[0]


@dataclass(frozen=True)
class Grade:
    """One graded completion."""

    is_correct: bool  # the extracted answer equals the reference (lm-eval or numeric rules)
    extracted: str | None  # normalized extracted answer; None when nothing was found
    reference: str  # normalized reference answer
    method: str | None  # strict | boxed | answer-is | a-colon | flexible | answer-line | last-line


def reference_answer(reference: str) -> str:
    """The normalized final answer of a GSM8K solution (``... #### 72``), a boxed or bare one.

    >>> reference_answer("She sold 48/2 = <<48/2=24>>24 clips.\\n#### 1,000")
    '1000'
    >>> reference_answer("\\\\boxed{\\\\dfrac{1}{2}}"), reference_answer("$0.50")
    ('1/2', '0.5')
    """
    if "####" in reference:
        return _normalize(reference.rsplit("####", 1)[1])
    boxed = _last_boxed(reference)
    return _normalize(boxed if boxed is not None else reference)


def grade(
    completion: str, reference: str, mode: str = "auto", choices: Sequence[str] = ()
) -> Grade:
    """Grade a completion against a reference answer.

    In ``strict``/``flexible`` mode ``is_correct`` is exactly lm-eval's gsm8k exact match;
    in ``boxed``/``auto`` mode it is :func:`answers_match`. ``answer-line``, ``latex``,
    ``choice`` and ``exact`` are the answer-typed modes (see :func:`_grade_typed`);
    ``choices`` are a multiple-choice problem's options, in letter order. Raises ValueError
    for an unknown mode or a blank reference.

    >>> grade("The answer is 1,000 dollars.", "1000.00").is_correct
    True
    >>> grade("The answer is 1000.0", "#### 1000", mode="flexible")
    Grade(is_correct=False, extracted='1000.0', reference='1000', method='flexible')
    """
    if mode in _TYPED_MODES:
        return _grade_typed(completion, reference, mode, tuple(choices))
    extracted, method = _extract(completion, mode)
    if not reference.strip():
        raise ValueError("reference answer is empty: expected a number, a boxed answer or '#### N'")
    if mode == "strict":
        is_correct = lm_eval_match(lm_eval_strict(completion), reference)
        return Grade(is_correct, extracted, _lm_eval_normalize(reference), method)
    if mode == "flexible":
        is_correct = lm_eval_match(lm_eval_flexible(completion), reference)
        return Grade(is_correct, extracted, _lm_eval_normalize(reference), method)
    expected = reference_answer(reference)
    is_correct = extracted is not None and answers_match(extracted, expected)
    return Grade(is_correct, extracted, expected, method)


# --- answer types: an answer line, LaTeX, multiple choice, exact strings ---------------------
# HLE's answer format (Phan et al. 2025, hle_eval/run_model_predictions.py) ends with
# "Exact Answer: ..." (or "Answer: ..." for multiple choice) and "Confidence: N%".
_ANSWER_LINE = re.compile(
    r"^[ \t*#>]*(?:exact\s+|final\s+)?answer[ \t*]*:[ \t*]*(?P<answer>\S.*?)[ \t*]*$",
    re.IGNORECASE | re.MULTILINE,
)
_CONFIDENCE = re.compile(
    r"^[ \t*#>]*confidence[ \t*]*(?:score)?[ \t*]*:[ \t*]*(?P<value>\d+(?:\.\d+)?)\s*(?P<percent>%)?",
    re.IGNORECASE | re.MULTILINE,
)
_ANSWER_IS_TEXT = re.compile(r"answer\s+is\s*:?\s*(?P<answer>[^\n]+?)\s*\.?\s*$", re.I | re.M)
_TYPED_MODES = ("answer-line", "latex", "choice", "exact")
_CHOICE_LETTER = re.compile(r"\(?([A-Za-z])\)?(?=[.:)\s]|$)")
_MAX_LATEX_CHARS = 300  # longer "answers" are not parsed (sympy can take very long on them)


def extract_confidence(text: str) -> float | None:
    """The confidence a completion states on a ``Confidence: N%`` line, as a fraction.

    The number is read as a percentage (the format asks for 0% to 100%); the last such line
    counts. None when there is none or it is over 100.

    >>> extract_confidence("Explanation: ...\\nExact Answer: 7\\nConfidence: 85%")
    0.85
    >>> extract_confidence("Exact Answer: 7") is None, extract_confidence("Confidence: 120%")
    (True, None)
    """
    matches = list(_CONFIDENCE.finditer(text))
    if not matches:
        return None
    value = float(matches[-1]["value"])
    return value / 100 if 0 <= value <= 100 else None


def _typed_answer(text: str) -> tuple[str | None, str | None]:
    """(raw answer, method) for the typed modes, first found wins.

    An ``Exact Answer:`` / ``Answer:`` line (``answer-line``), ``#### X`` (``strict``), the
    last ``\\boxed{}`` (``boxed``), "the answer is X" (``answer-is``), else the last non-empty
    line (``last-line``).
    """
    lines = list(_ANSWER_LINE.finditer(text))
    if lines:
        return lines[-1]["answer"].strip(), "answer-line"
    if "####" in text:
        final = text.rsplit("####", 1)[1].strip().splitlines()
        if final and final[0].strip():
            return final[0].strip(), "strict"
    boxed = _last_boxed(text)
    if boxed is not None and boxed.strip():
        return boxed.strip(), "boxed"
    stated = list(_ANSWER_IS_TEXT.finditer(text))
    if stated:
        return stated[-1]["answer"].strip(), "answer-is"
    rest = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return (rest[-1], "last-line") if rest else (None, None)


def normalize_exact(text: str) -> str:
    """An exact-match answer as compared (HLE-style): LaTeX markup and ``$`` dropped, case,
    spaces and a trailing period ignored.

    >>> normalize_exact("  The Riemann  Hypothesis. "), normalize_exact("$\\\\text{Paris}$")
    ('the riemann hypothesis', 'paris')
    """
    text = _clean_latex(_last_boxed(text) or text) if "boxed" in text else _clean_latex(text)
    text = " ".join(text.replace("$", " ").split()).lower()
    return text.rstrip(".").strip()


def latex_equal(answer: str, reference: str) -> bool:
    """Whether two LaTeX / plain math answers are the same value, by math-verify.

    math-verify (``pip install math-verify``, the library trl and lighteval grade with) parses
    both to sympy: fractions, radicals, intervals, sets, ``\\boxed{}``; ``x+1`` equals ``1+x``.
    Imported here, so the rest of this module needs nothing installed.

    >>> latex_equal("\\\\frac{1}{2}", "0.5"), latex_equal("\\\\dfrac12", "\\\\frac{1}{2}")
    (True, True)
    >>> latex_equal("x+1", "1+x"), latex_equal("3", "4")
    (True, False)
    """
    try:
        from math_verify import parse, verify
    except ImportError as error:
        raise RuntimeError(
            "answer type 'latex' is graded with math-verify: pip install math-verify"
        ) from error

    # math-verify's timeouts use SIGALRM, which works only in the main thread (a Gradio
    # handler runs in a worker thread): there, no timeout, and the input length is bounded.
    timeout = 5 if threading.current_thread() is threading.main_thread() else None
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # "timeout is disabled" notes

    def parsed(text: str) -> list:
        text = text.strip()
        if len(text) > _MAX_LATEX_CHARS:
            return []
        wrapped = text if "$" in text or "\\boxed" in text else f"${text}$"
        return parse(wrapped, parsing_timeout=timeout)

    gold, given = parsed(reference), parsed(answer)
    if not gold or not given:
        return normalize_exact(answer) == normalize_exact(reference) != ""
    return bool(verify(gold, given, timeout_seconds=timeout))


def choice_letter(text: str, choices: Sequence[str] = ()) -> str | None:
    """The letter a multiple-choice answer names: ``B``, ``(B)``, ``B. text``, or a choice's text.

    >>> choice_letter("(c)"), choice_letter("B. 12 apples"), choice_letter("12", ["7", "12"])
    ('C', 'B', 'B')
    >>> choice_letter("none of these", ["7", "12"]) is None
    True
    """
    text = _clean_latex(text).strip()
    wanted = normalize_exact(text)
    for index, choice in enumerate(choices):
        if normalize_exact(str(choice)) == wanted:
            return LETTERS[index]
    match = _CHOICE_LETTER.match(text)
    if match and (not choices or LETTERS.index(match[1].upper()) < len(choices)):
        return match[1].upper()
    return None


def _grade_typed(completion: str, reference: str, mode: str, choices: tuple[str, ...]) -> Grade:
    """The answer-typed modes: the answer from ``_typed_answer``, compared by its type.

    ``answer-line`` compares numbers (``answers_match``), ``latex`` by math-verify, ``choice``
    by letter (the reference may be a letter or a choice's text), ``exact`` by
    ``normalize_exact``.
    """
    if not reference.strip():
        raise ValueError("reference answer is empty: expected the dataset's answer")
    raw, method = _typed_answer(completion)
    if mode == "choice":
        expected = choice_letter(reference, choices) or normalize_exact(reference)
        extracted = None if raw is None else choice_letter(raw, choices)
        return Grade(extracted is not None and extracted == expected, extracted, expected, method)
    if mode == "exact":
        expected = normalize_exact(reference)
        extracted = None if raw is None else normalize_exact(raw)
        return Grade(bool(extracted) and extracted == expected, extracted, expected, method)
    if mode == "latex":
        expected = (_last_boxed(reference) or reference).strip()
        is_correct = raw is not None and latex_equal(raw, expected)
        return Grade(is_correct, raw, expected, method)
    expected = reference_answer(reference)
    extracted = None if raw is None else _normalize(raw)
    return Grade(
        extracted is not None and answers_match(extracted, expected), extracted, expected, method
    )
