"""Tutor tab: a student's problem, worked solutions with checked arithmetic, hints, answer checks.

Every handler is a thin view over `mathtutor.tutor`. What only the server may know (the answer
of a generated, GSM8K or practice-set problem, the tutor's self-consistent answer, the hints so
far, the practice set itself) lives in `gr.State`, which never reaches the browser. A practice
set (an upload or a Hub dataset id, mapped as in Evaluate) is opened in its own panel
(`mathtutor.ui.practice`); "Give me a problem" then draws from it (`pick_problem`). Heavy
events share the app's one model queue (`GPU`) and a rate limit per client, i.e. signed-in user
or IP address, not per browser session (`access.LIMITERS["tutor"]`, `MATHTUTOR_TUTOR_RATE`
requests a minute; owners are not limited). Stop asks the running step to end at its next
step (`mathtutor.ui.stops`), as in Compare.
"""

from __future__ import annotations

import html
import inspect
import re
import time
from collections.abc import Iterator

import gradio as gr

from mathtutor import access, data, practice, tutor, verdicts
from mathtutor import hints as hints_core
from mathtutor.answers import LETTERS, answers_match, reference_answer
from mathtutor.checks import format_value
from mathtutor.generate import GenerationSettings
from mathtutor.generators import DIFFICULTIES
from mathtutor.models import BASE
from mathtutor.ui import practice as practice_ui
from mathtutor.ui import stops
from mathtutor.ui.common import (
    GPU,
    GPU_LIMIT,
    LATEX,
    UPDATE_EVERY_S,
    AppContext,
    client_key,
    in_turn,
    loaded_model,
    signed_in_user,
    system_choices,
    user_error,
)
from mathtutor.zerogpu import gpu, gpu_seconds

MODES = ("Show me the solution", "Give me a hint", "Check my answer")
STOPPED = "⏹ Stopped."  # the progress line after Stop (`mathtutor.ui.stops`)
INTRO = (
    "Paste a math word problem (or get one), then choose: see a worked solution whose "
    "arithmetic is checked, get one hint at a time, or check your own answer."
)
_LATEX_SPAN = re.compile(r"(\$\$.+?\$\$|\\\(.+?\\\)|\\\[.+?\\\])", re.DOTALL)
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]#|~>])")
_FINAL_LINE = re.compile(r"^[ \t]*####.*$", re.MULTILINE)


# --------------------------------------------------------------------------- formatting
def _plain(text: str) -> str:
    """Model text as literal Markdown: HTML and Markdown syntax escaped, LaTeX spans kept."""
    parts = []
    for index, part in enumerate(_LATEX_SPAN.split(text)):
        part = html.escape(part, quote=False)
        parts.append(part if index % 2 else _MARKDOWN_SPECIAL.sub(r"\\\1", part))
    return "".join(parts).replace("\n", "  \n")


