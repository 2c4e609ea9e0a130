"""What SFT and GRPO share: the model to train, trainer arguments, and the run around a trainer.

`run_training(config, run_dir, resume, build_trainer)` is the one path of every run:

1. open the run directory (config.yaml, metrics.jsonl, a `train_runs` row) and wait for the
   device (`training.runs.device_lock`; status "queued" meanwhile);
2. load the model (`training/model.py`: plain, QLoRA, or unsloth's fast path when CUDA and
   unsloth are both present); what was used or skipped is written to the log;
3. `build_trainer` (sft.py / grpo.py) makes the trl trainer; metrics and stop callbacks are added;
4. train (from the last checkpoint when resuming), then save the adapter atomically: it is
   written to `adapter.tmp-<pid>` and renamed to `adapter` only when complete, with a model card
   draft, and registered in `mathtutor.store` so Compare/Evaluate list it without a restart;
5. status "finished", or "stopped" (stop file), or "failed" with the error (the exception is
   re-raised: the CLI exits non-zero).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mathtutor import store
from mathtutor.model_card import card_for_adapter
from training import runs
from training.config import TrainConfig
from training.model import Setup, load_for_training


@dataclass
class RunResult:
    """The outcome of one training run."""

    run_id: str
    run_dir: Path
    status: str  # finished | stopped
    adapter_dir: Path | None  # LoRA adapter, or the full model for finetune=full
    global_step: int
    train_loss: float | None
    eval_loss: float | None
    seconds: float
    notes: list[str] = field(default_factory=list)  # accelerators used or skipped


def log(run_dir: Path, message: str) -> None:
    """A line for the run's log: stdout (the launcher sends it to log.txt) or log.txt itself."""
    print(message, flush=True)
    if os.environ.get("MATHTUTOR_RUN_LOG") != "stdout":
        with open(run_dir / "log.txt", "a", encoding="utf-8") as handle:
            handle.write(message + "\n")


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


# ---------------------------------------------------------------- trl's LM head
def score_labelled_positions_only() -> bool:
    """Make trl's fused LM head score only the positions that have a label, on every device.

    trl 1.16's `add_fused_lm_head` projects through the LM head only where the next-token label
    is not -100 when `_use_triton(device)` holds (CUDA/XPU with Triton), and every position
    elsewhere, to keep tile shapes fixed for compilers such as Neuron's. On a CPU that means the
    prompt and the padding too, forward and again in its recomputing backward: with the bundled
    model's 49k vocabulary that was 40% of a `bundled-quick` step (torch profiler); GRPO
    scores its completions through the same head. Both paths compute the same loss (they
    differ in which rows are projected; tested). `run_training` calls this; it swaps the
    predicate trl's `utils` module uses for that choice, and only it (the kernel module keeps
    its own). Returns False, changing nothing, when trl has no such predicate.
    """
    import trl.trainer.utils as trl_utils

    triton = getattr(trl_utils, "_use_triton", None)
    if triton is None:
        return False
    if getattr(triton, "labelled_only", False):
        return True

    def labelled_only(device: Any) -> bool:  # XLA-style compilers keep the fixed shapes
        return device.type in ("cpu", "cuda", "xpu", "mps") or triton(device)

    labelled_only.labelled_only = True  # type: ignore[attr-defined]
    trl_utils._use_triton = labelled_only
    return True


# ---------------------------------------------------------------- trainer arguments
def train_dtype(config: TrainConfig, device: str) -> str:
    """The run's compute dtype (`models.resolve_dtype` of `config.precision`): bf16 or fp16 is
    mixed precision on top of the weights `training.model` loads; recorded in config.yaml,
    the metrics and the model card. fp16 on a CPU is refused there, naming `precision`."""
    from mathtutor.models import resolve_dtype

    try:
        return resolve_dtype(config.precision, device)
    except ValueError as error:
        raise ValueError(f"precision: {error}") from error


