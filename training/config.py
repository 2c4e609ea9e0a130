"""Training configuration: one typed dataclass shared by the CLI, the Train tab and the tests.

A run is described by a `TrainConfig`; recipes in `training/recipes/*.yaml` are the same fields
as YAML, and every field is also a command-line flag of the same name, applied on top of
`--config`:

    python -m training.sft --config training/recipes/bundled-quick.yaml --max_steps 2
    python -m training.sft --config training/recipes/bundled-quick.yaml --print_config

Fields are grouped into sections (`metadata["section"]`) so the UI can lay the form out; each
carries its help text (`metadata["help"]`), where the value comes from a fixed set its
`metadata["choices"]`, and `metadata["card"]` when a model card lists it (`card_fields`).
Validation happens in `__post_init__` and names the field. Checks that need the model (do the
target modules exist?) are in `check_model`, run before launch.

Light module: imports PyYAML and the pure `mathtutor.data`/`mathtutor.prompts` only.

>>> TrainConfig(lora_rank=0)
Traceback (most recent call last):
ValueError: lora_rank: must be at least 1, got 0
>>> TrainConfig.from_dict({"learning_rate": "1e-4", "target_modules": "q_proj,v_proj"}).target_modules
['q_proj', 'v_proj']
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mathtutor import cli
from mathtutor.data import DATASETS
from mathtutor.models import DTYPES, check_dtype
from mathtutor.paths import check_readable
from mathtutor.prompts import FORMATS
from mathtutor.tables import ColumnMapping, TableSource, mapping_help

METHODS = ("sft", "grpo")
FINETUNES = ("lora", "qlora", "full")
PRECISIONS = DTYPES  # one vocabulary with inference; bf16/fp16/fp32 are accepted aliases
OPTIMIZERS = ("auto", "adamw_torch", "adamw_8bit", "paged_adamw_8bit")
SCHEDULERS = ("linear", "cosine", "cosine_with_min_lr", "constant", "constant_with_warmup")
DIFFICULTIES = ("easy", "medium", "hard")
EVAL_PROBLEMS = ("test", "gsm8k", "upload")
KEEP_BEST = ("last", "accuracy", "loss")
LOSS_TYPES = ("dapo", "grpo", "dr_grpo", "bnpo")
SCALE_REWARDS = ("group", "batch", "none")
SECTIONS = ("model", "lora", "data", "optimization", "accuracy", "grpo", "run")
# Evaluations per run at most: beyond this the curve is no clearer, only slower.
MAX_EVALUATIONS = 101


def _field(
    default: Any, help: str, section: str, choices: tuple | None = None, card: bool = False
) -> Any:
    metadata: dict[str, Any] = {"help": help, "section": section, "card": card}
    if choices:
        metadata["choices"] = choices
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def card_fields(method: str) -> tuple[str, ...]:
    """The `TrainConfig` fields a model card lists (`metadata["card"]`); GRPO's only for grpo.

    >>> card_fields("sft")[:3], "beta" in card_fields("sft"), "beta" in card_fields("grpo")
    (('method', 'finetune', 'precision'), False, True)
    """
    return tuple(
        item.name
        for item in dataclasses.fields(TrainConfig)
        if item.metadata["card"] and (item.metadata["section"] != "grpo" or method == "grpo")
    )


@dataclass
class TrainConfig:
    """Everything one training run needs; see each field's help."""

    # ---------------------------------------------------------------- model
    method: str = _field(
        "sft",
        "sft: supervised fine-tuning; grpo: RL with a verifiable reward.",
        "model",
        METHODS,
        card=True,
    )
    model: str = _field(
        "bundled", "Base model: 'bundled' (SmolLM2-135M), a local directory or a Hub id.", "model"
    )
    finetune: str = _field(
        "lora",
        "lora: adapters on a frozen base; qlora: 4-bit NF4 base + LoRA (bitsandbytes); full: all weights.",
        "model",
        FINETUNES,
        card=True,
    )
    precision: str = _field(
        "auto",
        "Compute dtype (mixed precision): auto = bf16 where the hardware runs it natively (GPUs "
        "with compute capability 8+, CPUs with AMX/AVX512-BF16), fp16 on other GPUs, fp32 on "
        "other CPUs; bf16/fp16/fp32 also accepted.",
        "model",
        PRECISIONS,
        card=True,
    )
    use_unsloth: bool = _field(
        True,
        "Use unsloth's fast path when CUDA and unsloth are present (else skipped, and logged).",
        "model",
    )
    # ---------------------------------------------------------------- LoRA
    lora_rank: int = _field(16, "LoRA rank r (adapter width).", "lora", card=True)
    lora_alpha: int = _field(
        32, "LoRA alpha; the update is scaled by alpha / r.", "lora", card=True
    )
    lora_dropout: float = _field(
        0.05,
        "Dropout on the LoRA input, in [0, 1); 0 skips the random mask (on a CPU it cost 1.2 s "
        "of a 7.4 s bundled-quick step).",
        "lora",
        card=True,
    )
    target_modules: str | list[str] = _field(  # noqa: RUF009 (default is a str)
        "all-linear",
        "'all-linear' or module names, e.g. q_proj,v_proj (comma-separated on the CLI).",
        "lora",
        card=True,
    )
    # ---------------------------------------------------------------- data
    dataset: str = _field(
        "gsm8k",
        "Training problems: GSM8K, its socratic answers, a generator, or an upload.",
        "data",
        tuple(DATASETS),
        card=True,
    )
    dataset_path: str = _field(
        "", "File to read when dataset is 'upload' (JSONL, JSON or CSV).", "data"
    )
    question_field: str = _field("question", "Upload column holding the question.", "data")
    answer_field: str = _field(
        "answer", "Upload column holding the answer ('... #### N', boxed or a number).", "data"
    )
    question_template: str = _field(
        "", "Question from columns, e.g. '{Body} {Question}'; empty = {question_field}.", "data"
    )
    solution_field: str = _field("", mapping_help("solution_field"), "data")
    id_field: str = _field("", mapping_help("id_field"), "data")
    choices_field: str = _field("", mapping_help("choices_field"), "data")
    answer_type: str = _field("", mapping_help("answer_type"), "data")
    hub_id: str = _field("", "Hub dataset id when dataset is 'hub', e.g. 'alice/problems'.", "data")
    hub_config: str = _field("", "The Hub dataset's config (subset); empty = default.", "data")
    hub_split: str = _field("train", "The Hub dataset's split to train on.", "data")
    revision: str = _field("", "The Hub dataset's branch, tag or commit; empty = main.", "data")
    difficulty: str = _field(
        "medium",
        "Generator difficulty: easy, medium, hard, or several joined by commas (mixed evenly).",
        "data",
    )
    num_train_samples: int = _field(
        0,
        "Problems to draw (seeded) before the split; 0 = all (generators: 2000).",
        "data",
        card=True,
    )
    val_fraction: float = _field(
        0.1, "Share held out for eval loss / early stopping; 0 = no validation.", "data"
    )
    prompt_format: str = _field(
        "chat",
        "Prompt format from mathtutor.prompts (the seed reports' prompts).",
        "data",
        tuple(FORMATS),
        card=True,
    )
    keep_annotations: bool = _field(
        True, "Keep GSM8K calculator annotations <<a*b=c>> in the targets.", "data"
    )
    # ---------------------------------------------------------------- optimization
    epochs: float = _field(
        1.0, "Passes over the training set (ignored when max_steps > 0).", "optimization", card=True
    )
    max_steps: int = _field(
        0, "Optimizer steps to take; 0 = run for `epochs`.", "optimization", card=True
    )
    learning_rate: float = _field(2e-4, "Peak learning rate.", "optimization", card=True)
    lr_scheduler: str = _field(
        "cosine", "Learning-rate schedule after warmup.", "optimization", SCHEDULERS, card=True
    )
    min_lr: float = _field(
        0.0, "Floor of cosine_with_min_lr (e.g. 1e-6 as in the Gemma report).", "optimization"
    )
    warmup_steps: float = _field(
        0.0, "Linear warmup: steps (>= 1) or a fraction of all steps (< 1).", "optimization"
    )
    batch_size: int = _field(
        4, "Sequences per device per forward pass (GRPO: completions).", "optimization", card=True
    )
    gradient_accumulation_steps: int = _field(
        1, "Forward passes per optimizer step.", "optimization", card=True
    )
    max_seq_length: int = _field(
        512,
        "Tokens per training sequence (prompt + completion), longer ones truncated.",
        "optimization",
        card=True,
    )
    gradient_checkpointing: bool = _field(
        False, "Recompute activations in backward: less memory, ~20-30% slower.", "optimization"
    )
    optimizer: str = _field(
        "auto",
        "auto: 8-bit AdamW (bitsandbytes) on CUDA, else torch AdamW.",
        "optimization",
        OPTIMIZERS,
    )
    weight_decay: float = _field(0.0, "AdamW weight decay.", "optimization")
    max_grad_norm: float = _field(1.0, "Gradient clipping norm.", "optimization")
    packing: bool = _field(
        False,
        "Pack several examples into each sequence (trl best-fit packing, padding-free).",
        "optimization",
    )
    padding_free: bool = _field(
        False, "Concatenate the batch into one row without padding (no truncation).", "optimization"
    )
    eval_steps: int = _field(
        50, "Steps between evaluations of the validation loss.", "optimization"
    )
    early_stopping_patience: int = _field(
        0,
        "Stop after this many evaluations without a better eval loss (task accuracy when "
        "keep_best_by is accuracy); 0 = off.",
        "optimization",
    )
    logging_steps: int = _field(1, "Steps between metric lines in metrics.jsonl.", "optimization")
    save_steps: int = _field(
        50, "Steps between checkpoints (Stop always saves one).", "optimization"
    )
    keep_checkpoints: int = _field(
        1,
        "Checkpoints a finished run keeps (newest first; 0 = none). While it runs it keeps at "
        "least one, to resume from. The final adapter always stays.",
        "optimization",
    )
    seed: int = _field(
        42,
        "Seed for sampling, adapter init and data order: same seed, same loss curve.",
        "optimization",
        card=True,
    )
    # ---------------------------------------------------------------- task accuracy
    eval_every: int = _field(
        0,
        "Steps between task-accuracy evaluations (held-out problems graded as Evaluate does, "
        "step 0 included); 0 = off.",
        "accuracy",
    )
    eval_problems: str = _field(
        "test",
        "Held-out problems: test = the training dataset's own test split (generators: same "
        "difficulty), gsm8k = GSM8K test, upload = the file in eval_path.",
        "accuracy",
        EVAL_PROBLEMS,
    )
    eval_path: str = _field(
        "",
        "File of held-out problems when eval_problems is 'upload' (JSONL, JSON or CSV).",
        "accuracy",
    )
    eval_num_problems: int = _field(
        48,
        "Held-out problems per evaluation (seeded sample, the same ones every time).",
        "accuracy",
    )
    eval_max_new_tokens: int = _field(
        256, "Token limit per evaluation completion (greedy decoding).", "accuracy"
    )
    eval_max_share: float = _field(
        0.5,
        "Cap on evaluation time as a share of the run: an evaluation that would push it past "
        "this is skipped (logged); 1 = never skip.",
        "accuracy",
    )
    keep_best_by: str = _field(
        "last",
        "Which weights become the run's adapter: last step, best task accuracy (needs "
        "eval_every), or lowest eval loss (needs val_fraction). Early stopping follows it.",
        "accuracy",
        KEEP_BEST,
    )
    # ---------------------------------------------------------------- GRPO
    loss_type: str = _field(
        "dapo",
        "trl GRPO loss: dapo (tokens of the whole batch), grpo (per sequence, length bias), "
        "dr_grpo (a constant, no length bias), bnpo (tokens of the local batch).",
        "grpo",
        LOSS_TYPES,
        card=True,
    )
    scale_rewards: str = _field(
        "group",
        "Advantage scaling: by the std within each group, over the batch, or none (Dr. GRPO).",
        "grpo",
        SCALE_REWARDS,
        card=True,
    )
    mask_truncated_completions: bool = _field(
        False,
        "Leave completions cut off at max_completion_length out of the loss (DAPO).",
        "grpo",
        card=True,
    )
    use_vllm: bool = _field(
        False,
        "Generate completions with vLLM colocated on the training GPU (CUDA + pip install vllm).",
        "grpo",
    )
    num_generations: int = _field(
        4, "Completions sampled per prompt (the group).", "grpo", card=True
    )
    beta: float = _field(0.04, "KL penalty towards the base model.", "grpo", card=True)
    temperature: float = _field(0.7, "Sampling temperature of the completions.", "grpo", card=True)
    max_completion_length: int = _field(
        256, "Tokens per sampled completion at most.", "grpo", card=True
    )
    correctness_weight: float = _field(
        1.0, "Weight of the exact-match reward (mathtutor.answers.grade).", "grpo"
    )
    format_weight: float = _field(
        0.2, "Weight of the answer-format reward (#### N or \\boxed{N}).", "grpo"
    )
    # ---------------------------------------------------------------- run
    run_name: str = _field("", "Name of the run and of its adapter; empty = recipe + time.", "run")
    recipe: str = _field("", "Recipe this config came from (informational).", "run")

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            setattr(self, item.name, _coerce(item, getattr(self, item.name)))
        self.precision = check_dtype(self.precision, "precision")
        _validate(self)

    # ------------------------------------------------------------ YAML and dicts
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> TrainConfig:
        """Build from a mapping; unknown keys raise a ValueError naming them and `source`."""
        if not isinstance(values, dict):
            raise ValueError(f"{source}: expected a mapping of field names to values")
        known = {item.name for item in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{source}: unknown field(s) {', '.join(unknown)}; see TrainConfig")
        return cls(**values)

    def to_yaml(self, path: str | Path | None = None) -> str:
        """The config as YAML (every field, in declaration order); written to `path` if given."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        """Read a recipe/config file; keyword overrides win over the file."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"config file {path} does not exist")
        try:
            values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as error:
            raise ValueError(f"{path}: not valid YAML ({error})") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a mapping of field names to values")
        return cls.from_dict({**values, **overrides}, source=str(path))

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @property
    def difficulties(self) -> list[str]:
        return [part.strip() for part in self.difficulty.split(",") if part.strip()]


def fields_by_section() -> dict[str, list[dataclasses.Field]]:
    """The config's fields grouped by `metadata["section"]`, in declaration order (for forms)."""
    groups: dict[str, list[dataclasses.Field]] = {section: [] for section in SECTIONS}
    for item in dataclasses.fields(TrainConfig):
        groups[item.metadata["section"]].append(item)
    return groups


# ---------------------------------------------------------------- coercion and validation
@functools.cache
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def _base_type(item: dataclasses.Field) -> type | None:
    """int / float / bool / str for scalar fields (Optional unwrapped), None otherwise."""
    annotation = _hints()[item.name]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        annotation = options[0] if len(options) == 1 else None
    return annotation if annotation in (int, float, bool, str) else None


def _coerce(item: dataclasses.Field, value: Any) -> Any:
    """Turn CLI/YAML/UI text into the field's type; ValueError naming the field otherwise."""
    name = item.name
    if name == "target_modules":
        return _target_modules(value)
    kind = _base_type(item)
    if value is None:
        if kind is str:
            return ""
        raise ValueError(f"{name}: a value is required")
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"{name}: expected true or false, got {value!r}")
    if kind in (int, float):
        if isinstance(value, bool):
            raise ValueError(f"{name}: expected a number, got {value!r}")
        try:
            number = float(str(value).strip()) if isinstance(value, str) else float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: expected a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"{name}: expected a finite number, got {value!r}")
        if kind is int:
            if number != int(number):
                raise ValueError(f"{name}: expected a whole number, got {value!r}")
            return int(number)
        return number
    if kind is str:
        return str(value).strip()
    return value


