"""Trainer callbacks: metrics as JSON lines, a stop file honoured at step boundaries, task
accuracy measured during training.

`MetricsCallback` appends one JSON object per log event to `metrics.jsonl` (flushed at once, so
the app can follow it while the run goes on): `step`, `max_steps`, `epoch`, `loss`,
`eval_loss`, `lr`, `grad_norm`, `tokens_per_second`, `reward` (GRPO), `elapsed`. The first line
(`"event": "begin"`) and the last (`"event": "end"`) frame the run. It also prints a short line
per log event, which lands in the run's `log.txt`.

`StopCallback` looks for the file `runs/<id>/STOP` after every optimizer step; when it is there
it asks the trainer to save a checkpoint and stop, so the adapter written next is usable and
`resume` can continue from that step.

`AccuracyCallback` (with `eval_every`) measures task accuracy on held-out problems with the
evaluation engine at step 0, every k steps and the last step (`"event": "accuracy"` rows),
and keeps the best step's adapter with `keep_best_by: accuracy`; see its docstring.

`training.runs.read_metrics(run_id)` parses the file back.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from mathtutor.models import torch_dtype_name

# trl / transformers log keys -> the names metrics.jsonl uses
_KEYS = {
    "loss": "loss",
    "eval_loss": "eval_loss",
    "learning_rate": "lr",
    "grad_norm": "grad_norm",
    "reward": "reward",
    "reward_std": "reward_std",
    "kl": "kl",
    "mean_token_accuracy": "token_accuracy",
    "eval_mean_token_accuracy": "eval_token_accuracy",
    "completions/mean_length": "completion_length",
    "rewards/correctness_reward/mean": "reward_correctness",
    "rewards/format_reward/mean": "reward_format",
}


class MetricsCallback(TrainerCallback):
    """Writes metrics.jsonl and a one-line progress report per log event."""

    def __init__(self, path: str | Path, echo: bool = True) -> None:
        self.path = Path(path)
        self.echo = echo
        self.started = time.time()
        self._last_tokens: tuple[float, float] | None = None  # (time, tokens seen)

    def _write(self, row: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
            handle.flush()

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.time()
        if not state.is_world_process_zero:  # one writer under accelerate launch
            return
        self._write(
            {
                "event": "begin",
                "step": state.global_step,
                "max_steps": state.max_steps,
                "time": self.started,
            }
        )

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero:
            return
        logs = logs or {}
        now = time.time()
        if "train_runtime" in logs:  # the summary transformers logs once training ends
            row = {"event": "end", "step": state.global_step, "max_steps": state.max_steps}
            row.update({k: v for k, v in logs.items() if isinstance(v, (int, float))})
            row["time"] = now
            self._write(row)
            return
        row: dict[str, Any] = {"step": state.global_step, "max_steps": state.max_steps}
        if state.epoch is not None:
            row["epoch"] = round(state.epoch, 4)
        for key, name in _KEYS.items():
            value = logs.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                row[name] = float(value)
        tokens = logs.get("num_tokens") or state.num_input_tokens_seen or 0
        if tokens and ("loss" in logs or "reward" in logs):
            if self._last_tokens is not None and now > self._last_tokens[0]:
                row["tokens_per_second"] = round(
                    (tokens - self._last_tokens[1]) / (now - self._last_tokens[0]), 2
                )
            elif state.global_step:
                row["tokens_per_second"] = round(tokens / max(now - self.started, 1e-6), 2)
            self._last_tokens = (now, tokens)
            row["tokens"] = tokens
        row["elapsed"] = round(now - self.started, 3)
        row["time"] = now
        self._write(row)
        if self.echo:
            print(progress_line(row), flush=True)


def progress_line(row: dict[str, Any]) -> str:
    """One log line for a metrics row.

    >>> progress_line({"step": 3, "max_steps": 60, "loss": 1.23456, "lr": 0.0005})
    'step 3/60 | loss 1.2346 | lr 5.00e-04'
    """
    parts = [f"step {row.get('step')}/{row.get('max_steps')}"]
    for key, form in (
        ("loss", "loss {:.4f}"),
        ("eval_loss", "eval_loss {:.4f}"),
        ("reward", "reward {:.3f}"),
        ("lr", "lr {:.2e}"),
        ("tokens_per_second", "{:.0f} tok/s"),
    ):
        if key in row:
            parts.append(form.format(row[key]))
    return " | ".join(parts)


class StopCallback(TrainerCallback):
    """Stops training at the next step boundary once `stop_path` exists, saving a checkpoint."""

    def __init__(self, stop_path: str | Path) -> None:
        self.stop_path = Path(stop_path)
        self.stopped = False

    def on_step_end(self, args, state, control, **kwargs):
        if self.stop_path.exists():
            self.stopped = True
            control.should_training_stop = True
            control.should_save = True
            print(f"stop requested: saving a checkpoint at step {state.global_step}", flush=True)
        return control


# ---------------------------------------------------------------- task accuracy during training
ACCURACY_KEYS = ("accuracy", "strict", "flexible", "format")


def accuracy_row(
    step: int, max_steps: int, result: dict[str, Any], seconds: float, dtype: str = ""
) -> dict:
    """The metrics.jsonl row of one task-accuracy evaluation (`mathtutor.evaluate.score_loaded`);
    `dtype` is what the weights were evaluated in (the trained model's own: fp32 master weights
    under bf16 mixed precision), so a separate evaluation can be run in the same one.

    >>> estimate = {"value": 0.5, "stderr": 0.1, "n": 26}
    >>> row = accuracy_row(4, 8, {key: estimate for key in ACCURACY_KEYS}, 2.0)
    >>> row["event"], row["accuracy"], row["accuracy_stderr"], row["eval_n"]
    ('accuracy', 0.5, 0.1, 26)
    """
    row: dict[str, Any] = {"event": "accuracy", "step": step, "max_steps": max_steps}
    for key in ACCURACY_KEYS:
        estimate = result.get(key) or {}
        if estimate.get("value") is not None:
            row[key] = float(estimate["value"])
            row[f"{key}_stderr"] = float(estimate.get("stderr") or 0.0)
    row["eval_n"] = int((result.get("accuracy") or {}).get("n") or 0)
    row["eval_seconds"] = round(seconds, 3)
    if dtype:
        row["dtype"] = dtype
    row["time"] = time.time()
    return row


class AccuracyCallback(TrainerCallback):
    """Task accuracy on held-out problems at step 0, every `eval_every` steps and the last step.

    The model being trained is wrapped as a `mathtutor.models.LoadedModel` (no copy of the
    base: the adapter as it is at that step) and scored by `mathtutor.evaluate.score_loaded`
    in eval mode (dropout off, inference mode inside the decoding loop), then put back in
    train mode. Strict, flexible, the format's grader and format adherence, each with n and
    standard error, go to metrics.jsonl as `"event": "accuracy"` rows; the graded answers of
    each evaluation to `accuracy/step-<N>.jsonl`.

    Cost: an evaluation that would take evaluation past `eval_max_share` of the run's time so
    far is skipped (and logged); step 0 and the last step are always measured. The share is
    logged at the end ("evaluation took 14% of this run").

    Best checkpoint (`keep_best_by: accuracy`): the adapter of the best step (first highest
    accuracy) is saved to `best/` with `best.json`; at the end its weights are loaded back into
    the model, so the run's adapter is that step. Early stopping then counts evaluations
    without a better accuracy (`early_stopping_patience`).
    """

    def __init__(self, config: Any, run_dir: Path, setup: Any, problems: list, echo: bool = True):
        self.config = config
        self.run_dir = Path(run_dir)
        self.setup = setup
        self.problems = problems
        self.echo = echo
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.started = time.time()
        self.eval_seconds = 0.0
        self.last_seconds = 0.0
        self.evaluations = 0
        self.skipped = 0
        self.best: dict[str, Any] | None = self._read_best()
        self.since_best = 0
        self.last_step: int | None = None

    # ------------------------------------------------------------ state
    @property
    def best_path(self) -> Path:
        return self.run_dir / "best"

    def _read_best(self) -> dict[str, Any] | None:
        path = self.run_dir / "best.json"
        if path.is_file() and (self.best_path / "adapter_config.json").is_file():
            try:
                return json.loads(path.read_text("utf-8"))
            except json.JSONDecodeError:
                return None
        return None

    def _say(self, message: str) -> None:
        if self.echo:
            print(message, flush=True)

    def _write(self, row: dict[str, Any]) -> None:
        with open(self.metrics_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")

    # ------------------------------------------------------------ events
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.started = time.time()
        if state.global_step == 0:
            self._evaluate(model, state, control, always=True)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        step = state.global_step
        last = step >= state.max_steps or control.should_training_stop
        if last or step % self.config.eval_every == 0:
            self._evaluate(model, state, control, always=last)
        return control

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if not state.is_world_process_zero:
            return
        total = time.time() - self.started
        share = self.eval_seconds / total if total > 0 else 0.0
        summary = {
            "event": "accuracy_summary",
            "step": state.global_step,
            "max_steps": state.max_steps,
            "evaluations": self.evaluations,
            "skipped": self.skipped,
            "eval_seconds": round(self.eval_seconds, 3),
            "eval_share": round(share, 4),
            "time": time.time(),
        }
        if self.best:
            summary |= {"best_step": self.best["step"], "best_accuracy": self.best["accuracy"]}
        self._write(summary)
        self._say(
            f"evaluation took {100 * share:.0f}% of this run ({self.evaluations} evaluations of "
            f"{len(self.problems)} problems, {self.eval_seconds:.0f} s"
            + (
                f"; {self.skipped} skipped to stay under {self.config.eval_max_share:.0%})"
                if self.skipped
                else ")"
            )
        )
        keep = self.config.keep_best_by == "accuracy" and self.best and model is not None
        if keep and self.best["step"] != state.global_step:
            self._load_best(model)
            self._say(
                f"adapter: best step {self.best['step']} (accuracy {self.best['accuracy']:.3f}), "
                f"not the last step {state.global_step}"
            )

    # ------------------------------------------------------------ work
    def _evaluate(self, model: Any, state: Any, control: Any, always: bool) -> None:
        if model is None or state.global_step == self.last_step:
            return
        if not always and self.evaluations:
            elapsed = time.time() - self.started
            projected = (self.eval_seconds + self.last_seconds) / max(
                elapsed + self.last_seconds, 1e-9
            )
            if projected > self.config.eval_max_share:
                self.skipped += 1
                self._say(
                    f"accuracy at step {state.global_step} skipped: evaluation would take "
                    f"{projected:.0%} of the run (eval_max_share {self.config.eval_max_share:.0%})"
                )
                return
        self.last_step = state.global_step
        begun = time.time()
        result = score_model(model, self.setup, self.config, self.problems)
        seconds = time.time() - begun
        self.eval_seconds += seconds
        self.last_seconds = seconds
        self.evaluations += 1
        if not state.is_world_process_zero:
            return
        dtype = torch_dtype_name(next(model.parameters()).dtype)
        row = accuracy_row(state.global_step, state.max_steps, result, seconds, dtype)
        self._write(row)
        self._save_records(state.global_step, result.get("records") or [])
        self._say(accuracy_line(row))
        if self.config.keep_best_by == "accuracy":
            self._track_best(model, row, control)

    def _save_records(self, step: int, records: list[dict[str, Any]]) -> None:
        """What the model answered at this step: `accuracy/step-<N>.jsonl` (graded records)."""
        folder = self.run_dir / "accuracy"
        folder.mkdir(exist_ok=True)
        keys = ("problem_id", "question", "answer", "completion", "extracted", "is_correct",
                "strict_correct", "flexible_correct", "follows_format", "finish_reason",
                "num_tokens")  # fmt: skip
        with open(folder / f"step-{step:06d}.jsonl", "w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps({key: record.get(key) for key in keys}) + "\n")

    def _track_best(self, model: Any, row: dict[str, Any], control: Any) -> None:
        if self.best is None or row["accuracy"] > self.best["accuracy"]:
            self.best = {key: row[key] for key in ("step", "accuracy", "accuracy_stderr", "eval_n")}
            self.since_best = 0
            temp = self.run_dir / f"best.tmp-{os.getpid()}"
            shutil.rmtree(temp, ignore_errors=True)
            model.save_pretrained(temp)
            shutil.rmtree(self.best_path, ignore_errors=True)
            os.replace(temp, self.best_path)
            (self.run_dir / "best.json").write_text(json.dumps(self.best) + "\n", encoding="utf-8")
            return
        self.since_best += 1
        patience = self.config.early_stopping_patience
        if patience and self.since_best >= patience:
            control.should_training_stop = True
            self._say(
                f"early stopping: {self.since_best} evaluations without a better accuracy than "
                f"{self.best['accuracy']:.3f} (step {self.best['step']})"
            )

    def _load_best(self, model: Any) -> None:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        weights = load_file(str(self.best_path / "adapter_model.safetensors"))
        set_peft_model_state_dict(model, weights)


def score_model(model: Any, setup: Any, config: Any, problems: list) -> dict[str, Any]:
    """Score the model being trained, in place, with the evaluation engine; train mode restored."""
    from mathtutor.evaluate import BASE, score_loaded
    from mathtutor.models import LoadedModel

    # No adapter names: the peft model runs with its active (trained) adapter applied to every
    # row, which is what is measured; peft's per-row adapter path is ~1.5x slower here.
    device = str(next(model.parameters()).device.type)
    loaded = LoadedModel(
        spec=config.model, base_model=setup.base_model, model=model, tokenizer=setup.tokenizer,
        device=device, dtype=next(model.parameters()).dtype,
    )  # fmt: skip
    padding_side = setup.tokenizer.padding_side
    setup.tokenizer.padding_side = "left"  # decoding pads on the left (SFT trains right-padded)
    was_training = model.training
    model.eval()
    # Under mixed precision accelerate wraps the model's forward in autocast (keeping the
    # plain one as `_original_forward`); evaluate the weights themselves, so the curve equals
    # a separate evaluation of the checkpoint in its dtype (under bf16 autocast only 15 of 48
    # base completions were identical).
    autocast_forward = model.__dict__.get("forward")
    if autocast_forward is not None and "_original_forward" in model.__dict__:
        model.forward = model.__dict__["_original_forward"]
    try:
        return score_loaded(
            loaded, BASE, problems, config.prompt_format, config.eval_max_new_tokens
        )
    finally:
        if autocast_forward is not None:
            model.forward = autocast_forward
        setup.tokenizer.padding_side = padding_side
        if was_training:
            model.train()


def accuracy_line(row: dict[str, Any]) -> str:
    """One log line for an accuracy row.

    >>> accuracy_line({"step": 0, "max_steps": 8, "accuracy": 0.25, "accuracy_stderr": 0.05,
    ...                "strict": 0.2, "flexible": 0.3, "format": 0.5, "eval_n": 48, "eval_seconds": 3.0})
    'step 0/8 | accuracy 25.0% ± 5.0 (n 48) | strict 20.0% | flexible 30.0% | format 50.0% | 3 s'
    """
    parts = [
        f"step {row['step']}/{row['max_steps']}",
        f"accuracy {100 * row.get('accuracy', 0):.1f}% ± {100 * row.get('accuracy_stderr', 0):.1f} "
        f"(n {row.get('eval_n', 0)})",
    ]
    for key in ("strict", "flexible", "format"):
        if key in row:
            parts.append(f"{key} {100 * row[key]:.1f}%")
    parts.append(f"{row.get('eval_seconds', 0):.0f} s")
    return " | ".join(parts)