def trainer_arguments(config: TrainConfig, run_dir: Path, setup: Setup, has_eval: bool) -> dict:
    """Keyword arguments shared by SFTConfig and GRPOConfig."""
    import importlib.util

    cuda = setup.device == "cuda"
    optimizer = config.optimizer
    if optimizer == "auto":
        if cuda and importlib.util.find_spec("bitsandbytes"):
            optimizer = "adamw_8bit"
            setup.notes.append("optimizer: 8-bit AdamW (bitsandbytes)")
        else:
            optimizer = "adamw_torch"
            setup.notes.append(
                "8-bit AdamW not used: " + ("no CUDA" if not cuda else "no bitsandbytes")
            )
    half = {"bfloat16": "bf16", "float16": "fp16"}.get(train_dtype(config, setup.device))
    save_steps = config.save_steps
    # best-by-loss: transformers tracks eval_loss and loads the best checkpoint at the end
    by_loss = config.keep_best_by == "loss" or (
        config.early_stopping_patience and config.keep_best_by != "accuracy"
    )
    early = bool(by_loss and has_eval)
    if early:  # load_best_model_at_end needs checkpoints on evaluation steps
        save_steps = config.eval_steps * max(1, round(save_steps / config.eval_steps))
    kwargs: dict[str, Any] = {
        "output_dir": str(run_dir / "checkpoints"),
        "per_device_train_batch_size": config.batch_size,
        "per_device_eval_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
        "num_train_epochs": config.epochs,
        "max_steps": config.max_steps or -1,
        "learning_rate": config.learning_rate,
        "lr_scheduler_type": config.lr_scheduler,
        "warmup_steps": config.warmup_steps,
        "weight_decay": config.weight_decay,
        "max_grad_norm": config.max_grad_norm,
        "optim": optimizer,
        "bf16": half == "bf16",
        "fp16": half == "fp16",
        "use_cpu": setup.device == "cpu",
        "logging_steps": config.logging_steps,
        "logging_first_step": True,
        "save_strategy": "steps",
        "save_steps": save_steps,
        "save_total_limit": max(1, config.keep_checkpoints),  # the rest pruned at the end
        "eval_strategy": "steps" if has_eval else "no",
        "eval_steps": config.eval_steps,
        "seed": config.seed,
        "data_seed": config.seed,
        "report_to": "none",
        "disable_tqdm": os.environ.get("MATHTUTOR_RUN_LOG") == "stdout",
        "dataloader_num_workers": 0,
        "run_name": run_dir.name,
    }
    # transformers 5.2x renamed gradient_checkpointing to activation_checkpointing
    from transformers import TrainingArguments

    names = {item.name for item in dataclasses.fields(TrainingArguments)}
    checkpointing = "activation_checkpointing" if "activation_checkpointing" in names else None
    kwargs[checkpointing or "gradient_checkpointing"] = config.gradient_checkpointing
    if config.lr_scheduler == "cosine_with_min_lr":
        kwargs["lr_scheduler_kwargs"] = {"min_lr": config.min_lr}
    if early:
        kwargs.update(
            load_best_model_at_end=True, metric_for_best_model="eval_loss", greater_is_better=False
        )
    return kwargs


# ---------------------------------------------------------------- the run
def open_run(config: TrainConfig, run_dir: Path | None, resume: bool = False) -> Path:
    """The run directory (created with config.yaml and a store row when new).

    An existing run's directory is used only to resume it, or when `launch` has just prepared
    it (`training.runs.check_reusable`); anything else is refused before a file changes.
    Under `accelerate launch` with several processes every process must write to the same
    directory, so `--run_dir` is required there, and only the first process touches the store.
    """
    if run_dir is None:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ValueError(
                "--run_dir is required with several processes (accelerate launch "
                "--num_processes N): every process must write to the same run directory"
            )
        runs.check_launchable(config)
        return runs.create_run(config)
    run_dir = Path(run_dir)
    if not _is_main_process():
        run_dir.mkdir(parents=True, exist_ok=True)
        return run_dir
    runs.check_reusable(run_dir.name, resume)
    if store.get_train_run(run_dir.name) is None:
        if run_dir.parent.resolve() != runs.runs_root().resolve():
            raise ValueError(f"--run_dir {run_dir}: new runs live under {runs.runs_root()}")
        runs.check_launchable(config)
        return runs.create_run(config, run_dir.name)
    return run_dir


