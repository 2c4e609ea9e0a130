"""GRPO on a tiny model with the exact-match reward: the LoRA weights move.

GRPO learns from reward differences inside a group of completions of one prompt; a random
model never writes a right answer, so every reward is 0 and nothing updates. The fixture
first teaches a tiny model (full SFT, in seconds) to answer "Pick one or two." with `#### 1`
or `#### 2` half the time each; GRPO against the reference 1 then sees groups with both.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from mathtutor import store
from training import train
from training.config import TrainConfig


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def picker(tiny_model_dir, tmp_path_factory):
    """(model dir, upload file): a tiny model that answers '#### 1' or '#### 2'."""
    data = tmp_path_factory.mktemp("pick") / "pick.jsonl"
    data.write_text(
        "".join(
            json.dumps({"question": "Pick one or two.", "answer": str(1 + i % 2)}) + "\n"
            for i in range(64)
        )
    )
    config = TrainConfig(
        model=str(tiny_model_dir), finetune="full", dataset="upload", dataset_path=str(data),
        prompt_format="qa", val_fraction=0, max_steps=40, batch_size=8, learning_rate=3e-3,
        lr_scheduler="constant", save_steps=1000, logging_steps=10, seed=0,
    )  # fmt: skip
    result = train(config)
    return result.adapter_dir, data


class Snapshot(TrainerCallback):
    def __init__(self):
        self.before = {}

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.before = {
            name.replace(".default", ""): parameter.detach().clone()
            for name, parameter in model.named_parameters()
            if parameter.requires_grad
        }


def test_grpo_two_steps_with_the_exact_match_reward(picker):
    model_dir, data = picker
    config = TrainConfig(
        method="grpo", model=str(model_dir), dataset="upload", dataset_path=str(data),
        prompt_format="qa", val_fraction=0, max_steps=2, batch_size=8, num_generations=4,
        temperature=1.0, max_completion_length=8, learning_rate=1e-2, lora_rank=4,
        save_steps=1000, seed=1,
    )  # fmt: skip
    from training.grpo import train as train_grpo

    snapshot = Snapshot()
    result = train_grpo(config, callbacks=[snapshot])
    assert (result.status, result.global_step) == ("finished", 2)
    rows = [
        json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()
    ]
    logged = [row for row in rows if "reward" in row]
    assert logged and all(0.0 <= row["reward_correctness"] <= 1.0 for row in logged)
    assert any(row["reward_std"] > 0 for row in logged)  # rewards varied within groups
    saved = load_file(result.adapter_dir / "adapter_model.safetensors")
    moved = [
        name for name, before in snapshot.before.items() if not torch.equal(before, saved[name])
    ]
    assert len(moved) == len(snapshot.before)
    assert store.get_train_run(result.run_id)["status"] == "finished"
    assert "num_generations" in (result.run_dir / "README.md").read_text()


def test_grpo_refuses_groups_that_do_not_divide_the_batch():
    with pytest.raises(
        ValueError, match="^num_generations: batch_size x gradient_accumulation_steps = 6"
    ):
        TrainConfig(method="grpo", batch_size=6, num_generations=4)
