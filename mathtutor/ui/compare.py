"""Compare tab: one problem, two systems side by side; blind A/B votes, a leaderboard, sharing.

Panes show each completion exactly as generated (`mathtutor.render.faithful_html`: every
character, math only where the text delimits it, slips marked in place), headed by the
system's name and its numbers (time to first token, tokens/s, tokens). Either side can be
regenerated alone with a new seed; "where they differ" marks the first arithmetic step at
which the answers part ways (`compare.first_difference`). In blind mode the systems are
shuffled and named "System A/B" until the viewer votes; votes go to the store
(`store.add_vote`) and feed the leaderboard (`arena.leaderboard`). Share writes the
comparison as Markdown and JSON and a `?share=<id>` permalink (`mathtutor.share`).

The comparison on screen lives in a `gr.State` (server side, so hidden names never reach the
browser before the vote).

On a Space each client (signed-in user, else IP) gets `access.LIMITERS["compare"]` runs a
minute (votes count there too), and a visitor's token limit is bounded
(`access.VISITOR_BOUNDS`).
"""

from __future__ import annotations

import html
import random
import secrets
import time
from collections.abc import Iterator
from typing import Any

import gradio as gr

from mathtutor import access, arena, data, generators, share, store
from mathtutor.compare import Pane, clean_problem, compare_stream, first_difference
from mathtutor.generate import MAX_NEW_TOKENS, GenerationSettings
from mathtutor.models import BASE, BUNDLED, base_model_id, same_base
from mathtutor.prompts import FORMATS
from mathtutor.render import faithful_html, slip_marks
from mathtutor.ui import stops
from mathtutor.ui.common import (
    GPU,
    GPU_LIMIT,
    LATEX,
    UPDATE_EVERY_S,
    AppContext,
    client_key,
    download_dir,
    in_turn,
    loaded_model,
    signed_in_user,
    system_choices,
    user_error,
)
from mathtutor.zerogpu import gpu, gpu_seconds

GENERATING = "generating…"  # the answer line of a pane still streaming
STOPPED = "*stopped*"  # the answer line of a pane stopped before it finished
SIDES = ("left", "right")
BLIND_NAMES = ("System A", "System B")
VOTES = {"left": "left", "right": "right", "tie": "tie", "both wrong": "both_wrong"}
LEADERBOARD_COLUMNS = ["system", "rating", "win rate", "95% CI", "games", "W-T-L", "exact match"]


# --------------------------------------------------------------------------- formatting
def answer_markdown(pane: Pane | None) -> str:
    """The line under a pane: extracted answer, verdict, arithmetic slips."""
    if pane is None or not pane.done:
        return f"*{GENERATING}*" if pane else ""
    parts = []
    if pane.answer is None:
        parts.append("**No final answer found**")
    else:
        parts.append(f"**Answer: {_literal(pane.answer)}**")
    if pane.grade is not None:
        parts.append(
            "✅ correct"
            if pane.grade.is_correct
            else f"❌ incorrect (reference {_literal(pane.grade.reference)})"
        )
    if pane.finish_reason == "length":
        parts.append("⚠️ stopped at the token limit")
    line = " · ".join(parts)
    if pane.wrong_steps:
        line += f"\n\n⚠️ {len(pane.wrong_steps)} arithmetic slip(s), marked in the text"
    return line


def _literal(text: str) -> str:
    """`text` for a Markdown line, shown as typed (no emphasis, no HTML)."""
    return "".join(f"\\{c}" if c in "\\`*_{}[]<>()#+-.!|$~" else c for c in text)


def _verdict(pane: dict[str, Any]) -> str:
    if pane.get("is_correct") is None:
        return ""
    return "correct" if pane["is_correct"] else "incorrect"


def pane_state(pane: Pane) -> dict[str, Any]:
    """What the comparison keeps of one pane (and shares, and votes on)."""
    return {
        "system": pane.system,
        "text": pane.text,
        "done": pane.done,
        "answer": pane.answer,
        "is_correct": None if pane.grade is None else pane.grade.is_correct,
        "num_tokens": pane.num_tokens,
        "first_token_s": pane.first_token_s,
        "tokens_per_s": pane.tokens_per_s,
        "finish_reason": pane.finish_reason,
        "slips": [tuple(mark) for mark in slip_marks(pane.wrong_steps)],
    }


