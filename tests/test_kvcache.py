"""The chunked KV cache holds exactly what transformers' DynamicLayer holds, through steps,
rows leaving and assigned tensors, without copying itself each step; on a tiny real model its
logits equal the plain cache's past a chunk boundary."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from transformers.cache_utils import DynamicCache, DynamicLayer  # noqa: E402

from mathtutor import kvcache  # noqa: E402


def states(rows: int, positions: int, seed: int) -> tuple:
    generator = torch.Generator().manual_seed(seed)
    shape = (rows, 3, positions, 8)
    return torch.randn(shape, generator=generator), torch.randn(shape, generator=generator)


def test_a_chunked_layer_holds_what_a_dynamic_layer_holds():
    plain, chunked = DynamicLayer(), kvcache.ChunkedLayer()
    seed = 0

    def step(positions: int, rows: int = 4) -> None:
        nonlocal seed
        seed += 1
        keys, values = states(rows, positions, seed)
        expected = plain.update(keys, values)
        got = chunked.update(keys, values)
        for want, have in zip(expected, got, strict=True):
            assert torch.equal(want, have)

    step(5)  # a prefill
    buffer = chunked._buffers[0].data_ptr()
    for _ in range(kvcache.CHUNK - 1):
        step(1)
    assert chunked._buffers[0].data_ptr() == buffer  # steps wrote into the spare room
    step(1)
    step(1)  # past the chunk: a bigger buffer, the same contents
    assert chunked._buffers[0].data_ptr() != buffer
    assert chunked.get_seq_length() == plain.get_seq_length() == 5 + kvcache.CHUNK + 1

    keep = torch.tensor([0, 2])  # rows finish
    plain.batch_select_indices(keep)
    chunked.batch_select_indices(keep)
    selected = chunked._buffers[0].data_ptr()
    step(1, rows=2)
    assert chunked._buffers[0].data_ptr() == selected  # the selected rows were copied once
    for layer in (plain, chunked):  # the engine's trim: leading columns dropped
        layer.keys, layer.values = layer.keys[:, :, 3:], layer.values[:, :, 3:]
    step(1, rows=2)
    step(2, rows=2)
    assert torch.equal(plain.keys, chunked.keys) and torch.equal(plain.values, chunked.values)


def test_chunked_cache_keeps_other_layer_kinds(tiny_loaded):
    cache = kvcache.chunked_cache(tiny_loaded.model.config)
    assert cache.layers and all(type(layer) is kvcache.ChunkedLayer for layer in cache.layers)
    assert all(kvcache.is_plain(layer) for layer in cache.layers)
    from transformers.cache_utils import DynamicSlidingWindowLayer

    assert not kvcache.is_plain(DynamicSlidingWindowLayer(sliding_window=4))


def test_the_tiny_model_decodes_the_same_with_either_cache(tiny_loaded):
    model = tiny_loaded.model
    generator = torch.Generator().manual_seed(0)
    prompt = torch.randint(0, model.config.vocab_size, (3, 7), generator=generator)
    runs = []
    for cache in (DynamicCache(config=model.config), kvcache.chunked_cache(model.config)):
        ids, logits = prompt, []
        with torch.inference_mode():
            for _ in range(kvcache.CHUNK + 10):
                out = model(input_ids=ids, past_key_values=cache, use_cache=True)
                logits.append(out.logits[:, -1])
                ids = out.logits[:, -1:].argmax(-1)
        runs.append(torch.stack(logits))
    assert torch.equal(runs[0], runs[1])
