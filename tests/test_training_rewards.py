"""GRPO rewards: correctness through the project's grader, answer format by style."""

from __future__ import annotations

from training.rewards import completion_text, correctness_reward, format_reward, format_score


def test_correctness_uses_the_grader_on_text_and_chat_completions():
    completions = [
        "48 / 2 = 24 clips in May.\n48 + 24 = 72\n#### 72",
        [{"role": "assistant", "content": "So the total is $\\boxed{72}$."}],
        "48 + 24 = 73\n#### 73",
        "The answer is 72.0 clips.",
        "",
    ]
    rewards = correctness_reward(["q"] * 5, completions, answer=["72"] * 5)
    assert rewards == [1.0, 1.0, 0.0, 1.0, 0.0]


def test_correctness_accepts_gsm8k_reference_solutions():
    assert correctness_reward(["q"], ["#### 1,250"], answer=["5 * 250 = 1250\n#### 1250"]) == [1.0]


def test_format_reward_by_answer_style():
    completions = [
        "3 + 4 = 7\n#### 7",
        "#### 7\nQuestion: what next?",
        "seven",
        "Therefore the answer is $\\boxed{7}$.",
        "\\boxed{x + 1}",
    ]
    styles = ["hash", "hash", "hash", "boxed", "boxed"]
    assert format_reward(["q"] * 5, completions, answer_style=styles) == [1.0, 0.5, 0.0, 1.0, 0.5]
    assert format_score("#### 7", "boxed") == 0.0


def test_rewards_vary_within_a_group():
    """GRPO learns only from differences inside a group of completions of one prompt."""
    group = ["#### 1", "#### 2", "#### 1", "1"]
    correct = correctness_reward(["q"] * 4, group, answer=["1"] * 4)
    formatted = format_reward(["q"] * 4, group, answer_style=["hash"] * 4)
    assert len(set(correct)) > 1 and len(set(formatted)) > 1


def test_completion_text_handles_every_shape():
    assert completion_text("x") == "x"
    assert completion_text([{"role": "assistant", "content": None}]) == ""
    assert completion_text(None) == ""
