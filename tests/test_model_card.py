"""Model cards: valid Hub metadata (parsed back with PyYAML and huggingface_hub), honest markdown."""

from __future__ import annotations

import doctest
import re

import pytest
import yaml

from mathtutor import model_card
from mathtutor.model_card import CardInfo, EvalResult, TrainingSummary, render_model_card

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"


def split(text: str) -> tuple[dict, str]:
    assert text.startswith("---\n")
    _, header, body = text.split("---\n", 2)
    return yaml.safe_load(header), body


def full_info() -> CardInfo:
    return CardInfo(
        base_model=SMOL,
        adapter_repo="alice/smollm2-gsm8k-lora",
        recipe="sft-lora",
        hyperparameters={"r": 16, "lora_alpha": 32, "learning_rate": 2e-4, "epochs": 1},
        training=TrainingSummary(
            steps=467, final_train_loss=0.8123, final_eval_loss=0.9011, epochs=1.0
        ),
        evaluations=[
            EvalResult(
                0.415, 0.43, 200, "chat", strict_match_stderr=0.0349, flexible_match_stderr=0.0351
            ),
            EvalResult(
                0.2, 0.355, 200, "qa", strict_match_stderr=0.0284, flexible_match_stderr=0.0339
            ),
        ],
        limitations=["Trained on the socratic config only."],
    )


def test_front_matter_parses_and_model_index_equals_the_inputs():
    info = full_info()
    meta, _ = split(render_model_card(info))

    assert meta["library_name"] == "peft" and meta["base_model"] == SMOL
    assert meta["pipeline_tag"] == "text-generation" and meta["license"] == "apache-2.0"
    assert meta["tags"] == ["mathtutor", "lora", "gsm8k", "smollm2-135m-instruct"]
    assert meta["datasets"] == ["openai/gsm8k"]
    (entry,) = meta["model-index"]
    assert entry["name"] == "smollm2-gsm8k-lora"
    assert len(entry["results"]) == len(info.evaluations)
    for result, expected in zip(entry["results"], info.evaluations, strict=True):
        assert result["task"]["type"] == "text-generation"
        assert result["dataset"] == {
            "name": "GSM8K",
            "type": "openai/gsm8k",
            "config": "main",
            "split": "test",
        }
        strict, flexible = result["metrics"]
        assert (strict["type"], strict["name"], strict["value"]) == (
            "exact_match",
            "strict-match",
            expected.strict_match,
        )
        assert (flexible["name"], flexible["value"]) == (
            "flexible-extract",
            expected.flexible_match,
        )
        assert strict["args"] == {
            "num_samples": expected.num_samples,
            "prompt_format": expected.prompt_format,
            "stderr": expected.strict_match_stderr,
        }
        assert flexible["args"]["stderr"] == expected.flexible_match_stderr


def test_huggingface_hub_reads_the_card():
    from huggingface_hub import ModelCard

    card = ModelCard(render_model_card(full_info()))
    assert card.data.base_model == SMOL and card.data.library_name == "peft"
    results = card.data.eval_results
    assert len(results) == 4  # 2 evaluations x (strict, flexible)
    assert [r.metric_value for r in results] == [0.415, 0.43, 0.2, 0.355]
    assert {r.dataset_type for r in results} == {"openai/gsm8k"}
    assert card.data.model_name == "smollm2-gsm8k-lora"


def test_markdown_has_the_table_training_details_and_limitations():
    _, body = split(render_model_card(full_info()))
    assert (
        "| GSM8K (`openai/gsm8k` main) | test | 200 | `chat` | 41.5% ± 3.5 | 43.0% ± 3.5 |" in body
    )
    assert "| `qa` | 20.0% ± 2.8 | 35.5% ± 3.4 |" in body
    assert "Recipe: `sft-lora`." in body
    assert "It was trained and evaluated with mathtutor on " in body
    assert "467 steps, 1 epochs, final train loss 0.8123, final eval loss 0.9011" in body
    assert "| `learning_rate` | `0.0002` |" in body
    limitations = body.split("## Limitations")[1]
    for phrase in (
        "Arithmetic slips",
        "Multi-step errors",
        "Format failures",
        "Not for grading students",
    ):
        assert phrase in limitations
    assert "- Trained on the socratic config only." in limitations


def test_missing_training_and_eval_leave_a_valid_card():
    from huggingface_hub import ModelCard

    text = render_model_card(CardInfo(base_model=SMOL, adapter_repo="alice/bare"))
    meta, body = split(text)
    assert "model-index" not in meta and meta["base_model"] == SMOL
    assert "## Training" not in body and "## Evaluation" not in body
    assert "## Usage" in body and "## Limitations" in body
    assert "trained" not in body.split("## Usage")[0]  # claims no run it knows nothing of
    assert ModelCard(text).data.eval_results is None


def test_a_local_base_stays_out_of_the_metadata():
    text = render_model_card(
        CardInfo(base_model="/home/alice/models/tiny", adapter_repo="alice/tiny-lora")
    )
    meta, body = split(text)
    assert "base_model" not in meta  # the Hub accepts only model ids there
    assert meta["tags"] == ["mathtutor", "lora", "gsm8k"]
    assert "`/home/alice/models/tiny`" in body


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: EvalResult(41.5, 0.4, 200),
            "EvalResult.strict_match must be a fraction in \\[0, 1\\]",
        ),
        (lambda: EvalResult(0.4, -0.1, 200), "EvalResult.flexible_match must be a fraction"),
        (lambda: EvalResult(0.4, 0.4, 0), "EvalResult.num_samples must be a positive integer"),
        (
            lambda: EvalResult(0.4, 0.4, 10, strict_match_stderr=-1),
            "EvalResult.strict_match_stderr must be >= 0",
        ),
        (lambda: TrainingSummary(steps=-1), "TrainingSummary.steps must be a non-negative integer"),
        (lambda: CardInfo(base_model=" ", adapter_repo="a/b"), "CardInfo.base_model is empty"),
        (lambda: CardInfo(base_model=SMOL, adapter_repo=""), "CardInfo.adapter_repo is empty"),
    ],
)
def test_bad_card_info_names_the_field(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_usage_code_in_the_card_runs(tiny_model_dir, tiny_adapter_dir, capsys):
    # The snippet a reader copies, pointed at the tiny model and a local adapter.
    text = render_model_card(
        CardInfo(base_model=str(tiny_model_dir), adapter_repo=str(tiny_adapter_dir))
    )
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    exec(
        compile(code.replace("max_new_tokens=256", "max_new_tokens=8"), "model-card-usage", "exec"),
        {},
    )
    assert capsys.readouterr().out.strip() != ""


def test_doctests():
    assert doctest.testmod(model_card).failed == 0


def test_training_section_carries_the_best_step_and_its_held_out_accuracy():
    """Issue 13: best step and its accuracy with standard error and n, measured in training."""
    summary = TrainingSummary(
        steps=40, best_step=30, best_accuracy=0.7292, best_accuracy_stderr=0.0648,
        best_accuracy_n=48, adapter_is_best=True,
    )  # fmt: skip
    card = render_model_card(CardInfo(base_model="a/b", adapter_repo="me/x", training=summary))
    assert "Best held-out task accuracy during training: 72.9% ± 6.5, n = 48 at step 30." in card
    assert "This adapter holds the weights of that step." in card
    last = render_model_card(
        CardInfo(base_model="a/b", adapter_repo="me/x", training=TrainingSummary(steps=40))
    )
    assert "Best held-out" not in last
