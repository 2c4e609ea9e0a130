"""Compare: one problem, two systems (base and/or adapters), answers streamed side by side.

`compare_stream` is the one function behind the Compare tab: it renders the prompt, runs
both systems in ONE batched decoding call over the shared base (mixed adapters), and yields
`Pane`s with the text so far, its timing (time to first token, tokens/s) and, once a pane
finishes, its extracted answer and grade. `first_difference` says at which arithmetic step
(`checks.find_steps`) two solutions part ways.

    python -m mathtutor.compare "Tom has 3 apples and buys 4 more. How many?" --reference 7
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from mathtutor import cli, hub
from mathtutor.answers import Grade, extract_answer, grade, parse_number
from mathtutor.checks import Step, find_steps, wrong_steps
from mathtutor.generate import GenerationSettings, stream_completions
from mathtutor.models import BASE, LoadedModel, load_model
from mathtutor.prompts import FORMATS, get_format, render, stop_sequences

MAX_PROBLEM_CHARS = 4000


@dataclass
class Pane:
    """What one side of the comparison shows."""

    system: str
    text: str
    done: bool = False
    finish_reason: str | None = None
    num_tokens: int = 0
    answer: str | None = None
    grade: Grade | None = None
    wrong_steps: tuple[Step, ...] = ()
    first_token_s: float | None = None  # seconds from the start to the first token
    seconds: float = 0.0  # seconds from the start to the latest update

    @property
    def tokens_per_s(self) -> float | None:
        """Decoding speed after the first token (None before a second token)."""
        if self.first_token_s is None or self.num_tokens < 2:
            return None
        decoding = self.seconds - self.first_token_s
        return (self.num_tokens - 1) / decoding if decoding > 0 else None


@dataclass
class Difference:
    """Where two solutions part ways: the index of the first differing step (None: never)."""

    left_steps: list[Step]
    right_steps: list[Step]
    index: int | None

    @property
    def left_values(self) -> list[str]:
        return [step.claimed for step in self.left_steps]

    @property
    def right_values(self) -> list[str]:
        return [step.claimed for step in self.right_steps]


def _step_value(step: Step):
    value = parse_number(step.claimed)
    return value if value is not None else step.claimed.strip()


def first_difference(left_text: str, right_text: str) -> Difference:
    """Both sides' arithmetic steps and the first one whose result differs.

    Steps are compared in order by the value they claim (`60*3 = 180` and `3*60=180` agree);
    when one side has more steps, the first extra step is where they part.

    >>> d = first_difference("3*4 = 12, 12+1 = 13", "3*4 = 12, 12+2 = 14")
    >>> d.index, d.left_values, d.right_values
    (1, ['12', '13'], ['12', '14'])
    >>> first_difference("2+2 = 4", "so 2 + 2 = 4").index is None
    True
    """
    left, right = find_steps(left_text), find_steps(right_text)
    for index, (a, b) in enumerate(zip(left, right, strict=False)):
        if _step_value(a) != _step_value(b):
            return Difference(left, right, index)
    index = min(len(left), len(right)) if len(left) != len(right) else None
    return Difference(left, right, index)


def clean_problem(problem: str, max_chars: int = MAX_PROBLEM_CHARS) -> tuple[str, str | None]:
    """Strip the problem and cut it to `max_chars`; returns (problem, notice or None).

    >>> clean_problem("  What is 2+2?  ")
    ('What is 2+2?', None)
    >>> clean_problem("x" * 5000)[1]
    'The problem was 5,000 characters long; only the first 4,000 were used.'
    """
    problem = (problem or "").strip()
    if not problem:
        raise ValueError("The problem is empty: type a math word problem or pick one.")
    if len(problem) <= max_chars:
        return problem, None
    notice = (
        f"The problem was {len(problem):,} characters long; only the first {max_chars:,} were used."
    )
    return problem[:max_chars], notice


def settings_for(
    prompt_format: str, settings: GenerationSettings | None = None
) -> GenerationSettings:
    """`settings` with the format's stop sequences added; every other setting kept as given.

    >>> merged = settings_for("qa", GenerationSettings(temperature=0.5))
    >>> merged.stop, merged.temperature
    (('\\nQ:',), 0.5)
    """
    settings = settings or GenerationSettings()
    stops = tuple(dict.fromkeys((*settings.stop, *stop_sequences(prompt_format))))
    return dataclasses.replace(settings, stop=stops)


def compare_stream(
    loaded: LoadedModel,
    problem: str,
    systems: Sequence[str] = (BASE, BASE),
    prompt_format: str = "chat",
    settings: GenerationSettings | None = None,
    reference: str | None = None,
) -> Iterator[list[Pane]]:
    """Stream both systems' answers to one problem; the last yield carries the grades."""
    if prompt_format not in FORMATS:
        raise ValueError(f"prompt format {prompt_format!r}: expected one of {sorted(FORMATS)}")
    settings = settings_for(prompt_format, settings)
    problem, _ = clean_problem(problem)
    prompt = render(prompt_format, problem, loaded.tokenizer)
    mode = get_format(prompt_format).grader
    reference = (reference or "").strip() or None
    panes = [Pane(system=name, text="") for name in systems]
    started = time.perf_counter()
    for step in stream_completions(loaded, [prompt] * len(systems), list(systems), settings):
        now = time.perf_counter() - started
        for pane, completion in zip(panes, step, strict=True):
            if pane.done:
                continue
            pane.text, pane.num_tokens, pane.seconds = completion.text, completion.num_tokens, now
            if pane.first_token_s is None and completion.num_tokens > 0:
                pane.first_token_s = now
            if completion.finish_reason is not None:
                _finish(pane, completion.finish_reason, reference, mode)
        yield panes


def _finish(pane: Pane, finish_reason: str, reference: str | None, mode: str) -> None:
    pane.done, pane.finish_reason = True, finish_reason
    pane.answer = extract_answer(pane.text, mode)
    if pane.answer is None and mode != "auto":
        pane.answer = extract_answer(pane.text, "auto")
    pane.wrong_steps = tuple(wrong_steps(pane.text))
    if reference:
        pane.grade = grade(pane.text, reference, mode)


def main(argv: list[str] | None = None) -> None:
    parser = cli.ArgumentParser(
        prog="python -m mathtutor.compare",
        description=__doc__.splitlines()[0],
        epilog=cli.DEBUG_HELP,
    )
    parser.add_argument("problem")
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--systems", nargs=2, default=[BASE, BASE])
    parser.add_argument("--adapter", action="append", default=[], help="adapter dir or Hub id")
    parser.add_argument("--prompt_format", default="chat", choices=sorted(FORMATS))
    parser.add_argument("--reference", default=None)
    parser.add_argument("--max_new_tokens", type=int, default=256)
    parser.add_argument("--dtype", default="auto", help="auto, float32, bfloat16 or float16")
    args = parser.parse_args(argv)
    loaded = load_model(args.model, dtype=args.dtype)
    for adapter in args.adapter:
        loaded.add_adapter(hub.adapter_dir(adapter))
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
    *_, panes = compare_stream(
        loaded, args.problem, args.systems, args.prompt_format, settings, args.reference
    )
    for pane in panes:
        verdict = "" if pane.grade is None else (" ✓" if pane.grade.is_correct else " ✗")
        print(f"=== {pane.system}: answer {pane.answer}{verdict}\n{pane.text}\n")


if __name__ == "__main__":
    sys.exit(cli.run(main))
