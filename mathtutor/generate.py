"""Generation: streaming and batched decoding over one shared base with mixed adapters.

One decoding loop serves every tab. It runs a left-padded batch one token per step with a
KV cache; each row has its own adapter ("base" or an adapter name), its own stop sequences,
and, when `calculator=True`, its own queue of forced tokens: when a row's text ends with an
arithmetic expression and `=`, the exact value from `mathtutor.checks.calculator_result` is
fed in as the next tokens (the GSM8K paper's calculator), so later steps build on true
numbers. Rows that finish are masked out; the loop ends when all rows are done.

    >>> GenerationSettings(max_new_tokens=0)
    Traceback (most recent call last):
    ValueError: max_new_tokens must be between 1 and 4096, got 0

The model's lock is taken for each forward step, never across a `yield`: a streaming generator
that Gradio abandons or closes from another thread (Stop, a closed tab) can then never leave
the model locked. Each step passes every row's adapter explicitly (`__base__` for the bare
model), so an adapter added by another session between two steps changes no running row.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

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
) -> list[Completion]:
    """Generate one completion per prompt, batched; results come back in prompt order.

    `adapters` is one name for all rows or one per row ("base" for the bare model).
    Prompts are sorted by length inside the call so batches waste little padding.
    """
    settings = settings or GenerationSettings()
    names = _adapter_list(loaded, prompts, adapters)
    batch_size = batch_size or default_batch_size(loaded.device)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    results: list[Completion | None] = [None] * len(prompts)
    done = 0
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        final: list[Completion] = []
        for step in _decode(
            loaded, [prompts[i] for i in chunk], [names[i] for i in chunk], settings
        ):
            final = step
        for index, completion in zip(chunk, final, strict=True):
            results[index] = completion
        done += len(chunk)
        if on_progress:
            on_progress(done, len(prompts))
    return [r for r in results if r is not None]


def stream(
    loaded: LoadedModel,
    prompt: str,
    adapter: str = BASE,
    settings: GenerationSettings | None = None,
) -> Iterator[str]:
    """Yield the cumulative completion text after every generated token."""
    for rows in stream_many(loaded, [prompt], [adapter], settings):
        yield rows[0]


def stream_many(
    loaded: LoadedModel,
    prompts: Sequence[str],
    adapters: Sequence[str] | str = BASE,
    settings: GenerationSettings | None = None,
) -> Iterator[list[str]]:
    """Stream several rows in ONE batch (e.g. base and tuned side by side)."""
    settings = settings or GenerationSettings()
    names = _adapter_list(loaded, prompts, adapters)
    for step in _decode(loaded, list(prompts), names, settings):
        yield [completion.text for completion in step]


def stream_completions(
    loaded: LoadedModel,
    prompts: Sequence[str],
    adapters: Sequence[str] | str = BASE,
    settings: GenerationSettings | None = None,
) -> Iterator[list[Completion]]:
    """Like `stream_many`, but yields the full `Completion` objects (finish reasons too)."""
    settings = settings or GenerationSettings()
    yield from _decode(loaded, list(prompts), _adapter_list(loaded, prompts, adapters), settings)


def default_batch_size(device: str) -> int:
    """Rows per forward pass: small on CPU (2 cores saturate early), larger on GPUs."""
    return {"cuda": 64, "mps": 16}.get(device, 16)


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
    for source in (loaded.tokenizer.eos_token_id, loaded.model.generation_config.eos_token_id):
        if isinstance(source, int):
            ids.add(source)
        elif source:
            ids.update(source)
    vocab = loaded.tokenizer.get_vocab()
    for token in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|endoftext|>"):
        if token in vocab:  # (an unknown token would map to unk, which must not end a row)
            ids.add(vocab[token])
    return ids


def _decode(
    loaded: LoadedModel, prompts: list[str], names: list[str], settings: GenerationSettings
) -> Iterator[list[Completion]]:
    """The decoding loop. Yields the rows' completions after every step.

    Two savings over a plain batched loop: rows that share a prompt and an adapter (the k
    samples of self-consistency) are prefilled once and their KV cache is copied to each row;
    and a row that finishes leaves the batch, so later steps only run the rows still going.
    """
    import torch

    if settings.calculator:
        from mathtutor.checks import calculator_result

    tokenizer = loaded.tokenizer
    started = time.perf_counter()
    # Prefill each distinct (prompt, adapter) once; `source[row]` is the prefilled row it copies.
    distinct: dict[tuple[str, str], int] = {}
    source = [distinct.setdefault(key, len(distinct)) for key in zip(prompts, names, strict=True)]
    encoded = tokenizer(
        [prompt for prompt, _ in distinct],
        return_tensors="pt",
        padding=True,
        add_special_tokens=False,
    )
    step_ids = encoded["input_ids"].to(loaded.device)
    attention = encoded["attention_mask"].to(loaded.device)
    step_names = [name for _, name in distinct]
    rows = len(prompts)
    prompt_tokens = [int(attention[index].sum()) for index in source]
    eos = _eos_ids(loaded)
    generator = torch.Generator(device="cpu").manual_seed(settings.seed)
    generated: list[list[int]] = [[] for _ in range(rows)]
    texts = [""] * rows
    finish: list[str | None] = [None] * rows
    forced: list[list[int]] = [[] for _ in range(rows)]
    calculator_calls = [0] * rows
    calculator_checked = [0] * rows
    position = attention.long().cumsum(-1) - 1
    position.clamp_(min=0)
    step_positions = position
    past = None
    live = list(range(rows))  # the rows in the batch, in batch order
    for step in range(settings.max_new_tokens):
        # Lock and inference mode per step, not around the loop: grad mode is thread-local
        # and the steps of a streaming generator may run on different threads.
        with loaded.lock, torch.inference_mode():
            output = loaded.model(
                input_ids=step_ids,
                attention_mask=attention,
                position_ids=step_positions,
                past_key_values=past,
                use_cache=True,
                logits_to_keep=1,  # the prefill needs only the last position's logits
                **_adapter_kwargs(loaded, step_names),
            )
            past = output.past_key_values
            logits = output.logits[:, -1, :].float()
            if step == 0 and len(distinct) < rows:
                copies = torch.tensor(source, device=loaded.device)
                past.batch_select_indices(copies)
                logits, attention, position = logits[copies], attention[copies], position[copies]
        sampled = _choose(logits, settings, generator).tolist()
        next_tokens: dict[int, int] = {}
        for slot, row in enumerate(live):
            token = forced[row].pop(0) if forced[row] else sampled[slot]
            next_tokens[row] = token
            if token in eos and not forced[row]:
                finish[row] = "eos"
                continue
            generated[row].append(token)
            texts[row] = tokenizer.decode(generated[row], skip_special_tokens=True)
            cut = _stop_cut(texts[row], settings.stop)
            if cut is not None:
                texts[row], finish[row] = texts[row][:cut], "stop"
                continue
            if len(generated[row]) >= settings.max_new_tokens:
                finish[row] = "length"
                continue
            if settings.calculator and not forced[row]:
                checked = calculator_checked[row]
                if len(texts[row]) > checked and texts[row].rstrip().endswith("="):
                    calculator_checked[row] = len(texts[row])
                    value = calculator_result(texts[row])
                    if value is not None:
                        text = texts[row]
                        in_annotation = text.rfind("<<") > text.rfind(">>")
                        spacer = "" if in_annotation or text.endswith(" ") else " "
                        forced[row] = tokenizer.encode(spacer + value, add_special_tokens=False)
                        calculator_calls[row] += 1
        yield [
            Completion(
                text=texts[row],
                num_tokens=len(generated[row]),
                finish_reason=finish[row],
                seconds=time.perf_counter() - started,
                prompt_tokens=prompt_tokens[row],
                calculator_calls=calculator_calls[row],
            )
            for row in range(rows)
        ]
        keep = [slot for slot, row in enumerate(live) if finish[row] is None]
        if not keep:
            break
        if len(keep) < len(live):  # finished rows leave the batch and its cache
            kept = torch.tensor(keep, device=loaded.device)
            with torch.inference_mode():
                past.batch_select_indices(kept)
            attention, position = attention[kept], position[kept]
            live = [live[slot] for slot in keep]
        step_names = [names[row] for row in live]
        step_ids = torch.tensor([next_tokens[row] for row in live], device=loaded.device)
        step_ids = step_ids.unsqueeze(1)
        attention = torch.cat([attention, attention.new_ones((len(live), 1))], dim=1)
        step_positions = position[:, -1:] + 1
        position = torch.cat([position, step_positions], dim=1)


def _adapter_kwargs(loaded: LoadedModel, names: list[str]) -> dict:
    """peft's mixed-batch inference: one adapter name per row, `__base__` for none."""
    if not loaded.adapters:
        return {}
    return {"adapter_names": ["__base__" if name == BASE else name for name in names]}


