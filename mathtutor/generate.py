"""Generation: streaming and batched decoding over one shared base with mixed adapters.

One decoding loop serves every tab. It runs a left-padded batch one token per step with a
KV cache; each row has its own adapter ("base" or an adapter name), its own stop sequences,
and, when `calculator=True`, its own queue of forced tokens: when a row's text ends with an
arithmetic expression and `=`, the exact value from `mathtutor.checks.calculator_result` is
fed in as the next tokens (the GSM8K paper's calculator), so later steps build on true
numbers. A row that finishes leaves the batch and its KV cache, and the next waiting prompt
is prefilled and merged into the running batch (continuous batching); the loop ends when no
row is left. Each row's state is one `RowState`; its text grows incrementally
(`DecodedText`), and tokens are sampled on the model's device.

    >>> GenerationSettings(max_new_tokens=0)
    Traceback (most recent call last):
    ValueError: max_new_tokens must be between 1 and 4096, got 0

The model's lock is taken for each forward step, never across a `yield`: a streaming generator
that Gradio abandons or closes from another thread (Stop, a closed tab) can then never leave
the model locked. Each step passes every row's adapter explicitly (`__base__` for the bare
model), so an adapter added by another session between two steps changes no running row.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mathtutor.models import BASE

if TYPE_CHECKING:
    from mathtutor.models import LoadedModel

MAX_NEW_TOKENS = 4096


@dataclass(frozen=True)
class GenerationSettings:
    """How to decode. Temperature 0 means greedy (deterministic)."""

    max_new_tokens: int = field(default=256, metadata={"help": "Tokens to generate at most."})
    temperature: float = field(default=0.0, metadata={"help": "0 = greedy; >0 samples."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass (0, 1]."})
    seed: int = field(default=0, metadata={"help": "Random seed for sampling."})
    stop: tuple[str, ...] = field(default=(), metadata={"help": "Stop sequences (excluded)."})
    calculator: bool = field(
        default=False, metadata={"help": "Insert exact results after `expression =`."}
    )

    def __post_init__(self) -> None:
        if not 1 <= self.max_new_tokens <= MAX_NEW_TOKENS:
            raise ValueError(
                f"max_new_tokens must be between 1 and {MAX_NEW_TOKENS}, got {self.max_new_tokens}"
            )
        if not 0.0 <= self.temperature <= 5.0:
            raise ValueError(f"temperature must be between 0 and 5, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        object.__setattr__(self, "stop", tuple(s for s in self.stop if s))


@dataclass
class Completion:
    """One generated continuation."""

    text: str
    num_tokens: int
    finish_reason: str | None  # "stop" (stop sequence), "eos", "length"; None while running
    seconds: float
    prompt_tokens: int = 0
    calculator_calls: int = 0

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


def generate_batch(
    loaded: LoadedModel,
    prompts: Sequence[str],
    adapters: Sequence[str] | str = BASE,
    settings: GenerationSettings | None = None,
    *,
    batch_size: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    on_row: Callable[[int, Completion], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[Completion]:
    """Generate one completion per prompt, batched; results come back in prompt order.

    `adapters` is one name for all rows or one per row ("base" for the bare model). The
    batch is continuous: at most `batch_size` rows decode at once, and when rows finish the
    next prompts (sorted by length, so little padding is wasted) take their slots.
    `on_progress(done, total)` is called whenever more rows have finished, `on_row(index,
    completion)` once per row as it finishes (`index` into `prompts`). `should_stop()` is asked
    before every step: when it says True decoding ends there, and the rows not finished by
    then come back as None (only with `should_stop`).
    """
    settings = settings or GenerationSettings()
    names = _adapter_list(loaded, prompts, adapters)
    if not batch_size:  # a few rows fit in one batch anywhere: nothing to measure
        small = len(prompts) <= min(BATCH_CANDIDATES.get(loaded.device, (8,)))
        batch_size = len(prompts) if small else default_batch_size(loaded)
    # by length, then text: the k copies of a prompt sit together and share their prefill
    order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), prompts[i], names[i]))
    done = 0
    reported: set[int] = set()
    rows: list[RowState] = []
    decoding = _decode(
        loaded, [prompts[i] for i in order], [names[i] for i in order], settings, batch_size,
        should_stop,
    )  # fmt: skip
    for rows in decoding:
        finished = [row for row in rows if row.finish_reason is not None]
        if on_row:
            for row in finished:
                if row.index not in reported:
                    reported.add(row.index)
                    on_row(order[row.index], row.completion())
        if on_progress and len(finished) > done:
            on_progress(len(finished), len(prompts))
        done = len(finished)
    results: list[Completion | None] = [None] * len(prompts)
    for row in rows:
        if row.finish_reason is not None:
            results[order[row.index]] = row.completion()
    return results  # type: ignore[return-value]  # None only for rows a stop cut short


def stream_completions(
    loaded: LoadedModel,
    prompts: Sequence[str],
    adapters: Sequence[str] | str = BASE,
    settings: GenerationSettings | None = None,
) -> Iterator[list[Completion]]:
    """Stream several rows in ONE batch (e.g. base and tuned side by side).

    Yields every row's `Completion` after each step: the text so far, and a finish reason
    once the row is done.
    """
    settings = settings or GenerationSettings()
    names = _adapter_list(loaded, prompts, adapters)
    for rows in _decode(loaded, list(prompts), names, settings):
        yield [row.completion() for row in rows]


FALLBACK_BATCH_SIZE = {"cuda": 64, "mps": 16, "cpu": 16}
BATCH_CANDIDATES = {"cuda": (16, 32, 64, 128, 256), "mps": (8, 16, 32), "cpu": (8, 16, 32, 64)}
_PROBE_STEPS = 8  # decoding steps timed per candidate batch size
_batch_sizes: dict[str, int] = {}  # this process's measured sizes, by `_probe_key`


def default_batch_size(loaded: LoadedModel | str) -> int:
    """Rows per forward pass for a loaded model, measured once per (model, dtype, device,
    threads) by `measure_batch_size` and cached in `home_dir()/cache/batch_size.json`; a
    device name alone (nothing to measure) gives `FALLBACK_BATCH_SIZE`."""
    if isinstance(loaded, str):
        return FALLBACK_BATCH_SIZE.get(loaded, 16)
    key = _probe_key(loaded)
    if key not in _batch_sizes:
        import json

        from mathtutor.paths import home_dir

        path = home_dir() / "cache" / "batch_size.json"
        try:
            cached = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            cached = {}
        cached = cached if isinstance(cached, dict) else {}
        size = cached.get(key)
        if not isinstance(size, int) or size < 1:
            size = measure_batch_size(loaded)
            cached[key] = size
            with contextlib.suppress(OSError):
                path.parent.mkdir(parents=True, exist_ok=True)
                temp = path.with_name(f".{path.name}.{os.getpid()}")
                temp.write_text(json.dumps(cached, indent=1, sort_keys=True) + "\n", "utf-8")
                os.replace(temp, path)
        _batch_sizes[key] = size
    return _batch_sizes[key]


def _probe_key(loaded: LoadedModel) -> str:
    import torch

    model = getattr(loaded.model, "name_or_path", "") or loaded.spec
    threads = torch.get_num_threads() if loaded.device == "cpu" else 0
    return f"{model}|{loaded.device}|{loaded.dtype_name}|{loaded.quantization}|threads={threads}"


def choose_batch_size(rates: dict[int, float], within: float = 0.9) -> int:
    """The smallest measured batch size whose throughput (tokens/s) is within `within` of the
    best: past that point a bigger batch buys little speed and costs memory and latency.

    >>> choose_batch_size({8: 100.0, 16: 170.0, 32: 200.0, 64: 205.0})
    32
    """
    best = max(rates.values())
    return min(size for size, rate in rates.items() if rate >= within * best)


def measure_batch_size(loaded: LoadedModel, candidates: Sequence[int] | None = None) -> int:
    """Time `_PROBE_STEPS` decoding steps at each candidate batch size (CPU time on a CPU, so
    other processes on a shared machine do not skew it; wall time with a synchronize on a GPU)
    and return `choose_batch_size` of the rates. Probing stops early when a bigger batch is no
    faster, or when it runs out of memory. On a GPU the candidates are capped so that the KV
    cache of 1024 tokens per row fits in half the free memory."""
    import torch

    device = loaded.device
    sizes = list(candidates or BATCH_CANDIDATES.get(device, (8, 16, 32)))
    if device == "cuda":
        sizes = [size for size in sizes if size <= max(sizes[0], _kv_rows_that_fit(loaded))]
    prompt = "Question: " + "Tom has 3 apples and buys 5 more. " * 4 + "Answer:"
    settings = GenerationSettings(max_new_tokens=_PROBE_STEPS + 1)
    rates: dict[int, float] = {}
    for size in sizes:
        try:
            rates[size] = _probe_rate(loaded, [prompt] * size, settings)
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            break
        previous = [rate for other, rate in rates.items() if other < size]
        if previous and rates[size] < 1.05 * max(previous):
            break
    return choose_batch_size(rates) if rates else FALLBACK_BATCH_SIZE.get(device, 16)


def _probe_rate(loaded: LoadedModel, prompts: list[str], settings: GenerationSettings) -> float:
    """Generated tokens per second of the decoding steps after the prefill."""
    import torch

    clock = time.perf_counter if loaded.device == "cuda" else time.process_time
    begun, first, rows = 0.0, 0, []
    for step, rows in enumerate(_decode(loaded, prompts, [BASE] * len(prompts), settings)):
        if loaded.device == "cuda":
            torch.cuda.synchronize()
        if step == 0:
            begun, first = clock(), sum(len(row.decoded.tokens) for row in rows)
    tokens = sum(len(row.decoded.tokens) for row in rows) - first
    return tokens / max(clock() - begun, 1e-9)


def _kv_rows_that_fit(loaded: LoadedModel) -> int:
    import torch

    config = loaded.model.config
    layers = getattr(config, "num_hidden_layers", 24)
    heads = getattr(config, "num_key_value_heads", None) or getattr(
        config, "num_attention_heads", 16
    )
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    per_row = (
        2 * layers * heads * head_dim * 1024 * torch.empty((), dtype=loaded.dtype).element_size()
    )
    free, _ = torch.cuda.mem_get_info()
    return max(1, int(free * 0.5 // per_row))


def _adapter_list(
    loaded: LoadedModel, prompts: Sequence[str], adapters: Sequence[str] | str
) -> list[str]:
    if isinstance(adapters, str):
        adapters = [adapters] * len(prompts)
    if len(adapters) != len(prompts):
        raise ValueError(f"got {len(prompts)} prompts but {len(adapters)} adapter names")
    if not prompts:
        raise ValueError("no prompts to generate from")
    known = {BASE, *loaded.adapters}
    for name in adapters:
        if name not in known:
            raise ValueError(f"unknown adapter {name!r}; loaded: {sorted(known)}")
    return list(adapters)


def _eos_ids(loaded: LoadedModel) -> set[int]:
    ids: set[int] = set()
    for value in (loaded.tokenizer.eos_token_id, loaded.model.generation_config.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif value:
            ids.update(value)
    vocab = loaded.tokenizer.get_vocab()
    for token in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|endoftext|>"):
        if token in vocab:  # (an unknown token would map to unk, which must not end a row)
            ids.add(vocab[token])
    return ids


class DecodedText:
    """The text of a growing list of tokens, decoding only a short tail for each new token.

    `tokenizer.decode(tokens)` at every step is quadratic in the length: at 1024 tokens it
    cost 0.65 ms per row per step, 10 ms a step for 16 rows; this class takes 0.01-0.02 ms
    per row (`bench/bench_decode_step.py`). Here the text is committed up to the last token
    where the decoded text ended on a whole character; a new token re-decodes only the tokens
    since that commit plus the tokens of the commit before it, as context: SentencePiece drops
    the leading space of a text's first token, and the context is decoded alone too, so their
    difference is exactly the new text. A character split over several byte tokens stays in the
    tail (as U+FFFD, like a full decode shows it) until its last byte arrives; an unbroken run
    of undecodable bytes keeps the tail open until a character decodes (at worst, the old cost).

    `text` always equals `tokenizer.decode(tokens, skip_special_tokens=True)` (tests check it
    after every token on multi-byte text, for byte-level and SentencePiece-style tokenizers).
    Decoding skips `clean_up_tokenization_spaces`, a WordPiece post-process that rewrites
    across tokens (" 's" into "'s"); transformers 5 already ignores it for BPE tokenizers.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.tokens: list[int] = []
        self._committed = ""  # the text of tokens[:_read], final
        self._tail = ""  # the text of tokens[_read:], may change with the next token
        self._context = 0  # tokens[_context:_read] are decoded again with each new token
        self._read = 0
        self._context_text = ""

    @property
    def text(self) -> str:
        return self._committed + self._tail

    def append(self, token: int) -> int:
        """Add one token; returns the index in `text` from which the text may have changed."""
        changed_from = len(self._committed)
        self.tokens.append(token)
        window = self._decode(self.tokens[self._context :])
        self._tail = window[len(self._context_text) :]
        if self._tail and not self._tail.endswith("\ufffd"):
            self._committed, self._tail = self._committed + self._tail, ""
            self._commit()
        return changed_from

    def _commit(self) -> None:
        self._context, self._read = self._read, len(self.tokens)
        self._context_text = self._decode(self.tokens[self._context : self._read])

    def _decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(
            tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )


@dataclass
class RowState:
    """What the decoding loop knows about one row: the one place a row's state lives."""

    index: int  # the prompt this row answers, in the order `_decode` was given them
    adapter: str
    decoded: DecodedText  # the generated tokens and their text
    started: float  # time.perf_counter() when the call began
    prompt_tokens: int = 0  # set by the prefill
    text: str = ""  # `decoded.text`, cut before a stop sequence once one appears
    forced: deque[int] = field(default_factory=deque)  # calculator tokens still to feed in
    finish_reason: str | None = None
    seconds: float | None = None  # from the call's start until the row finished
    calculator_calls: int = 0
    calculator_checked: int = 0  # len(text) when the calculator last looked at it
    next_token: int = -1  # the token fed to the model at the next step

    def advance(self, sampled: int, settings: GenerationSettings, eos: set[int]) -> None:
        """Take the step's token (a forced one first), then check eos, stops and length."""
        is_forced = bool(self.forced)
        token = self.forced.popleft() if is_forced else sampled
        self.next_token = token
        if token in eos and not is_forced:
            self._finish("eos")
            return
        changed_from = self.decoded.append(token)
        self.text = self.decoded.text
        cut = _stop_cut(self.text, settings.stop, changed_from)
        if cut is not None:
            self.text = self.text[:cut]
            self._finish("stop")
        elif len(self.decoded.tokens) >= settings.max_new_tokens:
            self._finish("length")
        elif settings.calculator and not self.forced:
            self._calculate()

    def _finish(self, reason: str) -> None:
        self.finish_reason, self.seconds = reason, time.perf_counter() - self.started

    def _calculate(self) -> None:
        """Queue the exact value when the text ends with `expression =` (once per `=`)."""
        from mathtutor.checks import calculator_result

        text = self.text
        if len(text) <= self.calculator_checked or not text.rstrip().endswith("="):
            return
        self.calculator_checked = len(text)
        value = calculator_result(text)
        if value is None:
            return
        in_annotation = text.rfind("<<") > text.rfind(">>")
        spacer = "" if in_annotation or text.endswith(" ") else " "
        tokenizer = self.decoded.tokenizer
        self.forced.extend(tokenizer.encode(spacer + value, add_special_tokens=False))
        self.calculator_calls += 1

    def completion(self) -> Completion:
        return Completion(
            text=self.text,
            num_tokens=len(self.decoded.tokens),
            finish_reason=self.finish_reason,
            seconds=time.perf_counter() - self.started if self.seconds is None else self.seconds,
            prompt_tokens=self.prompt_tokens,
            calculator_calls=self.calculator_calls,
        )