def system_label(name: str, spec: str) -> str:
    """How a pane names its system: the base's Hub id, or the adapter (and its Hub repo)."""
    if name == BASE:
        return f"base · {base_id(spec)}"
    for adapter in store.list_adapters():
        if adapter["name"] == name and str(adapter["source"]).startswith("hub:"):
            return f"{name} · {adapter['source'][4:]}"
    return name


def base_id(spec: str) -> str:
    """The Hub id (or path) of the base a model spec loads: what votes are grouped by."""
    return base_model_id(spec or BUNDLED)


def pane_head(current: dict[str, Any] | None, index: int) -> str:
    """HTML above a pane: its system (hidden in blind mode until the vote) and its numbers."""
    if not current:
        return f'<div class="pane-head"><b>{SIDES[index].capitalize()}</b></div>'
    pane = current["panes"][index]
    if current["blind"] and not current.get("vote"):
        name = BLIND_NAMES[index]
    else:
        name = current["labels"][index]
    numbers = []
    if pane.get("first_token_s") is not None:
        numbers.append(f"first token {pane['first_token_s']:.2f} s")
    if pane.get("tokens_per_s"):
        numbers.append(f"{pane['tokens_per_s']:.1f} tokens/s")
    numbers.append(f"{pane.get('num_tokens', 0)} tokens")
    return (
        f'<div class="pane-head"><b class="pane-system">{html.escape(name)}</b>'
        f'<span class="pane-numbers">{html.escape(" · ".join(numbers))}</span></div>'
    )


def pane_chat(current: dict[str, Any], index: int) -> list[dict]:
    """The pane's two messages as faithful HTML (the Chatbot renders no Markdown)."""
    from mathtutor.render import Mark

    pane = current["panes"][index]
    marks = [Mark(*slip) for slip in pane.get("slips", [])]
    answer = faithful_html(pane["text"], marks) if pane["text"].strip() else "…"
    return [
        {"role": "user", "content": faithful_html(current["problem"])},
        {"role": "assistant", "content": answer},
    ]


def difference_html(current: dict[str, Any] | None) -> str:
    """Where they differ: both sides' steps in order, the first differing one marked."""
    if not current or not all(p["done"] for p in current["panes"]):
        return ""
    texts = [p["text"] for p in current["panes"]]
    difference = first_difference(*texts)
    names = [
        BLIND_NAMES[i] if current["blind"] and not current.get("vote") else current["labels"][i]
        for i in range(2)
    ]
    if difference.index is None:
        summary = (
            "Same text." if texts[0] == texts[1] else "Same arithmetic steps (or none to compare)."
        )
    else:
        summary = f"They part ways at step {difference.index + 1}."
    rows = []
    for i in range(max(len(difference.left_steps), len(difference.right_steps))):
        cells = []
        for steps in (difference.left_steps, difference.right_steps):
            cells.append(
                html.escape(f"{steps[i].expression} = {steps[i].claimed}")
                if i < len(steps)
                else "—"
            )
        mark = ' class="first-difference"' if i == difference.index else ""
        rows.append(f"<tr{mark}><td>{i + 1}</td><td>{cells[0]}</td><td>{cells[1]}</td></tr>")
    table = (
        f"<table><thead><tr><th>step</th><th>{html.escape(names[0])}</th>"
        f"<th>{html.escape(names[1])}</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        if rows
        else ""
    )
    return f'<div class="compare-diff"><p>{html.escape(summary)}</p>{table}</div>'


def _view(current: dict[str, Any] | None) -> tuple:
    """(left chat, right chat, left answer, right answer, left head, right head, diff)."""
    if not current:
        return [], [], "", "", pane_head(None, 0), pane_head(None, 1), ""
    return (
        pane_chat(current, 0),
        pane_chat(current, 1),
        current["answers"][0],
        current["answers"][1],
        pane_head(current, 0),
        pane_head(current, 1),
        difference_html(current),
    )


# --------------------------------------------------------------------------- running
def form_settings(
    max_new_tokens: float, temperature: float, top_p: float, seed: float, calculator: bool
) -> GenerationSettings:
    """The form's generation settings as the dataclass that judges them."""
    return GenerationSettings(
        max_new_tokens=int(max_new_tokens),
        temperature=float(temperature),
        top_p=float(top_p),
        seed=int(seed),
        calculator=bool(calculator),
    )