def _target_modules(value: Any) -> str | list[str]:
    if isinstance(value, str):
        text = value.strip()
        if text in ("all-linear", ""):
            return "all-linear"
        value = text.split(",")
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"target_modules: expected 'all-linear' or a list of names, got {value!r}")
    names = [str(name).strip() for name in value if str(name).strip()]
    if not names:
        raise ValueError(
            "target_modules: empty list; use 'all-linear' or names such as q_proj,v_proj"
        )
    return names


# Upper bounds: far above any real run, low enough that a typo (1e30 steps) or a value that
# overflows a library (seeds are 32-bit in numpy) is refused here, naming the field.
_MAXIMUM = {
    "lora_rank": 4096,
    "lora_alpha": 65536,
    "epochs": 10_000,
    "max_steps": 10_000_000,
    "warmup_steps": 10_000_000,
    "batch_size": 65536,
    "gradient_accumulation_steps": 65536,
    "max_seq_length": 1_048_576,
    "eval_steps": 10_000_000,
    "logging_steps": 10_000_000,
    "save_steps": 10_000_000,
    "early_stopping_patience": 10_000,
    "eval_every": 10_000_000,
    "eval_num_problems": 5000,
    "eval_max_new_tokens": 4096,
    "num_train_samples": 100_000_000,
    "weight_decay": 10,
    "max_grad_norm": 1e6,
    "seed": 2**32 - 1,
    "num_generations": 1024,
    "max_completion_length": 1_048_576,
    "beta": 1e6,
    "correctness_weight": 1e6,
    "format_weight": 1e6,
}


