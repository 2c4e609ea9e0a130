"""Model cards: the README.md of a pushed LoRA adapter, written from what mathtutor knows.

`render_model_card(CardInfo(...))` returns the card text: YAML front matter that the Hub reads
(`library_name: peft`, `base_model`, tags, datasets, license and a `model-index` holding the
evaluation results in the Hub's schema) followed by markdown: a summary, usage code, training
details, an evaluation table with standard errors and a limitations section in the spirit of
the seed reports. Missing training or evaluation information just leaves its section out.

Pure: imports only PyYAML.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

TAG = "mathtutor"  # every card carries it: `hub.list_my_adapters` finds adapters by it
NATALIA = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in "
    "May. How many clips did Natalia sell altogether in April and May?"
)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class EvalResult:
    """One evaluation of the adapter; match rates are fractions in [0, 1] as lm-eval reports them."""

    strict_match: float  # GSM8K strict `#### N` exact match
    flexible_match: float  # lm-eval flexible-extract (last number) exact match
    num_samples: int  # problems evaluated
    prompt_format: str = "chat"  # name in mathtutor.prompts.FORMATS
    strict_match_stderr: float | None = None  # standard error of strict_match
    flexible_match_stderr: float | None = None  # standard error of flexible_match
    dataset: str = "openai/gsm8k"  # Hub dataset id (model-index dataset.type)
    dataset_name: str = "GSM8K"  # display name (model-index dataset.name)
    config: str = "main"  # dataset config
    split: str = "test"

    def __post_init__(self) -> None:
        for name in ("strict_match", "flexible_match"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                raise ValueError(f"EvalResult.{name} must be a fraction in [0, 1], got {value!r}")
        for name in ("strict_match_stderr", "flexible_match_stderr"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and value >= 0):
                raise ValueError(f"EvalResult.{name} must be >= 0 or None, got {value!r}")
        if not isinstance(self.num_samples, int) or self.num_samples < 1:
            raise ValueError(
                f"EvalResult.num_samples must be a positive integer, got {self.num_samples!r}"
            )


@dataclass
class TrainingSummary:
    """The end of a training curve."""

    steps: int  # optimizer steps taken
    final_train_loss: float | None = None
    final_eval_loss: float | None = None
    epochs: float | None = None
    seconds: float | None = None  # wall-clock training time
    # held-out task accuracy measured during training (training/callbacks.py AccuracyCallback)
    best_step: int | None = None  # step of the highest accuracy
    best_accuracy: float | None = None  # fraction in [0, 1]
    best_accuracy_stderr: float | None = None
    best_accuracy_n: int | None = None  # problems evaluated
    adapter_is_best: bool = False  # the adapter holds best_step's weights (keep_best_by accuracy)

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or self.steps < 0:
            raise ValueError(
                f"TrainingSummary.steps must be a non-negative integer, got {self.steps!r}"
            )


@dataclass
class CardInfo:
    """Everything a model card says; only `base_model` and `adapter_repo` are required."""

    base_model: str  # Hub id (or local path) of the model the adapter was trained on
    adapter_repo: str  # the adapter's repo id, e.g. "alice/smollm2-gsm8k-lora"
    datasets: list[str] = field(default_factory=lambda: ["openai/gsm8k"])
    recipe: str | None = None  # training recipe name, e.g. "sft-lora"
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    training: TrainingSummary | None = None
    evaluations: list[EvalResult] = field(default_factory=list)
    license: str = "apache-2.0"  # SmolLM2, Qwen2.5 and Phi-2 are Apache-2.0/MIT; override as needed
    limitations: list[str] = field(default_factory=list)  # extra notes added to the seed-style list
    description: str = ""  # one paragraph shown under the title

    def __post_init__(self) -> None:
        for name in ("base_model", "adapter_repo"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ValueError(f"CardInfo.{name} is empty")


def base_tag(base_model: str) -> str:
    """A tag naming the base model: its last path part, lowercased.

    >>> base_tag("HuggingFaceTB/SmolLM2-135M-Instruct")
    'smollm2-135m-instruct'
    """
    return re.sub(r"[^a-z0-9._-]+", "-", base_model.rstrip("/").split("/")[-1].lower()).strip("-")


def front_matter(info: CardInfo) -> dict[str, Any]:
    """The card's metadata as a dict (what `render_model_card` writes as YAML)."""
    meta: dict[str, Any] = {"library_name": "peft"}
    tags = [TAG, "lora", "gsm8k"]
    # The Hub accepts only model ids as base_model; a local path stays in the markdown.
    if _HUB_ID.match(info.base_model):
        meta |= {"base_model": info.base_model, "base_model_relation": "adapter"}
        tags.append(base_tag(info.base_model))
    meta |= {"license": info.license, "pipeline_tag": "text-generation", "tags": tags}
    meta["datasets"] = list(info.datasets)
    if info.evaluations:
        meta["model-index"] = [
            {
                "name": info.adapter_repo.split("/")[-1],
                "results": [_result(e) for e in info.evaluations],
            }
        ]
    return meta