def _settings_dict(settings: GenerationSettings) -> dict[str, Any]:
    return {
        "max_new_tokens": settings.max_new_tokens,
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "seed": settings.seed,
        "calculator": settings.calculator,
    }


def _stream(
    current: dict[str, Any], indices: list[int], settings: GenerationSettings, token: str = ""
) -> Iterator[dict[str, Any]]:
    """Run the systems of `indices` and update `current` as their panes stream.

    Updates reach the browser at most every `UPDATE_EVERY_S` (and once at the end): a fast
    model streaming a token per update keeps the page re-rendering and unresponsive (Stop
    could not be clicked). A Stop for run `token` (`mathtutor.ui.stops`) ends the stream at
    its next step: the decoding generator is closed here, in the thread that holds the
    model, and a pane still generating keeps its text and says it was stopped.
    """
    if stops.stopped(token):
        yield _mark_stopped(current, indices)
        return
    loaded = loaded_model(current["spec"])
    systems = [current["systems"][i] for i in indices]
    shown, pending = 0.0, False
    steps = compare_stream(
        loaded,
        current["problem"],
        systems,
        current["prompt_format"],
        settings,
        current["reference"],
    )
    try:
        for panes in steps:
            for index, pane in zip(indices, panes, strict=True):
                current["panes"][index] = pane_state(pane)
                current["answers"][index] = answer_markdown(pane)
            pending = True
            if stops.stopped(token):
                yield _mark_stopped(current, indices)
                return
            if time.monotonic() - shown >= UPDATE_EVERY_S or all(p.done for p in panes):
                shown, pending = time.monotonic(), False
                yield current
    finally:
        steps.close()
    if pending:
        yield current


def _mark_stopped(current: dict[str, Any], indices: list[int]) -> dict[str, Any]:
    """`current` with each pane of `indices` that is still generating marked stopped."""
    for index in indices:
        if not current["panes"][index].get("done"):
            current["answers"][index] = STOPPED
    return current


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


# one at a time; a waiting user sees "waiting: N ahead, ~X s" in the notice output
@in_turn(outputs=9, notice=7, token="run_token")
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
    blind: bool = False,
    run_token: str = "",
    request: gr.Request = None,
    profile: gr.OAuthProfile | None = None,
) -> Iterator[tuple]:
    """Handler: stream both panes; yields the 7 pane outputs, the notice and the state.

    `run_token` names this run for its Stop button (`mathtutor.ui.stops`)."""
    try:
        user = signed_in_user(profile)
        access.check_bounds({"max_new_tokens": max_new_tokens}, user)
        access.LIMITERS["compare"].check(client_key(request, profile), user)
        problem, notice = clean_problem(problem)
        settings = form_settings(max_new_tokens, temperature, top_p, seed, calculator)
        systems = [left or BASE, right or BASE]
        if blind:
            if systems[0] == systems[1]:
                raise ValueError("Blind A/B needs two different systems: pick another one.")
            random.SystemRandom().shuffle(systems)
        current = {
            "spec": spec,
            "problem": problem,
            "reference": (reference or "").strip() or None,
            "prompt_format": prompt_format,
            "settings": _settings_dict(settings),
            "systems": systems,
            "labels": [system_label(name, spec) for name in systems],
            "blind": bool(blind),
            "vote": None,
            "panes": [{"system": s, "text": "", "done": False} for s in systems],
            "answers": ["", ""],
        }
        for state in _stream(current, [0, 1], settings, run_token):
            yield (*_view(state), notice or "", state)
    except Exception as error:
        raise user_error(error) from error


def _regenerate(
    index: int,
    current: dict[str, Any] | None,
    run_token: str,
    request: gr.Request | None,
    profile: gr.OAuthProfile | None,
) -> Iterator[tuple]:
    try:
        user = signed_in_user(profile)
        access.LIMITERS["compare"].check(client_key(request, profile), user)
        if not current or not all(p["done"] for p in current["panes"]):
            raise ValueError("Nothing to regenerate yet: run Compare first (and let it finish).")
        if current["blind"] and not current.get("vote"):
            raise ValueError(
                "Vote first: regenerating one side of a blind pair would give it away."
            )
        if current.get("shared"):
            raise ValueError("A shared comparison is read only: run Compare to generate again.")
        seed = secrets.randbelow(2**31)
        values = {**current["settings"], "seed": seed}
        settings = form_settings(**values)
        current = {**current, "panes": list(current["panes"]), "answers": list(current["answers"])}
        current["seeds"] = {**current.get("seeds", {}), SIDES[index]: seed}
        notice = f"{SIDES[index].capitalize()} regenerated with seed {seed}."
        if settings.temperature == 0:
            notice += " Temperature is 0 (greedy), so the text does not depend on the seed."
        for state in _stream(current, [index], settings, run_token):
            yield (*_view(state), notice, state)
    except Exception as error:
        raise user_error(error) from error


