"""Evaluate's vLLM backend: per-sample seeds and the calculator, on vLLM's API.

`vllm_generate` uses a small part of vLLM's API (`LLM.generate` with one `SamplingParams` per
prompt, and each output's text, token ids, finish and stop reason). Where vLLM is absent
(every CPU machine) these tests run against `FakeLLM` below, which implements that part as
vLLM documents it: stop strings end the text (kept only with `include_stop_str_in_output`),
`stop_reason` is the matched string or None, `finish_reason` is "length" at `max_tokens`.
Its "model" is a function of the prompt and the row's seed; one character is one token.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from mathtutor.answers import extract_answer
from mathtutor.evaluate import vllm_generate
from mathtutor.generate import GenerationSettings

HAS_VLLM = importlib.util.find_spec("vllm") is not None


@dataclass
class FakeSamplingParams:
    """The `vllm.SamplingParams` arguments mathtutor passes."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 16
    stop: list[str] = field(default_factory=list)
    include_stop_str_in_output: bool = False
    seed: int | None = None


@dataclass
class FakeOutput:
    text: str
    token_ids: list[int]
    finish_reason: str
    stop_reason: str | None


@dataclass
class FakeRequestOutput:
    prompt: str
    outputs: list[FakeOutput]


class FakeLLM:
    """`vllm.LLM.generate` over a scripted model: `model(prompt, seed) -> continuation`."""

    def __init__(self, model: Callable[[str, int | None], str]) -> None:
        self.model = model
        self.calls: list[tuple[list[str], list[FakeSamplingParams], list]] = []

    def generate(self, prompts, sampling_params, lora_request=None, use_tqdm=True):
        params = (
            sampling_params
            if isinstance(sampling_params, list)
            else [sampling_params] * len(prompts)
        )
        requests = lora_request if isinstance(lora_request, list) else [lora_request] * len(prompts)
        self.calls.append((list(prompts), list(params), list(requests)))
        return [self._one(prompt, p) for prompt, p in zip(prompts, params, strict=True)]

    def _one(self, prompt: str, params: FakeSamplingParams) -> FakeRequestOutput:
        text = self.model(prompt, params.seed)
        hits = [(text.find(s), s) for s in params.stop if s in text]
        stop_at, matched = min(hits) if hits else (None, None)
        end = len(text) if stop_at is None else stop_at + len(matched)
        if end > params.max_tokens:
            text, finish, matched = text[: params.max_tokens], "length", None
        elif matched is not None:
            keep = end if params.include_stop_str_in_output else stop_at
            text, finish = text[:keep], "stop"
        else:
            finish = "stop"  # EOS: "stop" with no stop_reason
        output = FakeOutput(text, list(range(len(text))), finish, matched)
        return FakeRequestOutput(prompt, [output])


def test_every_vote_gets_its_own_seed():
    """maj@k over k copies of one sample is one sample: the k votes must differ."""
    llm = FakeLLM(lambda prompt, seed: f"I guess.\n#### {seed % 7}")
    settings = GenerationSettings(max_new_tokens=64, temperature=0.7, seed=3)
    completions = vllm_generate(
        llm, ["Q: 1 + 1?\nA:"] * 4, [None] * 4, settings, FakeSamplingParams
    )
    seeds = [p.seed for p in llm.calls[0][1]]
    assert len(set(seeds)) == 4
    assert len({extract_answer(c.text) for c in completions}) == 4
    again = vllm_generate(llm, ["Q: 1 + 1?\nA:"] * 4, [None] * 4, settings, FakeSamplingParams)
    assert [c.text for c in again] == [c.text for c in completions]  # seeded: reproducible


def arithmetic_model(prompt: str, seed: int | None) -> str:
    """Writes 3 * 4 = 13 unless the calculator already wrote the true value."""
    if prompt.endswith("3 * 4 = 12"):
        return " apples.\n#### 12\nQuestion: what next?"
    return "3 * 4 = 13 apples.\n#### 13\nQuestion: what next?"


def test_calculator_inserts_the_exact_value_and_continues():
    settings = GenerationSettings(max_new_tokens=200, stop=("\nQuestion:",), calculator=True)
    llm = FakeLLM(arithmetic_model)
    (completion,) = vllm_generate(llm, ["Q"], ["lora"], settings, FakeSamplingParams)
    assert completion.text == "3 * 4 = 12 apples.\n#### 12"
    assert completion.finish_reason == "stop" and completion.calculator_calls == 1
    assert len(llm.calls) == 2 and llm.calls[1][0] == ["Q3 * 4 = 12"]
    assert llm.calls[1][2] == ["lora"]  # the continuation keeps the row's adapter
    assert llm.calls[1][1][0].max_tokens == 200 - len("3 * 4 =")


def test_without_the_calculator_the_model_text_stands():
    settings = GenerationSettings(max_new_tokens=200, stop=("\nQuestion:",))
    (completion,) = vllm_generate(
        FakeLLM(arithmetic_model), ["Q"], [None], settings, FakeSamplingParams
    )
    assert completion.text == "3 * 4 = 13 apples.\n#### 13"
    assert completion.finish_reason == "stop" and completion.calculator_calls == 0


@pytest.mark.parametrize("calculator", [False, True])
def test_token_limit_and_eos(calculator):
    settings = GenerationSettings(max_new_tokens=5, calculator=calculator)
    (cut,) = vllm_generate(FakeLLM(arithmetic_model), ["Q"], [None], settings, FakeSamplingParams)
    assert (cut.text, cut.finish_reason, cut.num_tokens) == ("3 * 4", "length", 5)
    settings = GenerationSettings(max_new_tokens=50, calculator=calculator)
    done = vllm_generate(
        FakeLLM(lambda p, s: "#### 4"), ["Q"], [None], settings, FakeSamplingParams
    )
    assert (done[0].text, done[0].finish_reason) == ("#### 4", "eos")


@pytest.mark.skipif(not HAS_VLLM, reason="vLLM is not installed (CUDA machines only)")
def test_sampling_params_accepts_what_mathtutor_passes():
    from vllm import SamplingParams

    params = SamplingParams(
        temperature=0.7, top_p=1.0, max_tokens=8, stop=["="],
        include_stop_str_in_output=True, seed=1,
    )  # fmt: skip
    assert params.seed == 1 and params.include_stop_str_in_output
