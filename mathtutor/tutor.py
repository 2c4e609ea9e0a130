"""The tutor: worked solutions with checked arithmetic, and the answer to check against.

Shared by the Tutor tab, the CLI and the tests (hints: ``mathtutor.hints``; verdicts on a
student's answer: ``mathtutor.verdicts``; a known worked solution: ``mathtutor.grounding``):

- ``solve`` / ``solve_stream``: the model's worked steps (calculator-assisted decoding on by
  default), the extracted final answer, and every arithmetic step verified by
  ``mathtutor.checks`` (wrong ones carry their true value). Checked arithmetic is only that:
  it never makes the model's answer right.
- ``self_consistency`` / ``self_consistency_stream``: k samples in ONE batched call,
  majority-voted (``metrics.majority_vote``); ``expected_answer``: the known reference
  (``check_reference``: it must be a number), else that vote.
- ``grade_known``: an answer against a known reference of any answer type (a practice set's
  LaTeX, multiple-choice or exact-string answers), graded by ``answers.grade`` in the mode
  ``PromptFormat.grader_for`` names for that type.

Every model call streams ``Progress`` (tokens so far, elapsed, the budget) so the UI can show
it and stop it. Student-safe limits: a problem is cut to ``MAX_PROBLEM_CHARS`` and working to
``MAX_WORKING_CHARS`` with a notice (never refused); nothing is written unless
``save_session``; rate limits are ``mathtutor.access``'s.

    python -m mathtutor.tutor "Tom has 3 apples and buys 4 more. How many?"

>>> looks_like_math("What is the capital of France?"), looks_like_math("How many eggs are left?")
(False, True)
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from mathtutor import cli
from mathtutor.answers import (
    ANSWER_TYPES,
    Grade,
    extract_answer,
    grade,
    parse_number,
    reference_answer,
)
from mathtutor.checks import Step, find_steps
from mathtutor.compare import clean_problem
from mathtutor.generate import GenerationSettings, stream_completions
from mathtutor.metrics import majority_vote
from mathtutor.models import BASE
from mathtutor.prompts import apply_chat, get_format, render, stop_sequences

if TYPE_CHECKING:
    from pathlib import Path

    from mathtutor.models import LoadedModel

PROMPT_FORMAT = "chat"  # asks for worked steps and a final "#### N" line
GRADER = get_format(PROMPT_FORMAT).grader  # how the tutor reads the model's final answer
MAX_PROBLEM_CHARS = 2000
MAX_WORKING_CHARS = 5000
MAX_ANSWER_CHARS = 200
MAX_K = 16
CONFIDENCE_THRESHOLD = 0.6  # below this vote share the tutor says it is unsure
NUM_HINT_CANDIDATES = 3
HINT_TOKENS = 80  # one question fits in 80 tokens; more is where hints ramble
SAMPLING = GenerationSettings(max_new_tokens=256, temperature=0.7, seed=0, calculator=True)
NOT_MATH = "I can help with math word problems. This doesn't look like one, but here is my try."
NO_NUMBERS = "This problem has no numbers in it, so there may be no numeric answer; I'll try."

_MATH_WORDS = re.compile(
    r"\b(how (many|much|far|long|old)|total|sum|difference|product|percent|fraction|average|"
    r"cost|price|pay|paid|earn|spend|times|twice|half|double|each|per|more than|less than|"
    r"left|remain\w*|calculate|solve|equation|area|perimeter|speed|distance|divide\w*|"
    r"multipl\w*|add|subtract)\b",
    re.IGNORECASE,
)
_WORDS = (
    "zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|"
    "fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|"
    "eighty|ninety|hundred|thousand|million|dozen"
)
_NUMBER_WORD = re.compile(rf"\b(?:{_WORDS})\b", re.IGNORECASE)
# a run of number words, "seventy-two", "one hundred and five", read by answers.parse_number
_NUMBER_WORDS = re.compile(rf"\b(?:{_WORDS})(?:(?:[\s-]+(?:and\s+)?)(?:{_WORDS}))*\b", re.I)
_NUMBER = re.compile(r"(?<![\w.])\$?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?%?")


# --------------------------------------------------------------------------- problems
def looks_like_math(problem: str) -> bool:
    """Whether ``problem`` reads like a math question (a number, an operator or a math word).

    >>> looks_like_math("Tell me a joke"), looks_like_math("3 + 4?"), looks_like_math("twelve eggs")
    (False, True, True)
    """
    return bool(
        re.search(r"\d|[+*/=×÷^]", problem)
        or _NUMBER_WORD.search(problem)
        or _MATH_WORDS.search(problem)
    )


def prepare_problem(problem: str) -> tuple[str, tuple[str, ...]]:
    """The problem stripped and cut to ``MAX_PROBLEM_CHARS``, with notices for the student.

    ValueError (friendly) only for an empty problem; a non-math or number-free problem gets a
    notice and is still tried.

    >>> prepare_problem("  Who wrote Hamlet? ")
    ('Who wrote Hamlet?', ("I can help with math word problems. This doesn't look like one, but here is my try.",))
    """
    text, cut = clean_problem(problem, MAX_PROBLEM_CHARS)
    notices = [cut] if cut else []
    if not looks_like_math(text):
        notices.append(NOT_MATH)
    elif not re.search(r"\d", text) and not _NUMBER_WORD.search(text):
        notices.append(NO_NUMBERS)
    return text, tuple(notices)


def _settings(
    settings: GenerationSettings | None, calculator: bool, **overrides
) -> GenerationSettings:
    settings = settings or GenerationSettings()
    stops = tuple(dict.fromkeys((*settings.stop, *stop_sequences(PROMPT_FORMAT))))
    return replace(settings, stop=stops, calculator=calculator, **overrides)


def gpu_work(action: str, k: Any = 5) -> tuple[tuple[int, int], ...]:
    """The decoding runs, (max_new_tokens, rows) each, that one Tutor action may do at most.

    For sizing a GPU call before it starts (`mathtutor.zerogpu.gpu_seconds`). `k` is taken as
    the UI sends it and clamped to 1..MAX_K (unreadable: MAX_K); the action validates it.

    >>> gpu_work("solve"), gpu_work("hint", 5.0), gpu_work("check", 100)
    (((256, 1),), ((80, 3), (256, 5)), ((256, 16),))
    """
    try:
        k = min(MAX_K, max(1, int(k)))
    except (TypeError, ValueError, OverflowError):
        k = MAX_K
    consensus = (SAMPLING.max_new_tokens, k)  # self_consistency: k samples in one batch
    if action == "solve":
        return ((GenerationSettings().max_new_tokens, 1),)  # solve_stream's default settings
    if action == "hint":
        return ((HINT_TOKENS, NUM_HINT_CANDIDATES), consensus)
    if action == "check":
        return (consensus,)
    if action == "deeper":  # `verdicts.deeper_check` samples up to MAX_K
        return ((SAMPLING.max_new_tokens, MAX_K),)
    raise ValueError(f"action {action!r}: expected one of solve, hint, check, deeper")


@dataclass(frozen=True)
class Progress:
    """How far a model call is: shown while it runs (every Tutor action streams these)."""

    action: str  # "solution", "hint", "rephrase", "check"
    num_tokens: int  # generated so far (all rows of a batched call together)
    seconds: float  # elapsed
    budget_tokens: int  # the most it may generate
    budget_seconds: float | None = None  # a time budget, when the action has one


def check_reference(reference: str | None, answer_type: str = "number") -> str | None:
    """The reference stripped (None when blank); ValueError when a number is expected and it
    states none (a LaTeX, choice or exact answer is any text: ``grade_known`` reads it).

    >>> check_reference(" #### 18 "), check_reference(""), check_reference("Paris", "exact")
    ('#### 18', None, 'Paris')
    """
    if answer_type not in ANSWER_TYPES:
        raise ValueError(f"answer_type {answer_type!r} is not one of: {', '.join(ANSWER_TYPES)}")
    reference = (reference or "").strip() or None
    if answer_type != "number":
        return reference
    if reference is not None and parse_number(reference_answer(reference)) is None:
        raise ValueError(
            f"reference: {reference[:60]!r} is not a number; expected e.g. 18, 3/4, or a "
            "worked solution ending in '#### 18'"
        )
    return reference


def grade_known(
    answer: str, reference: str, answer_type: str = "number", choices: Sequence[str] = ()
) -> Grade:
    """``answer`` (a student's or the model's) graded against a known ``reference`` in its
    answer type: ``answers.grade`` in the mode the Tutor's format names for that type
    (``PromptFormat.grader_for``), so the Tutor grades as Evaluate does.

    >>> grade_known("\\\\frac{1}{2}", "0.5", "latex").is_correct, grade_known("b", "B", "choice", ["7", "12"]).is_correct
    (True, True)
    """
    mode = get_format(PROMPT_FORMAT).grader_for(answer_type)
    return grade(answer, reference, mode, choices)


# --------------------------------------------------------------------------- solutions
@dataclass(frozen=True)
class Solution:
    """A worked solution as generated so far, and (when done) its answer and checked steps."""

    problem: str
    system: str
    text: str
    done: bool = False
    answer: str | None = None  # normalized final answer (answers.extract_answer)
    steps: tuple[Step, ...] = ()  # every arithmetic step found, checked (done only)
    finish_reason: str | None = None
    calculator_calls: int = 0  # results the calculator wrote into the text
    notices: tuple[str, ...] = ()
    num_tokens: int = 0  # generated so far
    seconds: float = 0.0  # elapsed
    max_new_tokens: int = 0  # the length limit

    @property
    def wrong_steps(self) -> tuple[Step, ...]:
        return tuple(step for step in self.steps if step.is_correct is False)


def solve_stream(
    loaded: LoadedModel,
    problem: str,
    system: str = BASE,
    settings: GenerationSettings | None = None,
    calculator: bool = True,
) -> Iterator[Solution]:
    """Stream the worked solution token by token; the last yield is done and checked."""
    problem, notices = prepare_problem(problem)
    prompt = render(PROMPT_FORMAT, problem, loaded.tokenizer)
    settings = _settings(settings, calculator)
    started = time.perf_counter()
    for (completion,) in stream_completions(loaded, [prompt], [system], settings):
        timing = {
            "num_tokens": completion.num_tokens,
            "seconds": time.perf_counter() - started,
            "max_new_tokens": settings.max_new_tokens,
        }
        if completion.finish_reason is None:
            yield Solution(problem, system, completion.text, notices=notices, **timing)
            continue
        yield Solution(
            problem,
            system,
            completion.text,
            done=True,
            answer=extract_answer(completion.text, GRADER),
            steps=tuple(find_steps(completion.text)),
            finish_reason=completion.finish_reason,
            calculator_calls=completion.calculator_calls,
            notices=notices,
            **timing,
        )


def solve(
    loaded: LoadedModel,
    problem: str,
    system: str = BASE,
    settings: GenerationSettings | None = None,
    calculator: bool = True,
) -> Solution:
    """The finished worked solution (see ``solve_stream``)."""
    *_, last = solve_stream(loaded, problem, system, settings, calculator)
    return last


# --------------------------------------------------------------------------- self-consistency
@dataclass(frozen=True)
class Consensus:
    """The majority answer of k sampled solutions; share = count / k is the confidence."""

    answer: str | None
    count: int
    share: float
    answers: tuple[str | None, ...]  # each sample's answer (None: none, or cut off by the limit)
    seconds: float  # wall time of the one batched call
    num_tokens: int = 0  # tokens generated over all k samples

    @property
    def k(self) -> int:
        return len(self.answers)


def self_consistency_stream(
    loaded: LoadedModel,
    problem: str,
    k: int = 5,
    system: str = BASE,
    settings: GenerationSettings | None = None,
) -> Iterator[Progress | Consensus]:
    """Sample ``k`` solutions in ONE batched call, streaming ``Progress``; then the vote.

    Default sampling: ``SAMPLING`` (temperature 0.7, seeded, calculator on). A sample cut off
    by the token limit before writing ``####`` has no answer (its last number is a step).
    """
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise ValueError(f"k (number of samples) must be an integer from 1 to {MAX_K}, got {k!r}")
    problem, _ = prepare_problem(problem)
    settings = settings or SAMPLING
    settings = _settings(settings, settings.calculator)
    prompt = render(PROMPT_FORMAT, problem, loaded.tokenizer)
    started = time.perf_counter()
    completions = []
    for completions in stream_completions(loaded, [prompt] * k, system, settings):
        tokens = sum(c.num_tokens for c in completions)
        yield Progress("check", tokens, time.perf_counter() - started, settings.max_new_tokens * k)
    answers = tuple(
        None
        if completion.finish_reason == "length" and "####" not in completion.text
        else extract_answer(completion.text, GRADER)
        for completion in completions
    )
    vote = majority_vote(answers)
    seconds, num_tokens = time.perf_counter() - started, sum(c.num_tokens for c in completions)
    yield Consensus(vote.answer, vote.count, vote.share, answers, seconds, num_tokens)


def self_consistency(
    loaded: LoadedModel,
    problem: str,
    k: int = 5,
    system: str = BASE,
    settings: GenerationSettings | None = None,
) -> Consensus:
    """The ``Consensus`` that ``self_consistency_stream`` ends with."""
    *_, last = self_consistency_stream(loaded, problem, k, system, settings)
    assert isinstance(last, Consensus)
    return last


@dataclass(frozen=True)
class Expected:
    """The answer a student's answer is checked against, and how sure the tutor is of it."""

    problem: str
    system: str
    answer: str | None  # normalized; None when the model found no answer
    source: str  # "reference" (known answer) or "self-consistency"
    confidence: float  # 1.0 for a reference, else the vote share
    consensus: Consensus | None = None

    def matches(self, problem: str, system: str, reference: str | None) -> bool:
        """Whether this can be reused for (problem, system, reference) instead of sampling."""
        if reference:
            return self.source == "reference" and self.answer == reference_answer(reference)
        return self.source == "self-consistency" and (self.problem, self.system) == (
            problem,
            system,
        )


