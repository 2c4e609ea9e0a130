"""The decoding loop's KV cache: transformers' `DynamicCache` whose full-attention layers grow
in chunks instead of copying themselves every step.

`DynamicLayer.update` appends a step's keys and values with `torch.cat`, which copies the
whole layer cache each step. For the bundled model at 32 rows and 250 cached positions that is
15% of a CPU decoding step (torch profiler). `ChunkedLayer` writes each step into spare room
at the end of a buffer (`CHUNK` positions at a time) and hands attention a view of the filled
part, so a step copies only its own keys; the values attention sees are the same numbers.

Rows that finish leave by indexing the buffers (`batch_select_indices`). Anything that
assigns `keys`/`values` itself (the engine's merge and trim) just sets plain tensors, as on a
`DynamicLayer`; the next `update` notices and copies them into a fresh buffer once.
Sliding-window and other layer kinds keep their own classes.

    python -m pytest tests/test_kvcache.py
"""

from __future__ import annotations

from typing import Any

from transformers.cache_utils import DynamicCache, DynamicLayer

CHUNK = 64  # positions of spare room a buffer gets when it is (re)made


class ChunkedLayer(DynamicLayer):
    """A `DynamicLayer` whose `keys`/`values` are views of buffers with spare room."""

    _buffers: tuple[Any, Any] | None = None  # (keys, values) buffers; views of them are set
    _length = 0  # positions filled

    def update(self, key_states: Any, value_states: Any, *args, **kwargs) -> tuple[Any, Any]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        added = key_states.shape[-2]
        if not self._holds_views() or self._length + added > self._buffers[0].shape[-2]:
            self._rebuffer(key_states, value_states)
        keys, values = self._buffers
        start, self._length = self._length, self._length + added
        keys[:, :, start : self._length] = key_states
        values[:, :, start : self._length] = value_states
        self.keys, self.values = keys[:, :, : self._length], values[:, :, : self._length]
        return self.keys, self.values

    def batch_select_indices(self, indices: Any) -> None:
        """Keep rows `indices` (rows finished): the buffers are indexed, spare room and all, so
        the rows are copied once here and not again at the next `update`."""
        if not self._holds_views():
            return super().batch_select_indices(indices)
        self._buffers = tuple(buffer[indices] for buffer in self._buffers)
        self.keys, self.values = (buffer[:, :, : self._length] for buffer in self._buffers)

    def reset(self) -> None:
        self._buffers, self._length = None, 0
        super().reset()

    def _holds_views(self) -> bool:
        """Whether `keys`/`values` are still the views the last `update` set (not tensors
        someone assigned since)."""
        if self._buffers is None or self.keys.numel() == 0:
            return False
        return all(
            view.data_ptr() == buffer.data_ptr()
            and view.shape == (*buffer.shape[:2], self._length, buffer.shape[-1])
            for view, buffer in zip((self.keys, self.values), self._buffers, strict=True)
        )

    def _rebuffer(self, key_states: Any, value_states: Any) -> None:
        """New buffers holding the current keys/values (maybe none) with room for the
        incoming states and `CHUNK` positions more."""
        length = self.keys.shape[-2] if self.keys.numel() else 0
        buffers = []
        for current, incoming in ((self.keys, key_states), (self.values, value_states)):
            like = current if length else incoming
            room = length + incoming.shape[-2] + CHUNK
            buffer = like.new_empty((*like.shape[:2], room, like.shape[-1]))
            if length:
                buffer[:, :, :length] = current
            buffers.append(buffer)
        self._buffers, self._length = tuple(buffers), length


def chunked_cache(config: Any) -> DynamicCache:
    """A `DynamicCache` for a model with `config`, its plain full-attention layers chunked."""
    cache = DynamicCache(config=config)
    cache.layers = [ChunkedLayer() if type(layer) is DynamicLayer else layer
                    for layer in cache.layers]  # fmt: skip
    return cache


def is_plain(layer: Any) -> bool:
    """Whether `layer` holds nothing but its keys and values (a plain or chunked layer), so
    the engine may pad and join it."""
    return type(layer) in (DynamicLayer, ChunkedLayer)


def can_pad(cache: Any) -> bool:
    """Whether every layer of `cache` is plain (`is_plain`): the engine may left-pad and join
    such caches (a cache without layers, or with sliding-window ones, it may not)."""
    layers = getattr(cache, "layers", None)
    return bool(layers) and all(is_plain(layer) for layer in layers)
