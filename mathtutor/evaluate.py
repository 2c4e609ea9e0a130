"""Evaluation runs: the same problems for base and every adapter, graded, saved as they finish.

`evaluate(config)` loads the base model once, adds each adapter system onto it, samples the
problems once (seeded), and generates for all systems in one continuous mixed-adapter batch
(one `generate_batch` call serves every pending base and adapter row; when a row finishes the
next prompt takes its slot), in `dtype` (`auto`: `models.resolve_dtype`, recorded resolved). Every completion is graded with
lm-eval's strict and flexible gsm8k filters and with the format's own grader (`boxed` for
`qwen-boxed`, else `auto`; for LaTeX, multiple-choice and exact-string datasets the mode of
their answer type, `PromptFormat.grader_for`), categorized (`mathtutor.metrics.categorize`), and
saved to the SQLite store as soon as its rows finish, so a crash loses only the rows in flight.
A run
is resumed by passing its `run_id`: finished (system, problem) pairs are skipped (other settings
under an existing `run_id` are refused). The run records its pid: a run whose process died
reads as failed with the reason (`mathtutor.store`), and Resume continues it. The summary
(accuracy ± standard error, maj@k and calibration with `num_votes > 1`, McNemar vs the first
system, error categories; `results.EvalSummary`) is stored with the run. One evaluation runs at a time per process
(a second call is refused, or queued with `wait=True`), and an OS file lock keeps a second
process off a run that is being evaluated. `backend="vllm"` (CUDA + `pip install vllm`)
generates through vLLM (`vllm_generate`: one `LoRARequest` per adapter row, a seed per sample,
the calculator by stopping at `=`); `auto` uses it when available and falls back to
transformers.

    python -m mathtutor.evaluate --model bundled --systems base path/to/adapter \\
        --dataset gsm8k --num_samples 200 --prompt_format chat
    python -m mathtutor.evaluate --run_id <id>          # resume a stopped or crashed run
    python -m mathtutor.evaluate --dataset hub --hub_id owner/name --split test \\
        --question_template "{Body} {Question}" --answer_field Answer
    python -m mathtutor.evaluate --preset hle           # a seed's protocol (mathtutor.presets)

Any Hub dataset or local file is read by `mathtutor.tables` (`datasets.load_dataset`), its
columns mapped by the `ColumnMapping` these settings describe; with a format that asks for a
stated confidence (`hle`), each record keeps it and the summary has HLE's RMS calibration
error with its n.

Flags are the `EvalConfig` field names (`--num-samples` works too); `--adapter DIR` is short
for `--systems base DIR`.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import json
import math
import os
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mathtutor import chunks, cli, hub, locks, metrics, results, store, tables
from mathtutor.answers import ANSWER_TYPES, extract_confidence, grade
from mathtutor.checks import format_value, wrong_steps
from mathtutor.data import DATASETS, Problem, load_problems
from mathtutor.generate import Completion, GenerationSettings, default_batch_size, generate_batch
from mathtutor.models import BASE, DTYPES, background_priority, check_dtype
from mathtutor.paths import check_id, check_readable, home_dir
from mathtutor.presets import PRESETS, preset_values
from mathtutor.prompts import FORMATS, get_format, render, stop_sequences
from mathtutor.tables import ColumnMapping
from mathtutor.zerogpu import on_zerogpu

BACKENDS = ("auto", "transformers", "vllm")
EXPORT_FORMATS = ("jsonl", "csv")
# Settings that do not change results: a resumed run may use new values for these.
_RUNTIME_FIELDS = ("batch_size", "backend")
MAX_BATCH_SIZE = 4096
# Text settings where empty means "not set" (the column mapping and the Hub dataset's address).
_TEXT_FIELDS = (
    "question_template", "solution_field", "id_field", "choices_field", "answer_type",
    "hub_id", "hub_config", "revision", "preset",
)  # fmt: skip


@dataclass
class EvalConfig:
    """One evaluation: which model and systems, which problems, how to prompt and decode.

    Prompt formats carry their own worked examples (`gemma-oneshot` and `socratic` one shot,
    the others zero), so there is no separate number-of-shots setting.

    >>> config_from_args(["--num-samples", "50", "--adapter", "runs/a/adapter"]).systems
    ['base', 'runs/a/adapter']
    >>> EvalConfig(num_samples=0)
    Traceback (most recent call last):
    ValueError: num_samples must be between 1 and 100000, got 0
    """

    model: str = field(
        default="bundled",
        metadata={"help": "Base model: 'bundled', a local directory or a Hub id."},
    )
    systems: list[str] = field(
        default_factory=lambda: [BASE],
        metadata={
            "help": "What to evaluate on the same problems: 'base' and LoRA adapters (directory, "
            "registered name or Hub id). The first one is the reference for paired comparisons."
        },
    )
    dataset: str = field(
        default="gsm8k",
        metadata={"help": "Which problems to evaluate on.", "choices": tuple(DATASETS)},
    )
    path: str | None = field(
        default=None, metadata={"help": "JSONL / JSON / CSV file for dataset 'upload'."}
    )
    question_field: str = field(
        default="question", metadata={"help": "Upload column holding the question."}
    )
    answer_field: str = field(
        default="answer",
        metadata={"help": "Upload column holding the answer ('... #### N', \\boxed{N} or N)."},
    )
    question_template: str = field(
        default="",
        metadata={
            "help": "Question from columns, e.g. '{Body} {Question}'; empty = {question_field}."
        },
    )
    solution_field: str = field(
        default="", metadata={"help": tables.mapping_help("solution_field")}
    )
    id_field: str = field(default="", metadata={"help": tables.mapping_help("id_field")})
    choices_field: str = field(default="", metadata={"help": tables.mapping_help("choices_field")})
    answer_type: str = field(
        default="",
        metadata={"help": tables.mapping_help("answer_type"), "choices": ("", *ANSWER_TYPES)},
    )
    hub_id: str = field(
        default="", metadata={"help": "Hub dataset id for dataset 'hub', e.g. 'cais/hle'."}
    )
    hub_config: str = field(
        default="", metadata={"help": "The Hub dataset's config (subset); empty = default."}
    )
    revision: str = field(
        default="", metadata={"help": "The Hub dataset's branch, tag or commit; empty = main."}
    )
    split: str = field(
        default="test",
        metadata={"help": "Split: test / train for GSM8K and generators, any for a Hub dataset."},
    )
    preset: str = field(
        default="",
        metadata={
            "help": "A seed's protocol (prompt, answer type, Hub id): fills the fields left at "
            "their defaults.",
            "choices": ("", *PRESETS),
        },
    )
    difficulty: str = field(
        default="medium",
        metadata={"help": "Generated datasets only.", "choices": ("easy", "medium", "hard")},
    )
    num_samples: int = field(
        default=200,
        metadata={
            "help": "Problems to draw (seeded); the reports used 200.",
            "range": (1, 100_000),
        },
    )
    seed: int = field(
        default=0,
        metadata={"help": "Seed for the sample and for sampling.", "range": (0, 2**32 - 1)},
    )
    prompt_format: str = field(
        default="chat", metadata={"help": "How each question is asked.", "choices": tuple(FORMATS)}
    )
    max_new_tokens: int = field(
        default=256,
        metadata={
            "help": "Token limit per completion (hitting it = truncated).",
            "range": (1, 4096),
        },
    )
    temperature: float = field(
        default=0.0,
        metadata={"help": "0 = greedy; > 0 samples (needed for votes > 1).", "range": (0.0, 2.0)},
    )
    num_votes: int = field(
        default=1,
        metadata={
            "help": "Self-consistency: samples per problem, majority vote.",
            "range": (1, 32),
        },
    )
    batch_size: int | None = field(
        default=None, metadata={"help": "Rows per forward pass; empty = sized to the device."}
    )
    calculator: bool = field(
        default=False, metadata={"help": "Insert exact results after 'expression =' (GSM8K)."}
    )
    backend: str = field(
        default="auto",
        metadata={
            "help": "vllm needs CUDA and vllm installed; auto falls back.",
            "choices": BACKENDS,
        },
    )
    dtype: str = field(
        default="auto",
        metadata={
            "help": "Weights dtype; auto = bf16 where the hardware runs it natively (GPUs, CPUs "
            "with AMX/AVX512-BF16), else fp32 on CPU. bf16 and fp32 greedy texts differ.",
            "choices": DTYPES,
        },
    )
    run_id: str | None = field(
        default=None, metadata={"help": "Resume this run (skips finished problems)."}
    )

    def __post_init__(self) -> None:
        for name in _TEXT_FIELDS:  # a form's emptied textbox may send None
            if getattr(self, name) is None:
                setattr(self, name, "")
        if self.preset:
            _choice("preset", self.preset, PRESETS)
            defaults = {f.name: f.default for f in dataclasses.fields(self)}
            for name, value in preset_values(self.preset).items():
                if getattr(self, name) == defaults[name]:
                    setattr(self, name, value)
        if isinstance(self.systems, str):
            self.systems = [self.systems]
        self.systems = [str(s).strip() for s in self.systems]
        if not self.systems or not all(self.systems):
            raise ValueError("systems: give at least one system ('base' or an adapter), no blanks")
        duplicates = sorted({s for s in self.systems if self.systems.count(s) > 1})
        if duplicates:
            raise ValueError(f"systems lists {', '.join(duplicates)} more than once")
        self.dtype = check_dtype(self.dtype)
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            if "choices" in spec.metadata:
                _choice(spec.name, value, spec.metadata["choices"])
            if "range" in spec.metadata:
                setattr(self, spec.name, _check_range(spec.name, value, *spec.metadata["range"]))
        if self.dataset == "upload" and not self.path:
            raise ValueError("path: dataset 'upload' needs the file to read (JSONL, JSON or CSV)")
        if self.dataset == "upload":
            check_readable(self.path, "path")
        if self.dataset == "hub":
            tables.TableSource(self.hub_id, self.hub_config, self.split, self.revision)
        elif self.split not in ("test", "train"):
            raise ValueError(f"split {self.split!r}: dataset {self.dataset!r} has test and train")
        self.mapping()  # the template and answer type are checked before anything loads
        if self.num_votes > 1 and self.temperature == 0.0:
            raise ValueError(
                f"num_votes={self.num_votes} needs temperature > 0: greedy decoding gives the "
                "same answer every time (e.g. temperature 0.7)"
            )
        if self.batch_size is not None:
            self.batch_size = _check_range(
                "batch_size", self.batch_size, 1, MAX_BATCH_SIZE, "or empty"
            )
        self.run_id = (self.run_id or "").strip() or None
        if self.run_id is not None:
            check_id(self.run_id, "run_id")

    def mapping(self) -> ColumnMapping:
        """The column mapping these settings describe (uploads and Hub datasets)."""
        return ColumnMapping.of(self)


def _check_range(name: str, value: Any, low: float, high: float, other: str = "") -> Any:
    """`value` as the field's number (an int when `low` is one), if finite and in [low, high]."""
    whole = isinstance(low, int)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    if whole and value != int(value):
        raise ValueError(f"{name} must be a whole number, got {value}")
    if not low <= value <= high:
        raise ValueError(
            f"{name} must be between {low} and {high}{' ' + other if other else ''}, got {value}"
        )
    return int(value) if whole else float(value)


