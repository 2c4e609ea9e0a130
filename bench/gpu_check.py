"""The GPU check: one command that proves mathtutor's GPU paths and measures them.

    python bench/gpu_check.py                      # a CUDA machine: < 8 minutes
    python bench/gpu_check.py --dry                # CPU: tiny model, tiny sizes (auto without CUDA)
    python bench/gpu_check.py --out DIR --budget 420

It prints one line per row as it goes and writes the table to `--out` (default
`bench/out/gpu_check/`) as `gpu_check.json` and `gpu_check.md`. The rows:

- `hardware`: the device, a measured bf16 matmul TFLOP/s and a device-to-device copy GB/s,
  so every other figure can be read as a fraction of the hardware;
- `parity <model> <dtype>` (the bundled SmolLM2 and a tiny random llama, bf16 and fp32):
  greedy output of the decoding loop (`mathtutor.generate`) equals `model.generate`, batched
  equals one-by-one, and a batch mixing base and two adapters equals each adapter alone;
- `throughput batch N`: tokens/s of the decoding loop vs `model.generate` at batch 1/16/64;
- `memory over repeated decoding`: live tensors and allocated GPU memory after each of ten
  identical batches (growth = something the loop keeps);
- `evaluation engine`: `mathtutor.evaluate` problems/min on 256 GSM8K test problems vs
  one-by-one `model.generate` (lm-eval's HF backend default, batch size 1);
- `sft`, `grpo`: a few dozen steps of the `bundled-quick` recipe (LoRA, bf16) through
  `training.train`: s/step, peak memory, held-out accuracy before/after on the same 48
  problems as `python bench/bench_train.py quick` (its `_evaluate`);
- `qlora`, `vllm`, `unsloth`: run when importable, else "not available here: <reason>"
  (never a failure).

Every row runs under its own time limit (SIGALRM) and the whole check under `--budget`
seconds; a row that fails or runs out of time records its error and the check goes on; rows
left when the budget is spent are "skipped". Status "pass" on a measurement row means it ran
and produced its figures. The exit status is 1 when any row failed.

`--dry` (chosen automatically without CUDA) runs every row on the tiny model
(`mathtutor.models.make_tiny_model`) with tiny sizes on the CPU, so CI keeps the check working
(`tests/test_gpu_check.py`); its figures say nothing about speed.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
QUICK = REPO / "training" / "recipes" / "bundled-quick.yaml"
PASS, FAIL, UNAVAILABLE, SKIPPED = "pass", "fail", "not available", "skipped"


class RowTimeout(BaseException):
    """Raised inside a row when its time limit passes (BaseException: no handler swallows it)."""


class Unavailable(Exception):
    """A row that cannot run here; the message is the reason."""


@dataclass(frozen=True)
class Sizes:
    """How much each row does: the real sizes on CUDA, tiny ones in the dry mode."""

    parity_prompts: int
    max_new_tokens: int
    batches: tuple[int, ...]
    eval_problems: int
    eval_tokens: int
    baseline_problems: int  # at most this many one-by-one generate calls for the baseline
    held_out: int
    sft_steps: int
    grpo_steps: int
    matmul_size: int
    copy_megabytes: int


SIZES = {
    "cuda": Sizes(8, 64, (1, 16, 64), 256, 256, 32, 48, 30, 12, 8192, 1024),
    "dry": Sizes(2, 8, (1, 2, 4), 4, 8, 2, 2, 2, 2, 256, 16),
}
# Seconds per row at most (the check as a whole stays under --budget).
BUDGETS = {
    "setup": 90, "hardware": 30, "parity": 40, "throughput": 40, "memory": 30,
    "evaluation": 90, "sft": 90, "grpo": 90, "qlora": 60, "vllm": 120, "unsloth": 60,
}  # fmt: skip


@dataclass
class Row:
    name: str
    status: str
    seconds: float
    budget_s: float
    figures: dict[str, Any] = field(default_factory=dict)
    detail: str = ""


def why_unavailable(package: str, installed: bool, cuda: bool, needs_cuda: bool) -> str | None:
    """The reason an optional accelerator's row cannot run here, or None when it can.

    >>> why_unavailable("unsloth", installed=False, cuda=True, needs_cuda=True)
    'unsloth is not installed (pip install unsloth)'
    >>> why_unavailable("unsloth", installed=True, cuda=False, needs_cuda=True)
    'unsloth needs a CUDA GPU and none is visible'
    >>> why_unavailable("bitsandbytes", installed=True, cuda=False, needs_cuda=False) is None
    True
    """
    if not installed:
        return f"{package} is not installed (pip install {package})"
    if needs_cuda and not cuda:
        return f"{package} needs a CUDA GPU and none is visible"
    return None


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise RowTimeout in this (main) thread after `seconds`; no limit off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise RowTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Check:
    """The run's settings and its rows so far."""

    dry: bool
    device: str
    out: Path
    deadline: float
    sizes: Sizes
    models: dict[str, str]  # label -> model spec
    main_model: str  # the spec that throughput, evaluation and training use
    rows: list[Row] = field(default_factory=list)

    def run(self, name: str, budget_key: str, function: Callable[..., dict], *args: Any) -> Row:
        """Run one row under its budget; its figures, or its error, go into the table."""
        remaining = self.deadline - time.monotonic()
        budget = float(BUDGETS[budget_key])
        if remaining < min(budget, 10.0):
            row = Row(
                name, SKIPPED, 0.0, budget, detail="skipped: the check's time budget is spent"
            )
            return self._add(row)
        limit = min(budget, remaining)
        started = time.monotonic()
        status, figures, detail = PASS, {}, ""
        try:
            with time_limit(limit):
                figures = function(self, *args)
            if figures.pop("_ok", True) is False:
                status, detail = FAIL, str(figures.pop("_why", "a check did not hold"))
        except Unavailable as reason:
            status, detail = UNAVAILABLE, f"not available here: {reason}"
        except RowTimeout:
            status, detail = FAIL, f"ran past its {limit:.0f} s time limit"
        except Exception as error:
            status, detail = FAIL, f"{type(error).__name__}: {str(error)[:400]}"
            with open(self.out / "gpu_check-errors.log", "a", encoding="utf-8") as log:
                log.write(f"--- {name}\n{traceback.format_exc()}\n")
        figures.pop("_why", None)
        return self._add(Row(name, status, time.monotonic() - started, limit, figures, detail))

    def _add(self, row: Row) -> Row:
        self.rows.append(row)
        shown = "; ".join(f"{key} {value}" for key, value in row.figures.items())
        print(f"[{row.status:>13s}] {row.name} ({row.seconds:.1f} s): {shown} {row.detail}",
              flush=True)  # fmt: skip
        return row

    def prompts(self, tokenizer: Any, count: int) -> list[str]:
        """Chat prompts of the first GSM8K test problems (the same every run)."""
        from mathtutor.data import load_problems
        from mathtutor.prompts import render

        problems = load_problems("gsm8k", split="test", num_samples=max(count, 1), seed=0)
        return [render("chat", problem.question, tokenizer) for problem in problems[:count]]