def solution_markdown(
    solution: tutor.Solution,
    reference: str | None = None,
    answer_type: str = "number",
    choices: tuple[str, ...] = (),
) -> str:
    """The worked steps with wrong arithmetic marked, the final answer labelled honestly.

    The model's answer is "not verified" unless a known ``reference`` says right or wrong
    (graded in its ``answer_type``, ``tutor.grade_known``, when that is not a number); the
    arithmetic line names what it checked and carries no tick.
    """
    text = solution.text
    if not solution.done:
        return _plain(text) + " ▌"
    final = _FINAL_LINE.search(text)
    body_end = final.start() if final else len(text)
    pieces, position = [], 0
    for step in solution.wrong_steps:
        if step.start < position or step.end > body_end:
            continue
        true_value = "?" if step.actual is None else format_value(step.actual)
        pieces.append(_plain(text[position : step.start]))
        pieces.append(
            f'<mark class="slip">{_plain(text[step.start : step.end])}</mark> '
            f"(⚠️ should be **{true_value}**)"
        )
        position = step.end
    pieces.append(_plain(text[position:body_end].rstrip()))
    lines = ["".join(pieces)]
    final, is_right = solution.answer, None
    if reference is not None and answer_type != "number":
        graded = tutor.grade_known(text, reference, answer_type, choices)
        final, is_right = graded.extracted, graded.is_correct
    elif reference is not None and final is not None:
        is_right = answers_match(final, reference_answer(reference))
    answer = html.escape(final or "")
    if final is None:
        lines.append("**No final answer found in this solution.**")
    elif reference is None:
        lines.append(
            f"### The model's final answer: {answer} (not verified)\n\n"
            "There is no known answer for this problem, so nobody has checked it: use "
            "**Check my answer** to see how sure the tutor can be."
        )
    elif is_right:
        lines.append(f"### ✅ Final answer: <mark>{answer}</mark> (matches the known answer)")
    else:
        lines.append(f"### ❌ Final answer: {answer} (differs from the known answer)")
    checked = [s for s in solution.steps if s.is_correct is not None]
    if checked:
        wrong = len(solution.wrong_steps)
        lines.append(
            f"🧮 Arithmetic checked: {len(checked) - wrong} of {len(checked)} steps compute "
            "correctly (this checks the sums only, not the reasoning or the answer)."
        )
    if solution.calculator_calls:
        lines.append(f"🧮 The calculator wrote {solution.calculator_calls} result(s).")
    if solution.finish_reason == "length":
        lines.append("✂️ The solution stopped at the length limit.")
    return "\n\n".join(lines)


def reference_markdown(solution: str, answer: str = "") -> str:
    """A known worked solution (GSM8K, a generator, a practice set's row): its steps,
    annotations hidden; its final answer from ``#### X``, else ``answer`` (the row's)."""
    body, marker, final = solution.partition("####")
    answer = final if marker else answer
    lines = [re.sub(r"<<[^<>]*>>", "", line).replace(" ** ", ": ") for line in body.splitlines()]
    shown = "  \n".join(_plain(line) for line in lines if line.strip())
    return (
        f"📘 **Worked solution from the problem's source** (checked, not written by the model)\n\n"
        f"{shown}\n\n### ✅ Final answer: <mark>{html.escape(answer.strip())}</mark>"
    )


def progress_markdown(progress: tutor.Progress | None, done: str = "") -> str:
    """The streaming progress line: tokens so far, elapsed, the budget."""
    if progress is None:
        return done
    line = (
        f"⏳ {progress.action}: {progress.num_tokens} of up to {progress.budget_tokens} tokens, "
        f"{progress.seconds:.1f} s"
    )
    if progress.budget_seconds is not None:
        line += f" (time budget {progress.budget_seconds:.0f} s)"
    return line + " · press **Stop** to cancel"


def hints_markdown(hints: list[str]) -> str:
    """The newest hint first in bold, the earlier ones as a numbered list."""
    if not hints:
        return ""
    latest = f"💡 **Hint {len(hints)}:** {_plain(hints[-1])}"
    earlier = "\n".join(f"{i}. {_plain(h)}" for i, h in enumerate(hints[:-1], 1))
    return latest + (f"\n\n**Earlier hints**\n\n{earlier}" if earlier else "")


def _notices(notices: tuple[str, ...] | list[str]) -> str:
    return "\n\n".join(f"ℹ️ {html.escape(n)}" for n in notices)


# --------------------------------------------------------------------------- state helpers
def _reference(known: dict | None, problem: str) -> str | None:
    """The hidden answer of a picked problem, while the problem box still holds that problem."""
    if known and known.get("problem", "").strip() == (problem or "").strip():
        return known.get("reference")
    return None


def _check_rate(
    request: gr.Request | None, profile: gr.OAuthProfile | None, k: float | None = None
) -> None:
    """One request of this client's allowance (and a visitor's bound on k); PermissionError."""
    user = signed_in_user(profile)
    access.check_bounds({"k": k}, user)
    access.LIMITERS["tutor"].check(client_key(request, profile), user)