def _choice(name: str, value: str, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} {value!r} is not one of: {', '.join(choices)}")


@dataclass
class EvalReport:
    """What `evaluate` returns; the same summary is stored with the run."""

    run_id: str
    status: str  # finished | stopped
    config: EvalConfig
    summary: results.EvalSummary
    num_records: int  # saved records of the run (all systems)
    seconds: float  # wall time of this call


# --------------------------------------------------------------------------- one at a time
_RUN_LOCK = threading.Lock()
_running: dict[str, str | None] = {"run_id": None}


def running_run() -> str | None:
    """Id of the evaluation running in this process, if any."""
    return _running["run_id"]


def evaluate(
    config: EvalConfig,
    on_progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    *,
    wait: bool = False,
) -> EvalReport:
    """Run (or resume, with `config.run_id`) an evaluation; see the module docstring.

    `on_progress(done, total)` counts (system, problem) records, called as each is saved;
    `should_stop()` is asked between decoding steps (the run is then saved with status
    "stopped"; rows not finished by then are generated again on resume).
    A second call while one runs raises ValueError, or queues behind it with `wait=True`.
    """
    if not _RUN_LOCK.acquire(blocking=wait):
        raise ValueError(
            f"an evaluation is already running (run {_running['run_id']}); stop it or wait for it "
            "to finish before starting another"
        )
    try:
        run_id = config.run_id or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        check_id(run_id, "run_id")  # it names the lock file below
        _running["run_id"] = run_id
        remove_stale_locks()
        with _run_file_lock(run_id):
            return _run(config, run_id, on_progress, should_stop)
    finally:
        _running["run_id"] = None
        _RUN_LOCK.release()


