"""Hints, one at a time: grounded in a known solution when there is one, checked when not.

    python -m mathtutor.hints "Tom has 3 apples and buys 4 more. How many?"

``hint_stream`` yields ``Progress`` while a model writes and then ONE ``Hint``:

- **Grounded** (the problem has a worked solution: GSM8K, the generators, an upload with a
  ``solution``): hint ``n`` is the solution's step ``n`` as a question
  (``grounding.grounded_hint``), instant and correct. With ``rephrase=True`` the model may
  reword it; the rewording is shown only if ``grounding.safe_rephrasing`` accepts it.
- **Pasted** (no solution): the model writes ``NUM_HINT_CANDIDATES`` candidates in one batched
  call within a time budget (``HINT_SECONDS``, shown up front). Each goes through
  ``check_model_hint``: it is cut to whole sentences; it must talk about this problem (a word
  or a number of the problem); every number in it must be stated by the problem; each
  arithmetic step is checked by ``mathtutor.checks`` and its result is *asked for* rather than
  stated (``24 / 3 = ?``), because without a reference any computed number may be the answer;
  ``####`` and a known answer are never shown. No candidate passes: one more round with other
  seeds if the budget allows, else a question from ``FALLBACK_HINTS``.

>>> check_model_hint("Why? 7*8=54.", "What is 7 times 8?", [])
'Why? 7*8 = ?'
>>> check_model_hint("A friend of the entertainer", "Janet's ducks lay 16 eggs.", []) is None
True
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from mathtutor import cli, grounding
from mathtutor.answers import answers_match, normalize_exact, parse_number, reference_answer
from mathtutor.checks import find_steps
from mathtutor.generate import GenerationSettings, stream_completions
from mathtutor.prompts import HINT_STOP, hint_messages
from mathtutor.tutor import (
    BASE,
    HINT_TOKENS,
    NUM_HINT_CANDIDATES,
    Progress,
    prepare_problem,
    render_turns,
    stated_numbers,
)

if TYPE_CHECKING:
    from mathtutor.models import LoadedModel

HINT_SECONDS = 30.0  # the budget shown to the student; generation stops there
FALLBACK_HINTS = (
    "What exactly does the question ask you to find, and in what units?",
    "Which numbers in the problem do you need, and what does each one stand for?",
    "What is the first quantity you can work out from those numbers?",
    "How does that result lead to the next step?",
    "Can you put your steps together and check the result against the story?",
)
REPHRASE_PROMPT = (
    "Rewrite this question for a student in one short, friendly sentence. Keep every number "
    "as it is and add no new numbers. Reply with the question only.\n\nQuestion: {hint}"
)
_SENTENCE = re.compile(r"(?:[^.?!]|\.(?=\d))*[.?!]+")  # "7.5" does not end one
_WRITTEN = re.compile(r"\s*\$?\s*-?\d[\d,]*(?:\.\d+)?")
_WORD = re.compile(r"[A-Za-z]{4,}")
_COMMON = set(
    [
        "that",
        "this",
        "what",
        "with",
        "from",
        "have",
        "many",
        "much",
        "each",
        "they",
        "there",
        "their",
        "then",
        "them",
        "does",
        "will",
        "would",
        "could",
        "should",
        "about",
        "into",
        "more",
        "less",
        "than",
        "your",
        "find",
        "work",
        "step",
        "next",
        "question",
        "answer",
        "total",
        "first",
        "know",
        "need",
        "how",
    ]
)


@dataclass(frozen=True)
class Hint:
    """One guiding question and where it came from."""

    text: str
    source: str  # "grounded", "rephrased", "model" (checked), "fallback" or "done"
    step: grounding.RefStep | None = None  # the reference step a grounded hint asks for
    total_steps: int | None = None
    seconds: float = 0.0
    num_tokens: int = 0


def _key(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def clean_hint(text: str) -> str:
    """The hint line without list marks, labels ("Hint 2:", "The next question is:") or quotes.

    >>> clean_hint('The next guiding question is: "How many clips in May?"')
    'How many clips in May?'
    """
    line = text.strip().splitlines()[0] if text.strip() else ""
    line = re.sub(r"^\s*(?:\d+[.)]|[-*•])\s*", "", line)
    line = re.sub(r"^[^\"?:]{0,60}?\b(?:question|hint)\b[^\"?:]{0,12}:\s*", "", line, flags=re.I)
    line = re.sub(r"^\w+:\s*", "", line)
    return line.strip().strip("\"'“”").strip()[:300]


def reveals_answer(text: str, answer: str | None, problem: str) -> bool:
    """Whether ``text`` gives away ``answer``: ``####``, or the answer as a number (digits or
    words) when the problem does not already state that number; an answer that is not a
    number (a practice set's exact answer) when the text holds it and the problem does not.

    >>> reveals_answer("How many clips in May?", "72", "48 clips"), reveals_answer("#### 5", None, "")
    (False, True)
    >>> reveals_answer("Is it seventy-two?", "72", ""), reveals_answer("Start from 48.", "48", "48 clips")
    (True, False)
    >>> reveals_answer("Is the capital Paris?", "Paris", "Name the capital of France.")
    True
    """
    if "####" in text:
        return True
    if not answer:
        return False
    if parse_number(answer) is None:
        words = normalize_exact(answer)
        return (
            len(words) >= 3
            and words in normalize_exact(text)
            and words not in normalize_exact(problem)
        )
    given = any(answers_match(number, answer) for number in stated_numbers(problem))
    return not given and any(answers_match(number, answer) for number in stated_numbers(text))


def _on_topic(text: str, problem: str) -> bool:
    words = {w.lower() for w in _WORD.findall(problem)} - _COMMON
    shared = {w.lower() for w in _WORD.findall(text)} & words
    return bool(shared) or bool(grounding.numbers_in(text) & grounding.numbers_in(problem))


def check_model_hint(
    text: str, problem: str, asked: list[str], answer: str | None = None
) -> str | None:
    """The hint as it may be shown (rule in the module doc), or None when it must be replaced."""
    text = clean_hint(text)
    sentences = [s.strip() for s in _SENTENCE.findall(text) if s.strip()]
    given = _given_numbers(problem)
    kept = []
    for sentence in sentences:
        if "####" in sentence or reveals_answer(sentence, answer, problem):
            continue
        steps = find_steps(sentence)
        if any(not set(grounding.operands(step.expression)) <= given for step in steps):
            continue  # a step on numbers this problem does not have: another problem's
        prose, shown = sentence, sentence
        for step in reversed(steps):  # the result is the student's to find (wrong or not)
            end = step.end
            if step.kind == "annotation":
                after = _WRITTEN.match(sentence, step.end)
                end = after.end() if after else step.end
                left = ""
            else:
                left = sentence[step.start : step.end].split("=", 1)[0].rstrip() + " = "
            prose = f"{prose[: step.start]} {prose[end:]}"
            shown = f"{shown[: step.start]}{left}?{shown[end:]}"
        if grounding.numbers_in(prose) <= given:
            kept.append(re.sub(r"\?\s*[.!]+$", "?", shown))
    hint = " ".join(kept).strip()
    if (
        not re.search(r"[A-Za-z]{2}", hint)
        or not _on_topic(hint, problem)
        or _key(hint) in {_key(a) for a in asked}
    ):
        return None
    return hint


def _given_numbers(problem: str) -> set[Fraction]:
    """Numbers a model hint may use: the problem's (digits or words), and 1, 2 and 100 (for
    "half", "twice", "percent")."""
    words = {Fraction(v) for v in map(parse_number, stated_numbers(problem)) if v is not None}
    return grounding.numbers_in(problem) | words | {1, 2, 100}


def is_grounded(solution: str | None) -> bool:
    """Whether hints for a problem with this worked solution come from it (no model needed)."""
    return bool(solution and grounding.reference_steps(solution))


def hint_budget(num_candidates: int = NUM_HINT_CANDIDATES) -> tuple[int, float]:
    """(tokens, seconds) a model hint may take at most: shown before it starts."""
    return HINT_TOKENS * num_candidates, HINT_SECONDS


def hint_stream(
    loaded: LoadedModel | None,
    problem: str,
    hints_so_far: list[str],
    system: str = BASE,
    reference: str | None = None,
    solution: str | None = None,
    *,
    rephrase: bool = False,
    max_new_tokens: int = HINT_TOKENS,
    budget_seconds: float = HINT_SECONDS,
) -> Iterator[Progress | Hint]:
    """Progress while a model writes, then the next hint (rules in the module doc)."""
    problem, _ = prepare_problem(problem)
    asked = [hint.strip() for hint in hints_so_far if hint.strip()]
    if is_grounded(solution):
        steps = grounding.reference_steps(solution)
        yield from _grounded(loaded, problem, steps, len(asked), system, rephrase, max_new_tokens)
        return
    if loaded is None:
        raise ValueError("a problem without a worked solution needs a model for hints")
    answer = reference_answer(reference) if reference else None  # tutor.check_reference'd
    if answer is not None and parse_number(answer) is None:
        answer = reference  # a practice set's text answer, kept as written (reveals_answer)
    started, tokens = time.perf_counter(), 0
    for round_number in range(2):
        prompt = render_turns(hint_messages(problem, asked), loaded.tokenizer)
        settings = GenerationSettings(
            max_new_tokens=min(max_new_tokens, HINT_TOKENS),
            temperature=0.7,
            seed=len(asked) + 100 * round_number,
            stop=HINT_STOP,
        )
        budget_tokens = settings.max_new_tokens * NUM_HINT_CANDIDATES
        completions = []
        for completions in stream_completions(
            loaded, [prompt] * NUM_HINT_CANDIDATES, system, settings
        ):
            done = tokens + sum(c.num_tokens for c in completions)
            elapsed = time.perf_counter() - started
            yield Progress(
                "hint", done, elapsed, budget_tokens * (round_number + 1), budget_seconds
            )
            if elapsed > budget_seconds:
                break  # what was written so far is checked; cut sentences are dropped
        tokens += sum(c.num_tokens for c in completions)
        for completion in completions:
            text = check_model_hint(completion.text, problem, asked, answer)
            if text:
                yield Hint(text, "model", seconds=time.perf_counter() - started, num_tokens=tokens)
                return
        if time.perf_counter() - started > budget_seconds / 2:
            break  # no time for another round
    unused = [h for h in FALLBACK_HINTS if _key(h) not in {_key(a) for a in asked}]
    text = (unused or list(FALLBACK_HINTS))[0]
    yield Hint(text, "fallback", seconds=time.perf_counter() - started, num_tokens=tokens)


def _grounded(
    loaded: LoadedModel | None,
    problem: str,
    steps: tuple[grounding.RefStep, ...],
    index: int,
    system: str,
    rephrase: bool,
    max_new_tokens: int,
) -> Iterator[Progress | Hint]:
    if index >= len(steps):
        text = "That was the last step: put your results together, then check your answer."
        yield Hint(text, "done", total_steps=len(steps))
        return
    hint = grounding.grounded_hint(steps, index, problem)
    if not rephrase or loaded is None:
        yield Hint(hint.text, "grounded", hint.step, len(steps))
        return
    turns = [{"role": "user", "content": REPHRASE_PROMPT.format(hint=hint.text)}]
    settings = GenerationSettings(max_new_tokens=min(max_new_tokens, 60), stop=HINT_STOP)
    started, completion = time.perf_counter(), None
    for (completion,) in stream_completions(
        loaded, [render_turns(turns, loaded.tokenizer)], system, settings
    ):
        yield Progress("rephrase", completion.num_tokens, time.perf_counter() - started, 60, None)
    text = clean_hint(completion.text) if completion else ""
    seconds = time.perf_counter() - started
    if grounding.safe_rephrasing(text, hint, steps, problem):
        yield Hint(text, "rephrased", hint.step, len(steps), seconds, completion.num_tokens)
    else:
        yield Hint(hint.text, "grounded", hint.step, len(steps), seconds)


def next_hint(loaded: LoadedModel | None, problem: str, hints_so_far: list[str], **kwargs) -> Hint:
    """The hint ``hint_stream`` ends with."""
    *_, last = hint_stream(loaded, problem, hints_so_far, **kwargs)
    assert isinstance(last, Hint)
    return last


def main(argv: list[str] | None = None) -> None:
    """One hint for a pasted problem (no worked solution: a checked model hint)."""
    parser = cli.ArgumentParser(prog="python -m mathtutor.hints", epilog=cli.DEBUG_HELP)
    parser.add_argument("problem")
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--reference", default=None)
    args = parser.parse_args(argv)
    from mathtutor.models import load_model
    from mathtutor.tutor import check_reference

    loaded = load_model(args.model)
    print(next_hint(loaded, args.problem, [], reference=check_reference(args.reference)).text)


if __name__ == "__main__":
    sys.exit(cli.run(main))
