"""Model cards: the README.md of a pushed LoRA adapter, written from what mathtutor knows.

`card_for_adapter(adapter or run directory)` is the one card of a local adapter, used by the
Hub tab's preview and push, `python -m mathtutor.hub push` and the trainer's README.md draft.
`card_info` gathers what mathtutor knows: the base model (adapter_config.json), the training
run it came from (config.yaml: the `TrainConfig` fields marked `card` in their metadata, and
the end of metrics.jsonl) and the newest evaluation in the store that included it.

`render_model_card(CardInfo(...))` returns the card text: YAML front matter that the Hub reads
(`library_name: peft`, `base_model`, tags, datasets, license and a `model-index` holding the
evaluation results in the Hub's schema) followed by markdown: a summary, usage code, training
details, an evaluation table with standard errors and a limitations section in the spirit of
the seed reports. Missing training or evaluation information just leaves its section out.
Rendering is pure (PyYAML only); `card_info` reads the store and the run directory.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mathtutor import store
from mathtutor.models import base_model_id, read_adapter_config
from mathtutor.results import EvalSummary, SystemSummary
from training.config import card_fields

TAG = "mathtutor"  # every card carries it: `hub.list_my_adapters` finds adapters by it
NATALIA = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in "
    "May. How many clips did Natalia sell altogether in April and May?"
)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# mathtutor dataset name -> (Hub dataset id, display name, config) for model-index results.
EVAL_DATASETS = {
    "gsm8k": ("openai/gsm8k", "GSM8K", "main"),
    "gsm8k-socratic": ("openai/gsm8k", "GSM8K", "socratic"),
}


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


# --------------------------------------------------------------------------- a local adapter
@dataclass
class LocalAdapter:
    """An adapter on this machine (one that can be pushed)."""

    name: str  # registered name, or the training run id
    path: Path  # the adapter directory
    source: str  # "train:<run id>", "hub:<repo id>" or "local"


def local_adapters() -> list[LocalAdapter]:
    """Registered adapters, then finished training runs' adapters not registered (no repeats)."""
    found: dict[Path, LocalAdapter] = {}
    for row in store.list_adapters():
        path = Path(row["path"]).resolve()
        found.setdefault(path, LocalAdapter(row["name"], path, row["source"]))
    for run in store.list_train_runs():
        path = (Path(run["run_dir"]) / "adapter").resolve()
        if run["status"] == "finished" and (path / "adapter_config.json").is_file():
            found.setdefault(path, LocalAdapter(run["id"], path, f"train:{run['id']}"))
    return list(found.values())


def find_adapter(adapter_dir: str | Path) -> LocalAdapter:
    """The listed adapter at this directory, or an unlisted one named after the directory.

    A training run directory stands for its `adapter/`.
    """
    if not adapter_dir or not str(adapter_dir).strip():
        raise ValueError("adapter: pick an adapter to push (train one, or pull one first)")
    path = Path(adapter_dir).expanduser().resolve()
    if (path / "config.yaml").is_file() and (path / "adapter").is_dir():
        path = path / "adapter"
    for adapter in local_adapters():
        if adapter.path == path:
            return adapter
    return LocalAdapter(path.name, path, "local")


def repo_name(name: str) -> str:
    """A Hub-valid repo name from an adapter name.

    >>> repo_name("alice/tiny lora--v2")
    'tiny-lora-v2'
    """
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name.split("/")[-1])
    name = re.sub(r"-{2,}", "-", re.sub(r"\.{2,}", ".", name)).strip("-.")
    return name[:96].strip("-.") or "mathtutor-adapter"


def card_for_adapter(
    adapter: str | Path, repo_id: str = "", run_dir: str | Path | None = None
) -> str:
    """The README.md of a local adapter (`adapter`: its directory or its training run's).

    `repo_id` names the card (default: from the adapter's name). `run_dir` is the training run
    the adapter came from, for an adapter not yet in its run directory (the trainer's draft).
    """
    return render_model_card(card_info(adapter, repo_id, run_dir))