def expected_answer(
    loaded: LoadedModel,
    problem: str,
    reference: str | None = None,
    system: str = BASE,
    k: int = 5,
    settings: GenerationSettings | None = None,
    cached: Expected | None = None,
) -> Expected:
    """The known reference answer, else the model's self-consistent one (``cached`` reused)."""
    problem, _ = prepare_problem(problem)
    reference = check_reference(reference)
    if cached is not None and cached.matches(problem, system, reference):
        return cached
    if reference:
        return Expected(problem, system, reference_answer(reference), "reference", 1.0)
    consensus = self_consistency(loaded, problem, k, system, settings)
    return Expected(
        problem, system, consensus.answer, "self-consistency", consensus.share, consensus
    )


# --------------------------------------------------------------------------- numbers, turns
def fraction_text(value) -> str:
    return (
        str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    )


def stated_numbers(text: str) -> list[str]:
    """Every number ``text`` states, in digits or in words ("seventy-two" -> "72")."""
    words = [parse_number(run) for run in _NUMBER_WORDS.findall(text)]
    return _NUMBER.findall(text) + [fraction_text(v) for v in words if v is not None]


def render_turns(turns: list[dict[str, str]], tokenizer: Any) -> str:
    """Chat turns through the tokenizer's template (system folded in if rejected), else text."""
    if getattr(tokenizer, "chat_template", None):
        return apply_chat(tokenizer, turns)
    return "\n\n".join(turn["content"] for turn in turns) + "\nNext guiding question:"