def run_training(
    config: TrainConfig,
    run_dir: Path | None,
    resume: bool,
    build_trainer: Callable[[TrainConfig, Setup, Path], Any],
    callbacks: list | None = None,
    padding_side: str = "right",
) -> RunResult:
    """Run one training job end to end (see the module docstring)."""
    from training.callbacks import MetricsCallback, StopCallback

    run_dir = open_run(config, run_dir, resume)
    run_id = run_dir.name
    main = _is_main_process()
    # refused before any status changes: a finished run stays finished
    checkpoint = runs.check_resumable(run_dir, config.max_steps) if resume else None
    if os.environ.get("MATHTUTOR_RUN_LOG") == "stdout":  # log.txt: no progress-bar redraws
        import datasets
        import transformers

        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()
    started = time.time()
    if main:  # recorded before waiting, so the queue and the app see this process
        store.upsert_train_run(run_id, status="queued", run_dir=run_dir, pid=os.getpid())
    try:
        with runs.device_lock(run_id) as may_run:
            if not may_run:
                return _stopped_while_queued(config, run_dir)
            if main:
                store.upsert_train_run(run_id, status="running", run_dir=run_dir, pid=os.getpid())
            log(run_dir, f"run {run_id}: {config.method} {config.finetune} on {config.model}")
            setup = load_for_training(config, padding_side=padding_side)
            config = _resolved_precision(config, run_dir, setup.device, main)
            if not score_labelled_positions_only():
                setup.notes.append("trl's LM head scores every position (no switch found)")
            trainer = build_trainer(config, setup, run_dir)
            for note in setup.notes:
                log(run_dir, note)
            stop_callback = StopCallback(run_dir / "STOP")
            trainer.add_callback(MetricsCallback(run_dir / "metrics.jsonl", echo=main))
            trainer.add_callback(stop_callback)
            if config.eval_every:  # after Stop: a stopped run's last step is measured too
                from training.callbacks import AccuracyCallback
                from training.data import load_eval_problems

                problems = load_eval_problems(config)
                log(run_dir, f"task accuracy: {len(problems)} held-out problems "
                             f"({config.eval_problems}) at step 0 and every {config.eval_every} steps")  # fmt: skip
                trainer.add_callback(AccuracyCallback(config, run_dir, setup, problems, echo=main))
            for callback in callbacks or []:
                trainer.add_callback(callback)
            if resume:
                log(run_dir, f"resuming from {checkpoint or 'the start (no checkpoint)'}")
                if main:  # the steps past the checkpoint are trained again: log them once
                    runs.truncate_metrics(run_id, runs.checkpoint_step(checkpoint))
            trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
            state = trainer.state
            stopped = stop_callback.stopped and state.global_step < state.max_steps
            if not stopped:
                (run_dir / "STOP").unlink(missing_ok=True)  # a Stop after the last step is moot
            result = _finish(config, run_dir, trainer, setup, stopped, time.time() - started)
    except BaseException as error:
        if main:
            message = _failure_message(error, run_dir)
            log(run_dir, f"FAILED: {message}")
            store.upsert_train_run(run_id, status="failed", run_dir=run_dir, error=message)
        raise
    return result


def _resolved_precision(config: TrainConfig, run_dir: Path, device: str, main: bool) -> TrainConfig:
    """`precision: auto` replaced by the dtype it chose here, in config.yaml too (so the run
    and its model card record what was computed in)."""
    dtype = train_dtype(config, device)
    log(
        run_dir,
        f"precision: {dtype} on {device}" + (" (auto)" if config.precision == "auto" else ""),
    )
    if config.precision == dtype:
        return config
    config = dataclasses.replace(config, precision=dtype)
    if main:
        config.to_yaml(run_dir / "config.yaml")
    return config


def _stopped_while_queued(config: TrainConfig, run_dir: Path) -> RunResult:
    log(run_dir, "stopped while queued: nothing was trained")
    store.upsert_train_run(
        run_dir.name, status="stopped", run_dir=run_dir, error="stopped while queued"
    )
    return RunResult(run_dir.name, run_dir, "stopped", None, 0, None, None, 0.0)


# errno values that mean a write could not be done (full disk, quota, file size limit, a
# read-only or failing disk); any other OSError (a model not found, say) is reported as it is.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO}
_WRITE_FAILURES = ("No space left", "I/O error", "File too large", "Disk quota exceeded")