def _regenerate_seconds(current: dict[str, Any] | None, *rest: Any, **named: Any) -> int:
    """ZeroGPU duration of regenerating one pane: one row of the run's token limit."""
    try:
        tokens = min(MAX_NEW_TOKENS, max(1, int(current["settings"]["max_new_tokens"])))
    except (TypeError, KeyError, ValueError):
        tokens = MAX_NEW_TOKENS
    return gpu_seconds((tokens, 1))


@in_turn(outputs=9, notice=7, token="run_token")
@gpu(duration=_regenerate_seconds)
def regenerate_left(
    current: dict[str, Any] | None,
    run_token: str = "",
    request: gr.Request = None,
    profile: gr.OAuthProfile | None = None,
) -> Iterator[tuple]:
    """Handler: the left pane again with a new seed (the right one is kept)."""
    yield from _regenerate(0, current, run_token, request, profile)


@in_turn(outputs=9, notice=7, token="run_token")
@gpu(duration=_regenerate_seconds)
def regenerate_right(
    current: dict[str, Any] | None,
    run_token: str = "",
    request: gr.Request = None,
    profile: gr.OAuthProfile | None = None,
) -> Iterator[tuple]:
    """Handler: the right pane again with a new seed (the left one is kept)."""
    yield from _regenerate(1, current, run_token, request, profile)


# --------------------------------------------------------------------------- votes
def _check_vote_rate(request: gr.Request | None) -> None:
    """Per-client limit on votes (a public Space is hostile): `access.LIMITERS["votes"]`,
    counted by IP (a vote handler has no sign-in of its own)."""
    access.LIMITERS["votes"].check(client_key(request, None), None)


def vote(outcome: str, current: dict[str, Any] | None, request: gr.Request | None = None) -> tuple:
    """Handler: record a blind vote, reveal the names; returns the view, state and leaderboard."""
    try:
        if outcome not in VOTES:
            raise ValueError(f"vote {outcome!r}: expected one of {', '.join(VOTES)}")
        if not current or not current.get("blind"):
            raise ValueError("Votes are for blind comparisons: tick 'Blind A/B' and run Compare.")
        if not all(p["done"] for p in current["panes"]):
            raise ValueError("Wait until both answers are finished, then vote.")
        if current.get("vote"):
            raise ValueError("This comparison already has your vote: run a new one.")
        _check_vote_rate(request)
        settings = {**current["settings"], "prompt_format": current["prompt_format"]}
        store.add_vote(
            base_id(current["spec"]),
            current["problem"],
            (current["systems"][0], current["systems"][1]),
            VOTES[outcome],
            settings,
        )
        current = {**current, "vote": VOTES[outcome]}
        names = [_literal(label) for label in current["labels"]]
        message = f"Vote recorded ({outcome}): left was **{names[0]}**, right was **{names[1]}**."
        return (*_view(current), message, current, leaderboard_value(current["spec"]))
    except Exception as error:
        raise user_error(error) from error


def latest_accuracy(spec: str) -> dict[str, float]:
    """Each system's exact-match (strict) accuracy in its latest finished evaluation on this base."""
    base, accuracy = base_id(spec), {}
    for run in store.list_eval_runs():  # newest first
        config, summary = run.get("config") or {}, run.get("summary") or {}
        if run.get("status") != "finished" or not summary:
            continue
        if not same_base(base_id(str(config.get("model", BUNDLED))), base):
            continue
        for system, numbers in (summary.get("systems") or {}).items():
            estimate = numbers.get("strict") or numbers.get("accuracy") or {}
            if system not in accuracy and estimate.get("value") is not None:
                accuracy[system] = estimate["value"]
    return accuracy