def _decode(
    loaded: LoadedModel,
    prompts: list[str],
    names: list[str],
    settings: GenerationSettings,
    batch_size: int | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[list[RowState]]:
    """The decoding loop. Yields every row's state (the same list) after every step.

    At most `batch_size` rows (default: all) decode together. Rows that share a prompt and an
    adapter (the k samples of self-consistency) are prefilled once and their KV cache is
    copied to each row. A row that finishes leaves the batch, and when rows are waiting, the
    next ones are prefilled and merged into the running batch (continuous batching), so the
    batch stays full until the prompts run out. Sampling happens on the model's device; only
    the chosen token ids come back to the host.
    """
    import torch

    started = time.perf_counter()
    rows = [
        RowState(index=index, adapter=name, decoded=DecodedText(loaded.tokenizer), started=started)
        for index, name in enumerate(names)
    ]
    eos = _eos_ids(loaded)
    generator = torch.Generator(device=loaded.device).manual_seed(settings.seed)
    waiting = deque(rows)
    capacity = batch_size or len(rows)
    batch: _Batch | None = None
    while batch or waiting:
        if should_stop and should_stop():
            return  # between steps: unfinished rows stay unfinished
        free = capacity - (len(batch.rows) if batch else 0)
        if waiting and free > 0 and (batch is None or batch.can_merge()):
            admitted = [waiting.popleft() for _ in range(min(free, len(waiting)))]
            new, logits = _prefill(loaded, admitted, prompts)
            _advance(new.rows, logits, settings, generator, eos)
            batch = batch.merge(new) if batch else new
        else:
            assert batch is not None
            logits = batch.forward(loaded)
            _advance(batch.rows, logits, settings, generator, eos)
        yield rows
        batch = batch.without_finished()


def _forward(
    loaded: LoadedModel,
    names: list[str],
    ids: Any,
    attention: Any,
    position: Any,
    past: Any = None,
    lock: bool = True,
) -> tuple[Any, Any]:
    """One forward pass (a prefill or a decoding step); returns the cache and the logits of
    each row's last position.

    The model's lock and inference mode are taken here, for this one step, never around the
    loop: grad mode is thread-local and the steps of a streaming generator may run on
    different threads (module docstring). `lock=False`: the caller holds the lock (a grouped
    prefill, one step for the scheduler).
    """
    import contextlib

    import torch

    with loaded.lock if lock else contextlib.nullcontext(), torch.inference_mode():
        output = loaded.model(
            input_ids=ids,
            attention_mask=attention,
            position_ids=position,
            past_key_values=past,
            use_cache=True,
            logits_to_keep=1,  # a prefill needs only the last position's logits
            **_adapter_kwargs(loaded, names),
        )
        return output.past_key_values, output.logits[:, -1, :].float()


def _advance(
    rows: list[RowState], logits: Any, settings: GenerationSettings, generator: Any, eos: set[int]
) -> None:
    sampled = _choose(logits, settings, generator).tolist()
    for row, token in zip(rows, sampled, strict=True):
        row.advance(token, settings, eos)


_PREFILL_WASTE = 0.15  # padding share a prefill group may have before the next one starts
_PREFILL_MIN_TOKENS = 256  # ...once it holds this many real tokens (a forward costs overhead)


def prefill_groups(lengths: list[int]) -> list[list[int]]:
    """Indices of `lengths` in groups prefilled together: sorted by length, a group ends when
    left-padding it to its longest prompt would waste over `_PREFILL_WASTE` of its positions
    and it already holds `_PREFILL_MIN_TOKENS` real tokens.

    One padded prefill of GSM8K prompts (40-170 tokens) is 31-61% padding, computed for
    nothing (`python bench/bench_generate.py --only_prefill`).

    >>> prefill_groups([30, 200, 31, 29])
    [[3, 0, 2, 1]]
    >>> prefill_groups([100] * 3 + [300] * 3)
    [[0, 1, 2], [3, 4, 5]]
    """
    order = sorted(range(len(lengths)), key=lambda index: lengths[index])
    groups: list[list[int]] = []
    real = 0
    for index in order:
        length = lengths[index]
        if groups:
            group = groups[-1]
            padded = (len(group) + 1) * length
            if real < _PREFILL_MIN_TOKENS or 1 - (real + length) / padded <= _PREFILL_WASTE:
                group.append(index)
                real += length
                continue
        groups.append([index])
        real = length
    return groups


def _prefill(loaded: LoadedModel, rows: list[RowState], prompts: list[str]) -> tuple[_Batch, Any]:
    """Run the rows' prompts (each distinct prompt and adapter once, in `prefill_groups` of
    similar length when the cache can be merged); returns the new batch and its
    last-position logits, one row each in the batch's row order."""
    import torch

    distinct: dict[tuple[str, str], int] = {}
    prefill_rows = [distinct.setdefault((prompts[row.index], row.adapter), len(distinct))
                    for row in rows]  # fmt: skip
    keys = list(distinct)
    encoded = loaded.tokenizer([p for p, _ in keys], add_special_tokens=False)["input_ids"]
    groups = prefill_groups([len(ids) for ids in encoded])
    from mathtutor.kvcache import can_pad, chunked_cache

    if len(groups) == 1 or not can_pad(chunked_cache(loaded.model.config)):
        groups = [list(range(len(keys)))]  # one padded prefill, in the rows' order
    # the groups are one step for the scheduler (`models.ModelLock`), as one padded prefill
    # was: a waiting Compare or Tutor step goes before the whole admission, not between groups
    with loaded.lock:
        batch, logits = _prefill_group(loaded, rows, prefill_rows, keys, encoded, groups[0])
        parts = [logits]
        for group in groups[1:]:
            other, other_logits = _prefill_group(loaded, rows, prefill_rows, keys, encoded, group)
            batch = batch.merge(other)
            parts.append(other_logits)
    logits = torch.cat(parts) if len(parts) > 1 else logits
    return batch, logits


def _prefill_group(
    loaded: LoadedModel,
    rows: list[RowState],
    prefill_rows: list[int],
    keys: list[tuple[str, str]],
    encoded: list[list[int]],
    group: list[int],
) -> tuple[_Batch, Any]:
    """One padded prefill of the distinct prompts `group` (indices into `keys` and their
    token ids `encoded`), the model's lock held by the caller; the batch holds every row whose
    prompt is among them (rows sharing one get copies of its cache)."""
    import torch

    from mathtutor.kvcache import chunked_cache

    padded = loaded.tokenizer.pad(
        {"input_ids": [encoded[index] for index in group]}, return_tensors="pt"
    )
    ids = padded["input_ids"].to(loaded.device)
    attention = padded["attention_mask"].to(loaded.device)
    position = (attention.long().cumsum(-1) - 1).clamp_(min=0)
    names = [keys[index][1] for index in group]
    past, logits = _forward(
        loaded, names, ids, attention, position, chunked_cache(loaded.model.config), lock=False
    )
    slot = {index: place for place, index in enumerate(group)}
    members = [(row, slot[distinct]) for row, distinct in zip(rows, prefill_rows, strict=True)
               if distinct in slot]  # fmt: skip
    members.sort(key=lambda member: member[1])  # stable: a copy only for shared prompts
    with torch.inference_mode():
        copies = [place for _, place in members]
        if copies != list(range(len(group))):
            picked = torch.tensor(copies, device=loaded.device)
            past.batch_select_indices(picked)
            logits, attention, position = logits[picked], attention[picked], position[picked]
    group_rows = [row for row, _ in members]
    for row, mask in zip(group_rows, attention.sum(dim=1).tolist(), strict=True):
        row.prompt_tokens = int(mask)
    return _Batch(group_rows, past, attention, position), logits


@dataclass
class _Batch:
    """The rows decoding together, in batch order, with their KV cache, attention mask and
    position ids (left-padded: row i's real tokens are where `attention[i]` is 1)."""

    rows: list[RowState]
    past: Any
    attention: Any
    position: Any

    def forward(self, loaded: LoadedModel) -> Any:
        """One decoding step: feed every row's next token; returns the logits."""
        import torch

        device = loaded.device
        step_ids = torch.tensor([[row.next_token] for row in self.rows], device=device)
        self.attention = torch.cat(
            [self.attention, self.attention.new_ones((len(self.rows), 1))], dim=1
        )
        step_positions = self.position[:, -1:] + 1
        self.position = torch.cat([self.position, step_positions], dim=1)
        names = [row.adapter for row in self.rows]
        self.past, logits = _forward(
            loaded, names, step_ids, self.attention, step_positions, self.past
        )
        return logits

    def without_finished(self) -> _Batch | None:
        """Finished rows leave the batch and its cache; None when no row is left."""
        import torch

        keep = [slot for slot, row in enumerate(self.rows) if row.finish_reason is None]
        if not keep:
            return None
        if len(keep) < len(self.rows):
            kept = torch.tensor(keep, device=self.attention.device)
            with torch.inference_mode():
                self.past.batch_select_indices(kept)
            self.rows = [self.rows[slot] for slot in keep]
            self.attention, self.position = self.attention[kept], self.position[kept]
            self._trim()
        return self

    def can_merge(self) -> bool:
        """Whether `merge` can pad this cache: plain per-layer key/value tensors (not a
        sliding-window or quantized cache, whose layers keep other state)."""
        from mathtutor.kvcache import can_pad

        return can_pad(self.past)

    def merge(self, other: _Batch) -> _Batch:
        """Append `other`'s rows: both caches are left-padded to one length and joined."""
        import torch

        length = max(self.attention.shape[1], other.attention.shape[1])
        mine_missing = length - self.attention.shape[1]
        theirs_missing = length - other.attention.shape[1]

        def join(mine, theirs, dim: int):
            padded = []
            for tensor, missing in ((mine, mine_missing), (theirs, theirs_missing)):
                if missing:
                    shape = list(tensor.shape)
                    shape[dim] = missing
                    tensor = torch.cat([tensor.new_zeros(shape), tensor], dim=dim)
                padded.append(tensor)
            return torch.cat(padded)

        with torch.inference_mode():
            for mine, theirs in zip(self.past.layers, other.past.layers, strict=True):
                mine.keys = join(mine.keys, theirs.keys, 2)
                mine.values = join(mine.values, theirs.values, 2)
            self.attention = join(self.attention, other.attention, 1)
            self.position = join(self.position, other.position, 1)
            self.rows = self.rows + other.rows
            self._trim()
        return self

    def _trim(self) -> None:
        """Drop leading columns that are padding in every row (left by rows that left)."""
        first = int(self.attention.any(dim=0).int().argmax())
        if first == 0 or not self.can_merge():
            return
        import torch

        with torch.inference_mode():
            for layer in self.past.layers:
                layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]
            self.attention, self.position = self.attention[:, first:], self.position[:, first:]