def _validate(config: TrainConfig) -> None:
    for item in dataclasses.fields(config):
        choices = item.metadata.get("choices")
        if choices and getattr(config, item.name) not in choices:
            raise ValueError(
                f"{item.name}: {getattr(config, item.name)!r} is not one of {', '.join(choices)}"
            )
    if not config.model:
        raise ValueError("model: empty; expected 'bundled', a local directory or a Hub id")
    minimum = {
        "lora_rank": 1,
        "lora_alpha": 1,
        "batch_size": 1,
        "gradient_accumulation_steps": 1,
        "max_seq_length": 16,
        "eval_steps": 1,
        "logging_steps": 1,
        "save_steps": 1,
        "keep_checkpoints": 0,
        "num_generations": 2,
        "max_completion_length": 1,
        "max_steps": 0,
        "num_train_samples": 0,
        "early_stopping_patience": 0,
        "seed": 0,  # numpy's seeding refuses negatives
        "eval_every": 0,
        "eval_num_problems": 1,
        "eval_max_new_tokens": 1,
    }
    for name, low in minimum.items():
        if getattr(config, name) < low:
            raise ValueError(f"{name}: must be at least {low}, got {getattr(config, name)}")
    for name, high in _MAXIMUM.items():
        if getattr(config, name) > high:
            raise ValueError(f"{name}: must be at most {high}, got {getattr(config, name)}")
    if not config.learning_rate > 0:
        raise ValueError(f"learning_rate: must be positive, got {config.learning_rate}")
    if config.learning_rate > 1:
        raise ValueError(
            f"learning_rate: {config.learning_rate} is far too large (expected ~1e-6 to 1e-3)"
        )
    if not 0 <= config.min_lr < config.learning_rate:
        raise ValueError(
            f"min_lr: must be in [0, learning_rate={config.learning_rate}), got {config.min_lr}"
        )
    if not 0 <= config.lora_dropout < 1:
        raise ValueError(f"lora_dropout: must be in [0, 1), got {config.lora_dropout}")
    if not 0 <= config.val_fraction < 1:
        raise ValueError(f"val_fraction: must be in [0, 1), got {config.val_fraction}")
    for name in ("warmup_steps", "weight_decay", "beta", "correctness_weight", "format_weight"):
        if getattr(config, name) < 0:
            raise ValueError(f"{name}: must not be negative, got {getattr(config, name)}")
    if not config.max_grad_norm > 0:
        raise ValueError(f"max_grad_norm: must be positive, got {config.max_grad_norm}")
    if config.max_steps == 0 and not config.epochs > 0:
        raise ValueError(f"epochs: must be positive when max_steps is 0, got {config.epochs}")
    if not 0 < config.temperature <= 5:
        raise ValueError(f"temperature: must be in (0, 5], got {config.temperature}")
    if config.dataset == "upload" and not config.dataset_path:
        raise ValueError(
            "dataset_path: required when dataset is 'upload' (a JSONL, JSON or CSV file)"
        )
    if config.dataset == "upload":
        check_readable(config.dataset_path, "dataset_path")  # before anything opens it
    if config.dataset == "hub":
        TableSource(config.hub_id, config.hub_config, config.hub_split, config.revision)
    ColumnMapping.of(config)  # the template and answer type, before anything loads
    unknown = [d for d in config.difficulties if d not in DIFFICULTIES]
    if unknown or not config.difficulties:
        raise ValueError(
            f"difficulty: {config.difficulty!r}; expected {', '.join(DIFFICULTIES)} (comma-separated)"
        )
    _validate_accuracy(config)
    if config.use_vllm and config.method != "grpo":
        raise ValueError("use_vllm: generates GRPO completions; set method to grpo or turn it off")
    if config.packing and config.padding_free:
        raise ValueError(
            "padding_free: packing already trains without padding; set only one of the two"
        )
    if config.method == "grpo":
        group = config.batch_size * config.gradient_accumulation_steps
        if group % config.num_generations:
            raise ValueError(
                f"num_generations: batch_size x gradient_accumulation_steps = {group} must be a multiple "
                f"of num_generations = {config.num_generations} (GRPO samples whole groups)"
            )
        if config.packing or config.padding_free:
            raise ValueError(
                "packing: not available for GRPO (completions are generated, not packed)"
            )
        if config.keep_best_by == "loss":
            raise ValueError("keep_best_by: GRPO has no eval loss; use 'accuracy' or 'last'")