# --------------------------------------------------------------------------- helpers
def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _reference(loaded: Any, prompts: list[str], max_new_tokens: int) -> list[tuple[str, int]]:
    """`model.generate` greedy on a left-padded batch: (text up to the first EOS, tokens)."""
    import torch

    from mathtutor.generate import _eos_ids

    tokenizer = loaded.tokenizer
    eos = _eos_ids(loaded)
    encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    encoded = encoded.to(loaded.device)
    extra = {"adapter_names": ["__base__"] * len(prompts)} if loaded.adapters else {}
    with torch.inference_mode():
        output = loaded.model.generate(
            **encoded, max_new_tokens=max_new_tokens, do_sample=False,
            eos_token_id=sorted(eos), pad_token_id=tokenizer.pad_token_id, **extra,
        )  # fmt: skip
    results = []
    for row in output[:, encoded["input_ids"].shape[1] :].tolist():
        cut = next((i for i, token in enumerate(row) if token in eos), len(row))
        results.append((tokenizer.decode(row[:cut], skip_special_tokens=True), cut))
    return results


def _make_adapter(spec: str, directory: Path, seed: int, scale: float) -> Path:
    """A real LoRA adapter with random B matrices (the zero init would change nothing)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from mathtutor.models import resolve_model

    if (directory / "adapter_config.json").is_file():
        return directory
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(resolve_model(spec))
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                        init_lora_weights=False, task_type="CAUSAL_LM")  # fmt: skip
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, scale)
    peft_model.save_pretrained(directory)
    return directory


def _same(a: list[str], b: list[str]) -> str:
    return f"{sum(x == y for x, y in zip(a, b, strict=True))}/{len(a)}"


def _first_mismatch(label: str, a: list[str], b: list[str]) -> str:
    for index, (x, y) in enumerate(zip(a, b, strict=True)):
        if x != y:
            at = next((i for i, (p, q) in enumerate(zip(x, y, strict=False)) if p != q), None)
            at = min(len(x), len(y)) if at is None else at
            return (f"{label}: row {index} differs from character {at} "
                    f"({x[at : at + 30]!r} vs {y[at : at + 30]!r})")  # fmt: skip
    return ""


def _peak_memory_reset(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_memory(device: str) -> str:
    import resource

    import torch

    if device == "cuda":
        return f"{torch.cuda.max_memory_allocated() / 1e9:.2f} GB"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB (process RSS)"


def _seconds_per_step(run_id: str) -> float | None:
    from training import runs

    rows = [row for row in runs.read_metrics(run_id) if "loss" in row and "time" in row]
    if len(rows) < 2 or rows[-1]["step"] == rows[0]["step"]:
        return None
    return (rows[-1]["time"] - rows[0]["time"]) / (rows[-1]["step"] - rows[0]["step"])


# --------------------------------------------------------------------------- rows
def row_setup(check: Check) -> dict:
    """Models ready: the bundled conversion (first use) and the tiny model."""
    from mathtutor.models import bundled_model_dir, load_model

    figures = {}
    for label, spec in check.models.items():
        started = time.perf_counter()
        if spec == "bundled":
            bundled_model_dir()
        load_model(spec, device=check.device)
        figures[f"{label} ready"] = f"{time.perf_counter() - started:.1f} s"
    return figures


def row_hardware(check: Check) -> dict:
    """The device and its own limits: bf16 matmul TFLOP/s and a copy's GB/s."""
    import torch

    from mathtutor.models import cuda_capability

    device = check.device
    figures: dict[str, Any] = {"device": "cpu"}
    if device == "cuda":
        properties = torch.cuda.get_device_properties(0)
        figures = {
            "device": torch.cuda.get_device_name(0),
            "compute capability": ".".join(map(str, cuda_capability() or ())),
            "memory": f"{properties.total_memory / 1e9:.0f} GB",
        }
    n = check.sizes.matmul_size
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    a @ b
    _sync(device)
    repeats = 20 if device == "cuda" else 3
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync(device)
    seconds = time.perf_counter() - started
    figures["bf16 matmul"] = f"{2 * n**3 * repeats / seconds / 1e12:.3g} TFLOP/s"
    size = check.sizes.copy_megabytes * 2**20
    source = torch.empty(size, dtype=torch.uint8, device=device)
    target = torch.empty_like(source)
    target.copy_(source)
    _sync(device)
    started = time.perf_counter()
    for _ in range(repeats):
        target.copy_(source)
    _sync(device)
    seconds = time.perf_counter() - started
    figures["copy bandwidth"] = f"{2 * size * repeats / seconds / 1e9:.0f} GB/s (read + write)"
    figures["torch"] = torch.__version__
    return figures


