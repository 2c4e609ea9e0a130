"""GRPO rewards: correctness through the project's grader, answer format by style."""

from __future__ import annotations

import pytest

from mathtutor.data import Problem
from mathtutor.evaluate import _record
from mathtutor.generate import Completion
from mathtutor.prompts import FORMATS
from training.rewards import completion_text, correctness_reward, format_reward, format_score

AGREEMENT_COMPLETIONS = [
    "48 / 2 = 24 clips in May.\n48 + 24 = 72\n#### 72",
    "So the total is $\\boxed{72}$.",
    "The answer is 72.",
    "48 + 24 = 72 clips altogether.",
    "A: 72",
    "#### 71\nActually it is \\boxed{72}.",
    "#### 72\nso \\boxed{71}",
    "48 + 24 = 73\n#### 73",
    "\\boxed{72.0}",
    "",
]


def test_correctness_uses_the_grader_on_text_and_chat_completions():
    completions = [
        "48 / 2 = 24 clips in May.\n48 + 24 = 72\n#### 72",
        [{"role": "assistant", "content": "So the total is $\\boxed{72}$."}],
        "48 + 24 = 73\n#### 73",
        "The answer is 72.0 clips.",
        "",
    ]
    rewards = correctness_reward(["q"] * 5, completions, ["72"] * 5, ["chat"] * 5)
    assert rewards == [1.0, 1.0, 0.0, 1.0, 0.0]


@pytest.mark.parametrize("prompt_format", sorted(FORMATS))
def test_correctness_reward_equals_the_evaluators_verdict(prompt_format):
    """GRPO optimises what Evaluate measures: the same grader for every prompt format."""
    problem = Problem("p-0", "How many clips?", "72", "48 + 24 = <<48+24=72>>72\n#### 72")
    rewards = correctness_reward(
        ["q"] * len(AGREEMENT_COMPLETIONS),
        AGREEMENT_COMPLETIONS,
        answer=[problem.answer] * len(AGREEMENT_COMPLETIONS),
        prompt_format=[prompt_format] * len(AGREEMENT_COMPLETIONS),
    )
    verdicts = [
        _record(problem, 0, "base", [Completion(text, 5, "eos", 0.0)], prompt_format, 0.0)[
            "is_correct"
        ]
        for text in AGREEMENT_COMPLETIONS
    ]
    assert rewards == [1.0 if verdict else 0.0 for verdict in verdicts]
    assert 0 < sum(rewards) < len(rewards)  # the set separates right from wrong


def test_boxed_format_rewards_only_boxed_answers():
    rewards = correctness_reward(
        ["q"] * 2, ["The answer is 72.", "\\boxed{72}"], ["72"] * 2, ["qwen-boxed"] * 2
    )
    assert rewards == [0.0, 1.0]


def test_correctness_accepts_gsm8k_reference_solutions():
    reference = ["5 * 250 = 1250\n#### 1250"]
    assert correctness_reward(["q"], ["#### 1,250"], reference, ["chat"]) == [1.0]


def test_format_reward_by_the_formats_answer_style():
    completions = [
        "3 + 4 = 7\n#### 7",
        "#### 7\nQuestion: what next?",
        "seven",
        "Therefore the answer is $\\boxed{7}$.",
        "\\boxed{x + 1}",
    ]
    formats = ["chat", "socratic", "gemma-oneshot", "qwen-boxed", "qwen-boxed"]
    assert format_reward(["q"] * 5, completions, prompt_format=formats) == [1.0, 0.5, 0.0, 1.0, 0.5]
    assert format_score("#### 7", "boxed") == 0.0


def test_rewards_vary_within_a_group():
    """GRPO learns only from differences inside a group of completions of one prompt."""
    group = ["#### 1", "#### 2", "#### 1", "1"]
    correct = correctness_reward(["q"] * 4, group, ["1"] * 4, ["chat"] * 4)
    formatted = format_reward(["q"] * 4, group, prompt_format=["chat"] * 4)
    assert len(set(correct)) > 1 and len(set(formatted)) > 1


def test_completion_text_handles_every_shape():
    assert completion_text("x") == "x"
    assert completion_text([{"role": "assistant", "content": None}]) == ""
    assert completion_text(None) == ""


def test_docstring_examples_hold():
    import doctest

    from training import rewards

    assert doctest.testmod(rewards).failed == 0