@contextlib.contextmanager
def _run_file_lock(run_id: str) -> Iterator[None]:
    """Hold an OS lock on the run while it is evaluated, so a second process (a CLI resuming a
    run the app is evaluating) is refused instead of writing into the same record set. The OS
    drops the lock when the holder dies, even by SIGKILL, so a crashed run can be resumed; the
    file is removed on the way out, and one a killed process left is removed by
    `remove_stale_locks`."""
    path = _locks_dir() / f"eval-{run_id}.lock"
    handle = locks.try_lock(path)
    if handle is None:
        raise ValueError(
            f"run {run_id} is being evaluated by another process (pid {locks.holder(path)}); "
            "stop it there or wait for it to finish"
        )
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        locks.release(handle, path)


def _locks_dir() -> Path:
    return home_dir() / "locks"


def remove_stale_locks() -> list[Path]:
    """Delete evaluation lock files whose process is gone (killed runs leave them)."""
    return locks.remove_stale(_locks_dir(), "eval-*.lock")


def _run(
    config: EvalConfig,
    run_id: str,
    on_progress: Callable[[int, int], None] | None,
    should_stop: Callable[[], bool] | None,
) -> EvalReport:
    started = time.perf_counter()
    existing = store.get_eval_run(run_id)  # also refuses a corrupt database before any work
    if config.run_id and existing is None:
        known = ", ".join(run["id"] for run in store.list_eval_runs()[:5]) or "none yet"
        raise ValueError(f"run_id {run_id!r}: no such evaluation run (recent runs: {known})")
    if existing is not None:
        config = _resumed_config(existing, config)
    problems = _problems(config)
    backend = pick_backend(config.backend)
    engine = _Systems(config, backend)
    labels = existing["config"].get("labels") if existing else None
    labels = labels if labels and len(labels) == len(config.systems) else engine.labels
    config = dataclasses.replace(config, dtype=engine.loaded.dtype_name)  # auto, resolved
    if existing is None:
        store.create_eval_run(run_id, {**asdict(config), "run_id": run_id, "labels": labels})
    else:
        store.claim_eval_run(run_id)
    try:
        status = _generate_all(run_id, config, problems, labels, engine, on_progress, should_stop)
    except BaseException as error:
        stopped = isinstance(error, KeyboardInterrupt)
        message = None if stopped else f"{type(error).__name__}: {error}"
        with contextlib.suppress(ValueError, sqlite3.Error):  # the first error is the one to see
            store.update_eval_run(run_id, status="stopped" if stopped else "failed", error=message)
        raise
    records = store.load_records(run_id)
    answer_type = problems[0].answer_type if problems else "number"
    summary = dataclasses.replace(
        results.summarize(records, labels),
        num_problems=len(problems),
        prompt_format=config.prompt_format,
        grader=get_format(config.prompt_format).grader_for(answer_type),
        answer_type=answer_type,
        num_votes=config.num_votes,
        backend=backend,
        dtype=config.dtype,
    )
    store.update_eval_run(run_id, status=status, summary=summary.to_dict())
    return EvalReport(run_id, status, config, summary, len(records), time.perf_counter() - started)