# --------------------------------------------------------------------------- student safety
_SAVE_LOCK = threading.Lock()


def save_session(record: dict[str, Any], path: Path | None = None) -> Path:
    """Append one record (what the student chose to save) to ``home_dir()/tutor_saves.jsonl``."""
    from mathtutor.paths import home_dir

    path = path or home_dir() / "tutor_saves.jsonl"
    line = json.dumps({"saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"), **record}) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    with _SAVE_LOCK, path.open("a", encoding="utf-8") as handle:
        handle.write(line)
    return path


def main(argv: list[str] | None = None) -> None:
    """The model's worked solution with its arithmetic checked (hints: ``python -m
    mathtutor.hints``; checking an answer: ``python -m mathtutor.verdicts``)."""
    parser = cli.ArgumentParser(
        prog="python -m mathtutor.tutor",
        description=__doc__.splitlines()[0],
        epilog=cli.DEBUG_HELP,
    )
    parser.add_argument("problem")
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--dtype", default="auto", help="auto, float32, bfloat16 or float16")
    args = parser.parse_args(argv)
    from mathtutor.models import load_model

    solution = solve(load_model(args.model, dtype=args.dtype), args.problem)
    print(solution.text, f"\n\nanswer: {solution.answer}; wrong steps: {len(solution.wrong_steps)}")


if __name__ == "__main__":
    sys.exit(cli.run(main))