def leaderboard_value(spec: str) -> dict[str, Any]:
    """The leaderboard table of this base's votes."""
    rows = []
    for row in arena.leaderboard(store.list_votes(base_id(spec)), latest_accuracy(spec)):
        rows.append(
            [
                row["system"],
                round(row["rating"]),
                f"{row['win_rate']:.0%}",
                f"{row['ci_low']:.0%}–{row['ci_high']:.0%}",
                row["games"],
                f"{row['wins']}-{row['ties']}-{row['losses']}",
                "—" if row["accuracy"] is None else f"{row['accuracy']:.1%}",
            ]
        )
    return {"headers": LEADERBOARD_COLUMNS, "data": rows}


def export_votes(spec: str, file_format: str) -> gr.File:
    """Handler: this base's votes as a CSV or JSONL file to download."""
    try:
        text = arena.export_votes(store.list_votes(base_id(spec)), file_format)
    except ValueError as error:
        raise user_error(error) from error
    target = download_dir("votes") / f"votes.{file_format}"
    target.write_text(text)
    return gr.File(value=str(target), visible=True)


# --------------------------------------------------------------------------- sharing
def share_record(current: dict[str, Any]) -> dict[str, Any]:
    """The comparison on screen as a share record (names revealed only after a blind vote)."""
    hidden = current["blind"] and not current.get("vote")
    panes = []
    for index, pane in enumerate(current["panes"]):
        panes.append(
            {
                "system": BLIND_NAMES[index] if hidden else current["labels"][index],
                "text": pane["text"],
                "answer": pane.get("answer"),
                "verdict": _verdict(pane),
                "num_tokens": pane.get("num_tokens", 0),
                "first_token_s": pane.get("first_token_s"),
                "tokens_per_s": pane.get("tokens_per_s"),
            }
        )
    return {
        "problem": current["problem"],
        "reference": current["reference"],
        "prompt_format": current["prompt_format"],
        "settings": current["settings"],
        "blind": current["blind"],
        "vote": current.get("vote"),
        "panes": panes,
    }


def share_comparison(current: dict[str, Any] | None, request: gr.Request | None = None) -> tuple:
    """Handler: save the comparison; returns the Markdown and JSON files and the permalink."""
    import json

    try:
        if not current or not all(p["done"] for p in current["panes"]):
            raise ValueError("Nothing to share yet: run Compare and let both answers finish.")
        record = share_record(current)
        share_id = share.save(record)
        folder = download_dir("share")
        markdown_path = folder / f"comparison-{share_id}.md"
        markdown_path.write_text(share.to_markdown(record))
        json_path = folder / f"comparison-{share_id}.json"
        json_path.write_text(json.dumps(share.load(share_id), indent=1, ensure_ascii=False))
        base = str(request.request.base_url) if request is not None and request.request else "/"
        link = f"{base}?share={share_id}"
        files = gr.File(value=[str(markdown_path), str(json_path)], visible=True)
        return files, f"Permalink: [{link}]({link})"
    except Exception as error:
        raise user_error(error) from error


def open_shared(request: gr.Request) -> tuple:
    """Page load: `?share=<id>` reopens a saved comparison in the Compare tab (names as saved)."""
    share_id = (request.query_params.get("share") if request is not None else None) or ""
    if not share_id:
        return tuple(gr.skip() for _ in range(12))
    try:
        record = share.load(share_id)
    except ValueError as error:
        raise user_error(error) from error
    current = {
        "spec": "",
        "problem": record["problem"],
        "reference": record.get("reference"),
        "prompt_format": record.get("prompt_format") or "chat",
        "settings": record.get("settings") or {},
        "systems": [p["system"] for p in record["panes"]],
        "labels": [p["system"] for p in record["panes"]],
        "blind": False,
        "vote": record.get("vote"),
        "panes": [
            {
                **p,
                "done": True,
                "is_correct": {"correct": True, "incorrect": False}.get(p.get("verdict") or ""),
            }
            for p in record["panes"]
        ],
        "answers": [
            f"**Answer: {_literal(str(p.get('answer')))}** {p.get('verdict') or ''}".strip()
            for p in record["panes"]
        ],
        "shared": share_id,
    }
    notice = f"Shared comparison `{share_id}`" + (
        f" · blind vote: {record['vote']}" if record.get("vote") else ""
    )
    problem, reference = record["problem"], record.get("reference") or ""
    return (*_view(current), notice, current, problem, reference, gr.Tabs(selected="compare"))