def _validate_accuracy(config: TrainConfig) -> None:
    """eval_* / keep_best_by / early stopping: each needs what it measures."""
    if not 0 < config.eval_max_share <= 1:
        raise ValueError(f"eval_max_share: must be in (0, 1], got {config.eval_max_share}")
    if config.eval_problems == "upload" and config.eval_every and not config.eval_path:
        raise ValueError("eval_path: required when eval_problems is 'upload' (JSONL, JSON or CSV)")
    if config.eval_problems == "test" and config.dataset == "upload" and config.eval_every:
        raise ValueError(
            "eval_problems: an uploaded dataset has no test split; use gsm8k or upload (eval_path)"
        )
    if config.eval_every and config.max_steps:
        count = config.max_steps // config.eval_every + 1
        if count > MAX_EVALUATIONS:
            raise ValueError(
                f"eval_every: {config.eval_every} means {count} evaluations in {config.max_steps} "
                f"steps; at most {MAX_EVALUATIONS} (use eval_every >= "
                f"{math.ceil(config.max_steps / (MAX_EVALUATIONS - 1))})"
            )
    if config.keep_best_by == "accuracy" and not config.eval_every:
        raise ValueError(
            "keep_best_by: 'accuracy' needs eval_every > 0 (task-accuracy evaluations)"
        )
    if config.keep_best_by == "accuracy" and config.finetune == "full":
        raise ValueError(
            "keep_best_by: 'accuracy' keeps LoRA adapters; for finetune=full use 'loss' or 'last'"
        )
    if config.keep_best_by == "loss" and not config.val_fraction:
        raise ValueError("keep_best_by: 'loss' needs a validation split (val_fraction > 0)")
    if config.early_stopping_patience:
        if config.keep_best_by == "accuracy":
            return  # counted in accuracy evaluations
        if not config.val_fraction:
            raise ValueError(
                "early_stopping_patience: needs a validation split (val_fraction > 0), or "
                "keep_best_by accuracy with eval_every"
            )


