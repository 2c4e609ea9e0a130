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
The verdict compares the total with the free device memory: fits (< 80%), tight (< 100%),
will not fit (`check_fits` refuses that one before launch, `training.runs.check_launchable`).
`gpu_gb` is the same run on a CUDA GPU whatever this machine has, so the Train tab can say
which common GPU it needs (`gpu_requirement`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

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

    def summary(self) -> str:
        """One paragraph for the UI."""
        return (
            f"{self.params / 1e6:,.1f}M parameters, {self.trainable_params / 1e6:,.2f}M trainable "
            f"({100 * self.trainable_params / max(self.params, 1):.2f}%). Memory ~{self.total_gb:.2f} GB "
            f"(weights {self.weights_gb:.2f}, gradients {self.grads_gb:.2f}, optimizer "
            f"{self.optimizer_gb:.2f}, activations {self.activations_gb:.2f}) of "
            f"{self.device_memory_gb:.1f} GB free on {self.device}: {self.verdict}. "
            f"~{self.tokens_per_step:,} tokens/step, ~{self.seconds_per_step:.1f} s/step, "
            f"{self.total_steps} steps ~{format_duration(self.total_seconds)} (rough)."
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
    )


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
