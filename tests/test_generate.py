"""The decoding loop on a tiny real model: batching, streaming, stops, adapters, calculator."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

import pytest

from mathtutor.generate import (
    DecodedText,
    GenerationSettings,
    RowState,
    _stop_cut,
    generate_batch,
    stream_completions,
)

PROMPTS = [
    "Q: Tom has 3 apples and buys 4 more. How many?\nA:",
    "Q: 12 * 4 = ?\nA:",
    "Hello",
    "Q: A train goes 60 miles per hour for 1.5 hours. How far does it go?\nA: It goes",
]


def stream_text(loaded, prompt: str, adapter: str = "base", settings=None) -> Iterator[str]:
    """One row's text after every step, as the Tutor tab streams it."""
    for (completion,) in stream_completions(loaded, [prompt], [adapter], settings):
        yield completion.text


def test_settings_validation_names_the_field():
    with pytest.raises(ValueError, match="max_new_tokens"):
        GenerationSettings(max_new_tokens=0)
    with pytest.raises(ValueError, match="temperature"):
        GenerationSettings(temperature=-1)
    with pytest.raises(ValueError, match="top_p"):
        GenerationSettings(top_p=0)


def test_batched_equals_one_by_one_under_greedy(tiny_loaded_each_dtype):
    loaded = tiny_loaded_each_dtype
    settings = GenerationSettings(max_new_tokens=20)
    batched = generate_batch(loaded, PROMPTS, settings=settings, batch_size=4)
    single = [generate_batch(loaded, [p], settings=settings)[0] for p in PROMPTS]
    assert [c.text for c in batched] == [c.text for c in single]
    assert all(c.num_tokens > 0 for c in batched)
    assert {c.finish_reason for c in batched} <= {"eos", "length", "stop"}


def _batch_sizes(loaded, run):
    """Run `run()` and return the batch size of every forward pass it made."""
    sizes: list[int] = []
    hook = loaded.model.register_forward_pre_hook(
        lambda _module, _args, kwargs: sizes.append(kwargs["input_ids"].shape[0]),
        with_kwargs=True,
    )
    try:
        result = run()
    finally:
        hook.remove()
    return sizes, result


def test_repeated_prompts_are_prefilled_once(tiny_loaded):
    """Self-consistency's k copies of a prompt share one prefill, with the same results."""
    prompts = [PROMPTS[0], PROMPTS[1], PROMPTS[0], PROMPTS[0], PROMPTS[1]]
    settings = GenerationSettings(max_new_tokens=8)
    sizes, batched = _batch_sizes(
        tiny_loaded, lambda: generate_batch(tiny_loaded, prompts, settings=settings, batch_size=5)
    )
    assert sizes[0] == 2  # two distinct prompts prefilled
    assert sizes[1] == 5  # then every row decodes
    single = {p: generate_batch(tiny_loaded, [p], settings=settings)[0] for p in PROMPTS[:2]}
    assert [c.text for c in batched] == [single[p].text for p in prompts]
    assert [c.prompt_tokens for c in batched] == [single[p].prompt_tokens for p in prompts]


def test_rows_that_finish_leave_the_batch_and_the_rest_are_unchanged(tiny_loaded):
    settings = GenerationSettings(max_new_tokens=20)
    free = generate_batch(tiny_loaded, PROMPTS, settings=settings, batch_size=4)
    stop = free[1].text[1:3]  # ends row 1 within its first tokens
    settings = GenerationSettings(max_new_tokens=20, stop=(stop,))
    sizes, batched = _batch_sizes(
        tiny_loaded, lambda: generate_batch(tiny_loaded, PROMPTS, settings=settings, batch_size=4)
    )
    assert batched[1].finish_reason == "stop"
    assert any(c.finish_reason == "length" for c in batched)
    assert sizes[0] == 4 and sizes[-1] < 4  # the finished rows were dropped
    assert sizes == sorted(sizes, reverse=True)
    single = [generate_batch(tiny_loaded, [p], settings=settings)[0] for p in PROMPTS]
    assert [c.text for c in batched] == [c.text for c in single]
    assert [c.finish_reason for c in batched] == [c.finish_reason for c in single]


