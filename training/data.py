"""Training data: the config's problems as trl datasets (SFT prompt-completion, GRPO prompts).

`load_training_problems(config)` draws the problems (GSM8K train split, a generator's train
split, or an upload), seeded, and splits off the validation share. `sft_rows` turns them into
prompt-completion rows, so trl computes the loss on the completion only (the Gemma report's
"prompt tokens masked -100"): chat rows (`[messages]`) when the prompt format is a chat format
and the tokenizer has a chat template, else plain text rows. `grpo_rows` keeps the prompt and
passes the reference answer and the prompt format to the reward functions.

Pure apart from `datasets.Dataset` in `to_dataset`.

>>> from training.config import TrainConfig
>>> train, val = load_training_problems(TrainConfig(dataset="arithmetic", num_train_samples=20))
>>> len(train), len(val)
(18, 2)
"""

from __future__ import annotations

from typing import Any

from mathtutor.data import GENERATED, Problem, load_problems, split_train_val
from mathtutor.prompts import training_example, uses_chat_template
from mathtutor.tables import ColumnMapping
from training.config import TrainConfig

GENERATED_DEFAULT = 2000  # seed 003 trained on 2,000 generated problems


def load_training_problems(config: TrainConfig) -> tuple[list[Problem], list[Problem]]:
    """(train, validation) problems for the config; ValueError when no usable rows remain."""
    if config.dataset in GENERATED:
        total = config.num_train_samples or GENERATED_DEFAULT
        levels = config.difficulties
        problems: list[Problem] = []
        for index, level in enumerate(levels):  # an even mix, e.g. easy,medium
            count = total // len(levels) + (1 if index < total % len(levels) else 0)
            if count:
                problems += load_problems(
                    config.dataset, "train", count, seed=config.seed, difficulty=level
                )
        # interleave the levels so every batch sees each of them
        problems.sort(key=lambda p: (int(p.id.rsplit("-", 1)[-1]), p.source))
    else:
        problems = load_problems(
            config.dataset,
            config.hub_split if config.dataset == "hub" else "train",
            num_samples=None,
            seed=config.seed,
            path=config.dataset_path or None,
            question_field=config.question_field,
            answer_field=config.answer_field,
            mapping=ColumnMapping.of(config),
            hub_id=config.hub_id,
            hub_config=config.hub_config,
            revision=config.revision,
        )
        if config.num_train_samples:
            if config.num_train_samples > len(problems):
                raise ValueError(
                    f"num_train_samples: {config.num_train_samples} asked, but {config.dataset} "
                    f"has {len(problems)} problems"
                )
            from mathtutor.data import sample

            problems = sample(problems, config.num_train_samples, config.seed)
    problems = [p for p in problems if p.question.strip() and str(p.answer).strip()]
    if not problems:
        raise ValueError(f"dataset: {config.dataset} holds no usable rows (question and answer)")
    if not config.val_fraction:
        return problems, []
    if len(problems) < 2:
        raise ValueError(
            f"val_fraction: {len(problems)} problem(s) cannot be split; set val_fraction to 0"
        )
    return split_train_val(problems, config.val_fraction, config.seed)


EVAL_SEED = 0  # held-out problems are drawn with one seed: runs of any seed are compared alike


def load_eval_problems(config: TrainConfig) -> list[Problem]:
    """The held-out problems of the task-accuracy evaluations (`eval_problems`), seeded.

    test: the training dataset's test split (a generator's test questions are disjoint from its
    train ones; several difficulties are split evenly, as `bench/bench_train.py` does), gsm8k:
    GSM8K test, upload: `eval_path`. The same problems every evaluation of the run.
    """
    count = config.eval_num_problems
    try:
        if config.eval_problems == "upload":
            problems = load_problems(
                "upload", "test", None, seed=EVAL_SEED, path=config.eval_path,
                question_field=config.question_field, answer_field=config.answer_field,
            )  # fmt: skip
            return _sample_at_most(problems, count)
        dataset = "gsm8k" if config.eval_problems == "gsm8k" else config.dataset
        if dataset == "upload":
            raise ValueError("an uploaded dataset has no test split; use gsm8k or upload")
        if dataset not in GENERATED:
            return _sample_at_most(load_problems(dataset, "test", None, seed=EVAL_SEED), count)
        levels = config.difficulties
        problems = []
        for index, level in enumerate(levels):
            share = count // len(levels) + (index < count % len(levels))
            if share:
                problems += load_problems(dataset, "test", share, seed=EVAL_SEED, difficulty=level)
        return problems
    except ValueError as error:
        raise ValueError(f"eval_problems: {error}") from error


def _sample_at_most(problems: list[Problem], count: int) -> list[Problem]:
    from mathtutor.data import sample

    problems = [p for p in problems if p.question.strip() and str(p.answer).strip()]
    if not problems:
        raise ValueError("no usable rows (question and answer)")
    return sample(problems, count, EVAL_SEED) if count < len(problems) else problems


def is_conversational(config: TrainConfig, tokenizer: Any) -> bool:
    """Chat rows when the format is a chat format and the tokenizer has a chat template."""
    return uses_chat_template(config.prompt_format, tokenizer)


def sft_rows(problems: list[Problem], config: TrainConfig, tokenizer: Any) -> list[dict]:
    """Prompt-completion rows: trl masks the prompt, the loss is on the completion."""
    chat = is_conversational(config, tokenizer)
    return [
        training_example(
            config.prompt_format,
            problem.question,
            problem.solution,
            problem.answer,
            tokenizer=tokenizer,
            conversational=chat,
            keep_annotations=config.keep_annotations,
        )
        for problem in problems
    ]


def grpo_rows(problems: list[Problem], config: TrainConfig, tokenizer: Any) -> list[dict]:
    """Prompt rows with the reference `answer`, and the `prompt_format`, `answer_type` and
    `choices` the rewards grade by (`PromptFormat.grader_for`)."""
    chat = is_conversational(config, tokenizer)
    rows = []
    for problem in problems:
        example = training_example(
            config.prompt_format,
            problem.question,
            problem.solution,
            problem.answer,
            tokenizer=tokenizer,
            conversational=chat,
        )
        rows.append(
            {
                "prompt": example["prompt"],
                "answer": problem.answer,
                "prompt_format": config.prompt_format,
                "answer_type": problem.answer_type,
                "choices": list(problem.choices),
            }
        )
    return rows


def to_dataset(rows: list[dict]) -> Any:
    """A `datasets.Dataset` in memory (no cache files)."""
    from datasets import Dataset

    return Dataset.from_list(rows)


def preview(config: TrainConfig, num_rows: int = 5) -> list[dict[str, str]]:
    """A few training examples as the model will see them (question, target, answer)."""
    from mathtutor.prompts import target

    count = num_rows if config.dataset in GENERATED else 0
    train, _ = load_training_problems(config.replace(num_train_samples=count, val_fraction=0.0))
    return [
        {
            "question": p.question,
            "target": target(config.prompt_format, p.solution, p.answer, config.keep_annotations),
            "answer": p.answer,
        }
        for p in train[:num_rows]
    ]