def _result(result: EvalResult) -> dict[str, Any]:
    """One `model-index` result in the Hub's schema (task, dataset, metrics)."""

    def metric(name: str, value: float, stderr: float | None) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": "exact_match", "value": round(value, 4), "name": name}
        entry["args"] = {"num_samples": result.num_samples, "prompt_format": result.prompt_format}
        if stderr is not None:
            entry["args"]["stderr"] = round(stderr, 4)
        entry["verified"] = False
        return entry

    return {
        "task": {"type": "text-generation", "name": "Math word problems"},
        "dataset": {
            "name": result.dataset_name,
            "type": result.dataset,
            "config": result.config,
            "split": result.split,
        },
        "metrics": [
            metric("strict-match", result.strict_match, result.strict_match_stderr),
            metric("flexible-extract", result.flexible_match, result.flexible_match_stderr),
        ],
    }


def percent(value: float, stderr: float | None = None) -> str:
    """A match rate as the table shows it.

    >>> percent(0.415, 0.0348)
    '41.5% ± 3.5'
    >>> percent(0.5)
    '50.0%'
    """
    text = f"{100 * value:.1f}%"
    return text if stderr is None or math.isnan(stderr) else f"{text} ± {100 * stderr:.1f}"


def render_model_card(info: CardInfo) -> str:
    """The full README.md of an adapter repo: YAML front matter, then markdown."""
    meta = yaml.safe_dump(front_matter(info), sort_keys=False, allow_unicode=True)
    sections = [f"---\n{meta}---\n", _summary(info), _usage(info)]
    if info.recipe or info.hyperparameters or info.training:
        sections.append(_training(info))
    if info.evaluations:
        sections.append(_evaluation(info))
    sections.append(_limitations(info))
    return "\n".join(sections)


def _summary(info: CardInfo) -> str:
    base = info.base_model
    base_text = f"[{base}](https://huggingface.co/{base})" if _HUB_ID.match(base) else f"`{base}`"
    intro = (
        f"A LoRA adapter for {base_text} that solves grade-school math word problems step by "
        "step and ends with a `#### <number>` line."
    )
    # Say only what mathtutor knows: a pulled or hand-made adapter has no run or evaluation.
    done = [
        verb
        for verb, known in (
            ("trained", info.recipe or info.hyperparameters or info.training),
            ("evaluated", info.evaluations),
        )
        if known
    ]
    if done:
        data = f" on {', '.join(info.datasets)}" if info.datasets else ""
        intro += f" It was {' and '.join(done)} with mathtutor{data}."
    lines = [f"# {info.adapter_repo.split('/')[-1]}", "", intro]
    if info.description.strip():
        lines += ["", info.description.strip()]
    return "\n".join(lines) + "\n"


