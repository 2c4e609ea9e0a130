"""Training for mathtutor: SFT and GRPO runs from one typed config, as a library, CLI or subprocess.

    python -m training.sft --config training/recipes/bundled-quick.yaml
    python -m training.grpo --config training/recipes/llama-qlora-grpo.yaml

`train(config)` runs in this process; `training.runs.launch(config)` starts the CLI as a
subprocess (the app does that) and queues it behind any run already using the device.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from training.config import TrainConfig
    from training.lifecycle import RunResult


def train(config: TrainConfig, run_dir: Path | None = None, resume: bool = False) -> RunResult:
    """Run `config` here with SFT or GRPO (by `config.method`); see `training.lifecycle`."""
    if config.method == "grpo":
        from training.grpo import train as train_grpo

        return train_grpo(config, run_dir, resume)
    from training.sft import train as train_sft

    return train_sft(config, run_dir, resume)