def _resumed_config(existing: dict[str, Any], given: EvalConfig) -> EvalConfig:
    """The stored run's settings; only batch size and backend may change on resume.

    A given setting that is neither its default nor the stored value means the caller wants a
    new evaluation under an existing id: refused, so the run's records never mix two settings.
    """
    names = {f.name for f in dataclasses.fields(EvalConfig)}
    stored = existing["config"]
    values = {key: value for key, value in stored.items() if key in names}
    defaults = EvalConfig()
    for spec in dataclasses.fields(EvalConfig):
        if spec.name in (*_RUNTIME_FIELDS, "run_id") or spec.name not in values:
            continue
        wanted = getattr(given, spec.name)
        if wanted != getattr(defaults, spec.name) and wanted != values[spec.name]:
            raise ValueError(
                f"run_id {existing['id']!r} already exists ({existing['status']}) with "
                f"{spec.name} {values[spec.name]!r}, not {wanted!r}; leave run_id empty for a new "
                "evaluation, or give only run_id (and batch_size, backend) to resume it"
            )
    for name in _RUNTIME_FIELDS:
        values[name] = getattr(given, name)
    return EvalConfig(**values)


def check_problems(config: EvalConfig) -> int:
    """How many problems `config` evaluates; the run's own ValueError if they cannot be loaded.

    The Evaluate tab asks before it starts a background job, so a bad upload or dataset is
    refused at Start, not reported later by the job.
    """
    return len(_problems(config))


def _problems(config: EvalConfig) -> list[Problem]:
    try:
        return load_problems(
            config.dataset,
            split=config.split,
            num_samples=config.num_samples,
            seed=config.seed,
            path=config.path,
            question_field=config.question_field,
            answer_field=config.answer_field,
            difficulty=config.difficulty,
            mapping=config.mapping(),
            hub_id=config.hub_id,
            hub_config=config.hub_config,
            revision=config.revision,
        )
    except ValueError as error:
        raise ValueError(f"dataset {config.dataset!r}: {error}") from error


