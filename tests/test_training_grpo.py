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

pytestmark = pytest.mark.usefixtures("one_torch_thread")


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


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo", "bnpo"])
def test_grpo_each_loss_type_trains_two_steps(picker, loss_type):
    """trl's loss formulations (issue 13): each one runs two steps and moves the LoRA weights
    (every B matrix: the first step's gradient reaches all of them while A starts random),
    with the options people run now (Dr. GRPO without std scaling, DAPO masking truncation)."""
    model_dir, data = picker
    config = TrainConfig(
        method="grpo", model=str(model_dir), dataset="upload", dataset_path=str(data),
        prompt_format="qa", val_fraction=0, max_steps=2, batch_size=8, num_generations=4,
        temperature=1.0, max_completion_length=8, learning_rate=1e-2, lora_rank=4,
        save_steps=1000, seed=1, loss_type=loss_type,
        scale_rewards="none" if loss_type == "dr_grpo" else "group",
        mask_truncated_completions=loss_type == "dapo", eval_every=2, eval_problems="upload",
        eval_path=str(data), eval_num_problems=2, eval_max_new_tokens=4, eval_max_share=1.0,
    )  # fmt: skip
    from training.grpo import train as train_grpo

    snapshot = Snapshot()
    result = train_grpo(config, callbacks=[snapshot])
    assert (result.status, result.global_step) == ("finished", 2)
    saved = load_file(result.adapter_dir / "adapter_model.safetensors")
    moved = [
        name for name, before in snapshot.before.items() if not torch.equal(before, saved[name])
    ]
    b_matrices = [name for name in snapshot.before if "lora_B" in name]
    assert b_matrices and set(b_matrices) <= set(moved)
    rows = [
        json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()
    ]
    measured = [row for row in rows if row.get("event") == "accuracy"]
    assert [row["step"] for row in measured] == [0, 2]  # task accuracy during GRPO too
    assert all(row["eval_n"] == 2 for row in measured)


def test_grpo_options_reach_trl_and_vllm_is_refused_clearly(picker, monkeypatch):
    import importlib.util

    from training import grpo
    from training.config import check_vllm
    from training.model import Setup

    config = TrainConfig(method="grpo", use_vllm=True)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "vllm" else real_find_spec(name, *a),
    )
    with pytest.raises(ValueError, match="^use_vllm: vLLM is not installed"):
        check_vllm(config)
    setup = Setup(None, None, None, "cpu", None, "base", [])
    with pytest.raises(ValueError, match="^use_vllm: "):
        grpo.vllm_arguments(config, setup)
    assert grpo.vllm_arguments(config.replace(use_vllm=False), setup) == {}
    with pytest.raises(ValueError, match="^use_vllm: generates GRPO completions"):
        TrainConfig(method="sft", use_vllm=True)
    with pytest.raises(ValueError, match="^loss_type: 'ppo' is not one of"):
        TrainConfig(method="grpo", loss_type="ppo")


def test_grpo_reward_uses_the_formats_grader(picker):
    from training.data import grpo_rows
    from training.rewards import correctness_reward

    config = TrainConfig(method="grpo", prompt_format="qwen-boxed", dataset="two-step")
    from mathtutor.data import Problem

    rows = grpo_rows([Problem("p", "What is 3+4?", "7")], config, None)
    assert rows[0]["prompt_format"] == "qwen-boxed"
    # a bare final number is right for "auto" (chat) but not in the boxed format's grader
    assert correctness_reward(["q"], ["so it is 7"], ["7"], ["chat"]) == [1.0]
    assert correctness_reward(["q"], ["so it is 7"], ["7"], [rows[0]["prompt_format"]]) == [0.0]