_NUCLEUS_HEAD = 64  # tokens sorted first for top-p sampling


def _choose(logits, settings: GenerationSettings, generator):
    import torch

    if settings.temperature == 0.0:
        return logits.argmax(dim=-1).cpu()
    probs = torch.softmax(logits / settings.temperature, dim=-1)
    if settings.top_p < 1.0:
        # The nucleus is nearly always within the top few dozen tokens: sort only those, and
        # the whole vocabulary only for a row whose top slice falls short of top_p.
        head = min(_NUCLEUS_HEAD, probs.shape[-1])
        top_probs, indices = torch.topk(probs, head, dim=-1)
        if bool((top_probs.sum(dim=-1) < settings.top_p).any()):
            top_probs, indices = torch.sort(probs, descending=True, dim=-1)
        keep = top_probs.cumsum(dim=-1) - top_probs < settings.top_p
        picked = torch.multinomial((top_probs * keep).cpu(), 1, generator=generator)
        return indices.cpu().gather(-1, picked).squeeze(1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1)


def _stop_cut(text: str, stops: tuple[str, ...]) -> int | None:
    """Index where the earliest stop sequence starts, or None."""
    positions = [text.find(stop) for stop in stops]
    found = [p for p in positions if p >= 0]
    return min(found) if found else None