# ---------------------------------------------------------------- model checks (before launch)
def model_linear_names(model: str) -> dict[str, tuple[int, int]]:
    """Leaf names of the model's linear layers -> (in, out), read from its config on the meta device.

    Nothing is downloaded except the config (a local directory or the bundled model reads none).
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from mathtutor.models import loading, resolve_model

    source = resolve_model(model)
    with loading(model, source):
        model_config = AutoConfig.from_pretrained(source)
    with torch.device("meta"):
        network = AutoModelForCausalLM.from_config(model_config)
    names: dict[str, tuple[int, int]] = {}
    for name, module in network.named_modules():
        if isinstance(module, torch.nn.Linear):
            names.setdefault(name.rsplit(".", 1)[-1], (module.in_features, module.out_features))
    return names


def check_vllm(config: TrainConfig) -> None:
    """use_vllm needs CUDA and an importable vllm; never required, refused clearly otherwise."""
    import importlib.util

    if not config.use_vllm:
        return
    if importlib.util.find_spec("vllm") is None:
        raise ValueError(
            "use_vllm: vLLM is not installed (pip install vllm, on a CUDA machine); turn "
            "use_vllm off to generate with transformers"
        )
    import torch

    if not torch.cuda.is_available():
        raise ValueError("use_vllm: vLLM needs a CUDA GPU and none is visible; turn use_vllm off")


def check_model(config: TrainConfig) -> None:
    """Checks that need the model's architecture: target modules exist; QLoRA has bitsandbytes."""
    import importlib.util

    if config.finetune == "qlora" and importlib.util.find_spec("bitsandbytes") is None:
        raise ValueError("finetune: 'qlora' needs bitsandbytes: pip install bitsandbytes")
    check_vllm(config)
    if config.finetune == "full" or config.target_modules == "all-linear":
        model_linear_names(config.model)  # still proves the model's config is readable
        return
    available = model_linear_names(config.model)
    missing = [name for name in config.target_modules if name not in available]
    if missing:
        raise ValueError(
            f"target_modules: {', '.join(missing)} not found in {config.model!r}; its linear layers "
            f"are {', '.join(sorted(available))}"
        )


