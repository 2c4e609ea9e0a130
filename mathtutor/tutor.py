"""The tutor: worked solutions with checked arithmetic, one hint at a time, answer checking.

Three things a student asks for, one function each, shared by the Tutor tab, the CLI and
the tests:

- ``solve`` / ``solve_stream``: the model's worked steps (calculator-assisted decoding on by
  default), the extracted final answer, and every arithmetic step verified by
  ``mathtutor.checks`` (wrong ones carry their true value).
- ``next_hint``: ONE guiding question in GSM8K's socratic style. The rule that keeps the answer
  hidden: a hint *reveals* the answer when it writes ``####`` or a number (digits or words)
  equal to the expected final answer that the problem itself does not already state. Three
  candidates are sampled in one batched call; the first that reveals nothing and repeats no
  earlier hint is used; else a candidate with its revealing sentences cut; else a generic
  question from ``FALLBACK_HINTS``. The expected answer (reference, else self-consistency) is
  looked up only when a candidate writes a number the problem does not state.
- ``check_answer``: correct / not yet, never the answer itself unless ``reveal=True``. Against
  the known reference when there is one, else against ``self_consistency``: k samples in ONE
  batched generate call, majority-voted (``metrics.majority_vote``); below ``threshold`` vote
  share the tutor says it is unsure instead of judging.

Student-safe limits: a problem is cut to ``MAX_PROBLEM_CHARS`` and working to
``MAX_WORKING_CHARS`` with a notice (never refused, so a student always gets an answer);
Nothing is written unless ``save_session``; rate limits are ``mathtutor.access``'s.

    python -m mathtutor.tutor "Tom has 3 apples and buys 4 more. How many?" --mode hint

>>> looks_like_math("What is the capital of France?"), looks_like_math("How many eggs are left?")
(False, True)
>>> reveals_answer("So the answer is 72?", "72", "Natalia sold 48 clips...")
True
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from mathtutor import cli
from mathtutor.answers import answers_match, extract_answer, parse_number, reference_answer
from mathtutor.checks import Step, find_steps, format_value, wrong_steps
from mathtutor.compare import clean_problem
from mathtutor.generate import GenerationSettings, generate_batch, stream_completions
from mathtutor.metrics import majority_vote
from mathtutor.models import BASE
from mathtutor.prompts import (
    HINT_STOP,
    apply_chat,
    get_format,
    hint_messages,
    render,
    stop_sequences,
)

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
HINT_TOKENS = 80  # a hint is one short question
SAMPLING = GenerationSettings(max_new_tokens=256, temperature=0.7, seed=0, calculator=True)
FALLBACK_HINTS = (
    "What exactly does the question ask you to find, and in what units?",
    "Which numbers in the problem do you need, and what does each one stand for?",
    "What is the first quantity you can work out from those numbers?",
    "How does that result lead to the next step?",
    "Can you put your steps together and check the result against the story?",
)
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
_SENTENCE = re.compile(r"[^.?!;]+[.?!;]*")


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
    raise ValueError(f"action {action!r}: expected one of solve, hint, check")


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
    for (completion,) in stream_completions(loaded, [prompt], [system], settings):
        if completion.finish_reason is None:
            yield Solution(problem, system, completion.text, notices=notices)
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


def self_consistency(
    loaded: LoadedModel,
    problem: str,
    k: int = 5,
    system: str = BASE,
    settings: GenerationSettings | None = None,
) -> Consensus:
    """Sample ``k`` solutions in ONE batched generate call and majority-vote their answers.

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
    completions = generate_batch(loaded, [prompt] * k, system, settings, batch_size=k)
    answers = tuple(
        None
        if completion.finish_reason == "length" and "####" not in completion.text
        else extract_answer(completion.text, GRADER)
        for completion in completions
    )
    vote = majority_vote(answers)
    seconds, num_tokens = time.perf_counter() - started, sum(c.num_tokens for c in completions)
    return Consensus(vote.answer, vote.count, vote.share, answers, seconds, num_tokens)


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
    reference = (reference or "").strip() or None
    if cached is not None and cached.matches(problem, system, reference):
        return cached
    if reference:
        return Expected(problem, system, reference_answer(reference), "reference", 1.0)
    consensus = self_consistency(loaded, problem, k, system, settings)
    return Expected(
        problem, system, consensus.answer, "self-consistency", consensus.share, consensus
    )


