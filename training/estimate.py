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
issue 4's reference machine managed ~40; CUDA: 40% of a nominal 200 TFLOP/s bf16). GRPO adds
generation: `num_generations` x `max_completion_length` decode steps, bounded by memory
bandwidth.
The verdict compares the total with the free device memory: fits (< 80%), tight (< 100%),
will not fit.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from mathtutor.metrics import format_duration
from training.config import TrainConfig

CPU_FLOPS_PER_CORE = 25e9
GPU_FLOPS = 0.4 * 200e12


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

    from mathtutor.models import resolve_model

    try:
        model_config = AutoConfig.from_pretrained(resolve_model(model))
    except OSError as error:  # offline and not cached, or not a model
        first_line = str(error).strip().splitlines()[0][:200]
        raise ValueError(f"model: cannot read the config of {model!r} ({first_line})") from None
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


def estimate(config: TrainConfig) -> Estimate:
    """Memory and time estimate for `config` on this machine's device (see module docstring)."""
    import torch

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
    cuda = torch.cuda.is_available()
    half = cuda and config.precision != "fp32"
    weight_bytes = {"qlora": 0.5625, "full": 4.0}.get(config.finetune, 2.0 if half else 4.0)
    weights = params * weight_bytes
    grads = trainable * 4.0
    eight_bit = config.optimizer in ("adamw_8bit", "paged_adamw_8bit") or (
        config.optimizer == "auto" and cuda
    )
    optimizer = trainable * (2.0 if eight_bit else 8.0)
    tokens = _typical_tokens(config)
    if config.method == "grpo":
        tokens = min(tokens, config.max_seq_length) + config.max_completion_length
    act_bytes = 2 if half else 4
    per_token = hidden * layers * (act_bytes if config.gradient_checkpointing else 17 * act_bytes)
    per_token += 2 * vocab * 4  # logits and their gradient in fp32
    activations = config.batch_size * tokens * per_token
    total = weights + grads + optimizer + activations + 0.3e9  # framework overhead
    device, free_gb = device_memory()
    gb = total / 1e9
    verdict = "fits" if gb < 0.8 * free_gb else "tight" if gb < free_gb else "will not fit"
    tokens_per_step = config.batch_size * config.gradient_accumulation_steps * tokens
    factor = 6 if config.finetune == "full" else 4
    factor += 2 if config.gradient_checkpointing else 0
    throughput = GPU_FLOPS if cuda else CPU_FLOPS_PER_CORE * (torch.get_num_threads() or 1)
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
        verdict=verdict,
        tokens_per_step=tokens_per_step,
        seconds_per_step=seconds,
        total_steps=steps,
        total_seconds=seconds * steps,
    )
