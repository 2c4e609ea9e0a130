"""Task accuracy during training (issue 13): rows at step 0 and every k steps that equal a
separate `evaluate()` of the same checkpoint on the same problems, and keep_best_by=accuracy."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from mathtutor.evaluate import EvalConfig, evaluate
from training import runs
from training.config import TrainConfig
from training.data import load_eval_problems
from training.sft import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def accuracy_config(model_dir, **changes) -> TrainConfig:
    values = dict(
        model=str(model_dir), dataset="arithmetic", difficulty="easy", num_train_samples=16,
        val_fraction=0.0, prompt_format="qa", max_steps=4, batch_size=2, lora_rank=4,
        lora_alpha=8, learning_rate=5e-2, max_seq_length=512, save_steps=2, keep_checkpoints=10,
        seed=3, eval_every=2, eval_num_problems=4, eval_max_new_tokens=12, eval_max_share=1.0,
    )  # fmt: skip
    values.update(changes)
    return TrainConfig(**values)


def accuracy_rows(run_dir) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [row for row in rows if row.get("event") == "accuracy"]


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_accuracy_rows_equal_a_separate_evaluation(tiny_model_dir, precision):
    """Also under bf16 mixed precision: the evaluation bypasses accelerate's autocast and
    scores the fp32 master weights, as a separate fp32 evaluation of the checkpoint does."""
    config = accuracy_config(tiny_model_dir, precision=precision)
    result = train(config)
    rows = accuracy_rows(result.run_dir)
    assert [row["step"] for row in rows] == [0, 2, 4]
    for row in rows:
        assert row["eval_n"] == 4 and row["dtype"] == "float32"
        for key in ("accuracy", "strict", "flexible", "format"):
            assert 0.0 <= row[key] <= 1.0 and f"{key}_stderr" in row
    problems = load_eval_problems(config)
    completions = {}
    for row in rows:
        step = row["step"]
        system = "base" if step == 0 else str(result.run_dir / "checkpoints" / f"checkpoint-{step}")
        report = evaluate(
            EvalConfig(
                model=str(tiny_model_dir), systems=[system], dataset="arithmetic",
                difficulty="easy", split="test", num_samples=4, seed=0, prompt_format="qa",
                max_new_tokens=12, dtype="float32",
            )
        )  # fmt: skip
        stats = report.summary.to_dict()["systems"][report.summary.order[0]]
        assert stats["n"] == row["eval_n"]
        assert stats["accuracy"]["value"] == row["accuracy"]
        assert stats["strict"]["value"] == row["strict"]
        assert stats["flexible"]["value"] == row["flexible"]
        assert stats["format_rate"] == row["format"]
        # the same answers, word for word, as the training-time evaluation wrote them
        from mathtutor import store

        separate = {r["problem_id"]: r["completion"] for r in store.load_records(report.run_id)}
        written = result.run_dir / "accuracy" / f"step-{step:06d}.jsonl"
        during = {
            r["problem_id"]: r["completion"]
            for r in map(json.loads, written.read_text().splitlines())
        }
        assert during == separate
        assert set(during) == {p.id for p in problems}
        completions[step] = during
    # training changed what the model says (else the comparison above proves little)
    assert completions[0] != completions[4]
    summary = [
        json.loads(line)
        for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()
        if '"accuracy_summary"' in line
    ]
    assert summary and 0 < summary[0]["eval_share"] < 1 and summary[0]["evaluations"] == 3


def test_keep_best_by_accuracy_keeps_the_best_step(tiny_model_dir, monkeypatch):
    """The score is made to peak at step 2, so the adapter must be step 2's weights."""
    import training.callbacks as callbacks

    real = callbacks.score_model
    calls = {"count": 0}
    peak = {0: 0.25, 2: 0.75, 4: 0.5, 6: 0.5}

    def scripted(model, setup, config, problems):
        result = real(model, setup, config, problems)
        step = 2 * calls["count"]
        calls["count"] += 1
        result["accuracy"] = {"value": peak[step], "stderr": 0.1, "n": len(problems)}
        return result

    monkeypatch.setattr(callbacks, "score_model", scripted)
    config = accuracy_config(tiny_model_dir, max_steps=6, keep_best_by="accuracy")
    result = train(config)
    rows = accuracy_rows(result.run_dir)
    assert [(row["step"], row["accuracy"]) for row in rows] == sorted(peak.items())
    assert runs.best_accuracy(rows)["step"] == 2
    assert json.loads((result.run_dir / "best.json").read_text())["step"] == 2
    adapter = load_file(result.adapter_dir / "adapter_model.safetensors")
    step2 = load_file(result.run_dir / "checkpoints" / "checkpoint-2" / "adapter_model.safetensors")
    last = load_file(result.run_dir / "checkpoints" / "checkpoint-6" / "adapter_model.safetensors")
    assert adapter.keys() == step2.keys()
    assert all(torch.equal(adapter[key], step2[key]) for key in adapter)
    assert not all(torch.equal(adapter[key], last[key]) for key in adapter)
    card = (result.adapter_dir / "README.md").read_text()
    assert "75.0% ± 10.0, n = 4 at step 2" in card and "holds the weights of that step" in card