def _on_gpu(action: str):
    """`gpu(...)` for a Tutor handler, its duration sized from its own arguments (`k`)."""

    def decorate(handler):
        signature = inspect.signature(handler)

        def duration(*args, **kwargs) -> int:
            try:
                k = signature.bind_partial(*args, **kwargs).arguments.get("k", 1)
            except TypeError:
                k = None  # sized for the most work; the handler reports the bad call
            return gpu_seconds(*tutor.gpu_work(action, k))

        return gpu(handler, duration=duration)

    return decorate


def _solution(known: dict | None, problem: str) -> str | None:
    """The worked solution of a picked problem, while the problem box still holds it."""
    if known and known.get("problem", "").strip() == (problem or "").strip():
        return known.get("solution") or None
    return None


def _answer_kind(known: dict | None, problem: str) -> tuple[str, tuple[str, ...]]:
    """(answer type, choices) of a picked problem's known answer; a number otherwise."""
    if _reference(known, problem) is None:
        return "number", ()
    return known.get("answer_type") or "number", tuple(known.get("choices") or ())


def _answer_text(known: dict | None, problem: str) -> str:
    """A picked problem's known answer as shown with its solution (a choice with its text)."""
    reference = _reference(known, problem) or ""
    answer_type, choices = _answer_kind(known, problem)
    if answer_type == "choice" and len(reference) == 1 and reference in LETTERS[: len(choices)]:
        return f"{reference} ({choices[LETTERS.index(reference)]})"
    return reference


# --------------------------------------------------------------------------- handlers
def pick_generated(difficulty: str) -> tuple:
    """A fresh word problem from the generators; outputs cleared, its solution kept hidden."""
    problem = data.random_problem("arithmetic", difficulty or "easy")
    known = {"problem": problem.question, "reference": problem.answer, "solution": problem.solution}
    return (problem.question, known, *_cleared())


def pick_gsm8k() -> tuple:
    """A random GSM8K test problem (socratic solution: one sub-question per step), kept hidden."""
    try:
        problem = data.random_problem("gsm8k-socratic")
    except ValueError as error:
        raise user_error(error) from error
    known = {"problem": problem.question, "reference": problem.answer, "solution": problem.solution}
    return (problem.question, known, *_cleared())


def pick_problem(difficulty: str, practice_set: practice.PracticeSet | None = None) -> tuple:
    """Give me a problem: from the practice set when one is open, else the generators."""
    if isinstance(practice_set, practice.PracticeSet):
        return (*practice_ui.draw_problem(practice_set), *_cleared())
    return pick_generated(difficulty)


def _cleared() -> tuple:
    """(solution, hints md, verdict, hints state, expected, hint button, next button, notice)."""
    return "", "", "", [], None, gr.Button(visible=True), gr.Button(visible=False), ""


def _tokens(max_tokens: float | None) -> int:
    return int(max_tokens or tutor.SAMPLING.max_new_tokens)


@in_turn(
    outputs=3, notice=2, token="run_token"
)  # a waiting student sees "waiting: N ahead" on the progress line
@_on_gpu("solve")
def show_solution(
    spec: str,
    system: str,
    problem: str,
    calculator: bool,
    known: dict | None = None,
    max_tokens: float | None = None,
    request: gr.Request = None,
    profile: gr.OAuthProfile | None = None,
    run_token: str = "",
) -> Iterator[tuple[str, str, str]]:
    """Stream the worked solution; yields (solution markdown, notices, progress line).

    A picked problem shows its known worked solution at once instead of the model's.
    """
    try:
        _check_rate(request, profile)
        text, notices = tutor.prepare_problem(problem)
        solution = _solution(known, problem)
        if solution:
            yield (
                reference_markdown(solution, _answer_text(known, problem)),
                _notices(notices),
                "Shown at once: a known solution.",
            )
            return
        loaded = loaded_model(spec)
        settings = GenerationSettings(max_new_tokens=_tokens(max_tokens))
        reference = _reference(known, problem)
        answer_type, choices = _answer_kind(known, problem)
        steps = tutor.solve_stream(loaded, text, system or BASE, settings, calculator)
        sent = 0.0  # at most one update every UPDATE_EVERY_S, and the last one
        for solution in stops.until_stopped(steps, run_token):
            if not solution.done and time.monotonic() - sent < UPDATE_EVERY_S:
                continue
            sent = time.monotonic()
            step = tutor.Progress(
                "solution", solution.num_tokens, solution.seconds, solution.max_new_tokens
            )
            done = f"Done: {solution.num_tokens} tokens in {solution.seconds:.1f} s."
            line = progress_markdown(None if solution.done else step, done)
            shown = solution_markdown(solution, reference, answer_type, choices)
            yield shown, _notices(solution.notices), line
        if stops.stopped(run_token):
            yield gr.skip(), gr.skip(), STOPPED
    except Exception as error:
        raise user_error(error) from error


