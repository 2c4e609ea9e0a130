"""Supervised fine-tuning (LoRA, QLoRA or full) with trl's `SFTTrainer`.

The dataset is prompt-completion (see `training/data.py`), so the loss covers the completion
only, as in the Gemma report. Validation loss every `eval_steps`, early stopping with
`early_stopping_patience`, packing or padding-free batches on request.

    python -m training.sft --config training/recipes/bundled-quick.yaml
    python -m training.sft --config training/recipes/bundled-quick.yaml --max_steps 2 --seed 1
    accelerate launch --num_processes 1 --cpu -m training.sft --config <recipe> --max_steps 2
    accelerate launch --num_processes 4 -m training.sft --config <recipe> --run_dir <dir>
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from mathtutor import cli
from training.config import TrainConfig, parse_cli
from training.data import load_training_problems, sft_rows, to_dataset
from training.lifecycle import RunResult, Setup, log, run_training, trainer_arguments


def build_trainer(config: TrainConfig, setup: Setup, run_dir: Path) -> Any:
    """An `SFTTrainer` for the config on the loaded model."""
    from transformers import EarlyStoppingCallback
    from trl import SFTConfig, SFTTrainer

    train_problems, val_problems = load_training_problems(config)
    train_dataset = to_dataset(sft_rows(train_problems, config, setup.tokenizer))
    eval_dataset = (
        to_dataset(sft_rows(val_problems, config, setup.tokenizer)) if val_problems else None
    )
    log(run_dir, f"data: {len(train_problems)} train / {len(val_problems)} validation problems "
                 f"from {config.dataset}, prompt format {config.prompt_format}")  # fmt: skip
    if config.padding_free:
        setup.notes.append(
            "padding-free batches: examples are not truncated (max_seq_length unused)"
        )
    args = SFTConfig(
        **trainer_arguments(config, run_dir, setup, has_eval=eval_dataset is not None),
        max_length=None if config.padding_free else config.max_seq_length,
        packing=config.packing,
        padding_free=config.padding_free,
        completion_only_loss=True,
    )
    callbacks = []
    if (
        config.early_stopping_patience
        and eval_dataset is not None
        and config.keep_best_by != "accuracy"
    ):
        callbacks.append(
            EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience)
        )
    trainer = SFTTrainer(
        model=setup.model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=setup.tokenizer,
        peft_config=setup.peft_config,
        callbacks=callbacks,
    )
    _check_truncation(config, len(train_dataset), len(trainer.train_dataset), setup)
    return trainer


def _check_truncation(config: TrainConfig, before: int, after: int, setup: Setup) -> None:
    """trl drops examples whose completion is cut off entirely by max_seq_length: say so."""
    if config.packing or after >= before:
        return
    if after == 0:
        raise ValueError(
            f"max_seq_length: {config.max_seq_length} tokens leave no completion tokens in any of "
            f"the {before} examples (the prompts alone are longer); raise max_seq_length"
        )
    setup.notes.append(
        f"max_seq_length {config.max_seq_length}: {before - after} of {before} examples dropped "
        "(prompt fills the whole sequence)"
    )


def train(
    config: TrainConfig,
    run_dir: Path | None = None,
    resume: bool = False,
    callbacks: list | None = None,
) -> RunResult:
    """Run SFT; `run_dir` None makes a new run under home/runs. Raises on failure (run marked failed)."""
    if config.method != "sft":
        raise ValueError(
            f"method: {config.method!r} runs with training.{config.method}, not training.sft"
        )
    return run_training(config, run_dir, resume, build_trainer, callbacks)


def main(argv: list[str] | None = None) -> int:
    args = parse_cli(argv, method="sft")
    result = train(args.config, args.run_dir, args.resume)
    print(f"{result.status}: {result.run_id} step {result.global_step} -> {result.adapter_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