# --------------------------------------------------------------------------- hints
def _numbers(text: str) -> list[str]:
    """Every number ``text`` states, in digits or in words ("seventy-two" -> "72")."""
    words = [parse_number(run) for run in _NUMBER_WORDS.findall(text)]
    return _NUMBER.findall(text) + [_fraction_text(v) for v in words if v is not None]


def reveals_answer(text: str, answer: str | None, problem: str) -> bool:
    """Whether ``text`` gives away ``answer``: ``####``, or the answer as a number (digits or
    words) when the problem does not already state that number.

    >>> reveals_answer("How many clips in May?", "72", "48 clips"), reveals_answer("#### 5", None, "")
    (False, True)
    >>> reveals_answer("Is it seventy-two?", "72", ""), reveals_answer("Start from 48.", "48", "48 clips")
    (True, False)
    """
    if "####" in text:
        return True
    if not answer:
        return False
    given = any(answers_match(number, answer) for number in _numbers(problem))
    return not given and any(answers_match(number, answer) for number in _numbers(text))


def _may_reveal(text: str, problem: str) -> bool:
    """Whether ``text`` writes ``####`` or a number the problem does not state (any answer)."""
    given = _numbers(problem)
    return "####" in text or any(
        not any(answers_match(number, known) for known in given) for number in _numbers(text)
    )


@dataclass(frozen=True)
class Hint:
    """One guiding question and where it came from."""

    text: str
    source: str  # "model", "cut" (revealing sentences removed) or "fallback"
    expected: Expected | None  # the hidden answer, if it was needed; pass back as `cached`


def _clean_hint(text: str) -> str:
    """The hint line without list marks, labels ("Hint 2:", "The next question is:") or quotes.

    >>> _clean_hint('The next guiding question is: "How many clips in May?"')
    'How many clips in May?'
    """
    line = text.strip().splitlines()[0] if text.strip() else ""
    line = re.sub(r"^\s*(?:\d+[.)]|[-*•])\s*", "", line)
    line = re.sub(r"^[^\"?:]{0,60}?\b(?:question|hint)\b[^\"?:]{0,12}:\s*", "", line, flags=re.I)
    line = re.sub(r"^\w+:\s*", "", line)
    return line.strip().strip("\"'“”").strip()[:300]