@in_turn(outputs=7, notice=6, token="run_token")
@_on_gpu("hint")
def give_hint(
    spec: str,
    system: str,
    problem: str,
    known: dict | None,
    hints: list[dict] | None,
    expected: tutor.Expected | None,
    calculator: bool,
    k: float,
    rephrase: bool = False,
    max_tokens: float | None = None,
    request: gr.Request = None,
    profile: gr.OAuthProfile | None = None,
    run_token: str = "",
) -> Iterator[tuple]:
    """One more hint, streaming: (hints md, hints state, expected, hint button, next button,
    notice, progress line)."""
    try:
        _check_rate(request, profile, k)
        text, notices = tutor.prepare_problem(problem)
        asked = [h["text"] for h in hints or [] if h.get("problem") == text]
        solution = _solution(known, problem)
        reference = tutor.check_reference(
            _reference(known, problem), _answer_kind(known, problem)[0]
        )
        grounded = hints_core.is_grounded(solution)
        loaded = loaded_model(spec) if rephrase or not grounded else None
        tokens, seconds = hints_core.hint_budget()
        budget = (
            "Instant: from the known solution."
            if grounded and not rephrase
            else f"⏱️ Hint budget: up to {tokens} tokens, {seconds:.0f} s."
        )
        keep = (gr.skip(),) * 5
        yield (*keep, _notices(notices), budget)
        steps = hints_core.hint_stream(
            loaded,
            text,
            asked,
            system or BASE,
            reference,
            solution,
            rephrase=rephrase,
            max_new_tokens=min(_tokens(max_tokens), hints_core.HINT_TOKENS),
        )
        for item in stops.until_stopped(steps, run_token):
            if isinstance(item, tutor.Progress):
                yield (*keep, gr.skip(), progress_markdown(item))
                continue
            asked.append(item.text)
            state = [{"problem": text, "text": h} for h in asked]
            hidden, shown = gr.Button(visible=False), gr.Button(visible=True)
            done = f"{_HINT_SOURCES[item.source]} ({item.seconds:.1f} s)."
            yield hints_markdown(asked), state, expected, hidden, shown, _notices(notices), done
        if stops.stopped(run_token):
            yield (*keep, gr.skip(), STOPPED)
    except Exception as error:
        raise user_error(error) from error


_HINT_SOURCES = {
    "grounded": "From the known solution",
    "rephrased": "From the known solution, reworded by the model and checked",
    "done": "All steps of the known solution are out",
    "model": "Written by the model; its numbers and arithmetic checked",
    "fallback": "The model's hints did not pass the checks, so this is a general question",
}


