"""TrainConfig: recipes, YAML round trips, the CLI giving the same config as the function,
and bad hyperparameters refused before launch with the field named."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from training.config import TrainConfig, check_model, fields_by_section, parse_cli

REPO = Path(__file__).resolve().parent.parent
RECIPES = sorted((REPO / "training" / "recipes").glob("*.yaml"))
SEED_REPORT_RECIPES = {
    "phi2-gsm8k-lora",
    "gemma2b-it-gsm8k-lora",
    "gemma2b-it-gsm8k-full",
    "qwen2-0.5b-gsm8k-lora",
    "qwen2.5-math-1.5b-inequalities-qlora",
    "llama-qlora-grpo",
    "gsm8k-grpo-qwen05b",
    "bundled-quick",
}


def test_every_recipe_parses_and_round_trips(tmp_path):
    assert {path.stem for path in RECIPES} == SEED_REPORT_RECIPES
    for path in RECIPES:
        config = TrainConfig.from_yaml(path)
        assert config.recipe == path.stem, path
        assert path.read_text().startswith("#"), f"{path.name} needs a header citing its report"
        copy = tmp_path / path.name
        config.to_yaml(copy)
        assert TrainConfig.from_yaml(copy) == config


def test_recipes_carry_the_seed_reports_hyperparameters():
    recipe = {path.stem: TrainConfig.from_yaml(path) for path in RECIPES}
    phi = recipe["phi2-gsm8k-lora"]
    assert (phi.model, phi.lora_rank, phi.lora_alpha, phi.lora_dropout, phi.epochs) == (
        "microsoft/phi-2",
        8,
        16,
        0.1,
        1.0,
    )
    assert (phi.batch_size, phi.precision, phi.prompt_format) == (
        4,
        "float16",
        "qa",
    )  # fp16 in the YAML: one dtype vocabulary
    gemma = recipe["gemma2b-it-gsm8k-lora"]
    assert (gemma.lora_rank, gemma.lora_alpha, gemma.target_modules) == (16, 32, "all-linear")
    assert (gemma.learning_rate, gemma.lr_scheduler, gemma.min_lr) == (
        1e-5,
        "cosine_with_min_lr",
        1e-6,
    )
    assert (gemma.batch_size, gemma.gradient_accumulation_steps, gemma.optimizer) == (
        8,
        2,
        "adamw_8bit",
    )
    assert recipe["gemma2b-it-gsm8k-full"].finetune == "full"
    qwen = recipe["qwen2-0.5b-gsm8k-lora"]
    assert (qwen.learning_rate, qwen.epochs, qwen.val_fraction, qwen.early_stopping_patience) == (
        2e-4,
        3.0,
        0.1,
        5,
    )
    math = recipe["qwen2.5-math-1.5b-inequalities-qlora"]
    assert (math.finetune, math.lora_rank, math.lora_alpha, math.dataset) == (
        "qlora",
        32,
        64,
        "inequalities",
    )
    assert (math.batch_size, math.gradient_accumulation_steps, math.epochs, math.prompt_format) == (
        2,
        4,
        2.0,
        "qwen-boxed",
    )
    llama = recipe["llama-qlora-grpo"]
    assert (llama.method, llama.finetune, llama.lora_rank, llama.lora_alpha) == (
        "grpo",
        "qlora",
        4,
        32,
    )
    assert (llama.target_modules, llama.num_generations, llama.temperature, llama.beta) == (
        ["q_proj", "v_proj"],
        2,
        0.7,
        0.1,
    )
    assert llama.model.startswith("meta-llama/")


def test_every_field_has_help_and_a_section():
    sections = fields_by_section()
    names = [item.name for items in sections.values() for item in items]
    assert sorted(names) == sorted(item.name for item in dataclasses.fields(TrainConfig))
    for items in sections.values():
        for item in items:
            assert len(item.metadata["help"]) > 10, item.name


def test_cli_and_function_give_identical_configs():
    recipe = REPO / "training" / "recipes" / "bundled-quick.yaml"
    flags = ["--max_steps", "2", "--lora_rank", "8", "--target_modules", "q_proj,v_proj",
             "--learning_rate", "3e-4", "--gradient_checkpointing", "true", "--seed", "7"]  # fmt: skip
    expected = TrainConfig.from_yaml(
        recipe, max_steps=2, lora_rank=8, target_modules=["q_proj", "v_proj"],
        learning_rate=3e-4, gradient_checkpointing=True, seed=7,
    )  # fmt: skip
    assert parse_cli(["--config", str(recipe), *flags], method="sft").config == expected
    # ...and the real command line, as a user runs it
    env = dict(os.environ, PYTHONPATH=str(REPO))
    printed = subprocess.run(
        [sys.executable, "-m", "training.sft", "--config", str(recipe), *flags, "--print_config"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert TrainConfig.from_dict(yaml.safe_load(printed)) == expected


def test_flags_without_a_config_file_use_the_defaults():
    config = parse_cli(["--dataset", "arithmetic", "--epochs", "2"], method="sft").config
    assert config == TrainConfig(dataset="arithmetic", epochs=2)


@pytest.mark.parametrize(
    ("changes", "field_name"),
    [
        ({"lora_rank": 0}, "lora_rank"),
        ({"learning_rate": -1e-4}, "learning_rate"),
        ({"learning_rate": "fast"}, "learning_rate"),
        ({"dataset": "mnist"}, "dataset"),
        ({"dataset": "upload"}, "dataset_path"),
        ({"lora_dropout": 1.5}, "lora_dropout"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"finetune": "adapter"}, "finetune"),
        ({"prompt_format": "haiku"}, "prompt_format"),
        ({"difficulty": "easy,extreme"}, "difficulty"),
        ({"min_lr": 1.0, "lr_scheduler": "cosine_with_min_lr"}, "min_lr"),
        ({"method": "grpo", "batch_size": 3, "num_generations": 2}, "num_generations"),
        ({"early_stopping_patience": 3, "val_fraction": 0}, "early_stopping_patience"),
        ({"gradient_checkpointing": "maybe"}, "gradient_checkpointing"),
    ],
)
def test_invalid_hyperparameters_name_the_field(changes, field_name):
    with pytest.raises(ValueError, match=rf"^{field_name}:"):
        TrainConfig(**changes)


def test_the_cli_refuses_bad_flags_naming_them():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run(
        [sys.executable, "-m", "training.sft", "--lora_rank", "0", "--print_config"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "lora_rank: must be at least 1" in result.stderr


def test_yaml_errors_name_the_file_and_key(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("lora_rank: 8\nlearnig_rate: 1e-4\n")
    with pytest.raises(ValueError, match=r"recipe.yaml: unknown field\(s\) learnig_rate"):
        TrainConfig.from_yaml(path)
    path.write_text("lora_rank: [8\n")
    with pytest.raises(ValueError, match="recipe.yaml: not valid YAML"):
        TrainConfig.from_yaml(path)


def test_a_grpo_recipe_is_refused_by_the_sft_entry_point():
    recipe = REPO / "training" / "recipes" / "llama-qlora-grpo.yaml"
    with pytest.raises(SystemExit):
        parse_cli(["--config", str(recipe)], method="sft")
    assert parse_cli(["--config", str(recipe)], method="grpo").config.method == "grpo"


def test_target_modules_absent_from_the_model_are_refused(tiny_model_dir):
    check_model(TrainConfig(model=str(tiny_model_dir), target_modules=["q_proj", "v_proj"]))
    with pytest.raises(ValueError, match=r"^target_modules: query_key_value not found") as error:
        check_model(TrainConfig(model=str(tiny_model_dir), target_modules="q_proj,query_key_value"))
    assert "o_proj" in str(error.value)  # lists what the model has


def test_docstring_examples_hold():
    import doctest

    from training import config

    assert doctest.testmod(config).failed == 0