def _usage(info: CardInfo) -> str:
    code = f'''from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

base = AutoModelForCausalLM.from_pretrained("{info.base_model}")
tokenizer = AutoTokenizer.from_pretrained("{info.base_model}")
model = PeftModel.from_pretrained(base, "{info.adapter_repo}")

question = "{NATALIA}"
messages = [{{"role": "user", "content": question}}]
inputs = tokenizer.apply_chat_template(
    messages, add_generation_prompt=True, return_dict=True, return_tensors="pt"
)
output = model.generate(**inputs, max_new_tokens=256, do_sample=False)
print(tokenizer.decode(output[0][inputs["input_ids"].shape[-1]:], skip_special_tokens=True))'''
    return f"## Usage\n\n```python\n{code}\n```\n"


def _training(info: CardInfo) -> str:
    lines = ["## Training", ""]
    if info.recipe:
        lines.append(f"Recipe: `{info.recipe}`.")
    summary = info.training
    if summary is not None:
        facts = [f"{summary.steps} steps"]
        if summary.epochs is not None:
            facts.append(f"{summary.epochs:g} epochs")
        if summary.final_train_loss is not None:
            facts.append(f"final train loss {summary.final_train_loss:.4f}")
        if summary.final_eval_loss is not None:
            facts.append(f"final eval loss {summary.final_eval_loss:.4f}")
        if summary.seconds is not None:
            facts.append(f"{summary.seconds / 60:.1f} min")
        lines.append("Run: " + ", ".join(facts) + ".")
        if summary.best_step is not None and summary.best_accuracy is not None:
            n = f", n = {summary.best_accuracy_n}" if summary.best_accuracy_n else ""
            held = (
                " This adapter holds the weights of that step." if summary.adapter_is_best else ""
            )
            lines.append(
                f"Best held-out task accuracy during training: "
                f"{percent(summary.best_accuracy, summary.best_accuracy_stderr)}{n} at step "
                f"{summary.best_step}.{held}"
            )
    if info.hyperparameters:
        lines += ["", "| Hyperparameter | Value |", "|---|---|"]
        lines += [f"| `{key}` | `{value}` |" for key, value in info.hyperparameters.items()]
    return "\n".join(lines) + "\n"


def _evaluation(info: CardInfo) -> str:
    lines = [
        "## Evaluation",
        "",
        "Exact match with lm-evaluation-harness `gsm8k` answer extraction: *strict* reads the "
        "`#### N` line, *flexible* the last number. ± is one standard error.",
        "",
        "| Dataset | Split | n | Prompt format | Strict match | Flexible extract |",
        "|---|---|---|---|---|---|",
    ]
    for r in info.evaluations:
        lines.append(
            f"| {r.dataset_name} (`{r.dataset}` {r.config}) | {r.split} | {r.num_samples} "
            f"| `{r.prompt_format}` | {percent(r.strict_match, r.strict_match_stderr)} "
            f"| {percent(r.flexible_match, r.flexible_match_stderr)} |"
        )
    return "\n".join(lines) + "\n"


def _limitations(info: CardInfo) -> str:
    notes = [
        "**Arithmetic slips.** Small models make calculation mistakes inside otherwise sound "
        "reasoning (e.g. `48 / 2 = 26`); check every step, not just the final line.",
        "**Multi-step errors.** Problems that chain several quantities (rates times time, unit "
        'conversions, "half as many", percentages) fail more often than one-step problems.',
        "**Format failures.** The model may not end with `#### <number>`; strict-match scoring "
        "then counts the answer as wrong even when the number is right.",
        "**Narrow training.** One dataset of grade-school problems, usually a subset and few "
        "epochs: expect weaker results on other kinds of math and on harder problems.",
        "**Automated evaluation only.** Exact match says nothing about whether an explanation is "
        "coherent or pedagogically sound; no human evaluation was done.",
        "**Not for grading students.** A small model's answers and explanations can be confidently "
        "wrong; do not use it to grade or replace a teacher.",
    ]
    notes += [note.strip() for note in info.limitations if note.strip()]
    return "## Limitations\n\n" + "\n".join(f"- {note}" for note in notes) + "\n"
