"""Compare tab: one problem, base and a LoRA-tuned copy (or two adapters), streamed side by side.

On a Space each client (signed-in user, else IP) gets `access.LIMITERS["compare"]` runs a
minute, and a visitor's token limit is bounded (`access.VISITOR_BOUNDS`).
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import Any

import gradio as gr

from mathtutor import access, data, generators
from mathtutor.compare import Pane, clean_problem, compare_stream
from mathtutor.generate import MAX_NEW_TOKENS, GenerationSettings
from mathtutor.models import BASE
from mathtutor.prompts import FORMATS
from mathtutor.ui.common import (
    GPU,
    GPU_LIMIT,
    LATEX,
    AppContext,
    client_key,
    in_turn,
    loaded_model,
    signed_in_user,
    system_choices,
    user_error,
)
from mathtutor.zerogpu import gpu, gpu_seconds

GENERATING = "generating…"  # the answer line of a pane still streaming


def answer_markdown(pane: Pane | None) -> str:
    """The line under a pane: extracted answer, verdict, arithmetic slips."""
    if pane is None or not pane.done:
        return f"*{GENERATING}*" if pane else ""
    parts = []
    if pane.answer is None:
        parts.append("**No final answer found**")
    else:
        parts.append(f"**Answer: {html.escape(pane.answer)}**")
    if pane.grade is not None:
        parts.append(
            "✅ correct"
            if pane.grade.is_correct
            else f"❌ incorrect (reference {html.escape(pane.grade.reference)})"
        )
    if pane.finish_reason == "length":
        parts.append("⚠️ stopped at the token limit")
    line = " · ".join(parts)
    for step in pane.wrong_steps[:5]:
        actual = "?" if step.actual is None else _short(step.actual)
        line += (
            f"\n\n⚠️ arithmetic slip: `{step.expression} = {step.claimed}` (actually **{actual}**)"
        )
    return line


def _short(value) -> str:
    from mathtutor.checks import format_value

    return format_value(value)


def _chat(problem: str, pane: Pane) -> list[dict]:
    return [
        {"role": "user", "content": problem},
        {"role": "assistant", "content": pane.text if pane.text.strip() else "…"},
    ]


def compare_seconds(
    spec: str, left: str, right: str, problem: str, reference: str, prompt_format: str,
    max_new_tokens: float, *rest: Any, **named: Any,
) -> int:  # fmt: skip
    """ZeroGPU duration of one Run: both panes decode in one batch of two rows."""
    try:
        tokens = min(MAX_NEW_TOKENS, max(1, int(max_new_tokens)))
    except (TypeError, ValueError, OverflowError):
        tokens = MAX_NEW_TOKENS  # sized for the most work; the handler reports the bad value
    return gpu_seconds((tokens, 2))


@in_turn(outputs=5, notice=4)  # one at a time; a waiting user sees "waiting: N ahead, ~X s"
@gpu(duration=compare_seconds)
def run_compare(
    spec: str,
    left: str,
    right: str,
    problem: str,
    reference: str,
    prompt_format: str,
    max_new_tokens: float,
    temperature: float,
    top_p: float,
    seed: float,
    calculator: bool,
    request: gr.Request = None,
    profile: gr.OAuthProfile | None = None,
) -> Iterator[tuple]:
    """Handler: stream both panes; yields (left chat, right chat, left md, right md, notice)."""
    try:
        user = signed_in_user(profile)
        access.check_bounds({"max_new_tokens": max_new_tokens}, user)
        access.LIMITERS["compare"].check(client_key(request, profile), user)
        problem, notice = clean_problem(problem)
        settings = GenerationSettings(
            max_new_tokens=int(max_new_tokens),
            temperature=float(temperature),
            top_p=float(top_p),
            seed=int(seed),
            calculator=bool(calculator),
        )
        loaded = loaded_model(spec)
        for panes in compare_stream(
            loaded, problem, [left or BASE, right or BASE], prompt_format, settings, reference
        ):
            yield (
                _chat(problem, panes[0]),
                _chat(problem, panes[1]),
                answer_markdown(panes[0]),
                answer_markdown(panes[1]),
                notice or "",
            )
    except Exception as error:
        raise user_error(error) from error


def mark_stopped(left_md: str, right_md: str) -> tuple[str, str]:
    """Handler for Stop: a pane still generating says it was stopped; a finished one is kept."""
    return tuple("*stopped*" if GENERATING in (md or "") else md for md in (left_md, right_md))


def random_gsm8k(seed: int | None = None) -> tuple[str, str]:
    """A random GSM8K test problem and its reference answer."""
    try:
        problem = data.random_problem("gsm8k", seed=seed)
    except ValueError as error:
        raise user_error(error) from error
    return problem.question, problem.answer


def generated_problem(kind: str, difficulty: str, seed: int | None = None) -> tuple[str, str]:
    """A fresh generated problem (exact answer known)."""
    problem = data.random_problem(kind, difficulty, seed)
    return problem.question, problem.answer


def refresh_systems(spec: str) -> tuple[gr.Dropdown, gr.Dropdown]:
    """Re-read registered adapters: the right pane defaults to the newest adapter."""
    choices = system_choices(spec)
    right = choices[1] if len(choices) > 1 else BASE
    return gr.Dropdown(choices=choices), gr.Dropdown(choices=choices, value=right)


def build(ctx: AppContext, tab: gr.Tab) -> None:
    choices = system_choices(ctx.model_spec.value)
    with gr.Row():
        left = gr.Dropdown(
            choices, value=BASE, label="Left", elem_id="compare-left-system", scale=2
        )
        right = gr.Dropdown(
            choices,
            value=choices[1] if len(choices) > 1 else BASE,
            label="Right",
            elem_id="compare-right-system",
            scale=2,
        )
        prompt_format = gr.Dropdown(
            sorted(FORMATS),
            value="chat",
            label="Prompt format",
            info="How the question is asked (from the seed reports).",
            elem_id="compare-format",
            scale=2,
        )
        refresh = gr.Button("↻ adapters", elem_id="compare-refresh", scale=1, size="sm")
    with gr.Row():
        problem = gr.Textbox(
            label="Problem",
            lines=4,
            max_lines=12,
            placeholder="A math word problem, e.g. Natalia sold clips to 48 of her friends…",
            elem_id="compare-problem",
            scale=4,
        )
        with gr.Column(scale=1, min_width=200):
            reference = gr.Textbox(
                label="Reference answer (optional)",
                placeholder="e.g. 72",
                elem_id="compare-reference",
            )
            pick_gsm8k = gr.Button("🎲 GSM8K problem", elem_id="compare-random-gsm8k", size="sm")
            with gr.Row():
                kind = gr.Dropdown(
                    list(generators.KINDS), value="arithmetic", label="Generator", min_width=140
                )
                difficulty = gr.Dropdown(
                    list(generators.DIFFICULTIES), value="easy", label="Level", min_width=80
                )
            pick_generated = gr.Button("✨ New problem", elem_id="compare-generate", size="sm")
    with gr.Accordion("Generation settings", open=False), gr.Row():
        max_new_tokens = gr.Slider(16, 1024, value=256, step=16, label="Max new tokens")
        temperature = gr.Slider(0, 1.5, value=0, step=0.05, label="Temperature (0 = greedy)")
        top_p = gr.Slider(0.05, 1, value=1, step=0.05, label="Top-p")
        seed = gr.Number(0, precision=0, label="Seed")
        calculator = gr.Checkbox(
            False,
            label="Calculator",
            info="Insert exact results after 'expression =' while generating.",
        )
    with gr.Row():
        run = gr.Button("Compare", variant="primary", elem_id="compare-run")
        stop = gr.Button("Stop", elem_id="compare-stop")
    notice = gr.Markdown(elem_id="compare-notice")
    with gr.Row(equal_height=True):
        with gr.Column():
            left_chat = gr.Chatbot(
                label="Left", height=420, latex_delimiters=LATEX, elem_id="compare-left-chat"
            )
            left_answer = gr.Markdown(elem_id="compare-left-answer")
        with gr.Column():
            right_chat = gr.Chatbot(
                label="Right", height=420, latex_delimiters=LATEX, elem_id="compare-right-chat"
            )
            right_answer = gr.Markdown(elem_id="compare-right-answer")

    ctx.compare_problem, ctx.compare_reference = problem, reference
    inputs = [
        ctx.model_spec,
        left,
        right,
        problem,
        reference,
        prompt_format,
        max_new_tokens,
        temperature,
        top_p,
        seed,
        calculator,
    ]
    outputs = [left_chat, right_chat, left_answer, right_answer, notice]
    event = gr.on(
        [run.click, problem.submit],
        run_compare,
        inputs,
        outputs,
        concurrency_id=GPU,
        concurrency_limit=GPU_LIMIT,
        # A Run clicked while a stopped run is still winding down waits for it, not ignored.
        trigger_mode="always_last",
    )
    stop.click(None, None, None, cancels=[event]).then(
        mark_stopped, [left_answer, right_answer], [left_answer, right_answer]
    )
    pick_gsm8k.click(lambda: random_gsm8k(), None, [problem, reference])
    pick_generated.click(
        lambda k, d: generated_problem(k, d), [kind, difficulty], [problem, reference]
    )
    refresh.click(refresh_systems, ctx.model_spec, [left, right])
    tab.select(refresh_systems, ctx.model_spec, [left, right])
    ctx.model_spec.change(refresh_systems, ctx.model_spec, [left, right])
