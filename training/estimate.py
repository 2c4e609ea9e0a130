"""Before launch: how big is the job, will it fit the device, and roughly how long will it take.

`estimate(config) -> Estimate` builds the model on the meta device (no weights are read) to
count parameters and LoRA parameters exactly, then adds up memory:

- weights: 4 bytes/param (fp32), 2 (bf16/fp16), ~0.56 for NF4 (4 bits + double-quantized
  block scales, per the QLoRA paper);
- gradients and AdamW state for the trainable parameters: 4 + 8 bytes/param (fp32 master
  copies), 4 + 2 with 8-bit AdamW;
- activations per sequence token: about 34 x hidden bytes per layer in 16-bit, double in fp32
  (Korthikanti et al. 2022, "Reducing Activation Recomputation", without the attention-score
  term that SDPA avoids storing); with gradient checkpointing only the layer inputs are kept
  (2 x hidden bytes per layer) plus one layer's worth; plus the logits (4 bytes x vocab, twice).

Time per step is FLOPs / throughput: 6 x params x tokens for full fine-tuning, 4 x params x
tokens for LoRA (no weight gradients), +2 x params x tokens with checkpointing; throughput is
a rough figure per device kind (CPU: ~25 GFLOP/s per thread, from the measured bundled-quick
run, `python bench/bench_train.py quick`: 10.6 s per LoRA step of ~980 tokens on 2 idle cores;
issue 4's reference machine managed ~40; times `CPU_BF16_SPEEDUP` when `precision` resolves
to bf16 on the CPU, measured by `python bench/bench_train.py precision`; CUDA: 40% of a nominal
200 TFLOP/s bf16). GRPO adds
generation: `num_generations` x `max_completion_length` decode steps, bounded by memory
bandwidth.

Calibration: those throughput figures are guesses; a busy machine can be 5x slower. Every
finished run records its measured seconds per step (evaluation time left out) against the
uncalibrated figure for the same config, in `<home>/step_times.json`, keyed by model, method,
finetune, gradient checkpointing and device (`record_step_time`). The estimate then scales its
time by the median measured/estimated ratio of the matching runs (`calibration`), and says so:
"calibrated from 3 runs here", or "extrapolating" when the nearest runs used another model or
settings, or tokens per step outside 0.5-2x of what was measured, or "rough" with none.
The verdict compares the total with the free device memory: fits (< 80%), tight (< 100%),
will not fit (`check_fits` refuses that one before launch, `training.runs.check_launchable`).
`gpu_gb` is the same run on a CUDA GPU whatever this machine has, so the Train tab can say
which common GPU it needs (`gpu_requirement`).
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from mathtutor.metrics import format_duration
from training.config import TrainConfig

CPU_FLOPS_PER_CORE = 25e9
# Step-time ratio fp32 / bf16 mixed precision on a CPU with native bf16 (AVX512-BF16 or AMX):
# `python bench/bench_train.py precision --steps 4` on this project's 2-core AVX512-BF16 EPYC
# (shared, 1 thread): 77.2 vs 45.2 CPU seconds for the whole call, model load included (1.7x);
# 150 vs 74 s/step wall (2.0x, the load on the machine varied).
CPU_BF16_SPEEDUP = 1.7
GPU_FLOPS = 0.4 * 200e12
OVERHEAD = 0.3e9  # framework overhead, bytes
# Common GPUs a Space or a notebook offers, by total memory (GB): the "needs on a GPU" line.
COMMON_GPUS = (("T4", 16), ("L4", 24), ("A100", 40), ("H100", 80))


@dataclass
class Estimate:
    """Sizes in GB; times in seconds."""

    params: int
    trainable_params: int
    weights_gb: float
    grads_gb: float
    optimizer_gb: float
    activations_gb: float
    total_gb: float
    device: str
    device_memory_gb: float  # free memory the verdict compares against
    verdict: str  # fits | tight | will not fit
    tokens_per_step: int
    seconds_per_step: float
    total_steps: int
    total_seconds: float
    gpu_gb: float = 0.0  # the same run's total on a CUDA GPU (bf16; 8-bit AdamW with `auto`)
    raw_seconds_per_step: float = 0.0  # before calibration (the FLOP/s guess)
    calibration: str = "rough: no run measured on this machine yet"  # what the time rests on
    calibrated: bool = False  # scaled by runs measured here
    extrapolating: bool = False  # ... from runs unlike this one

    def summary(self) -> str:
        """One paragraph for the UI."""
        return (
            f"{self.params / 1e6:,.1f}M parameters, {self.trainable_params / 1e6:,.2f}M trainable "
            f"({100 * self.trainable_params / max(self.params, 1):.2f}%). Memory ~{self.total_gb:.2f} GB "
            f"(weights {self.weights_gb:.2f}, gradients {self.grads_gb:.2f}, optimizer "
            f"{self.optimizer_gb:.2f}, activations {self.activations_gb:.2f}) of "
            f"{self.device_memory_gb:.1f} GB free on {self.device}: {self.verdict}. "
            f"~{self.tokens_per_step:,} tokens/step, ~{self.seconds_per_step:.1f} s/step, "
            f"{self.total_steps} steps ~{format_duration(self.total_seconds)} ({self.calibration})."
        )


def device_memory() -> tuple[str, float]:
    """(device, free GB): CUDA free memory, else available RAM."""
    import torch

    if torch.cuda.is_available():
        free, _total = torch.cuda.mem_get_info()
        return f"cuda ({torch.cuda.get_device_name()})", free / 1e9
    try:
        import psutil

        return "cpu", psutil.virtual_memory().available / 1e9
    except ImportError:
        return "cpu", os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 1e9


def _architecture(
    model: str,
) -> tuple[int, dict[str, tuple[int, int]], list[tuple[int, int]], int, int, int]:
    """(params, {leaf name: (in, out)}, every linear's (in, out), hidden, layers, vocab)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from mathtutor.models import loading, resolve_model

    source = resolve_model(model)
    with loading(model, source):  # offline and not cached, or not a model
        model_config = AutoConfig.from_pretrained(source)
    with torch.device("meta"):
        network = AutoModelForCausalLM.from_config(model_config)
    linears = []
    by_name: dict[str, tuple[int, int]] = {}
    for name, module in network.named_modules():
        if isinstance(module, torch.nn.Linear) and not name.endswith("lm_head"):
            linears.append((name.rsplit(".", 1)[-1], module.in_features, module.out_features))
            by_name.setdefault(name.rsplit(".", 1)[-1], (module.in_features, module.out_features))
    params = sum(p.numel() for p in network.parameters())  # tied weights counted once
    text = model_config.get_text_config()
    return (
        params,
        by_name,
        linears,
        text.hidden_size,
        text.num_hidden_layers,
        text.vocab_size,
    )


def _typical_tokens(config: TrainConfig) -> int:
    """Mean tokens per example over a few examples, else max_seq_length."""
    try:
        from transformers import AutoTokenizer

        from mathtutor.models import resolve_model
        from training.data import load_training_problems, sft_rows

        tokenizer = AutoTokenizer.from_pretrained(resolve_model(config.model))
        train, _ = load_training_problems(config.replace(num_train_samples=16, val_fraction=0.0))
        lengths = []
        for row in sft_rows(train, config, tokenizer):
            if isinstance(row["prompt"], list):
                text = tokenizer.apply_chat_template(
                    row["prompt"] + row["completion"], tokenize=False
                )
            else:
                text = row["prompt"] + row["completion"]
            lengths.append(len(tokenizer(text)["input_ids"]))
        return min(config.max_seq_length, math.ceil(sum(lengths) / len(lengths)))
    except (OSError, ValueError):
        return config.max_seq_length


def _num_train_examples(config: TrainConfig) -> int:
    from training.data import GENERATED, load_training_problems

    if config.dataset in GENERATED:
        total = config.num_train_samples or 2000
        return total - (max(1, round(total * config.val_fraction)) if config.val_fraction else 0)
    train, _ = load_training_problems(config)
    return len(train)


def verdict(total_gb: float, free_gb: float) -> str:
    """Whether `total_gb` fits `free_gb`: fits (< 80%), tight (< 100%), will not fit.

    >>> verdict(1.0, 10.0), verdict(9.0, 10.0), verdict(11.0, 10.0)
    ('fits', 'tight', 'will not fit')
    """
    return "fits" if total_gb < 0.8 * free_gb else "tight" if total_gb < free_gb else "will not fit"


def gpu_requirement(total_gb: float) -> str:
    """The smallest common GPU an estimate fits on (with the 20% headroom of `verdict`).

    >>> gpu_requirement(5.0), gpu_requirement(15.0)
    ('T4 (16 GB) or larger', 'L4 (24 GB) or larger')
    >>> gpu_requirement(100.0)
    'more than one 80 GB GPU holds: use QLoRA, a smaller batch or several GPUs'
    """
    for name, memory_gb in COMMON_GPUS:
        if verdict(total_gb, memory_gb) == "fits":
            return f"{name} ({memory_gb} GB) or larger"
    return "more than one 80 GB GPU holds: use QLoRA, a smaller batch or several GPUs"


def _memory(config: TrainConfig, params: int, trainable: int, tokens: int, hidden: int,
            layers: int, vocab: int, cuda: bool) -> tuple[float, float, float, float]:  # fmt: skip
    """(weights, gradients, optimizer, activations) in bytes on a CUDA GPU or on the CPU."""
    half = cuda and config.precision != "fp32"
    weight_bytes = {"qlora": 0.5625, "full": 4.0}.get(config.finetune, 2.0 if half else 4.0)
    eight_bit = config.optimizer in ("adamw_8bit", "paged_adamw_8bit") or (
        config.optimizer == "auto" and cuda
    )
    act_bytes = 2 if half else 4
    per_token = hidden * layers * (act_bytes if config.gradient_checkpointing else 17 * act_bytes)
    per_token += 2 * vocab * 4  # logits and their gradient in fp32
    return (
        params * weight_bytes,
        trainable * 4.0,
        trainable * (2.0 if eight_bit else 8.0),
        config.batch_size * tokens * per_token,
    )


def estimate(config: TrainConfig, memory: tuple[str, float] | None = None) -> Estimate:
    """Memory and time estimate for `config` (see module docstring).

    `memory` is the (device, free GB) to compare against, `device_memory()` by default; a
    device named "cuda ..." is estimated with GPU settings (bf16, 8-bit AdamW with `auto`).
    """
    import torch

    device, free_gb = memory or device_memory()
    cuda = device.startswith("cuda")
    params, _, linears, hidden, layers, vocab = _architecture(config.model)
    if config.finetune == "full":
        trainable = params
    else:
        wanted = config.target_modules
        trainable = sum(
            config.lora_rank * (fan_in + fan_out)
            for name, fan_in, fan_out in linears
            if wanted == "all-linear" or name in wanted
        )
    tokens = _typical_tokens(config)
    if config.method == "grpo":
        tokens = min(tokens, config.max_seq_length) + config.max_completion_length
    shape = (params, trainable, tokens, hidden, layers, vocab)
    weights, grads, optimizer, activations = _memory(config, *shape, cuda=cuda)
    gb = (weights + grads + optimizer + activations + OVERHEAD) / 1e9
    gpu_gb = (sum(_memory(config, *shape, cuda=True)) + OVERHEAD) / 1e9
    tokens_per_step = config.batch_size * config.gradient_accumulation_steps * tokens
    factor = 6 if config.finetune == "full" else 4
    factor += 2 if config.gradient_checkpointing else 0
    throughput = GPU_FLOPS if cuda else CPU_FLOPS_PER_CORE * (torch.get_num_threads() or 1)
    if not cuda and _cpu_dtype(config) == "bfloat16":
        throughput *= CPU_BF16_SPEEDUP
    seconds = factor * params * tokens_per_step / throughput
    if config.method == "grpo":  # one decode step per completion token, ~bandwidth bound
        bandwidth = 1.5e12 if cuda else 10e9
        prompts = config.batch_size * config.gradient_accumulation_steps
        seconds += config.max_completion_length * weights / bandwidth * max(1, prompts // 8)
    raw_seconds = seconds
    calibration = calibrate(config, device, tokens_per_step)
    if calibration is not None:
        seconds *= calibration[0]
    examples = _num_train_examples(config)
    sequences_per_step = config.batch_size * config.gradient_accumulation_steps
    if config.method == "grpo":
        sequences_per_step //= config.num_generations
    steps = config.max_steps or math.ceil(config.epochs * examples / max(sequences_per_step, 1))
    return Estimate(
        params=params,
        trainable_params=trainable,
        weights_gb=weights / 1e9,
        grads_gb=grads / 1e9,
        optimizer_gb=optimizer / 1e9,
        activations_gb=activations / 1e9,
        total_gb=gb,
        device=device,
        device_memory_gb=free_gb,
        verdict=verdict(gb, free_gb),
        tokens_per_step=tokens_per_step,
        seconds_per_step=seconds,
        total_steps=steps,
        total_seconds=seconds * steps,
        gpu_gb=gpu_gb,
        raw_seconds_per_step=raw_seconds,
        **(
            {"calibration": calibration[1], "calibrated": True, "extrapolating": calibration[2]}
            if calibration
            else {}
        ),
    )


# ---------------------------------------------------------------- calibration from measured runs
MAX_RECORDS = 200  # per file; the oldest go first


def step_times_path() -> Path:
    from mathtutor.paths import home_dir

    return home_dir() / "step_times.json"


def _key(config: TrainConfig, device: str) -> dict[str, object]:
    return {
        "model": config.model, "method": config.method, "finetune": config.finetune,
        "gradient_checkpointing": config.gradient_checkpointing, "device": device,
    }  # fmt: skip


def _records() -> list[dict]:
    path = step_times_path()
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError):
        return []
    return [row for row in data if isinstance(row, dict)] if isinstance(data, list) else []


def record_step_time(
    config: TrainConfig, seconds_per_step: float, memory: tuple[str, float] | None = None
) -> dict | None:
    """Store a finished run's measured seconds per step beside the uncalibrated estimate of the
    same config on this device (atomically); returns the record, None when unusable."""
    if not (seconds_per_step > 0 and math.isfinite(seconds_per_step)):
        return None
    device = (memory or device_memory())[0]
    result = estimate(config, (device, 1e9))
    if result.raw_seconds_per_step <= 0:
        return None
    record = {
        **_key(config, device),
        "batch_size": config.batch_size,
        "tokens_per_step": result.tokens_per_step,
        "measured_seconds_per_step": float(f"{seconds_per_step:.6g}"),  # 6 significant digits
        "estimated_seconds_per_step": float(f"{result.raw_seconds_per_step:.6g}"),
        "time": time.time(),
    }
    records = [*_records(), record][-MAX_RECORDS:]
    path = step_times_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temp.write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
    os.replace(temp, path)
    return record


def measured_seconds_per_step(rows: list[dict]) -> float | None:
    """Seconds per optimizer step of a run's last session (metrics.jsonl rows), from its first
    to its last logged step, leaving out task-accuracy evaluations; None with under 2 steps.

    >>> rows = [{"event": "begin", "step": 0, "time": 0}, {"step": 1, "loss": 1, "time": 10},
    ...         {"event": "accuracy", "step": 2, "eval_seconds": 6, "time": 22},
    ...         {"step": 2, "loss": 1, "time": 22}, {"step": 3, "loss": 1, "time": 26}]
    >>> measured_seconds_per_step(rows)
    5.0
    """
    begins = [i for i, row in enumerate(rows) if row.get("event") == "begin"]
    session = rows[begins[-1] :] if begins else rows
    timed = [row for row in session if ("loss" in row or "reward" in row) and "time" in row]
    if len(timed) < 2 or timed[-1]["step"] <= timed[0]["step"]:
        return None
    first, last = timed[0], timed[-1]
    evaluating = sum(
        row.get("eval_seconds", 0.0)
        for row in session
        if row.get("event") == "accuracy" and first["time"] < row.get("time", 0) <= last["time"]
    )
    seconds = last["time"] - first["time"] - evaluating
    return seconds / (last["step"] - first["step"]) if seconds > 0 else None


def calibrate(
    config: TrainConfig, device: str, tokens_per_step: int
) -> tuple[float, str, bool] | None:
    """(factor on the estimated time, what it rests on, extrapolating?) from measured runs.

    Runs with the same key (model, method, finetune, checkpointing, device) are used first;
    else runs of the same method on this device (extrapolating: another model or settings).
    Tokens per step outside 0.5-2x of the measured ones is extrapolating too.
    """
    records = [row for row in _records() if row.get("device") == device]
    key = _key(config, device)
    same = [row for row in records if all(row.get(k) == v for k, v in key.items())]
    extrapolating = not same
    chosen = same or [row for row in records if row.get("method") == config.method]
    ratios = [
        row["measured_seconds_per_step"] / row["estimated_seconds_per_step"]
        for row in chosen
        if row.get("estimated_seconds_per_step", 0) > 0
        and row.get("measured_seconds_per_step", 0) > 0
    ]
    if not ratios:
        return None
    factor = statistics.median(ratios[-20:])
    tokens = [row.get("tokens_per_step") or 0 for row in chosen]
    low, high = min(tokens), max(tokens)
    outside = not (0.5 * low <= tokens_per_step <= 2 * high)
    runs = f"{len(ratios)} run{'s' if len(ratios) > 1 else ''}"
    if extrapolating:
        text = f"extrapolating from {runs} of other models or settings measured here"
    elif outside:
        text = (f"extrapolating from {runs} measured here at {low:,}-{high:,} tokens/step "
                f"to {tokens_per_step:,}")  # fmt: skip
    else:
        text = f"calibrated from {runs} measured here"
    return factor, f"{text}: ×{factor:.1f} on the FLOP/s guess", extrapolating or outside


def _cpu_dtype(config: TrainConfig) -> str:
    """What `precision` resolves to on this machine's CPU (fp16 is refused there at launch)."""
    from mathtutor.models import resolve_dtype

    try:
        return resolve_dtype(config.precision, "cpu")
    except ValueError:
        return "float32"


def check_fits(config: TrainConfig, memory: tuple[str, float] | None = None) -> Estimate:
    """The estimate, or a ValueError saying why the run cannot fit this device (before launch).

    `memory` as in `estimate`: tests and callers can give (device, free GB) instead of probing.
    """
    result = estimate(config, memory)
    if result.verdict == "will not fit":
        name = f"recipe {config.recipe!r}" if config.recipe else "this run"
        raise ValueError(
            f"{name} needs ~{result.total_gb:.1f} GB but {result.device} has "
            f"{result.device_memory_gb:.1f} GB free, so it will not fit (on a GPU it needs "
            f"~{result.gpu_gb:.1f} GB: {gpu_requirement(result.gpu_gb)}). Try finetune 'qlora', "
            "a smaller batch_size or max_seq_length, or gradient_checkpointing"
        )
    return result
