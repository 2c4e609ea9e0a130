"""Trainer callbacks: metrics as JSON lines, a stop file honoured at step boundaries.

`MetricsCallback` appends one JSON object per log event to `metrics.jsonl` (flushed at once, so
the app can follow it while the run goes on): `step`, `max_steps`, `epoch`, `loss`,
`eval_loss`, `lr`, `grad_norm`, `tokens_per_second`, `reward` (GRPO), `elapsed`. The first line
(`"event": "begin"`) and the last (`"event": "end"`) frame the run. It also prints a short line
per log event, which lands in the run's `log.txt`.

`StopCallback` looks for the file `runs/<id>/STOP` after every optimizer step; when it is there
it asks the trainer to save a checkpoint and stop, so the adapter written next is usable and
`resume` can continue from that step.

`training.runs.read_metrics(run_id)` parses the file back.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

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