def test_batched_equals_hf_generate(tiny_loaded_each_dtype):
    """Our loop gives exactly what transformers' own greedy generate gives, in each dtype."""
    import torch

    tiny_loaded = tiny_loaded_each_dtype
    tok, model = tiny_loaded.tokenizer, tiny_loaded.model
    ids = tok(PROMPTS[0], return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        reference = model.generate(
            **ids,
            max_new_tokens=12,
            do_sample=False,
            eos_token_id=None,
            pad_token_id=tok.pad_token_id,
        )
    expected = tok.decode(reference[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    settings = GenerationSettings(max_new_tokens=12)
    ours = generate_batch(tiny_loaded, [PROMPTS[0]], settings=settings)[0]
    assert expected.startswith(ours.text)
    if ours.finish_reason == "length":
        assert ours.text == expected and ours.num_tokens == 12


def test_stream_yields_growing_text_and_matches_batch(tiny_loaded):
    settings = GenerationSettings(max_new_tokens=15)
    texts = list(stream_text(tiny_loaded, PROMPTS[1], settings=settings))
    assert len(texts) >= 2
    assert all(b.startswith(a) or len(a) > len(b) for a, b in itertools.pairwise(texts))
    assert texts[-1] == generate_batch(tiny_loaded, [PROMPTS[1]], settings=settings)[0].text


def test_stop_sequences_cut_the_text(tiny_loaded):
    free = generate_batch(tiny_loaded, [PROMPTS[2]], settings=GenerationSettings(max_new_tokens=30))
    text = free[0].text
    assert len(text) > 4
    stop = text[2:4]
    cut = generate_batch(
        tiny_loaded, [PROMPTS[2]], settings=GenerationSettings(max_new_tokens=30, stop=(stop,))
    )[0]
    assert cut.finish_reason == "stop"
    assert stop not in cut.text
    assert text.startswith(cut.text)


def test_mixed_adapters_in_one_batch(tiny_loaded, tiny_adapter_dir):
    settings = GenerationSettings(max_new_tokens=12)
    base_before = generate_batch(tiny_loaded, PROMPTS[:2], settings=settings)
    tiny_loaded.add_adapter(tiny_adapter_dir, "tuned")
    mixed = generate_batch(
        tiny_loaded,
        PROMPTS[:2] * 2,
        adapters=["base", "base", "tuned", "tuned"],
        settings=settings,
    )
    tuned_alone = generate_batch(tiny_loaded, PROMPTS[:2], adapters="tuned", settings=settings)
    assert [c.text for c in mixed[:2]] == [c.text for c in base_before]
    assert [c.text for c in mixed[2:]] == [c.text for c in tuned_alone]
    assert [c.text for c in mixed[2:]] != [c.text for c in mixed[:2]]
    panes = list(stream_completions(tiny_loaded, [PROMPTS[0]] * 2, ["base", "tuned"], settings))
    assert [c.text for c in panes[-1]] == [mixed[0].text, mixed[2].text]


def test_unknown_adapter_and_empty_prompts(tiny_loaded):
    with pytest.raises(ValueError, match="unknown adapter 'nope'"):
        generate_batch(tiny_loaded, ["x"], adapters="nope")
    with pytest.raises(ValueError, match="no prompts"):
        generate_batch(tiny_loaded, [])


def test_sampling_is_seeded(tiny_loaded):
    settings = GenerationSettings(max_new_tokens=10, temperature=1.0, seed=7)
    first = generate_batch(tiny_loaded, [PROMPTS[0]] * 3, settings=settings)
    second = generate_batch(tiny_loaded, [PROMPTS[0]] * 3, settings=settings)
    assert [c.text for c in first] == [c.text for c in second]
    assert len({c.text for c in first}) > 1  # rows differ when sampling


def test_length_finish_reason(tiny_loaded):
    free = generate_batch(tiny_loaded, [PROMPTS[0]], settings=GenerationSettings(max_new_tokens=30))
    assert free[0].num_tokens > 3  # the row goes on past 3 tokens: a cap at 3 ends it
    settings = GenerationSettings(max_new_tokens=3)
    completions = list(stream_completions(tiny_loaded, [PROMPTS[0]], settings=settings))
    final = completions[-1][0]
    assert final.finish_reason == "length" and final.truncated
    assert final.num_tokens == 3 and len(completions) == 3
    assert free[0].text.startswith(final.text)
    assert all(step[0].finish_reason is None for step in completions[:-1])


def test_concurrent_callers_do_not_interleave(tiny_loaded, tiny_adapter_dir):
    """Two threads, one base and one adapter, get exactly their solo answers."""
    tiny_loaded.add_adapter(tiny_adapter_dir, "tuned")
    settings = GenerationSettings(max_new_tokens=15)
    expected = {
        name: generate_batch(tiny_loaded, [PROMPTS[3]], adapters=name, settings=settings)[0].text
        for name in ("base", "tuned")
    }
    results: dict[str, list[str]] = {"base": [], "tuned": []}

    def worker(name: str) -> None:
        for _ in range(3):
            results[name].append(
                list(stream_text(tiny_loaded, PROMPTS[3], adapter=name, settings=settings))[-1]
            )

    threads = [threading.Thread(target=worker, args=(name,)) for name in ("base", "tuned")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results["base"] == [expected["base"]] * 3
    assert results["tuned"] == [expected["tuned"]] * 3


def test_a_stream_closed_from_another_thread_frees_the_model(tiny_loaded):
    """Gradio's Stop closes a streaming generator from another worker thread."""
    import torch

    settings = GenerationSettings(max_new_tokens=50)
    stream_iter = stream_text(tiny_loaded, PROMPTS[0], settings=settings)
    next(stream_iter)  # started here, holding the model lock
    closer = threading.Thread(target=stream_iter.close)
    closer.start()
    closer.join(timeout=10)
    assert not closer.is_alive()
    assert torch.is_grad_enabled()  # no inference mode leaked into this thread
    done: list[str] = []
    worker = threading.Thread(
        target=lambda: done.append(
            generate_batch(tiny_loaded, [PROMPTS[1]], settings=settings)[0].text
        )
    )
    worker.start()
    worker.join(timeout=60)
    assert done, "the model lock was never released after the stream was closed"


def test_an_adapter_added_mid_stream_changes_no_running_row(tiny_loaded, tiny_adapter_dir):
    settings = GenerationSettings(max_new_tokens=16)
    expected = generate_batch(tiny_loaded, [PROMPTS[3]], settings=settings)[0].text
    steps = stream_text(tiny_loaded, PROMPTS[3], settings=settings)
    next(steps)
    tiny_loaded.add_adapter(tiny_adapter_dir, "tuned")  # another session, between two steps
    assert list(steps)[-1] == expected


def test_top_p_samples_only_from_the_nucleus():
    """The fast path (nucleus inside the top slice) and the full sort give the same support."""
    import torch

    from mathtutor.generate import _choose

    vocab = 1000
    peaked = torch.full((vocab,), -10.0)
    peaked[5] = 10.0  # nearly all mass on token 5: the nucleus is that one token
    wide = -torch.arange(vocab, dtype=torch.float) * 1e-3
    wide[500:] = -30.0  # mass spread over 500 tokens: far more than the sorted top slice
    settings = GenerationSettings(temperature=1.0, top_p=0.9)
    generator = torch.Generator().manual_seed(0)
    draws = torch.stack(
        [_choose(torch.stack([peaked, wide]), settings, generator) for _ in range(300)]
    )
    assert set(draws[:, 0].tolist()) == {5}
    assert draws[:, 1].max() < 500 and draws[:, 1].max() > 100  # beyond the head, not the tail


# --- incremental text ---------------------------------------------------------------------
MULTIBYTE = "Ünïcödé: 3 € + 😀 = 世界 each.\nQuestion: Café 5€ per día, naïve 東京 …"


def _trained_tokenizer(kind: str):
    """A small BPE trained here, so merged tokens split multi-byte characters mid-way.

    `byte-merges`: byte-level BPE (GPT-2, SmolLM, Qwen) whose tokens hold a character's last
    byte, a whole character and the next character's first byte (`¶dÃ`). `metaspace`:
    SentencePiece-style `▁` spaces, whose decode drops the leading space of a text's first
    token (Llama 2, Gemma).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [MULTIBYTE, "The answer is 42.\nQuestion: next"] * 20
    if kind == "byte-merges":
        backend = Tokenizer(models.BPE())
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
        trainer = trainers.BpeTrainer(
            vocab_size=290, initial_alphabet=alphabet, special_tokens=["<eos>"]
        )
    else:
        backend = Tokenizer(models.BPE(unk_token="<unk>"))
        backend.pre_tokenizer = pre_tokenizers.Metaspace()
        backend.decoder = decoders.Metaspace()
        trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<eos>"])
    trainer.show_progress = False
    backend.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>")


@pytest.fixture(params=["bytes", "byte-merges", "metaspace"])
def any_tokenizer(request, tiny_loaded):
    """(kind, tokenizer); `bytes` is the tiny model's, one token per byte."""
    if request.param == "bytes":
        return request.param, tiny_loaded.tokenizer
    return request.param, _trained_tokenizer(request.param)


def test_decoded_text_equals_a_full_decode_after_every_token(any_tokenizer):
    """Multi-byte characters split over tokens, merged tokens, `▁` spaces, special tokens.

    A naive incremental decode fails here: decoding each new token alone and appending gives
    U+FFFD for every split character (bytes, byte-merges), and a tail decoded without context
    loses the spaces (metaspace).
    """
    kind, tokenizer = any_tokenizer
    ids = tokenizer.encode(MULTIBYTE, add_special_tokens=False)
    special = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)
    ids = [*ids[:10], special, *ids[10:]]  # skipped in the text, like a full decode skips it
    decoded = DecodedText(tokenizer)
    replaced = 0
    for count, token in enumerate(ids, start=1):
        before = decoded.text
        changed_from = decoded.append(token)
        expected = tokenizer.decode(ids[:count], skip_special_tokens=True)
        assert decoded.text == expected, f"after {count} tokens"
        assert decoded.text[:changed_from] == before[:changed_from]
        replaced += "\ufffd" in decoded.text
    assert decoded.tokens == ids
    assert decoded.text == tokenizer.decode(ids, skip_special_tokens=True)
    if kind != "metaspace":  # (its trained vocabulary holds every character whole)
        assert replaced  # some steps really ended inside a character


def _row(tokenizer, **settings) -> tuple[RowState, GenerationSettings]:
    row = RowState(index=0, adapter="base", decoded=DecodedText(tokenizer), started=0.0)
    return row, GenerationSettings(**settings)


@pytest.mark.parametrize(
    ("text", "stop", "expected"),
    [
        ("The answer is 42.\nQuestion: next", "\nQuestion:", "The answer is 42."),
        ("Cost: 5 € each, 6 € total", "€", "Cost: 5 "),  # 3 byte tokens, U+FFFD in between
        ("naïve café", "é", "naïve caf"),
        ("so 7*8=56. Then", "=56", "so 7*8"),
    ],
)
def test_stop_sequences_spanning_tokens_end_the_row_at_the_right_token(
    tiny_loaded, text, stop, expected
):
    """Each stop spans several tokens (the tiny tokenizer has one token per byte), so a
    check of the new token's own text alone never sees it."""
    tokenizer = tiny_loaded.tokenizer
    row, settings = _row(tokenizer, stop=("never", stop), max_new_tokens=100)
    ids = tokenizer.encode(text, add_special_tokens=False)
    for token in ids:
        row.advance(token, settings, eos=set())
        if row.finish_reason:
            break
    assert row.finish_reason == "stop"
    assert row.text == expected
    # it ended at the token that completed the stop, not later
    assert len(row.decoded.tokens) == len((expected + stop).encode())


def test_stop_cut_searches_only_where_the_text_changed():
    assert _stop_cut("ab\nQ: c", ("\nQ:",), changed_from=4) == 2  # spans the old tail
    assert _stop_cut("ab\nQ: c", ("\nQ:",), changed_from=6) is None  # already checked there
    assert _stop_cut("xx STOP yy STOP", ("STOP", "yy"), changed_from=0) == 3
    assert _stop_cut("abc", (), changed_from=0) is None


def test_streamed_text_equals_a_full_decode_of_the_tokens_fed_back(tiny_loaded):
    """Sampled from the random tiny model: random bytes, so characters split over tokens and
    invalid UTF-8. Every step's text must equal `tokenizer.decode` of the tokens so far."""
    tokenizer, model = tiny_loaded.tokenizer, tiny_loaded.model
    fed: list[int] = []  # the tokens fed back at each decoding step (after the prefill)
    hook = model.register_forward_pre_hook(
        lambda _module, _args, kwargs: fed.extend(kwargs["input_ids"][:, -1].tolist()),
        with_kwargs=True,
    )
    settings = GenerationSettings(max_new_tokens=80, temperature=1.0, seed=3)
    try:
        texts = [
            step[0].text for step in stream_completions(tiny_loaded, [PROMPTS[0]], "base", settings)
        ]
    finally:
        hook.remove()
    tokens = fed[1:]  # fed[0] is the prompt's last token; the last sampled token is never fed
    assert len(tokens) == len(texts) - 1 > 40
    for count in range(1, len(tokens) + 1):
        assert texts[count - 1] == tokenizer.decode(tokens[:count], skip_special_tokens=True)
    assert any(0x80 <= ord(char) != 0xFFFD for char in texts[-2])  # a decoded multi-byte char
    assert "\ufffd" in texts[-2]  # and an incomplete or invalid one


# --- continuous batching ------------------------------------------------------------------
MORE_PROMPTS = [
    "Q: 5 + 7 = ?\nA:",
    "What is 9 times 8?",
    "Sam had 20 marbles and lost 7.",
    "x",
    "Q: Anna reads 12 pages a day for 5 days. How many pages?\nA: She reads",
]


def test_continuous_batching_refills_slots_and_matches_one_by_one(
    tiny_loaded, tiny_adapter_dir, monkeypatch
):
    """Rows finish at different steps (stops of different lengths); with 2 slots the next
    prompt is prefilled and merged into the running batch at once, and every row's logits at
    every step equal its one-by-one run's, so greedy records are identical."""
    import torch

    from mathtutor import generate

    tiny_loaded.add_adapter(tiny_adapter_dir, "tuned")
    prompts = [*PROMPTS, *MORE_PROMPTS, PROMPTS[2]]
    names = ["base", "tuned"] * (len(prompts) // 2)
    settings = GenerationSettings(max_new_tokens=12, stop=("ooo", "?????", "xxxxxxx", "...."))
    logits: dict[int, list] = {}
    real_advance = generate._advance

    def spy(rows, step_logits, *args):
        for row, row_logits in zip(rows, step_logits, strict=True):
            logits.setdefault(row.index, []).append(row_logits.clone())
        real_advance(rows, step_logits, *args)

    monkeypatch.setattr(generate, "_advance", spy)
    forwards: list[tuple[bool, int]] = []  # (is a prefill, rows)
    hook = tiny_loaded.model.register_forward_pre_hook(
        lambda _m, _a, kwargs: forwards.append(
            (kwargs["past_key_values"].get_seq_length() == 0, kwargs["input_ids"].shape[0])
        ),
        with_kwargs=True,
    )
    try:
        rows = list(generate._decode(tiny_loaded, prompts, names, settings, batch_size=2))[-1]
    finally:
        hook.remove()
    together = [row.completion() for row in rows]
    batched_logits = dict(logits)
    prefills = [slot for slot, (is_prefill, _) in enumerate(forwards) if is_prefill]
    assert len(prefills) > 3 and prefills[1] > 1  # admissions happened while others decoded
    steps_while_waiting = [n for slot, (p, n) in enumerate(forwards[: prefills[-1]]) if not p]
    assert steps_while_waiting and set(steps_while_waiting) == {2}  # the batch stayed full
    assert len({c.finish_reason for c in together}) > 1
    assert len({c.num_tokens for c in together}) > 2  # rows really finished at different steps
    for index, (prompt, name) in enumerate(zip(prompts, names, strict=True)):
        logits.clear()
        (solo,) = list(generate._decode(tiny_loaded, [prompt], [name], settings))[-1]
        assert solo.completion().text == together[index].text
        assert solo.completion().finish_reason == together[index].finish_reason
        assert solo.completion().num_tokens == together[index].num_tokens
        assert solo.prompt_tokens == together[index].prompt_tokens
        mine = torch.stack(batched_logits[index])
        assert torch.allclose(mine, torch.stack(logits[0]), atol=1e-4), f"row {index}"


def test_generate_batch_with_fewer_slots_than_prompts_equals_one_by_one(tiny_loaded_each_dtype):
    tiny_loaded = tiny_loaded_each_dtype
    settings = GenerationSettings(max_new_tokens=10, stop=("ooo", "?????"))
    prompts = [*PROMPTS, *MORE_PROMPTS]
    done: list[tuple[int, int]] = []
    batched = generate_batch(
        tiny_loaded,
        prompts,
        settings=settings,
        batch_size=3,
        on_progress=lambda n, total: done.append((n, total)),
    )
    single = [generate_batch(tiny_loaded, [p], settings=settings)[0] for p in prompts]
    assert [c.text for c in batched] == [c.text for c in single]
    assert [c.finish_reason for c in batched] == [c.finish_reason for c in single]
    assert [n for n, _ in done] == sorted({n for n, _ in done}) and done[-1] == (9, 9)


def test_on_row_reports_each_row_once_as_it_finishes_and_stop_ends_between_steps(tiny_loaded):
    settings = GenerationSettings(max_new_tokens=10, stop=("ooo", "?????"))
    prompts = [*PROMPTS, *MORE_PROMPTS]
    seen: list[int] = []
    calls = 0

    def on_row(index: int, completion) -> None:
        assert completion.finish_reason is not None  # only finished rows are reported
        assert completion.text == alone[index].text  # index is the prompt's, not the batch's
        seen.append(index)

    alone = [generate_batch(tiny_loaded, [p], settings=settings)[0] for p in prompts]
    generate_batch(tiny_loaded, prompts, settings=settings, batch_size=3, on_row=on_row)
    assert sorted(seen) == list(range(len(prompts)))

    def stop_after_a_row() -> bool:
        nonlocal calls
        calls += 1
        return len(seen) > 0

    seen.clear()
    partial = generate_batch(
        tiny_loaded, prompts, settings=settings, batch_size=3, on_row=on_row,
        should_stop=stop_after_a_row,
    )  # fmt: skip
    finished = [index for index, completion in enumerate(partial) if completion is not None]
    assert sorted(seen) == finished and 0 < len(finished) < len(prompts)
    assert calls > 1  # asked before every step, not once per call


def test_choose_batch_size_and_the_measured_default_is_cached(tiny_loaded, tmp_path, monkeypatch):
    import json

    from mathtutor import generate

    assert generate.choose_batch_size({8: 100.0, 16: 190.0, 32: 200.0}) == 16
    assert generate.choose_batch_size({8: 100.0}) == 8
    monkeypatch.setenv("MATHTUTOR_HOME", str(tmp_path))
    monkeypatch.setattr(generate, "_batch_sizes", {})
    size = generate.default_batch_size(tiny_loaded)
    assert size in generate.BATCH_CANDIDATES["cpu"]
    (cached,) = json.loads((tmp_path / "cache" / "batch_size.json").read_text()).items()
    assert cached[1] == size and "float32" in cached[0] and "cpu" in cached[0]
    monkeypatch.setattr(generate, "_batch_sizes", {})
    monkeypatch.setattr(generate, "measure_batch_size", lambda loaded: pytest.fail("measured"))
    assert generate.default_batch_size(tiny_loaded) == size  # read back, not measured again
    assert generate.default_batch_size("cpu") == generate.FALLBACK_BATCH_SIZE["cpu"]


def test_prompts_of_different_lengths_are_prefilled_in_groups_with_one_by_one_results(
    tiny_loaded_each_dtype, tiny_adapter_dir, monkeypatch
):
    """With every length change starting a group, the admitted prompts are prefilled in
    several forwards (shortest first, a shared prompt once) and merged into one batch; each
    row's text and prompt length equal its one-by-one run's, whatever its group."""
    from mathtutor import generate

    loaded = tiny_loaded_each_dtype
    loaded.add_adapter(tiny_adapter_dir, "tuned")
    monkeypatch.setattr(generate, "_PREFILL_MIN_TOKENS", 1)
    monkeypatch.setattr(generate, "_PREFILL_WASTE", 0.0)
    prompts = [PROMPTS[3], "x", PROMPTS[0], PROMPTS[3], MORE_PROMPTS[1], PROMPTS[1]]
    names = ["base", "tuned", "base", "base", "tuned", "tuned"]
    settings = GenerationSettings(max_new_tokens=10)
    steps = sum(loaded.lock.acquisitions.values())
    sizes, rows = _batch_sizes(loaded, lambda: list(generate._decode(
        loaded, prompts, names, settings, batch_size=len(prompts)))[-1])  # fmt: skip
    steps = sum(loaded.lock.acquisitions.values()) - steps
    first_step = sizes.index(len(prompts))  # the first forward of all rows decodes
    prefills = sizes[:first_step]
    assert len(prefills) > 2 and sum(prefills) == 5  # five distinct (prompt, adapter) rows
    # the groups took the model's lock once: one step for the scheduler, as one prefill was
    assert steps == len(sizes) - len(prefills) + 1
    together = [row.completion() for row in rows]
    for prompt, name, mine in zip(prompts, names, together, strict=True):
        solo = generate_batch(loaded, [prompt], [name], settings)[0]
        assert (mine.text, mine.prompt_tokens) == (solo.text, solo.prompt_tokens), prompt


def test_module_examples_hold():
    """The docstring examples of `generate` (prefill groups, stop search)."""
    import doctest

    from mathtutor import generate

    result = doctest.testmod(generate)
    assert result.failed == 0 and result.attempted >= 3