def card_info(
    adapter: str | Path, repo_id: str = "", run_dir: str | Path | None = None
) -> CardInfo:
    """What the card says: base model, training run and the newest evaluation of the adapter."""
    local = find_adapter(adapter)
    run = Path(run_dir) if run_dir is not None else _run_dir(local)
    train_config = _read_yaml(run / "config.yaml") if run is not None else {}
    if run is None or (local.path / "adapter_config.json").is_file():
        config = read_adapter_config(local.path)
        base = base_model_id(config.get("base_model_name_or_path") or "") or "unknown"
    else:  # a full fine-tune: the run's config names the base
        base = base_model_id(str(train_config.get("model") or "")) or "unknown"
    info = CardInfo(base_model=base, adapter_repo=repo_id.strip() or repo_name(local.name))
    if run is not None:
        keys = card_fields(str(train_config.get("method") or "sft"))
        info.hyperparameters = {k: train_config[k] for k in keys if k in train_config}
        info.recipe = train_config.get("recipe") or None
        info.training = training_summary(run / "metrics.jsonl")
        if info.training is not None:  # the best held-out accuracy measured during training
            from training.runs import best_accuracy_fields

            best = best_accuracy_fields(run, train_config.get("keep_best_by", "last"))
            info.training = dataclasses.replace(info.training, **best)
        dataset = train_config.get("dataset")
        if dataset and dataset not in EVAL_DATASETS:
            info.datasets = []  # generated or uploaded problems: no Hub dataset to name
        info.description = f"Trained in the mathtutor run `{run.name}`."
    evaluation = newest_evaluation(local)
    if evaluation is not None:
        info.evaluations = [evaluation]
    return info


def _run_dir(adapter: LocalAdapter) -> Path | None:
    """The training run directory an adapter came from, if any."""
    if adapter.source.startswith("train:"):
        run = store.get_train_run(adapter.source.removeprefix("train:"))
        if run is not None and Path(run["run_dir"]).is_dir():
            return Path(run["run_dir"])
    parent = adapter.path.parent
    if adapter.path.name == "adapter" and (parent / "config.yaml").is_file():
        return parent
    return None


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        loaded = yaml.safe_load(path.read_text("utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is not valid YAML: {error}") from error
    return loaded if isinstance(loaded, dict) else {}


def training_summary(metrics_path: Path) -> TrainingSummary | None:
    """The end of a run's curve from metrics.jsonl (training/callbacks.py rows); None if empty."""
    rows = []
    if metrics_path.is_file():
        for line in metrics_path.read_text("utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a crash
                continue
            if isinstance(row, dict):
                rows.append(row)
    if not rows:
        return None

    def last(key: str) -> float | None:
        return next(
            (row[key] for row in reversed(rows) if isinstance(row.get(key), (int, float))), None
        )

    end = next((row for row in reversed(rows) if row.get("event") == "end"), {})
    return TrainingSummary(
        steps=int(last("step") or 0),
        final_train_loss=last("loss"),
        final_eval_loss=last("eval_loss"),
        epochs=last("epoch"),
        seconds=end.get("train_runtime") or last("elapsed"),
    )


def newest_evaluation(adapter: LocalAdapter) -> EvalResult | None:
    """Strict/flexible match of the adapter in the newest evaluation run that included it.

    A run names its systems as given (registered name, directory or Hub id) in
    `config["systems"]`; the summary is keyed by `config["labels"]` at the same position.
    """
    aliases = {adapter.name, str(adapter.path)}
    if adapter.source.startswith("hub:"):
        aliases.add(adapter.source.removeprefix("hub:"))
    for run in store.list_eval_runs():
        if not isinstance(run.get("summary"), dict):
            continue
        summary, config = EvalSummary.from_dict(run["summary"]), run.get("config") or {}
        systems = config.get("systems") or []
        labels = config.get("labels") or list(summary.order) or systems
        for position, system in enumerate(systems):
            if system not in aliases and _resolved(system) != adapter.path:
                continue
            label = labels[position] if position < len(labels) else system
            result = _eval_result(summary.systems.get(label), summary, config)
            if result is not None:
                return result
    return None


def _resolved(system: str) -> Path | None:
    path = Path(system).expanduser()
    return path.resolve() if path.is_dir() else None


def _eval_result(
    stats: SystemSummary | None, summary: EvalSummary, config: dict
) -> EvalResult | None:
    if stats is None or stats.strict is None or stats.flexible is None:
        return None
    name = config.get("dataset", "gsm8k")
    dataset, display, subset = EVAL_DATASETS.get(name, (f"mathtutor/{name}", name, "default"))
    return EvalResult(
        strict_match=stats.strict.value,
        flexible_match=stats.flexible.value,
        num_samples=stats.strict.n,
        prompt_format=summary.prompt_format or config.get("prompt_format", "chat"),
        strict_match_stderr=stats.strict.stderr,
        flexible_match_stderr=stats.flexible.stderr,
        dataset=dataset,
        dataset_name=display,
        config=subset,
        split=config.get("split", "test"),
    )