def _key(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def next_hint(
    loaded: LoadedModel,
    problem: str,
    hints_so_far: list[str],
    system: str = BASE,
    reference: str | None = None,
    k: int = 5,
    cached: Expected | None = None,
    calculator: bool = True,
) -> Hint:
    """ONE next guiding question that does not reveal the answer (rule in the module doc)."""
    problem, _ = prepare_problem(problem)
    asked = [hint.strip() for hint in hints_so_far if hint.strip()]
    prompt = _render_turns(hint_messages(problem, asked), loaded.tokenizer)
    settings = GenerationSettings(
        max_new_tokens=HINT_TOKENS, temperature=0.7, seed=len(asked), stop=HINT_STOP
    )
    completions = generate_batch(
        loaded, [prompt] * NUM_HINT_CANDIDATES, system, settings, batch_size=NUM_HINT_CANDIDATES
    )
    seen = {_key(hint) for hint in asked}
    candidates = [_clean_hint(c.text) for c in completions]
    fresh = [c for c in candidates if re.search(r"[A-Za-z]{2}", c) and _key(c) not in seen]
    # The hidden answer costs k samples without a reference, so it is found only when a
    # candidate writes a number the problem does not state (a hint without one reveals nothing).
    expected = cached if cached and cached.matches(problem, system, reference) else None
    if expected is None and (reference or any(_may_reveal(c, problem) for c in fresh)):
        sampling = replace(SAMPLING, calculator=calculator)
        expected = expected_answer(loaded, problem, reference, system, k, sampling)
    answer = expected.answer if expected else None
    safe = [c for c in fresh if not reveals_answer(c, answer, problem)]
    if safe:
        return Hint(next((c for c in safe if "?" in c), safe[0]), "model", expected)
    for candidate in fresh:
        kept = [
            s.strip()
            for s in _SENTENCE.findall(candidate)
            if not reveals_answer(s, answer, problem)
        ]
        text = " ".join(s for s in kept if re.search(r"[A-Za-z]{2}", s))
        if text and _key(text) not in seen:
            return Hint(text, "cut", expected)
    unused = [h for h in FALLBACK_HINTS if _key(h) not in seen] or list(FALLBACK_HINTS)
    return Hint(unused[0], "fallback", expected)


def _render_turns(turns: list[dict[str, str]], tokenizer: Any) -> str:
    """Chat turns through the tokenizer's template (system folded in if rejected), else text."""
    if getattr(tokenizer, "chat_template", None):
        return apply_chat(tokenizer, turns)
    return "\n\n".join(turn["content"] for turn in turns) + "\nNext guiding question:"


# --------------------------------------------------------------------------- checking answers
@dataclass(frozen=True)
class Verdict:
    """What the tutor says about a student's answer. ``message`` is Markdown for the student."""

    status: str  # "correct", "not-yet", "unsure" (not confident), "unreadable" or "revealed"
    message: str
    student: str | None = None  # the student's answer, normalized ("12", "3/4")
    expected: Expected | None = None  # never shown unless revealed
    slips: tuple[Step, ...] = ()  # wrong arithmetic in the student's working
    revealed: bool = False

    @property
    def is_correct(self) -> bool | None:
        return {"correct": True, "not-yet": False}.get(self.status)


def read_student_answer(text: str) -> str | None:
    """The number a student's answer states, normalized, or None.

    Plain numbers, words, units, fractions and percentages (``answers.parse_number``); else a
    sentence with exactly one number in it ("I think it is 12 apples").

    >>> [read_student_answer(t) for t in ["twelve", "12 cm", "3/4", "25%", "I got 12 apples", "lots"]]
    ['12', '12', '3/4', '25', '12', None]
    """
    text = (text or "").strip()
    if len(text) > MAX_ANSWER_CHARS:  # not an answer; cutting it would change the number
        return None
    value = parse_number(text)
    if value is None:
        numbers = _NUMBER.findall(text)
        value = parse_number(numbers[0]) if len(numbers) == 1 else None
    return None if value is None else _fraction_text(value)


def _fraction_text(value) -> str:
    return (
        str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    )


def _same_answer(student_text: str, student: str, expected: str) -> bool:
    """Equal numbers; a percentage also matches its fraction (25% == 0.25)."""
    if answers_match(student, expected):
        return True
    value, target = parse_number(student), parse_number(expected)
    return (
        "%" in student_text and value is not None and target is not None and value / 100 == target
    )


def _slip_lines(slips: list[Step], hidden: str | None) -> list[str]:
    lines = []
    for step in slips[:5]:
        value = format_value(step.actual) if step.actual is not None else None
        if value is None or (hidden is not None and answers_match(value, hidden)):
            lines.append(
                f"- In your working, `{step.expression} = {step.claimed}` is not right: redo it."
            )
        else:
            lines.append(
                f"- In your working, `{step.expression} = {step.claimed}` should be **{value}**."
            )
    return lines


def check_answer(
    loaded: LoadedModel,
    problem: str,
    student_answer: str,
    reference: str | None = None,
    working: str = "",
    system: str = BASE,
    k: int = 5,
    *,
    threshold: float = CONFIDENCE_THRESHOLD,
    reveal: bool = False,
    cached: Expected | None = None,
    calculator: bool = True,
) -> Verdict:
    """Correct / not yet / unsure for ``student_answer``; the answer only with ``reveal=True``.

    A slip whose true value is the hidden answer is pointed out without its value.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    problem, notices = prepare_problem(problem)
    notes = list(notices)
    if len(working or "") > MAX_WORKING_CHARS:
        notes.append(
            f"Your working was {len(working):,} characters; I checked the first {MAX_WORKING_CHARS:,}."
        )
    student = read_student_answer(student_answer)
    if student is None and not reveal:
        told = "I couldn't read a number in your answer"
        if not (student_answer or "").strip():
            told = "Type your answer first"
        elif len(student_answer.strip()) > MAX_ANSWER_CHARS:
            told = f"Your answer is longer than {MAX_ANSWER_CHARS} characters"
        message = f"{told}. Write just the number, for example `12`, `3/4`, `25%` or `twelve`."
        return Verdict("unreadable", "\n\n".join([*notes, message]))
    sampling = replace(SAMPLING, calculator=calculator)
    expected = expected_answer(loaded, problem, reference, system, k, sampling, cached)
    slips = wrong_steps((working or "")[:MAX_WORKING_CHARS])
    if expected.source == "reference":
        basis = "checked against the problem's known answer"
    else:
        votes = expected.consensus
        basis = f"checked against my own solutions: {votes.count} of {votes.k} agree"
    if expected.answer is None or expected.confidence < threshold:
        status = "unsure"
        lead = "🤔 I'm not sure about this one: my own attempts disagree"
        if expected.answer is None:
            lead = "🤔 I couldn't work this one out myself"
        lead += f" ({basis}), so I won't say right or wrong. Try a hint, or check each step."
    elif student is None:  # reveal without an answer to check
        status, lead = "revealed", f"You asked for the answer ({basis})."
    elif _same_answer(student_answer, student, expected.answer):
        status, lead = "correct", f"✅ Correct! **{student}** is right ({basis})."
    else:
        status = "not-yet"
        lead = f"🔎 Not yet: **{student}** isn't what I get. Look at your steps again, or ask "
        lead += f"for a hint ({basis})."
    hidden = None if reveal else expected.answer
    lines = [*notes, lead, *_slip_lines(slips, hidden)]
    if reveal:
        if expected.answer is None:
            lines.append("I have no answer to reveal: none of my attempts reached one.")
        elif status == "unsure":
            lines.append(f"My best guess is **{expected.answer}**, but I'm not confident.")
        else:
            lines.append(f"The answer is **{expected.answer}**.")
    return Verdict(status, "\n\n".join(lines), student, expected, tuple(slips), reveal)


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
    parser = cli.ArgumentParser(
        prog="python -m mathtutor.tutor",
        description=__doc__.splitlines()[0],
        epilog=cli.DEBUG_HELP,
    )
    parser.add_argument("problem")
    parser.add_argument("--mode", choices=("solve", "hint", "check"), default="solve")
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--answer", default="", help="the student's answer (check mode)")
    parser.add_argument("--reference", default=None)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--dtype", default="auto", help="auto, float32, bfloat16 or float16")
    args = parser.parse_args(argv)
    from mathtutor.models import load_model

    loaded = load_model(args.model, dtype=args.dtype)
    if args.mode == "solve":
        solution = solve(loaded, args.problem)
        print(
            solution.text,
            f"\n\nanswer: {solution.answer}; wrong steps: {len(solution.wrong_steps)}",
        )
    elif args.mode == "hint":
        print(next_hint(loaded, args.problem, [], reference=args.reference, k=args.k).text)
    else:
        print(check_answer(loaded, args.problem, args.answer, args.reference, k=args.k).message)


if __name__ == "__main__":
    sys.exit(cli.run(main))