def _verdict(
    args: tuple,
    reveal: bool,
    request: gr.Request | None,
    profile: gr.OAuthProfile | None,
    deeper: bool = False,
    run_token: str = "",
):
    spec, system, problem, known, answer, working, expected, calculator, k, max_tokens = args
    try:
        _check_rate(request, profile, k)
        k = int(k)
        if deeper:
            k, _ = verdicts.deeper_check(k, expected.consensus if expected else None)
            expected = None  # sample afresh with more samples
        reference = _reference(known, problem)
        answer_type, choices = _answer_kind(known, problem)
        loaded = None if reference else loaded_model(spec)
        steps = verdicts.check_answer_stream(
            loaded,
            problem,
            answer,
            reference,
            working,
            system or BASE,
            k,
            reveal=reveal,
            cached=expected,
            calculator=calculator,
            solution=_solution(known, problem),
            max_new_tokens=_tokens(max_tokens),
            answer_type=answer_type,
            choices=choices,
        )
        for item in stops.until_stopped(steps, run_token):
            if isinstance(item, tutor.Progress):
                yield gr.skip(), gr.skip(), progress_markdown(item), gr.skip()
                continue
            offer = gr.Button(
                f"🔬 Deeper check ({item.deeper_k} samples, about {item.deeper_seconds:.0f} s)"
                if item.deeper_seconds is not None
                else f"🔬 Deeper check ({item.deeper_k} samples)",
                visible=item.deeper_k is not None,
            )
            verdict = html.escape(item.message, quote=False)
            status = f"Verdict: {verdicts.STATUSES[item.status]}."
            yield verdict, item.expected or expected, status, offer
        if stops.stopped(run_token):
            yield gr.skip(), gr.skip(), STOPPED, gr.skip()
    except Exception as error:
        raise user_error(error) from error


def _verdict_handler(name: str, action: str, doc: str, reveal: bool = False, deeper: bool = False):
    """One of the answer-check handlers (`check`, `reveal_answer`, `deeper`): the same inputs
    and outputs (verdict markdown, expected answer kept, progress, deeper button), each with
    its own flags and its own ZeroGPU sizing (`action`)."""

    def handler(
        spec: str,
        system: str,
        problem: str,
        known: dict | None,
        answer: str,
        working: str,
        expected: tutor.Expected | None,
        calculator: bool,
        k: float,
        max_tokens: float | None = None,
        request: gr.Request = None,
        profile: gr.OAuthProfile | None = None,
        run_token: str = "",
    ) -> Iterator[tuple]:
        args = (spec, system, problem, known, answer, working, expected, calculator, k, max_tokens)
        yield from _verdict(args, reveal, request, profile, deeper=deeper, run_token=run_token)

    handler.__name__ = handler.__qualname__ = name
    handler.__doc__ = doc
    return in_turn(outputs=4, notice=2, token="run_token")(_on_gpu(action)(handler))


check = _verdict_handler(
    "check", "check", "Check the answer: (verdict markdown, expected answer kept, progress, "
    "deeper button)."
)  # fmt: skip
reveal_answer = _verdict_handler(
    "reveal_answer", "check", "Like `check`, and the answer is shown (the student asked for it).",
    reveal=True,
)  # fmt: skip
deeper = _verdict_handler(
    "deeper", "deeper", "The deeper check offered by an unverified verdict: more samples, same "
    "outputs.", deeper=True,
)  # fmt: skip


def save(
    problem: str,
    system: str,
    solution: str,
    hints: list[dict] | None,
    answer: str,
    verdict: str,
    request: gr.Request = None,
    profile: gr.OAuthProfile | None = None,
) -> str:
    """Store this session only because the student asked to (``tutor_saves.jsonl``).

    Each save counts against the client's tutor allowance: it writes to the Space's disk.
    """
    try:
        _check_rate(request, profile)
    except PermissionError as error:
        raise user_error(error) from error
    if not (problem or "").strip():
        return "Nothing to save yet: there is no problem."
    record = {
        "problem": problem[: tutor.MAX_PROBLEM_CHARS],
        "system": system,
        "solution": solution[:20_000],
        "hints": [h["text"] for h in hints or []],
        "answer": (answer or "")[: tutor.MAX_ANSWER_CHARS],
        "verdict": verdict[:5000],
    }
    path = tutor.save_session(record)
    return f"💾 Saved to `{html.escape(str(path))}`. Nothing else is ever stored."