# ---------------------------------------------------------------- command line
@dataclass
class CliArgs:
    """What `python -m training.sft|grpo` was asked to do."""

    config: TrainConfig
    run_dir: Path | None = None  # reuse this run directory (the app's launcher passes it)
    resume: bool = False  # continue from the last checkpoint in run_dir


def build_parser(prog: str = "training") -> argparse.ArgumentParser:
    """Flags generated from the dataclass fields (same names), plus --config/--run_dir/--resume."""
    parser = cli.ArgumentParser(
        prog=prog,
        description="Fine-tune a math model (see training/config.py).",
        epilog=cli.DEBUG_HELP,
    )
    parser.add_argument("--config", help="YAML recipe/config; flags below override its values")
    parser.add_argument(
        "--run_dir", help="run directory to use (default: a new one under home/runs)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from the last checkpoint in --run_dir"
    )
    parser.add_argument(
        "--print_config", action="store_true", help="print the resolved config as YAML and exit"
    )
    return cli.config_parser(TrainConfig, prog, parser=parser)


def parse_cli(argv: list[str] | None = None, method: str | None = None) -> CliArgs:
    """Parse the command line into a `CliArgs`; `--print_config` prints and exits.

    `method` is the entry point's method (`training.sft` passes "sft"): a config for the other
    method is refused with the command to use instead.
    """
    parser = build_parser(f"python -m training.{method}" if method else "training")
    args = vars(parser.parse_args(argv))
    config_path = args.pop("config")
    run_dir = args.pop("run_dir")
    resume = args.pop("resume")
    print_config = args.pop("print_config")
    if config_path:  # a bad value raises ValueError naming the field: one line via cli.run
        config = TrainConfig.from_yaml(config_path, **args)
    else:
        config = TrainConfig.from_dict({"method": method or "sft", **args}, source="command line")
    if method and config.method != method:
        parser.error(
            f"method: this config is {config.method!r}; run python -m training.{config.method}"
        )
    if print_config:
        sys.stdout.write(config.to_yaml())
        sys.exit(0)
    if resume and not run_dir:
        parser.error("--resume needs --run_dir (the run to continue)")
    return CliArgs(config=config, run_dir=Path(run_dir) if run_dir else None, resume=resume)
