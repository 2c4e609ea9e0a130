"""SFT on the tiny model, in process: parameters change, the adapter loads and changes outputs,
runs are reproducible, Stop saves a usable adapter and Resume continues, bad data fails cleanly."""

from __future__ import annotations

import json
import math
import resource
import signal
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from mathtutor import store
from mathtutor.generate import GenerationSettings, generate_batch
from tests.conftest import tiny_train_config
from training import runs
from training.config import TrainConfig
from training.sft import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_config(model_dir, **changes) -> TrainConfig:
    """The shared tiny config, with a learning rate that moves the weights in 2 steps."""
    return tiny_train_config(model_dir, **{"lora_alpha": 8, "learning_rate": 5e-3, **changes})


class Snapshot(TrainerCallback):
    """Copies the trainable parameters when training starts."""

    def __init__(self):
        self.before = {}

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.before = {
            name: parameter.detach().clone()
            for name, parameter in model.named_parameters()
            if parameter.requires_grad
        }


def losses(run_dir) -> list[float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [row["loss"] for row in rows if "loss" in row]


def test_two_steps_change_lora_weights_and_write_a_loadable_adapter(tiny_model_dir, tiny_loaded):
    snapshot = Snapshot()
    result = train(tiny_config(tiny_model_dir, prompt_format="chat"), callbacks=[snapshot])
    assert (result.status, result.global_step) == ("finished", 2)
    saved = load_file(result.adapter_dir / "adapter_model.safetensors")
    assert saved and all("lora_" in name for name in saved)
    changed = [
        name
        for name, before in snapshot.before.items()
        if not torch.equal(before, saved[name.replace(".default", "")])
    ]
    assert len(changed) == len(snapshot.before)  # every LoRA matrix moved
    # the run directory holds what the app reads
    for name in ("config.yaml", "metrics.jsonl", "log.txt", "README.md"):
        assert (result.run_dir / name).is_file(), name
    assert not list(result.run_dir.glob("adapter.tmp-*"))
    assert "library_name: peft" in (result.run_dir / "README.md").read_text()
    assert len(losses(result.run_dir)) == 2
    assert store.get_train_run(result.run_id)["status"] == "finished"
    assert result.run_id in [adapter["name"] for adapter in store.list_adapters()]
    # the adapter loads on the shared base and changes what the model computes
    name = tiny_loaded.add_adapter(result.adapter_dir)
    model = tiny_loaded.model
    inputs = tiny_loaded.tokenizer("Q: 2 + 3?\nA:", return_tensors="pt")
    model.set_adapter(name)
    with torch.no_grad():
        tuned = model(**inputs).logits
        with model.disable_adapter():
            base = model(**inputs).logits
    assert (tuned - base).abs().max() > 1e-3
    completions = generate_batch(
        tiny_loaded, ["Q: 2 + 3?\nA:"] * 2, ["base", name], GenerationSettings(max_new_tokens=4)
    )
    assert all(c.num_tokens == 4 for c in completions)  # generation runs with it


def test_same_seed_same_loss_curve(tiny_model_dir):
    config = tiny_config(
        tiny_model_dir, max_steps=3, lr_scheduler="cosine_with_min_lr", min_lr=1e-4
    )
    first, second = train(config), train(config)
    assert losses(first.run_dir) == losses(second.run_dir)
    other = train(config.replace(seed=4))
    assert losses(other.run_dir) != losses(first.run_dir)
    rates = [row["lr"] for row in runs.read_metrics(first.run_id) if "lr" in row]
    assert rates[0] == pytest.approx(5e-3) and min(rates) >= 1e-4  # cosine floor at min_lr


def test_padding_free_batches_give_the_padded_loss(tiny_model_dir):
    """Padding-free rows are one sequence with restarting position ids: no attention leaks."""
    config = tiny_config(tiny_model_dir, max_steps=1, learning_rate=1e-4)
    padded = losses(train(config).run_dir)
    flat = losses(train(config.replace(padding_free=True)).run_dir)
    assert flat[0] == pytest.approx(padded[0], rel=1e-4)


def test_stop_during_the_first_step_then_resume(tiny_model_dir, tiny_loaded):
    class StopInFirstStep(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 0:  # the user presses Stop while step 1 runs
                (run_dir_of(args) / "STOP").write_text("now")

    def run_dir_of(args):
        from pathlib import Path

        return Path(args.output_dir).parent

    config = tiny_config(tiny_model_dir, max_steps=4)
    stopped = train(config, callbacks=[StopInFirstStep()])
    assert (stopped.status, stopped.global_step) == ("stopped", 1)
    assert store.get_train_run(stopped.run_id)["status"] == "stopped"
    assert runs.last_checkpoint(stopped.run_dir).name == "checkpoint-1"
    tiny_loaded.add_adapter(stopped.adapter_dir)  # usable as it is
    (stopped.run_dir / "STOP").unlink()
    resumed = train(config, run_dir=stopped.run_dir, resume=True)
    assert (resumed.status, resumed.global_step) == ("finished", 4)
    steps = [row["step"] for row in runs.read_metrics(stopped.run_id) if "loss" in row]
    assert steps == [1, 2, 3, 4]  # continued from the checkpoint, not from step 0
    assert store.get_train_run(stopped.run_id)["status"] == "finished"


def test_a_dataset_with_no_valid_rows_fails_naming_the_rows(tiny_model_dir, tmp_path):
    upload = tmp_path / "broken.jsonl"
    upload.write_text(
        '{"question": "How many?", "answer": "lots"}\n{"question": "", "answer": "3"}\n'
    )
    config = tiny_config(tiny_model_dir, dataset="upload", dataset_path=str(upload))
    with pytest.raises(ValueError, match=r"broken.jsonl: 2 invalid row\(s\)") as error:
        runs.check_launchable(config)  # refused before launch...
    assert "line 1" in str(error.value) and "line 2" in str(error.value)
    before = sorted(runs.runs_root().iterdir()), store.list_train_runs()
    with pytest.raises(ValueError, match="invalid row"):
        train(config)  # ...and a run started anyway is refused before it makes anything
    assert (sorted(runs.runs_root().iterdir()), store.list_train_runs()) == before


def test_sequences_too_short_for_any_completion_are_refused(tiny_model_dir):
    with pytest.raises(ValueError, match="max_seq_length: 16 tokens leave no completion"):
        train(tiny_config(tiny_model_dir, max_seq_length=16))


def test_a_failed_adapter_write_keeps_the_previous_adapter(tiny_model_dir):
    """A write error while saving (a per-file size limit stands in for a full disk)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.lifecycle import Setup, save_adapter

    config = tiny_config(tiny_model_dir)
    result = train(config)
    adapter = result.adapter_dir / "adapter_model.safetensors"
    before = adapter.read_bytes()
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir), result.adapter_dir, is_trainable=True
    )
    setup = Setup(
        model, AutoTokenizer.from_pretrained(tiny_model_dir), None, "cpu", None, "tiny", []
    )
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (16_000, hard))  # the weights are ~32 kB
    try:
        with pytest.raises(
            OSError, match=r"could not save the adapter to .*adapter: .*File too large"
        ):
            save_adapter(SimpleNamespace(model=model), config, result.run_dir, setup)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)
    assert adapter.read_bytes() == before  # the finished adapter is untouched
    assert sorted(p.name for p in result.run_dir.glob("adapter*")) == ["adapter"]


def test_early_stopping_ends_the_run_when_eval_loss_stops_improving(tiny_model_dir):
    # a learning rate of 1e-12 leaves the eval loss unchanged: no improvement after step 1
    config = tiny_config(
        tiny_model_dir, val_fraction=0.25, eval_steps=1, early_stopping_patience=1,
        learning_rate=1e-12, max_steps=20, save_steps=1,
    )  # fmt: skip
    result = train(config)
    assert (result.status, result.global_step) == ("finished", 2)
    evals = [row["eval_loss"] for row in runs.read_metrics(result.run_id) if "eval_loss" in row]
    assert len(evals) == 2 and evals[0] == pytest.approx(evals[1])


def test_full_fine_tuning_saves_a_model_directory(tiny_model_dir):
    result = train(tiny_config(tiny_model_dir, finetune="full", learning_rate=1e-3))
    assert result.adapter_dir.name == "model"
    assert (result.adapter_dir / "model.safetensors").is_file()
    assert (result.adapter_dir / "tokenizer.json").is_file()


def test_qlora_trains_on_cpu(tiny_model_dir):
    """bitsandbytes 0.50 runs NF4 on CPU: the QLoRA path is exercised without a GPU."""
    result = train(tiny_config(tiny_model_dir, finetune="qlora", precision="bf16"))
    assert result.status == "finished"
    assert any("QLoRA" in note for note in result.notes)
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()


def test_a_run_directory_is_reused_only_by_resume_and_finished_runs_keep_few_checkpoints(
    tiny_model_dir,
):
    config = tiny_config(tiny_model_dir, max_steps=3, save_steps=1, keep_checkpoints=2)
    first = train(config)
    names = sorted(path.name for path in (first.run_dir / "checkpoints").glob("checkpoint-*"))
    assert names == ["checkpoint-2", "checkpoint-3"]  # keep_checkpoints=2 of three saved
    metrics = (first.run_dir / "metrics.jsonl").read_text()
    saved_config = (first.run_dir / "config.yaml").read_text()
    with pytest.raises(
        ValueError, match=r"already exists \(finished\); choose another id or resume"
    ):
        train(tiny_config(tiny_model_dir, max_steps=5), run_dir=first.run_dir)
    with pytest.raises(ValueError, match=r"last checkpoint is step 3 of 3, nothing is left"):
        train(config, run_dir=first.run_dir, resume=True)  # not "step 4 of 3"
    with pytest.raises(ValueError, match="already finished"):
        runs.resume(first.run_id)
    assert store.get_train_run(first.run_id)["status"] == "finished"  # refused, not "failed"
    assert (first.run_dir / "metrics.jsonl").read_text() == metrics  # one curve, untouched
    assert (first.run_dir / "config.yaml").read_text() == saved_config

    none_kept = train(tiny_config(tiny_model_dir, save_steps=1, keep_checkpoints=0))
    assert list((none_kept.run_dir / "checkpoints").glob("checkpoint-*")) == []
    assert (none_kept.adapter_dir / "adapter_model.safetensors").is_file()  # always stays
    with pytest.raises(ValueError, match="keep_checkpoints: must be at least 0"):
        tiny_config(tiny_model_dir, keep_checkpoints=-1)


def test_leftovers_of_failed_calls_are_removed(tiny_model_dir):
    import os
    import time

    from mathtutor import locks

    root = runs.runs_root()
    stale = root / ".device-stale.lock"
    stale.write_text("")  # what a killed run leaves
    held_path = root / ".device-held.lock"
    held = locks.try_lock(held_path)  # a live holder's lock stays
    ghost, fresh = root / "ghost-run", root / "fresh-run"
    for directory in (ghost, fresh):
        directory.mkdir()
        (directory / "metrics.jsonl").touch()
    old = time.time() - 3600
    os.utime(ghost, (old, old))
    kept = train(tiny_config(tiny_model_dir))  # a real run stays, whatever its age
    os.utime(kept.run_dir, (old, old))
    try:
        removed = runs.remove_leftovers()
        assert sorted(path.name for path in removed) == [".device-stale.lock", "ghost-run"]
        assert held_path.exists() and fresh.is_dir() and kept.run_dir.is_dir()
    finally:
        locks.release(held, held_path)
    with pytest.raises(ValueError, match="'fresh-run' already exists; choose another id"):
        runs.create_run(tiny_config(tiny_model_dir), "fresh-run")  # a directory with files


def test_bf16_mixed_precision_trains_on_cpu_and_is_recorded(tiny_model_dir, monkeypatch):
    """trl/accelerate `bf16=True` on a CPU (autocast over fp32 master weights); `auto`
    resolves to the dtype this machine computes in, and config.yaml and the card say which."""
    import yaml

    from training.lifecycle import train_dtype

    monkeypatch.setenv("MATHTUTOR_DTYPE", "bfloat16")  # what auto picks on an AMX/BF16 CPU
    config = tiny_config(tiny_model_dir)
    assert config.precision == "auto" and train_dtype(config, "cpu") == "bfloat16"
    result = train(config)
    assert result.status == "finished" and result.train_loss is not None
    assert math.isfinite(result.train_loss)
    saved = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert saved["precision"] == "bfloat16"
    assert "precision: bfloat16 on cpu (auto)" in (result.run_dir / "log.txt").read_text()
    card = (result.adapter_dir / "README.md").read_text()
    assert "bfloat16" in card
    monkeypatch.setenv("MATHTUTOR_DTYPE", "float32")
    assert train_dtype(config, "cpu") == "float32"
    with pytest.raises(ValueError, match="precision: dtype float16 needs a GPU"):
        train_dtype(tiny_config(tiny_model_dir, precision="fp16"), "cpu")


def test_the_lm_head_scores_only_labelled_positions_with_the_same_loss(tiny_model_dir, monkeypatch):
    """On a CPU trl would project every position (prompt, padding) through the LM head; the
    run scores only the completion tokens, and the loss is the all-positions loss."""
    import trl.trainer.utils as trl_utils

    rows: list[tuple[int, int]] = []  # (rows projected, positions in the batch)
    chunked = trl_utils._ChunkedLogProbFunction

    class Spy:
        @staticmethod
        def apply(hidden, weight, bias, labels, *rest):
            rows.append(hidden.shape[0])
            return chunked.apply(hidden, weight, bias, labels, *rest)

    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", Spy)
    config = tiny_config(tiny_model_dir, max_steps=1, learning_rate=1e-4, prompt_format="qa")
    every = trl_utils._use_triton

    def trls_cpu_choice(device) -> bool:
        return False

    trls_cpu_choice.labelled_only = True  # marked as switched, so the run leaves it
    monkeypatch.setattr(trl_utils, "_use_triton", trls_cpu_choice)
    all_positions = losses(train(config).run_dir)
    projected_all = rows.pop()
    monkeypatch.setattr(trl_utils, "_use_triton", every)
    labelled = losses(train(config).run_dir)
    projected_labelled = rows.pop()
    assert labelled[0] == pytest.approx(all_positions[0], rel=1e-5)
    assert 0 < projected_labelled < projected_all / 2  # qa prompts are longer than answers
