"""Prompt formats: rendering with and without a chat template, training targets, stop text."""

from __future__ import annotations

import doctest

import pytest

from mathtutor import prompts
from mathtutor.prompts import (
    FORMATS,
    GEMMA_INSTRUCTION,
    NATALIA_ANSWER,
    NATALIA_QUESTION,
    hint_messages,
    messages,
    render,
    stop_sequences,
    target,
    training_example,
)

QUESTION = "Tom has 3 boxes of 12 eggs and breaks 5. How many eggs are left?"
SOLUTION = "Tom has 3 * 12 = <<3*12=36>>36 eggs.\nHe has 36 - 5 = <<36-5=31>>31 left.\n#### 31"

# A ChatML-like template (SmolLM2 / Qwen use this shape) and a Gemma-like one that refuses the
# system role exactly as Gemma's template does.
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
GEMMA_LIKE = (
    "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' "
    "else m['role'] }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def make_tokenizer(chat_template: str | None):
    """A real fast tokenizer built locally: word-level vocabulary, optional chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "<eos>": 1, "<|im_end|>": 2}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<eos>", unk_token="[UNK]"
    )
    tokenizer.chat_template = chat_template
    return tokenizer


@pytest.fixture(scope="module")
def chatml():
    return make_tokenizer(CHATML)


@pytest.fixture(scope="module")
def gemma_like():
    return make_tokenizer(GEMMA_LIKE)


def test_docstring_examples_hold():
    assert doctest.testmod(prompts).failed == 0


def test_format_names_and_styles():
    assert set(FORMATS) == {"chat", "gemma-oneshot", "qa", "qwen-boxed", "socratic", "hle"}
    assert {name: f.answer_style for name, f in FORMATS.items()} == {
        "chat": "hash",
        "gemma-oneshot": "hash",
        "qa": "hash",
        "qwen-boxed": "boxed",
        "socratic": "socratic",
        "hle": "hle",
    }
    for name, prompt_format in FORMATS.items():
        assert prompt_format.name == name
        assert prompt_format.description


def test_unknown_format_lists_the_names():
    with pytest.raises(ValueError, match=r"unknown prompt format 'cot'.*chat, gemma-oneshot, qa"):
        render("cot", QUESTION)


def test_gemma_oneshot_is_the_seed_prompt():
    turns = messages("gemma-oneshot", QUESTION)
    assert turns == [
        {"role": "system", "content": GEMMA_INSTRUCTION},
        {"role": "user", "content": NATALIA_QUESTION},
        {"role": "assistant", "content": NATALIA_ANSWER},
        {"role": "user", "content": QUESTION},
    ]
    assert GEMMA_INSTRUCTION.startswith("You are a helpful math assistant.")
    assert NATALIA_ANSWER.endswith("Altogether, Natalia sold 48 + 24 = 72 clips.\n#### 72")
    assert "Question:" in stop_sequences("gemma-oneshot")


def test_plain_rendering_without_tokenizer():
    assert render("qa", f"  {QUESTION}\n") == f"Q: {QUESTION}\nA:"
    text = render("gemma-oneshot", QUESTION)
    assert text.startswith(GEMMA_INSTRUCTION + "\n\nQuestion: " + NATALIA_QUESTION)
    assert f"Answer: {NATALIA_ANSWER}\n\n" in text
    assert text.endswith(f"Question: {QUESTION}\nAnswer:")
    assert render("chat", QUESTION).endswith(f"\n\nQuestion: {QUESTION}\nAnswer:")
    assert "\\boxed{}" in render("qwen-boxed", QUESTION)


def test_template_is_used_when_the_tokenizer_has_one(chatml):
    expected = (
        f"<|im_start|>system\n{FORMATS['chat'].system}<|im_end|>\n"
        f"<|im_start|>user\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n"
    )
    assert render("chat", QUESTION, chatml) == expected
    # a tokenizer without a template falls back to plain text
    assert render("chat", QUESTION, make_tokenizer(None)) == render("chat", QUESTION)


def test_qa_stays_plain_even_with_a_chat_template(chatml):
    assert render("qa", QUESTION, chatml) == f"Q: {QUESTION}\nA:"
    assert stop_sequences("qa") == ["\nQ:"]


def test_system_role_is_folded_when_the_template_rejects_it(gemma_like):
    with pytest.raises(Exception, match="System role not supported"):
        gemma_like.apply_chat_template(
            messages("gemma-oneshot", QUESTION), tokenize=False, add_generation_prompt=True
        )
    text = render("gemma-oneshot", QUESTION, gemma_like)
    assert text.startswith(f"<start_of_turn>user\n{GEMMA_INSTRUCTION}\n\n{NATALIA_QUESTION}")
    assert f"<start_of_turn>model\n{NATALIA_ANSWER}<end_of_turn>" in text
    assert text.endswith(f"<start_of_turn>user\n{QUESTION}<end_of_turn>\n<start_of_turn>model\n")


def test_hint_turns_fold_their_system_text_for_a_gemma_like_template(gemma_like):
    from mathtutor.prompts import apply_chat, hint_messages

    turns = hint_messages(QUESTION, ["What do you know?"])
    assert turns[0]["role"] == "system"
    text = apply_chat(gemma_like, turns)
    assert text.startswith(f"<start_of_turn>user\n{turns[0]['content']}\n\n")
    for turn in turns[1:]:  # nothing after the folded turn is dropped
        assert turn["content"] in text
    assert text.endswith("<start_of_turn>model\n")


def test_template_errors_other_than_the_system_role_are_not_hidden():
    broken = make_tokenizer("{{ raise_exception('template is broken') }}")
    with pytest.raises(Exception, match="template is broken"):
        render("chat", QUESTION, broken)


def test_target_hash_style_keeps_or_strips_annotations():
    assert target("chat", SOLUTION, "31") == SOLUTION
    stripped = target("gemma-oneshot", SOLUTION, "31", keep_annotations=False)
    assert stripped == "Tom has 3 * 12 = 36 eggs.\nHe has 36 - 5 = 31 left.\n#### 31"
    # the final line is rebuilt from the answer, whatever the solution ended with
    assert target("chat", "36 - 5 = 31\n####   31  ", "31") == "36 - 5 = 31\n#### 31"
    assert target("socratic", "", "31") == "#### 31"


def test_target_boxed_style():
    text = target("qwen-boxed", SOLUTION, "31")
    assert text.endswith("He has 36 - 5 = <<36-5=31>>31 left.\nThe final answer is $\\boxed{31}$.")
    assert "####" not in text


def test_target_needs_an_answer():
    with pytest.raises(ValueError, match="answer is empty"):
        target("chat", SOLUTION, "  ")


def test_stop_sequences_are_copies():
    stops = stop_sequences("gemma-oneshot")
    stops.append("mutated")
    assert "mutated" not in stop_sequences("gemma-oneshot")


def test_hint_messages_ask_for_one_question_without_the_answer():
    turns = hint_messages(QUESTION, ["How many eggs are in 3 boxes?", "  "])
    assert [t["role"] for t in turns] == ["system", "user"]
    assert "ONE next guiding question" in turns[0]["content"]
    assert "do not state the final answer" in turns[0]["content"]
    assert QUESTION in turns[1]["content"]
    assert "1. How many eggs are in 3 boxes?" in turns[1]["content"]
    assert "2." not in turns[1]["content"]  # blank hints are dropped
    assert "(none yet)" in hint_messages(QUESTION, [])[1]["content"]
    with pytest.raises(ValueError, match="question must be non-empty"):
        hint_messages(" ", [])


def test_training_example_plain_and_templated(chatml):
    row = training_example("qa", QUESTION, SOLUTION, "31")
    assert row == {"prompt": f"Q: {QUESTION}\nA:", "completion": " " + SOLUTION}
    row = training_example("chat", QUESTION, SOLUTION, "31", tokenizer=chatml)
    assert row["prompt"] == render("chat", QUESTION, chatml)
    assert row["completion"] == SOLUTION  # no leading space after a template's assistant header


def test_training_example_conversational(gemma_like, chatml):
    row = training_example("qwen-boxed", QUESTION, SOLUTION, "31", conversational=True)
    assert row["prompt"][0]["role"] == "system"
    assert row["completion"] == [
        {"role": "assistant", "content": target("qwen-boxed", SOLUTION, "31")}
    ]
    folded = training_example(
        "gemma-oneshot", QUESTION, SOLUTION, "31", tokenizer=gemma_like, conversational=True
    )
    assert [t["role"] for t in folded["prompt"]] == ["user", "assistant", "user"]
    kept = training_example(
        "gemma-oneshot", QUESTION, SOLUTION, "31", tokenizer=chatml, conversational=True
    )
    assert kept["prompt"][0]["role"] == "system"
    with pytest.raises(ValueError, match="plain completion format"):
        training_example("qa", QUESTION, SOLUTION, "31", conversational=True)


@pytest.mark.slow
def test_trl_renders_conversational_rows_like_render(chatml, gemma_like):
    """trl (imported here: slow) sees the same prompt text the app generates from."""
    from trl.data_utils import apply_chat_template, is_conversational

    for name in ("chat", "gemma-oneshot", "qwen-boxed", "socratic"):
        for tokenizer in (chatml, gemma_like):
            row = training_example(
                name, QUESTION, SOLUTION, "31", tokenizer=tokenizer, conversational=True
            )
            assert is_conversational(row)
            rendered = apply_chat_template(row, tokenizer)
            assert rendered["prompt"] == render(name, QUESTION, tokenizer)
            assert target(name, SOLUTION, "31") in rendered["completion"]
    assert not is_conversational(training_example("qa", QUESTION, SOLUTION, "31"))