# --------------------------------------------------------------------------- problems
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


# --------------------------------------------------------------------------- layout
def build(ctx: AppContext, tab: gr.Tab) -> None:
    choices = system_choices(ctx.model_spec.value)
    with gr.Row(elem_classes="compare-controls"):
        left = gr.Dropdown(
            choices, value=BASE, label="Left system", elem_id="compare-left-system", min_width=160
        )
        right = gr.Dropdown(
            choices,
            value=choices[1] if len(choices) > 1 else BASE,
            label="Right system",
            elem_id="compare-right-system",
            min_width=160,
        )
        prompt_format = gr.Dropdown(
            sorted(FORMATS),
            value="chat",
            label="Prompt format",
            info="How the question is asked (from the seed reports).",
            elem_id="compare-format",
            min_width=160,
        )
        with gr.Column(min_width=160):
            blind = gr.Checkbox(
                False,
                label="Blind A/B",
                info="Hide and shuffle the systems until you vote.",
                elem_id="compare-blind",
            )
            refresh = gr.Button(
                "↻ adapters", elem_id="compare-refresh", size="sm", elem_classes="wide-button"
            )
    with gr.Row():
        problem = gr.Textbox(
            label="Problem",
            lines=4,
            max_lines=12,
            placeholder="A math word problem, e.g. Natalia sold clips to 48 of her friends…",
            elem_id="compare-problem",
            scale=3,
            min_width=260,
        )
        with gr.Column(scale=2, min_width=260):
            reference = gr.Textbox(
                label="Reference answer (optional)",
                placeholder="e.g. 72",
                elem_id="compare-reference",
            )
            pick_gsm8k = gr.Button("🎲 GSM8K problem", elem_id="compare-random-gsm8k", size="sm")
            with gr.Row():
                kind = gr.Dropdown(
                    list(generators.KINDS), value="arithmetic", label="Generator", min_width=150
                )
                difficulty = gr.Dropdown(
                    list(generators.DIFFICULTIES), value="easy", label="Level", min_width=110
                )
            pick_generated = gr.Button("✨ New problem", elem_id="compare-generate", size="sm")
    with gr.Accordion("Generation settings", open=False), gr.Row():
        max_new_tokens = gr.Slider(
            16, 1024, value=256, step=16, label="Max new tokens", min_width=200
        )
        temperature = gr.Slider(
            0, 1.5, value=0, step=0.05, label="Temperature (0 = greedy)", min_width=200
        )
        top_p = gr.Slider(0.05, 1, value=1, step=0.05, label="Top-p", min_width=200)
        seed = gr.Number(0, precision=0, label="Seed", min_width=120)
        calculator = gr.Checkbox(
            False,
            label="Calculator",
            info="Insert exact results after 'expression =' while generating.",
            min_width=200,
        )
    with gr.Row():
        run = gr.Button("Compare", variant="primary", elem_id="compare-run")
        stop = gr.Button("Stop", elem_id="compare-stop")
    notice = gr.Markdown(elem_id="compare-notice")
    current = gr.State(None)
    heads, chats, answers, regenerates = [], [], [], []
    with gr.Row(equal_height=True):
        for index, side in enumerate(SIDES):
            with gr.Column(min_width=300):
                heads.append(gr.HTML(pane_head(None, index), elem_id=f"compare-{side}-head"))
                chats.append(
                    gr.Chatbot(
                        label=f"{side.capitalize()} pane",
                        show_label=False,
                        height=420,
                        render_markdown=False,
                        latex_delimiters=LATEX,
                        elem_id=f"compare-{side}-chat",
                    )
                )
                answers.append(gr.Markdown(elem_id=f"compare-{side}-answer"))
                regenerates.append(
                    gr.Button(
                        f"↻ Regenerate {side} (new seed)",
                        size="sm",
                        elem_id=f"compare-{side}-regenerate",
                    )
                )
    left_head, right_head = heads
    left_chat, right_chat = chats
    left_answer, right_answer = answers
    with gr.Accordion("Where they differ", open=False):
        difference = gr.HTML(elem_id="compare-diff")
    with gr.Row(visible=False, elem_id="compare-vote-row") as vote_row:
        vote_buttons = {
            outcome: gr.Button(label, elem_id=f"compare-vote-{VOTES[outcome].replace('_', '-')}")
            for outcome, label in (
                ("left", "← Left is better"),
                ("tie", "Tie"),
                ("right", "Right is better →"),
                ("both wrong", "Both wrong"),
            )
        }
    with gr.Row():
        share_button = gr.Button("Share this comparison", size="sm", elem_id="compare-share")
        share_files = gr.File(
            label="Comparison (Markdown, JSON)",
            file_count="multiple",
            elem_id="compare-share-files",
            height=90,
            visible=False,
        )
        permalink = gr.Markdown(elem_id="compare-permalink")
    with gr.Accordion("Leaderboard (blind votes on this base model)", open=False):
        leaderboard = gr.Dataframe(
            leaderboard_value(ctx.model_spec.value),
            headers=LEADERBOARD_COLUMNS,
            interactive=False,
            wrap=True,
            elem_id="compare-leaderboard",
        )
        gr.Markdown(
            "Rating: Bradley-Terry on the Elo scale (1000 = a system that ties everyone); "
            "win rate counts ties and 'both wrong' as half; 95% Wilson interval; exact match "
            "from each system's latest evaluation (Evaluate tab)."
        )
        with gr.Row():
            export_format = gr.Radio(["csv", "jsonl"], value="csv", label="Export format")
            export_button = gr.Button("Export votes", size="sm", elem_id="compare-export-votes")
            export_file = gr.File(
                label="Votes", elem_id="compare-votes-file", height=90, visible=False
            )

    ctx.compare_problem, ctx.compare_reference = problem, reference
    # each run's Stop token (`mathtutor.ui.stops`), filled in by the browser at each click
    run_token = stops.token_box()
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
        blind,
        run_token,
    ]
    view = [left_chat, right_chat, left_answer, right_answer, left_head, right_head, difference]
    outputs = [*view, notice, current]
    gr.on(
        [run.click, problem.submit],
        run_compare,
        inputs,
        outputs,
        concurrency_id=GPU,
        concurrency_limit=GPU_LIMIT,
        js=stops.run_js("compare", len(inputs) - 1),
        # A Run clicked while the last one still streams (or winds down after its Stop)
        # waits for it instead of writing into the same panes.
        trigger_mode="always_last",
        # The panes show their own state ("generating…", "stopped"; errors come as toasts).
        show_progress="hidden",
    )
    for button, handler in zip(regenerates, (regenerate_left, regenerate_right), strict=True):
        button.click(
            handler,
            [current, run_token],
            outputs,
            concurrency_id=GPU,
            js=stops.run_js("compare", 1),
            trigger_mode="always_last",
            show_progress="hidden",
        )
    # Stop asks the run to end (no `cancels`: see mathtutor.ui.stops); it ends at its next
    # step and marks the panes still generating as stopped.
    stops.connect_stop(stop, run_token, "compare")
    for outcome, button in vote_buttons.items():
        button.click(
            _vote_handler(outcome),
            current,
            [*outputs, leaderboard],
            show_progress="hidden",
        )
    blind.change(lambda on: gr.Row(visible=bool(on)), blind, vote_row)
    share_button.click(share_comparison, current, [share_files, permalink], show_progress="hidden")
    export_button.click(export_votes, [ctx.model_spec, export_format], export_file)
    pick_gsm8k.click(lambda: random_gsm8k(), None, [problem, reference])
    pick_generated.click(
        lambda k, d: generated_problem(k, d), [kind, difficulty], [problem, reference]
    )
    refresh.click(refresh_systems, ctx.model_spec, [left, right])
    tab.select(refresh_systems, ctx.model_spec, [left, right])
    tab.select(leaderboard_value, ctx.model_spec, leaderboard)
    ctx.model_spec.change(refresh_systems, ctx.model_spec, [left, right])
    ctx.model_spec.change(leaderboard_value, ctx.model_spec, leaderboard)
    gr.on(None, open_shared, None, [*outputs, problem, reference, ctx.tabs])


def _vote_handler(outcome: str):
    """A click handler voting `outcome` (gradio passes the request by its annotation)."""

    def handler(state: dict[str, Any] | None, request: gr.Request) -> tuple:
        return vote(outcome, state, request)

    handler.__name__ = f"vote_{VOTES[outcome]}"
    return handler