def _adapter_kwargs(loaded: LoadedModel, names: list[str]) -> dict:
    """peft's mixed-batch inference: one adapter name per row, `__base__` for none."""
    if not loaded.adapters:
        return {}
    return {"adapter_names": ["__base__" if name == BASE else name for name in names]}


_NUCLEUS_HEAD = 64  # tokens sorted first for top-p sampling


def _choose(logits, settings: GenerationSettings, generator):
    """One token id per row, left on the logits' device (`generator` lives there too): only
    the ids cross to the host, not the vocabulary-sized distribution."""
    import torch

    if settings.temperature == 0.0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits / settings.temperature, dim=-1)
    if settings.top_p < 1.0:
        # The nucleus is nearly always within the top few dozen tokens: sort only those, and
        # the whole vocabulary only for a row whose top slice falls short of top_p.
        head = min(_NUCLEUS_HEAD, probs.shape[-1])
        top_probs, indices = torch.topk(probs, head, dim=-1)
        if bool((top_probs.sum(dim=-1) < settings.top_p).any()):
            top_probs, indices = torch.sort(probs, descending=True, dim=-1)
        keep = top_probs.cumsum(dim=-1) - top_probs < settings.top_p
        picked = torch.multinomial(top_probs * keep, 1, generator=generator)
        return indices.gather(-1, picked).squeeze(1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


def _stop_cut(text: str, stops: tuple[str, ...], changed_from: int = 0) -> int | None:
    """Index where the earliest stop sequence starts, or None.

    `text[:changed_from]` held no stop sequence at the last step, so a new one ends after
    `changed_from`: only the tail is searched, with room for a stop spanning tokens.

    >>> _stop_cut("x = 4\\nQuestion: y", ("\\nQuestion:",), changed_from=len("x = 4\\nQues"))
    5
    """
    positions = [text.find(stop, max(0, changed_from - len(stop) + 1)) for stop in stops]
    found = [p for p in positions if p >= 0]
    return min(found) if found else None