def score_loaded(
    loaded: Any,
    adapter: str,
    problems: Sequence[Problem],
    prompt_format: str,
    max_new_tokens: int = 256,
    seed: int = 0,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Greedy-decode `problems` on a model already in memory and grade them as `evaluate` does.

    `loaded` is a `mathtutor.models.LoadedModel` (training wraps the peft model it is training
    in one, so the adapter is measured as it is, without a copy of the base); `adapter` is the
    row adapter (`"base"` for none). Returns `metrics.summarize`'s metrics of that one system
    (accuracy, strict, flexible with standard errors, format_rate, n, ...), plus `format`
    (format adherence as an estimate with its standard error) and `records` (the graded
    records, as an evaluation run stores them).
    """
    from mathtutor.generate import GenerationSettings, default_batch_size, generate_batch

    if not problems:
        raise ValueError("no problems to score")
    settings = GenerationSettings(
        max_new_tokens=max_new_tokens, temperature=0.0, seed=seed,
        stop=tuple(stop_sequences(prompt_format)),
    )  # fmt: skip
    prompts = [render(prompt_format, p.question, loaded.tokenizer) for p in problems]
    completions = generate_batch(
        loaded,
        prompts,
        adapter,
        settings,
        batch_size=batch_size or default_batch_size(loaded.device),
    )
    records = [
        _record(problem, position, adapter, [completion], prompt_format, completion.seconds)
        for position, (problem, completion) in enumerate(zip(problems, completions, strict=True))
    ]
    result = results.summarize(records, [adapter]).to_dict()["systems"][adapter]
    formats = metrics.accuracy([record["follows_format"] for record in records])
    result["format"] = {"value": formats.value, "stderr": formats.stderr, "n": formats.n}
    result["records"] = records
    return result


def _generate_all(
    run_id: str,
    config: EvalConfig,
    problems: list[Problem],
    labels: list[str],
    engine: _Systems,
    on_progress: Callable[[int, int], None] | None,
    should_stop: Callable[[], bool] | None,
) -> str:
    """Generate, grade and save every unfinished (system, problem); returns the final status."""
    done = store.done_keys(run_id)
    prompts = {p.id: render(config.prompt_format, p.question, engine.tokenizer) for p in problems}
    work = [
        (position, problem, label)
        for position, problem in enumerate(problems)
        for label in labels
        if (label, problem.id) not in done
    ]
    total = len(problems) * len(labels)
    finished = total - len(work)
    if on_progress:
        on_progress(finished, total)
    if not work:
        return "finished"
    if should_stop and should_stop():
        return "stopped"
    votes = config.num_votes
    rows = [(item, vote) for item in work for vote in range(votes)]
    pending: dict[int, dict[int, Any]] = {}  # work item -> its finished votes so far
    begun, rows_done = time.perf_counter(), 0

    def on_row(row: int, completion: Completion) -> None:
        nonlocal finished, rows_done
        item, rows_done = row // votes, rows_done + 1
        pending.setdefault(item, {})[row % votes] = completion
        if len(pending[item]) < votes:
            return
        samples = pending.pop(item)
        completions = [samples[vote] for vote in range(votes)]
        position, problem, label = work[item]
        # rows decode together: a row's cost is the call's mean time per finished row so far
        per_row = (time.perf_counter() - begun) / rows_done
        record = _record(problem, position, label, completions, config.prompt_format, per_row)
        store.save_records(run_id, [record])
        finished += 1
        if on_progress:
            on_progress(finished, total)

    # One call for every pending row: when a row finishes its record is saved and the next
    # prompt takes its slot (continuous batching); Stop is asked between decoding steps.
    stopped = engine.generate(
        [prompts[item[1].id] for item, _ in rows],
        [engine.adapter_of[labels.index(item[2])] for item, _ in rows],
        on_row,
        should_stop,
    )
    return "stopped" if stopped else "finished"


def _record(
    problem: Problem,
    position: int,
    label: str,
    completions: Sequence[Any],
    prompt_format: str,
    seconds_per_row: float,
) -> dict[str, Any]:
    """One saved record: the first sample graded three ways, plus the vote with num_votes > 1."""
    number = problem.answer_type == "number"
    reference = problem.solution if number and "####" in problem.solution else problem.answer
    spec = get_format(prompt_format)
    mode = spec.grader_for(problem.answer_type)
    first = completions[0]
    primary = grade(first.text, reference, mode, problem.choices)
    strict = grade(first.text, reference, "strict")
    flexible = grade(first.text, reference, "flexible")
    record: dict[str, Any] = {
        "system": label,
        "problem_id": problem.id,
        "position": position,
        "question": problem.question,
        "answer": problem.answer,
        "answer_type": problem.answer_type,
        "solution": problem.solution,
        "completion": first.text,
        "num_tokens": first.num_tokens,
        "finish_reason": first.finish_reason,
        "seconds": seconds_per_row * len(completions),
        "extracted": primary.extracted,
        "method": primary.method,
        "is_correct": primary.is_correct,
        "strict_extracted": strict.extracted,
        "strict_correct": strict.is_correct,
        "flexible_extracted": flexible.extracted,
        "flexible_correct": flexible.is_correct,
        "follows_format": metrics.follows_format(primary.method, prompt_format),
        "category": metrics.categorize(first.text, first.finish_reason, primary, prompt_format),
        "wrong_steps": [
            {
                "start": step.start,
                "end": step.end,
                "expression": step.expression,
                "claimed": step.claimed,
                "actual": None if step.actual is None else format_value(step.actual),
            }
            for step in wrong_steps(first.text)
        ],
        "calculator_calls": getattr(first, "calculator_calls", 0),
        "created": time.time(),
    }
    if spec.asks_confidence:  # the model's own stated confidence (HLE); None when it gave none
        record["confidence"] = extract_confidence(first.text)
    if len(completions) > 1:
        grades = [grade(c.text, reference, mode, problem.choices) for c in completions]
        vote = metrics.majority_vote([g.extracted for g in grades])
        record["votes"] = [
            {"completion": c.text, "extracted": g.extracted, "is_correct": g.is_correct,
             "finish_reason": c.finish_reason, "num_tokens": c.num_tokens}
            for c, g in zip(completions, grades, strict=True)
        ]  # fmt: skip
        record["maj_answer"] = vote.answer
        record["vote_share"] = vote.share
        record["maj_correct"] = any(g.is_correct for g in grades if g.extracted == vote.answer)
    return record


# --------------------------------------------------------------------------- backends
def pick_backend(backend: str) -> str:
    """`transformers` or `vllm`: vLLM needs `import vllm` and CUDA; `auto` falls back."""
    _choice("backend", backend, BACKENDS)
    if backend == "transformers":
        return backend
    problem = _vllm_problem()
    if problem is None:
        return "vllm"
    if backend == "vllm":
        raise ValueError(f"backend 'vllm' is not available here: {problem}")
    return "transformers"


def _vllm_problem() -> str | None:
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        return "vllm is not installed (pip install vllm, on a CUDA machine); use 'transformers'"
    import torch

    if not torch.cuda.is_available():
        return "vLLM needs a CUDA GPU and none is visible; use 'transformers'"
    return None


class _Systems:
    """The base model loaded once with every evaluated system's adapter on it, and one
    `generate(prompts, adapters)` over the chosen backend (transformers or vLLM)."""

    def __init__(self, config: EvalConfig, backend: str) -> None:
        from mathtutor.models import load_model

        self.config = config
        self.backend = backend
        self.loaded = load_model(config.model, dtype=config.dtype)
        self.tokenizer = self.loaded.tokenizer
        self.adapter_of = [self._add(system) for system in config.systems]
        self.labels = list(self.adapter_of)
        self.batch_size = config.batch_size or default_batch_size(self.loaded)
        self.settings = GenerationSettings(
            max_new_tokens=config.max_new_tokens,
            temperature=config.temperature,
            seed=config.seed,
            stop=tuple(stop_sequences(config.prompt_format)),
            calculator=config.calculator,
        )
        self._vllm = None

    def _add(self, system: str) -> str:
        if system == BASE or system in self.loaded.adapters:
            return system
        if not Path(system).expanduser().is_dir():
            registered = {row["name"]: row["path"] for row in store.list_adapters()}
            if system in registered:
                return self.loaded.add_adapter(registered[system], system)
        return self.loaded.add_adapter(hub.adapter_dir(system))

    def generate(
        self,
        prompts: list[str],
        adapters: list[str],
        on_row: Callable[[int, Completion], None],
        should_stop: Callable[[], bool] | None = None,
    ) -> bool:
        """Generate every row, calling `on_row(index, completion)` as each finishes; True when
        `should_stop` ended it early. vLLM runs chunks of `batch_size` rows (it batches
        inside), asking `should_stop` between chunks."""
        if self.backend == "vllm":
            return self._in_chunks(self._generate_vllm, prompts, adapters, on_row, should_stop)
        if on_zerogpu():  # a GPU exists only inside a bounded call: one call per batch
            return self._in_chunks(self._generate_zerogpu, prompts, adapters, on_row, should_stop)
        with background_priority():  # interactive steps (Compare, Tutor) go first
            results = generate_batch(
                self.loaded, prompts, adapters, self.settings, batch_size=self.batch_size,
                on_row=on_row, should_stop=should_stop,
            )  # fmt: skip
        return any(result is None for result in results)

    def _in_chunks(
        self,
        generate: Callable[[list[str], list[str]], list[Any]],
        prompts: list[str],
        adapters: list[str],
        on_row: Callable[[int, Completion], None],
        should_stop: Callable[[], bool] | None,
    ) -> bool:
        """`generate` over chunks of `batch_size` rows, `should_stop` asked between chunks."""
        for start in range(0, len(prompts), self.batch_size):
            if start and should_stop and should_stop():
                return True
            chunk = slice(start, start + self.batch_size)
            for offset, completion in enumerate(generate(prompts[chunk], adapters[chunk])):
                on_row(start + offset, completion)
        return False

    def _generate_zerogpu(self, prompts: list[str], adapters: list[str]) -> list[Any]:
        return chunks.generate_chunk(
            self.config.model, prompts, adapters, self.settings, self.loaded.dtype_name
        )

    def _generate_vllm(self, prompts: list[str], adapters: list[str]) -> list[Any]:
        """vLLM with per-request LoRA (`LoRARequest`); GPU only, see `pick_backend`."""
        from vllm import LLM
        from vllm.lora.request import LoRARequest

        from mathtutor.models import read_adapter_config, resolve_model

        if self._vllm is None:
            ranks = [read_adapter_config(p).get("r", 16) for p in self.loaded.adapters.values()]
            self._vllm = LLM(
                model=resolve_model(self.config.model),
                enable_lora=bool(ranks),
                max_lora_rank=max([16, *ranks]),
                max_loras=max(1, len(ranks)),
                gpu_memory_utilization=float(os.environ.get("MATHTUTOR_VLLM_MEMORY", "0.5")),
                seed=self.config.seed,
            )
        names = list(self.loaded.adapters)
        requests = [
            None
            if name == BASE
            else LoRARequest(name, names.index(name) + 1, str(self.loaded.adapters[name]))
            for name in adapters
        ]
        return vllm_generate(self._vllm, prompts, requests, self.settings)


def vllm_generate(
    llm: Any,
    prompts: Sequence[str],
    lora_requests: Sequence[Any],
    settings: GenerationSettings,
    sampling_params: Any = None,
) -> list[Completion]:
    """One `Completion` per prompt from a vLLM `LLM`, with the transformers loop's semantics.

    Uses only `llm.generate(prompts, [SamplingParams], lora_request=[...], use_tqdm=False)` and
    each output's `outputs[0]` (`text`, `token_ids`, `finish_reason`, `stop_reason`), so a test
    can pass a small fake `llm` and `sampling_params` class where vLLM is not installed.

    - Every row gets its own seed (`settings.seed + row`): the k votes of a problem are k
      different samples, not one sample k times.
    - `calculator=True`: rows also stop at `=` (kept in the text); when the text then ends with
      an expression, its exact value (`checks.calculator_result`) is appended and the row goes
      on from prompt + text, with what is left of `max_new_tokens`. Inserted values are not
      counted as generated tokens.
    """
    from mathtutor.checks import calculator_result

    if sampling_params is None:
        from vllm import SamplingParams as sampling_params
    count = len(prompts)
    texts, tokens, calls = [""] * count, [0] * count, [0] * count
    finish: list[str | None] = [None] * count
    stops = list(settings.stop) + (["="] if settings.calculator else [])
    begun = time.perf_counter()
    live, rounds = list(range(count)), 0
    while live:
        params = [
            sampling_params(
                temperature=settings.temperature,
                top_p=settings.top_p,
                max_tokens=settings.max_new_tokens - tokens[row],
                stop=stops,
                include_stop_str_in_output=settings.calculator,
                seed=settings.seed + row + rounds * count,  # one stream per row and round
            )
            for row in live
        ]
        outputs = llm.generate(
            [prompts[row] + texts[row] for row in live],
            params,
            lora_request=[lora_requests[row] for row in live],
            use_tqdm=False,
        )
        going = []
        for row, output in zip(live, outputs, strict=True):
            out = output.outputs[0]
            tokens[row] += len(out.token_ids)
            matched = out.stop_reason if isinstance(out.stop_reason, str) else None
            if matched and settings.calculator and matched != "=":
                texts[row] += out.text[: len(out.text) - len(matched)]  # stop strings excluded
            else:
                texts[row] += out.text
            if out.finish_reason == "length" or tokens[row] >= settings.max_new_tokens:
                finish[row] = "length"
            elif matched == "=" and settings.calculator:
                value = calculator_result(texts[row])
                if value is not None:
                    text = texts[row]
                    in_annotation = text.rfind("<<") > text.rfind(">>")
                    texts[row] += ("" if in_annotation or text.endswith(" ") else " ") + value
                    calls[row] += 1
                going.append(row)
            else:
                finish[row] = _vllm_finish(out)
        live, rounds = going, rounds + 1
    seconds = time.perf_counter() - begun
    return [
        Completion(
            text=texts[row],
            num_tokens=tokens[row],
            finish_reason=finish[row],
            seconds=seconds,
            calculator_calls=calls[row],
        )
        for row in range(count)
    ]


def _vllm_finish(output: Any) -> str:
    """vLLM says "stop" for EOS and stop strings alike; a matched string is its stop_reason."""
    if output.finish_reason == "length":
        return "length"
    return "stop" if isinstance(output.stop_reason, str) else "eos"


# --------------------------------------------------------------------------- results
def export_run(run_id: str, path: str | Path, format: str = "jsonl") -> Path:
    """Write a run's records to JSONL (one record per line) or CSV (lists as JSON), atomically."""
    _choice("format", format, EXPORT_FORMATS)
    check_id(run_id, "run_id")
    if store.get_eval_run(run_id) is None:
        raise ValueError(f"run_id {run_id!r}: no such evaluation run")
    records = store.load_records(run_id)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
            if format == "jsonl":
                for record in records:
                    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            else:
                columns = list(dict.fromkeys(key for record in records for key in record))
                writer = csv.DictWriter(handle, fieldnames=columns)
                writer.writeheader()
                for record in records:
                    writer.writerow({key: _csv_cell(value) for key, value in record.items()})
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target


def _csv_cell(value: Any) -> Any:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (list, dict)) else value