def test_early_stopping_on_accuracy(tiny_model_dir, monkeypatch):
    import training.callbacks as callbacks

    real = callbacks.score_model

    def flat(model, setup, config, problems):
        result = real(model, setup, config, problems)
        result["accuracy"] = {"value": 0.5, "stderr": 0.1, "n": len(problems)}
        return result

    monkeypatch.setattr(callbacks, "score_model", flat)
    config = accuracy_config(
        tiny_model_dir, max_steps=10, eval_every=1, eval_num_problems=1, eval_max_new_tokens=2,
        keep_best_by="accuracy", early_stopping_patience=2, save_steps=100,
    )  # fmt: skip
    result = train(config)
    assert result.global_step == 2  # step 0 best, no better at steps 1 and 2


def test_accuracy_settings_are_checked():
    with pytest.raises(ValueError, match="keep_best_by: 'accuracy' needs eval_every"):
        TrainConfig(keep_best_by="accuracy")
    with pytest.raises(ValueError, match="eval_every: 1 means 1001 evaluations"):
        TrainConfig(max_steps=1000, eval_every=1)
    with pytest.raises(ValueError, match="eval_path: required"):
        TrainConfig(eval_every=5, eval_problems="upload")
    with pytest.raises(ValueError, match="keep_best_by: 'loss' needs a validation split"):
        TrainConfig(keep_best_by="loss", val_fraction=0)
    with pytest.raises(ValueError, match="eval_max_share"):
        TrainConfig(eval_max_share=0)
    config = TrainConfig(dataset="two-step", difficulty="easy,medium", eval_num_problems=5)
    problems = load_eval_problems(config)
    assert len(problems) == 5 and all("test" in p.id or p.id for p in problems)
    with pytest.raises(ValueError, match="eval_problems: "):
        load_eval_problems(TrainConfig(eval_problems="upload", eval_path="/nonexistent.jsonl"))


def test_keep_best_by_loss_keeps_the_lowest_eval_loss_checkpoint(tiny_model_dir):
    config = accuracy_config(
        tiny_model_dir, eval_every=0, val_fraction=0.25, eval_steps=1, save_steps=1, max_steps=3,
        keep_best_by="loss", learning_rate=0.3,
    )  # fmt: skip
    result = train(config)
    rows = [
        json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()
    ]
    losses = {row["step"]: row["eval_loss"] for row in rows if "eval_loss" in row}
    best = min(losses, key=losses.get)
    assert best < 3  # lr 0.3 overshoots: the best checkpoint is not the last one
    kept = load_file(result.adapter_dir / "adapter_model.safetensors")
    chosen = load_file(
        result.run_dir / "checkpoints" / f"checkpoint-{best}" / "adapter_model.safetensors"
    )
    assert all(torch.equal(kept[key], chosen[key]) for key in kept)


def test_the_evaluation_runs_outside_accelerates_autocast(tiny_model_dir):
    """Under bf16 mixed precision accelerate wraps the model's forward in autocast; the
    training-time evaluation must score the weights without it (else its numbers are those
    of bf16 matmuls, and differ from a separate evaluation of the checkpoint)."""
    from types import SimpleNamespace

    from accelerate import Accelerator
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.callbacks import score_model

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir), LoraConfig(r=4, task_type="CAUSAL_LM")
    )
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)  # earlier tests set another one
    try:
        model = Accelerator(cpu=True, mixed_precision="bf16").prepare_model(model)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    seen: list[bool] = []
    layer = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
    layer.register_forward_pre_hook(lambda *_: seen.append(torch.is_autocast_enabled("cpu")))
    ids = torch.tensor([[1, 2, 3]])
    model(input_ids=ids)
    assert seen == [True], "accelerate no longer wraps forward: this test proves nothing"
    seen.clear()
    config = accuracy_config(tiny_model_dir, eval_max_new_tokens=4)
    setup = SimpleNamespace(
        base_model=str(tiny_model_dir), tokenizer=AutoTokenizer.from_pretrained(tiny_model_dir)
    )
    result = score_model(model, setup, config, load_eval_problems(config)[:2])
    assert result["accuracy"]["n"] == 2
    assert seen and not any(seen), "the evaluation ran under autocast"
    model(input_ids=ids)
    assert seen[-1], "the training forward lost its autocast"