def _failure_message(error: BaseException, run_dir: Path) -> str:
    """What the UI shows for a failed run: the exception, with a hint when a write failed."""
    if isinstance(error, KeyboardInterrupt):
        return "interrupted (Ctrl-C / SIGINT)"
    text = "".join(traceback.format_exception_only(type(error), error)).strip()[-2000:]
    write_failed = isinstance(error, OSError) and (
        error.errno in _WRITE_ERRNOS
        or (isinstance(error, PermissionError) and str(run_dir) in str(error.filename or ""))
    )
    if write_failed or any(failure in text for failure in _WRITE_FAILURES):
        text += f"\nA write failed: check the free disk space and permissions of {run_dir}."
    return text


def _finish(
    config: TrainConfig, run_dir: Path, trainer: Any, setup: Setup, stopped: bool, seconds: float
) -> RunResult:
    history = trainer.state.log_history
    train_loss = next((row["loss"] for row in reversed(history) if "loss" in row), None)
    eval_loss = next((row["eval_loss"] for row in reversed(history) if "eval_loss" in row), None)
    result = RunResult(
        run_dir.name, run_dir, "stopped" if stopped else "finished", None,
        trainer.state.global_step, train_loss, eval_loss, seconds, setup.notes,
    )  # fmt: skip
    if not trainer.is_world_process_zero():
        return result
    result.adapter_dir = save_adapter(trainer, config, run_dir, setup)
    card = result.adapter_dir / "README.md"
    if card.is_file():
        shutil.copyfile(card, run_dir / "README.md")
    if config.finetune != "full":
        store.register_adapter(
            run_dir.name, result.adapter_dir, setup.base_model, f"train:{run_dir.name}",
            info={"recipe": config.recipe, "status": result.status, "step": result.global_step,
                  "train_loss": train_loss, "eval_loss": eval_loss, "method": config.method},
        )  # fmt: skip
    if result.status == "finished":  # a stopped run keeps its checkpoint to resume from
        runs.prune_checkpoints(run_dir, config.keep_checkpoints)
        _record_step_time(config, run_dir)
    store.upsert_train_run(run_dir.name, status=result.status, run_dir=run_dir, error="")
    log(run_dir, f"{result.status} at step {result.global_step}: {result.adapter_dir}")
    return result


def _record_step_time(config: TrainConfig, run_dir: Path) -> None:
    """Calibrate later estimates with this run's measured step time (never fails the run)."""
    from training.estimate import measured_seconds_per_step, record_step_time

    try:
        seconds = measured_seconds_per_step(runs.read_metrics(run_dir.name))
        if seconds and record_step_time(config, seconds):
            log(run_dir, f"measured {seconds:.2f} s/step: recorded for later estimates")
    except (OSError, ValueError) as error:
        log(run_dir, f"step time not recorded: {error}")


def save_adapter(trainer: Any, config: TrainConfig, run_dir: Path, setup: Setup) -> Path:
    """Write the adapter (or full model) to a temp dir, then rename it into place.

    A failure (disk full, permissions) removes the temp dir and raises OSError naming the
    target, so no half-written adapter ever sits where a finished one would.
    """
    target = run_dir / ("model" if config.finetune == "full" else "adapter")
    temp = run_dir / f"{target.name}.tmp-{os.getpid()}"
    old = run_dir / f"{target.name}.old-{os.getpid()}"
    shutil.rmtree(temp, ignore_errors=True)
    try:
        trainer.model.save_pretrained(temp)
        if config.finetune == "full":
            setup.tokenizer.save_pretrained(temp)
        else:
            _record_base_model(temp, setup.base_model)
        card = card_for_adapter(temp, repo_id=run_dir.name, run_dir=run_dir)
        (temp / "README.md").write_text(card, encoding="utf-8")
        if target.exists():
            os.replace(target, old)
        os.replace(temp, target)
    except Exception as error:  # OSError, or safetensors' own I/O error (disk full, ...)
        shutil.rmtree(temp, ignore_errors=True)
        if old.exists() and not target.exists():
            os.replace(old, target)
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise OSError(f"could not save the adapter to {target}: {reason}") from error
    shutil.rmtree(old, ignore_errors=True)
    return target


def _record_base_model(adapter_dir: Path, base_model: str) -> None:
    """Point adapter_config.json at the base's Hub id (not a cache path on this machine)."""
    path = adapter_dir / "adapter_config.json"
    if path.is_file():
        data = json.loads(path.read_text())
        data["base_model_name_or_path"] = base_model
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
