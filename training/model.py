"""The model to train: plain weights, QLoRA (4-bit NF4) or unsloth's fast path, plus LoRA settings.

`load_for_training(config)` returns a `Setup` for a trl trainer and notes what it used or
skipped, which the run writes to its log: QLoRA loads the base through bitsandbytes NF4 with
bf16 compute and double quantization and calls peft's `prepare_model_for_kbit_training` (this
works on CPU too with bitsandbytes 0.50, slowly); unsloth is imported only when CUDA is there
and the package is installed (importing it patches trl globally), else the same config runs
without it ("unsloth not used: no CUDA").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from training.config import TrainConfig


@dataclass
class Setup:
    """A loaded model ready for a trl trainer."""

    model: Any
    tokenizer: Any
    peft_config: Any  # peft.LoraConfig, or None (full fine-tune, or unsloth already wrapped it)
    device: str
    dtype: Any
    base_model: str  # Hub id (or path) the adapter is recorded against
    notes: list[str]


def load_for_training(config: TrainConfig, *, padding_side: str = "right") -> Setup:
    """Load the base model and tokenizer as the config asks, noting accelerators used/skipped."""
    import importlib.util

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mathtutor.models import base_model_id, loading, native_bf16, pick_device, resolve_model

    notes: list[str] = []
    device = pick_device()
    source = resolve_model(config.model)
    dtype = _dtype(config, device)
    lora = config.finetune in ("lora", "qlora")
    if lora and config.use_unsloth:
        if device != "cuda":
            notes.append("unsloth not used: no CUDA")
        elif importlib.util.find_spec("unsloth") is None:
            notes.append("unsloth not used: not installed (pip install unsloth on a CUDA machine)")
        else:
            return _load_unsloth(config, source, dtype, notes)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if config.finetune == "qlora":
        from transformers import BitsAndBytesConfig

        compute = torch.bfloat16 if device != "cuda" or native_bf16() else dtype
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=compute,
            bnb_4bit_use_double_quant=True,
        )
        kwargs["device_map"] = {"": device if device != "cuda" else torch.cuda.current_device()}
        notes.append(f"QLoRA: 4-bit NF4 base, {str(compute).split('.')[-1]} compute")
    with loading(config.model, source):
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    if config.finetune == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=config.gradient_checkpointing
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return Setup(
        model, tokenizer, lora_config(config) if lora else None, device, dtype,
        base_model_id(source), notes,
    )  # fmt: skip


def _dtype(config: TrainConfig, device: str) -> Any:
    """Weights dtype: half precision on GPUs for adapters; fp32 on CPUs and for full fine-tunes
    (fp32 master weights, the bf16 compute comes from mixed precision on top)."""
    import torch

    from mathtutor.models import resolve_dtype

    name = resolve_dtype(config.precision, device)
    if name == "float32" or device == "cpu" or config.finetune == "full":
        return torch.float32
    return getattr(torch, name)


def _load_unsloth(config: TrainConfig, source: str, dtype: Any, notes: list[str]) -> Setup:
    """unsloth's FastLanguageModel (imported here only: importing it patches trl globally)."""
    from unsloth import FastLanguageModel

    from mathtutor.models import base_model_id, loading

    with loading(config.model, source):
        model, tokenizer = FastLanguageModel.from_pretrained(
            source,
            max_seq_length=config.max_seq_length,
            dtype=dtype,
            load_in_4bit=config.finetune == "qlora",
        )
    model = FastLanguageModel.get_peft_model(
        model,
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=_unsloth_targets(config, model),
        use_gradient_checkpointing="unsloth" if config.gradient_checkpointing else False,
        random_state=config.seed,
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    notes.append("unsloth fast path used" + (" (4-bit)" if config.finetune == "qlora" else ""))
    return Setup(model, tokenizer, None, "cuda", dtype, base_model_id(source), notes)


def _unsloth_targets(config: TrainConfig, model: Any) -> list[str]:
    if config.target_modules != "all-linear":
        return list(config.target_modules)
    import torch

    names = {
        n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)
    }
    return sorted(names - {"lm_head"})


def lora_config(config: TrainConfig) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.target_modules,
        bias="none",
        task_type="CAUSAL_LM",
    )