# --------------------------------------------------------------------------- command line
def _parser() -> argparse.ArgumentParser:
    parser = cli.config_parser(
        EvalConfig,
        "python -m mathtutor.evaluate",
        "Evaluate base and LoRA adapters on the same math problems.",
    )
    parser.add_argument(
        "--adapter", action="append", default=[], help="Shorthand: --systems base ADAPTER."
    )
    return parser


def config_from_args(argv: Sequence[str] | None = None) -> EvalConfig:
    """Parse command-line flags into the same `EvalConfig` the UI and tests build."""
    values = vars(_parser().parse_args(argv))
    adapters = values.pop("adapter")
    if adapters:
        values["systems"] = [*values.get("systems", [BASE]), *adapters]
    return EvalConfig(**values)


def _print_progress(done: int, total: int, started: list[float]) -> None:
    if not started:
        started.extend([time.perf_counter(), done])
    elapsed, rate = time.perf_counter() - started[0], 0.0
    if done > started[1] and elapsed > 0:
        rate = (done - started[1]) / elapsed
    eta = f" ETA {(total - done) / rate:.0f} s" if rate else ""
    print(f"[{done}/{total}] {rate * 60:.1f} completions/min{eta}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> EvalReport:
    """CLI entry point: evaluate, print the results table and the run id."""
    config = config_from_args(argv)
    started: list[float] = []
    try:
        report = evaluate(config, on_progress=lambda d, t: _print_progress(d, t, started))
    except KeyboardInterrupt:
        latest = store.list_eval_runs()[:1]
        if latest and latest[0]["status"] == "stopped":
            print(f"stopped; resume with: python -m mathtutor.evaluate --run_id {latest[0]['id']}")
        raise SystemExit(130) from None
    print(results.format_table(report.summary))
    for comparison in report.summary.comparisons:
        print(
            f"{comparison.b} vs {comparison.a}: fixed {comparison.fixed}, regressed "
            f"{comparison.regressed}, McNemar exact p = {comparison.p_value:.4g}"
        )
    print(f"run {report.run_id}: {report.status}, {report.num_records} records")
    return report


if __name__ == "__main__":
    sys.exit(cli.run(main))