def row_parity(check: Check, label: str, dtype_name: str) -> dict:
    """Greedy decoding loop == model.generate; batched == one-by-one; mixed == alone."""
    import torch

    from mathtutor.generate import GenerationSettings, generate_batch
    from mathtutor.models import load_model

    loaded = load_model(check.models[label], device=check.device, dtype=getattr(torch, dtype_name))
    sizes = check.sizes
    prompts = check.prompts(loaded.tokenizer, sizes.parity_prompts)
    settings = GenerationSettings(max_new_tokens=sizes.max_new_tokens)
    if loaded.adapters:
        raise RuntimeError("this model copy already has adapters; parity needs the bare model")
    single = [generate_batch(loaded, [p], settings=settings)[0].text for p in prompts]
    reference = [text for p in prompts for text, _ in _reference(loaded, [p], sizes.max_new_tokens)]
    batched = [c.text for c in generate_batch(loaded, prompts, settings=settings,
                                              batch_size=len(prompts))]  # fmt: skip
    names = ["base"]
    for seed in (1, 2):
        directory = check.out / "adapters" / f"{label}-{seed}"
        # B's scale: enough to change greedy tokens (the tiny model's logits are flatter)
        scale = 0.5 if label == "tiny" else 0.1
        adapter = _make_adapter(check.models[label], directory, seed, scale)
        names.append(loaded.add_adapter(adapter))
    few = prompts[: max(2, len(prompts) // 2)]
    alone = {name: [c.text for c in generate_batch(loaded, few, name, settings,
                                                   batch_size=len(few))] for name in names}  # fmt: skip
    rows = [(p, name) for p in few for name in names]
    mixed_out = generate_batch(loaded, [p for p, _ in rows], [n for _, n in rows], settings,
                               batch_size=len(rows))  # fmt: skip
    mixed = [c.text for c in mixed_out]
    expected = [alone[name][few.index(p)] for p, name in rows]
    changed = any(alone[name] != alone["base"] for name in names[1:])
    figures = {
        "decode == generate": _same(single, reference),
        "batched == one-by-one": _same(batched, single),
        "mixed adapters == alone": _same(mixed, expected),
        "adapters change the output": "yes" if changed else "no",
    }
    problems = [
        _first_mismatch("decode vs generate", single, reference),
        _first_mismatch("batched vs one-by-one", batched, single),
        _first_mismatch("mixed vs alone", mixed, expected),
    ]
    if not changed:
        problems.append("the adapters did not change any output, so 'mixed' proves nothing")
    problems = [p for p in problems if p]
    return {**figures, "_ok": not problems, "_why": "; ".join(problems)}


def row_throughput(check: Check, batch: int) -> dict:
    """Tokens/s of the decoding loop and of model.generate on the same greedy batch."""
    from mathtutor.generate import GenerationSettings, generate_batch
    from mathtutor.models import load_model

    loaded = load_model(check.main_model, device=check.device)
    prompts = check.prompts(loaded.tokenizer, batch)
    tokens = check.sizes.max_new_tokens * 2
    settings = GenerationSettings(max_new_tokens=tokens)
    generate_batch(loaded, prompts, settings=GenerationSettings(max_new_tokens=4), batch_size=batch)
    _reference(loaded, prompts, 4)  # warm-up of both paths (kernels, allocator)
    _sync(check.device)
    started = time.perf_counter()
    ours = generate_batch(loaded, prompts, settings=settings, batch_size=batch)
    _sync(check.device)
    ours_seconds = time.perf_counter() - started
    started = time.perf_counter()
    reference = _reference(loaded, prompts, tokens)
    _sync(check.device)
    reference_seconds = time.perf_counter() - started
    ours_rate = sum(c.num_tokens for c in ours) / ours_seconds
    reference_rate = sum(n for _, n in reference) / reference_seconds
    return {
        "decoding loop": f"{ours_rate:,.0f} tokens/s",
        "model.generate": f"{reference_rate:,.0f} tokens/s",
        "ratio": f"{ours_rate / reference_rate:.2f}",
        "dtype": str(loaded.dtype).replace("torch.", ""),
        "max new tokens": tokens,
    }


def row_memory(check: Check) -> dict:
    """Ten identical batches: live tensors and allocated memory must not grow after the first."""
    import torch

    from mathtutor.generate import GenerationSettings, generate_batch
    from mathtutor.models import load_model

    loaded = load_model(check.main_model, device=check.device)
    prompts = check.prompts(loaded.tokenizer, check.sizes.batches[1])
    settings = GenerationSettings(max_new_tokens=check.sizes.max_new_tokens)

    def live() -> tuple[int, int]:
        gc.collect()
        tensors = sum(1 for item in gc.get_objects() if torch.is_tensor(item))
        allocated = torch.cuda.memory_allocated() if check.device == "cuda" else 0
        return tensors, allocated

    generate_batch(loaded, prompts, settings=settings)
    first = live()
    for _ in range(9):
        generate_batch(loaded, prompts, settings=settings)
    last = live()
    grown_tensors, grown_bytes = last[0] - first[0], last[1] - first[1]
    figures = {"live tensors grown": grown_tensors, "rows": len(prompts), "batches": 10}
    if check.device == "cuda":
        figures["allocated grown"] = f"{grown_bytes / 1e6:.1f} MB"
    ok = grown_tensors <= 0 and grown_bytes <= 1e6
    return {**figures, "_ok": ok, "_why": "memory grew over repeated identical batches"}


def row_evaluation(check: Check) -> dict:
    """mathtutor.evaluate problems/min on GSM8K test vs one-by-one model.generate."""
    import torch

    from mathtutor.data import load_problems
    from mathtutor.evaluate import EvalConfig, evaluate
    from mathtutor.models import load_model
    from mathtutor.prompts import render, stop_sequences

    sizes = check.sizes
    config = EvalConfig(
        model=check.main_model, systems=["base"], dataset="gsm8k", split="test",
        num_samples=sizes.eval_problems, max_new_tokens=sizes.eval_tokens, prompt_format="chat",
        backend="transformers", seed=0,
    )  # fmt: skip
    report = evaluate(config)
    engine_rate = sizes.eval_problems / report.seconds * 60
    accuracy = report.summary.systems["base"].accuracy.value
    loaded = load_model(check.main_model, device=check.device)
    problems = load_problems("gsm8k", split="test", num_samples=sizes.eval_problems, seed=0)
    stops = stop_sequences("chat")
    extra = {"stop_strings": stops, "tokenizer": loaded.tokenizer} if stops else {}
    started, done = time.perf_counter(), 0
    budget = BUDGETS["evaluation"] / 4
    for problem in problems[: sizes.baseline_problems]:
        encoded = loaded.tokenizer(render("chat", problem.question, loaded.tokenizer),
                                   return_tensors="pt", add_special_tokens=False)  # fmt: skip
        with torch.inference_mode():
            loaded.model.generate(
                **encoded.to(loaded.device), max_new_tokens=sizes.eval_tokens, do_sample=False,
                pad_token_id=loaded.tokenizer.pad_token_id, **extra,
            )  # fmt: skip
        done += 1
        if time.perf_counter() - started > budget:
            break
    baseline_rate = done / (time.perf_counter() - started) * 60
    return {
        "engine": f"{engine_rate:,.1f} problems/min ({sizes.eval_problems} problems)",
        "one-by-one generate": f"{baseline_rate:,.1f} problems/min ({done} problems timed)",
        "speed-up": f"{engine_rate / baseline_rate:.1f}x",
        "accuracy (flexible)": f"{accuracy:.3f}",
        "max new tokens": sizes.eval_tokens,
    }


def _train_config(check: Check, **changes: Any) -> Any:
    """bundled-quick with the check's changes (tiny sizes and the tiny model in the dry mode)."""
    from training.config import TrainConfig

    values: dict[str, Any] = {"save_steps": 1000, "logging_steps": 1, "eval_every": 0}
    if check.dry:
        values.update(model=check.main_model, num_train_samples=16, batch_size=2)
    return TrainConfig.from_yaml(QUICK, **{**values, **changes})


def _train_and_score(check: Check, config: Any) -> dict:
    """Train in this process; s/step, peak memory, held-out accuracy before/after."""
    from bench_train import _evaluate

    from mathtutor import store
    from training import train

    _peak_memory_reset(check.device)
    started = time.perf_counter()
    result = train(config)
    seconds = time.perf_counter() - started
    peak = _peak_memory(check.device)
    step = _seconds_per_step(result.run_id)
    figures: dict[str, Any] = {
        "steps": result.global_step,
        "s/step": f"{step:.3f}" if step is not None else "n/a",
        "run": f"{seconds:.0f} s (model load included)",
        "peak memory": peak,
        "notes": "; ".join(result.notes) or "-",
    }
    totals = _evaluate(config, ["base", str(result.adapter_dir)], check.sizes.held_out)
    before, after = totals["base"], totals[str(result.adapter_dir)]
    figures["held-out accuracy"] = (
        f"{before['correct']}/{before['n']} -> {after['correct']}/{after['n']}"
    )
    store.remove_adapter(result.run_id)  # a probe, not an adapter to offer in the app
    ok = result.status == "finished" and result.global_step == config.max_steps
    return {**figures, "_ok": ok, "_why": f"run {result.status} at step {result.global_step}"}


def row_sft(check: Check) -> dict:
    precision = "bf16" if check.device == "cuda" else "auto"
    config = _train_config(check, max_steps=check.sizes.sft_steps, precision=precision,
                           run_name="gpu-check-sft")  # fmt: skip
    return _train_and_score(check, config)


def row_grpo(check: Check) -> dict:
    precision = "bf16" if check.device == "cuda" else "auto"
    generations = 2 if check.dry else 4
    config = _train_config(
        check, method="grpo", max_steps=check.sizes.grpo_steps, precision=precision,
        num_generations=generations, batch_size=2 * generations, learning_rate=1e-4,
        max_completion_length=check.sizes.max_new_tokens * 2, run_name="gpu-check-grpo",
    )  # fmt: skip
    return _train_and_score(check, config)


def row_qlora(check: Check) -> dict:
    import torch

    reason = why_unavailable("bitsandbytes", importlib.util.find_spec("bitsandbytes") is not None,
                             torch.cuda.is_available(), needs_cuda=not check.dry)  # fmt: skip
    if reason:
        raise Unavailable(reason)
    config = _train_config(check, finetune="qlora", max_steps=max(2, check.sizes.sft_steps // 3),
                           run_name="gpu-check-qlora")  # fmt: skip
    return _train_and_score(check, config)


def row_vllm(check: Check) -> dict:
    from mathtutor.evaluate import EvalConfig, evaluate, pick_backend

    try:
        pick_backend("vllm")
    except ValueError as error:
        raise Unavailable(str(error).split("not available here: ")[-1]) from None
    sizes = check.sizes
    config = EvalConfig(model=check.main_model, dataset="gsm8k", num_samples=sizes.eval_problems,
                        max_new_tokens=sizes.eval_tokens, backend="vllm")  # fmt: skip
    report = evaluate(config)
    accuracy = report.summary.systems["base"].accuracy.value
    return {
        "vLLM engine": f"{sizes.eval_problems / report.seconds * 60:,.1f} problems/min "
        "(engine start included)",
        "accuracy (flexible)": f"{accuracy:.3f}",
    }


def row_unsloth(check: Check) -> dict:
    import torch

    reason = why_unavailable("unsloth", importlib.util.find_spec("unsloth") is not None,
                             torch.cuda.is_available(), needs_cuda=True)  # fmt: skip
    if reason:
        raise Unavailable(reason)
    config = _train_config(check, use_unsloth=True, max_steps=max(2, check.sizes.sft_steps // 3),
                           precision="bf16", run_name="gpu-check-unsloth")  # fmt: skip
    figures = _train_and_score(check, config)
    if "unsloth fast path used" not in figures["notes"]:
        figures.update(_ok=False, _why="the run did not take unsloth's fast path")
    return figures


# --------------------------------------------------------------------------- the table
def markdown(report: dict) -> str:
    """The table as Markdown: check, status, figures (or the reason), seconds of its limit."""
    lines = [
        f"# GPU check ({report['mode']}): {report['device']}",
        "",
        f"`{report['command']}`, {report['seconds']:.0f} s in all, {report['started']}.",
        "",
        "| check | status | figures | s (limit) |",
        "| --- | --- | --- | --- |",
    ]
    for row in report["rows"]:
        shown = "; ".join(f"{key}: {value}" for key, value in row["figures"].items())
        shown = "; ".join(part for part in (shown, row["detail"]) if part).replace("|", "\\|")
        lines.append(f"| {row['name']} | {row['status']} | {shown} | "
                     f"{row['seconds']:.1f} ({row['budget_s']:.0f}) |")  # fmt: skip
    return "\n".join(lines) + "\n"


def run_check(dry: bool, out: Path, budget: float) -> dict:
    """Every row in order; returns the report that `main` writes."""
    import torch

    from mathtutor.models import make_tiny_model
    from mathtutor.paths import home_dir

    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check-errors.log").unlink(missing_ok=True)
    device = "cpu" if dry else "cuda"
    tiny = home_dir() / "models" / "gpu-check-tiny"
    if not (tiny / "config.json").is_file():
        make_tiny_model(tiny)
    models = {"tiny": str(tiny)} if dry else {"bundled": "bundled", "tiny": str(tiny)}
    check = Check(dry, device, out, started + budget, SIZES["dry" if dry else "cuda"], models,
                  models["tiny"] if dry else "bundled")  # fmt: skip
    check.run("setup", "setup", row_setup)
    check.run("hardware", "hardware", row_hardware)
    for label in models:
        for dtype_name in ("bfloat16", "float32"):
            check.run(f"parity {label} {dtype_name}", "parity", row_parity, label, dtype_name)
    for batch in check.sizes.batches:
        check.run(f"throughput batch {batch}", "throughput", row_throughput, batch)
    check.run("memory over repeated decoding", "memory", row_memory)
    check.run("evaluation engine", "evaluation", row_evaluation)
    check.run("sft (LoRA, bundled-quick)", "sft", row_sft)
    check.run("grpo (LoRA, bundled-quick)", "grpo", row_grpo)
    check.run("qlora (4-bit)", "qlora", row_qlora)
    check.run("vllm", "vllm", row_vllm)
    check.run("unsloth", "unsloth", row_unsloth)  # last: importing unsloth patches trl
    first = next((row for row in check.rows if row.name == "hardware"), None)
    return {
        "mode": "dry (CPU, tiny model)" if dry else "cuda",
        "device": (first.figures.get("device") if first else None) or device,
        "command": "python bench/gpu_check.py" + (" --dry" if dry else ""),
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "seconds": time.monotonic() - started,
        "budget_s": budget,
        "versions": {"torch": torch.__version__, "python": sys.version.split()[0]},
        "rows": [asdict(row) for row in check.rows],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry", action="store_true", help="CPU, tiny model (auto without CUDA)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "gpu_check")
    parser.add_argument("--budget", type=float, default=420.0, help="seconds for all rows")
    args = parser.parse_args(argv)
    os.environ.setdefault("MATHTUTOR_RUN_LOG", "stdout")  # training lines without progress bars
    import torch

    dry = args.dry or not torch.cuda.is_available()
    if dry and not args.dry:
        print("no CUDA GPU visible: running the dry mode (tiny model, CPU)", flush=True)
    report = run_check(dry, args.out, args.budget)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "gpu_check.md").write_text(markdown(report))
    print("\n" + markdown(report))
    return 1 if any(row["status"] == FAIL for row in report["rows"]) else 0


if __name__ == "__main__":
    sys.exit(main())
