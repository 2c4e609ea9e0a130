"""GRPO with a verifiable reward, on trl's `GRPOTrainer` (LoRA, QLoRA or full).

Each prompt gets `num_generations` sampled completions; rewards are exact-match correctness
from `mathtutor.answers.grade` in the prompt format's own grader mode (the one Evaluate uses,
`PromptFormat.grader_for`) and the answer format (`training/rewards.py`), weighted by
`correctness_weight` / `format_weight`; `beta` is the KL penalty towards the base model.
trl's current options are exposed: `loss_type` (dapo, grpo, dr_grpo, bnpo), `scale_rewards`
(group, batch, none), `mask_truncated_completions`, and on CUDA `use_vllm` (colocate mode,
only when vLLM is installed; never required). The
seed reports' RL stages: LLaMA QLoRA + GRPO (seed 004), Gemma's exact-match reward (seed 001).

    python -m training.grpo --config training/recipes/llama-qlora-grpo.yaml
    python -m training.grpo --config training/recipes/bundled-quick.yaml --method grpo --max_steps 2
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from mathtutor import cli
from training.config import TrainConfig, parse_cli
from training.data import grpo_rows, load_training_problems, to_dataset
from training.lifecycle import RunResult, Setup, log, run_training, trainer_arguments
from training.rewards import correctness_reward, format_reward


def build_trainer(config: TrainConfig, setup: Setup, run_dir: Path) -> Any:
    """A `GRPOTrainer` for the config on the loaded model (no evaluation: rewards are the signal)."""
    from trl import GRPOConfig, GRPOTrainer

    train_problems, _ = load_training_problems(config)
    log(run_dir, f"data: {len(train_problems)} prompts from {config.dataset}, "
                 f"{config.num_generations} completions each")  # fmt: skip
    args = GRPOConfig(
        **trainer_arguments(config, run_dir, setup, has_eval=False),
        num_generations=config.num_generations,
        beta=config.beta,
        temperature=config.temperature,
        max_completion_length=config.max_completion_length,
        reward_weights=[config.correctness_weight, config.format_weight],
        loss_type=config.loss_type,
        scale_rewards=config.scale_rewards,
        mask_truncated_completions=config.mask_truncated_completions,
        log_completions=False,
        **vllm_arguments(config, setup),
    )
    return GRPOTrainer(
        model=setup.model,
        reward_funcs=[correctness_reward, format_reward],
        args=args,
        train_dataset=to_dataset(grpo_rows(train_problems, config, setup.tokenizer)),
        processing_class=setup.tokenizer,
        peft_config=setup.peft_config,
    )


def vllm_arguments(config: TrainConfig, setup: Setup) -> dict[str, Any]:
    """GRPOConfig's vLLM settings: colocated on the training GPU, only when asked for and
    available (`training.config.check_vllm` refuses otherwise, naming what is missing)."""
    if not config.use_vllm:
        return {}
    from training.config import check_vllm

    check_vllm(config)
    if setup.device != "cuda":
        raise ValueError("use_vllm: vLLM needs a CUDA GPU; turn use_vllm off")
    setup.notes.append("GRPO completions: vLLM, colocated on the training GPU")
    return {"use_vllm": True, "vllm_mode": "colocate", "vllm_gpu_memory_utilization": 0.3}


def train(
    config: TrainConfig,
    run_dir: Path | None = None,
    resume: bool = False,
    callbacks: list | None = None,
) -> RunResult:
    """Run GRPO; `run_dir` None makes a new run under home/runs. Raises on failure (run marked failed)."""
    if config.method != "grpo":
        raise ValueError(
            f"method: {config.method!r} runs with training.{config.method}, not training.grpo"
        )
    return run_training(config, run_dir, resume, build_trainer, callbacks, padding_side="left")


def main(argv: list[str] | None = None) -> int:
    args = parse_cli(argv, method="grpo")
    result = train(args.config, args.run_dir, args.resume)
    print(f"{result.status}: {result.run_id} step {result.global_step} -> {result.adapter_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