MODEL_HELP = "The base model or a LoRA adapter; the newest adapter by default."


def default_system(choices: list[str]) -> str:
    """The Model picker's default, as ``MODEL_HELP`` says: the newest adapter, else the base
    (``system_choices`` lists adapters newest first after "base")."""
    return choices[1] if len(choices) > 1 else BASE


def refresh_systems(spec: str, current: str | None = None) -> gr.Dropdown:
    """Re-read adapters; keep the student's pick, else ``default_system``."""
    choices = system_choices(spec)
    value = current if current in choices else default_system(choices)
    return gr.Dropdown(choices=choices, value=value)


def switch_mode(mode: str) -> tuple[gr.Column, gr.Column, gr.Column]:
    return tuple(gr.Column(visible=mode == name) for name in MODES)


# --------------------------------------------------------------------------- layout
def build(ctx: AppContext, tab: gr.Tab) -> None:
    choices = system_choices(ctx.model_spec.value)
    # {"problem", "reference", "solution", "answer_type", "choices"} of a picked problem, and
    # the open practice set (`practice.PracticeSet`): server only
    known = gr.State(None)
    practice_set = gr.State(None)
    hint_state = gr.State([])
    expected = gr.State(None)
    gr.Markdown(INTRO)
    with gr.Row():
        problem = gr.Textbox(
            label="Your problem",
            lines=4,
            max_lines=12,
            max_length=tutor.MAX_PROBLEM_CHARS * 2,
            placeholder="e.g. Natalia sold clips to 48 of her friends in April, and then she "
            "sold half as many clips in May. How many clips did she sell altogether?",
            elem_id="tutor-problem",
            scale=3,
            min_width=280,
        )
        with gr.Column(scale=1, min_width=220):
            difficulty = gr.Radio(
                list(DIFFICULTIES),
                value="easy",
                label="Level",
                elem_id="tutor-difficulty",
            )
            new_problem = gr.Button("✨ Give me a problem", elem_id="tutor-new-problem")
            gsm8k = gr.Button("🎲 A GSM8K problem", elem_id="tutor-gsm8k", size="sm")
    practice_ui.build(practice_set)
    notice = gr.Markdown(elem_id="tutor-notice")
    mode = gr.Radio(list(MODES), value=MODES[0], label="What would you like?", elem_id="tutor-mode")
    with gr.Column(visible=True) as solution_box:
        solve = gr.Button("Show me the solution", variant="primary", elem_id="tutor-solve")
        solution = gr.Markdown(latex_delimiters=LATEX, elem_id="tutor-solution")
    with gr.Column(visible=False) as hint_box, gr.Row():
        hint = gr.Button("💡 Give me a hint", variant="primary", elem_id="tutor-hint")
        next_hint = gr.Button(
            "➜ Next hint", variant="primary", visible=False, elem_id="tutor-next-hint"
        )
    with gr.Column(visible=False) as check_box:
        with gr.Row():
            answer = gr.Textbox(
                label="Your answer",
                placeholder="e.g. 12, 3/4, 25% or twelve",
                max_length=tutor.MAX_ANSWER_CHARS,
                elem_id="tutor-answer",
                min_width=160,
            )
            working = gr.Textbox(
                label="Your working (optional: I point at the first step that goes wrong)",
                lines=3,
                max_lines=10,
                placeholder="e.g. 48 / 2 = 24, then 48 + 24 = 72",
                elem_id="tutor-working",
                min_width=240,
                scale=2,
            )
        with gr.Row():
            check_button = gr.Button("Check my answer", variant="primary", elem_id="tutor-check")
            reveal = gr.Button("Reveal the answer", elem_id="tutor-reveal")
            deeper_button = gr.Button("🔬 Deeper check", visible=False, elem_id="tutor-deeper")
        verdict = gr.Markdown(elem_id="tutor-verdict")
    hints = gr.Markdown(latex_delimiters=LATEX, elem_id="tutor-hints")  # in view while checking
    with gr.Row():
        progress = gr.Markdown(elem_id="tutor-progress")
        stop = gr.Button("⏹ Stop", size="sm", scale=0, min_width=100, elem_id="tutor-stop")
    with gr.Row():
        system = gr.Dropdown(
            choices,
            value=default_system(choices),
            label="Model",
            info=MODEL_HELP,
            elem_id="tutor-system",
            min_width=200,
        )
        calculator = gr.Checkbox(
            True,
            label="Calculator",
            info="Write exact results after 'expression =' while generating.",
            elem_id="tutor-calculator",
            min_width=160,
        )
        k = gr.Slider(
            1,
            10,
            value=5,
            step=1,
            label="Self-consistency samples (k)",
            info="Without a known answer, the tutor checks against k of its own solutions.",
            elem_id="tutor-k",
            min_width=200,
        )
        max_tokens = gr.Slider(
            32,
            512,
            value=tutor.SAMPLING.max_new_tokens,
            step=32,
            label="Length limit (tokens)",
            info="The most the model may write per solution or sample (hints: at most 80).",
            elem_id="tutor-max-tokens",
            min_width=200,
        )
        rephrase = gr.Checkbox(
            False,
            label="Let the model reword hints",
            info="Known-solution hints only; a rewording that changes a number is dropped.",
            elem_id="tutor-rephrase",
            min_width=160,
        )
    with gr.Row():
        save_button = gr.Button(
            "💾 Save this session", size="sm", scale=0, min_width=200, elem_id="tutor-save"
        )
        saved = gr.Markdown(elem_id="tutor-saved")

    cleared = [solution, hints, verdict, hint_state, expected, hint, next_hint, notice]
    new_problem.click(pick_problem, [difficulty, practice_set], [problem, known, *cleared])
    gsm8k.click(pick_gsm8k, None, [problem, known, *cleared])
    mode.change(switch_mode, mode, [solution_box, hint_box, check_box])
    # each run's Stop token (`mathtutor.ui.stops`): the browser fills it in at every click
    run_token = stops.token_box()

    def heavy(inputs: list) -> dict:
        """The model events' settings: the shared queue, and a fresh Stop token per run."""
        return {
            "concurrency_id": GPU,
            "concurrency_limit": GPU_LIMIT,
            "js": stops.run_js("tutor", len(inputs) - 1),
        }

    solve_inputs = [ctx.model_spec, system, problem, calculator, known, max_tokens, run_token]
    solve.click(show_solution, solve_inputs, [solution, notice, progress], **heavy(solve_inputs))
    hint_inputs = [
        *(ctx.model_spec, system, problem, known, hint_state, expected, calculator, k),
        *(rephrase, max_tokens, run_token),
    ]
    hint_outputs = [hints, hint_state, expected, hint, next_hint, notice, progress]
    gr.on([hint.click, next_hint.click], give_hint, hint_inputs, hint_outputs, **heavy(hint_inputs))
    check_inputs = [
        *(ctx.model_spec, system, problem, known, answer, working, expected, calculator, k),
        *(max_tokens, run_token),
    ]
    check_outputs = [verdict, expected, progress, deeper_button]
    checks = {"inputs": check_inputs, "outputs": check_outputs, **heavy(check_inputs)}
    gr.on([check_button.click, answer.submit], check, **checks)
    reveal.click(reveal_answer, **checks)
    deeper_button.click(deeper, **checks)
    # Stop asks the running step to end (no `cancels`, see mathtutor.ui.stops); the handler
    # then says "⏹ Stopped." on the progress line
    stops.connect_stop(stop, run_token, "tutor")
    save_button.click(save, [problem, system, solution, hint_state, answer, verdict], saved)
    tab.select(refresh_systems, [ctx.model_spec, system], system)
    ctx.model_spec.change(refresh_systems, ctx.model_spec, system)
