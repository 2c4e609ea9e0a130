"""Shared fixtures: an isolated MATHTUTOR_HOME, the shared GSM8K files, tiny real models.

Files the tests write under tmp_path are readable as uploads: the session allows pytest's
base temp folder (MATHTUTOR_DATA_DIRS).

Everything runs offline on CPU. The tiny model is a random-weight llama with a byte-level
tokenizer built by `mathtutor.models.make_tiny_model`; adapters are real peft LoRA weights.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
GSM8K_DIR = Path(os.environ.get("MATHTUTOR_GSM8K_DIR", REPO.parent / "shared" / "data" / "gsm8k"))

# Set before any test imports huggingface_hub / datasets: no test may reach the network.
os.environ.setdefault("MATHTUTOR_GSM8K_DIR", str(GSM8K_DIR))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# `dtype: auto` means fp32 in the tests on every machine (an AMX CPU would pick bf16); tests of
# bf16 ask for it by name.
os.environ.setdefault("MATHTUTOR_DTYPE", "float32")


@pytest.fixture(scope="session", autouse=True)
def mathtutor_home(tmp_path_factory) -> Path:
    """Every test session gets its own data directory; the bundled-model cache is shared.

    The bundled model's safetensors cache is expensive to build (~40 s), so it is kept in
    `MATHTUTOR_TEST_MODEL_CACHE` (default: the user's real cache) and linked in.
    """
    home = tmp_path_factory.mktemp("mathtutor-home")
    shared_models = Path(
        os.environ.get("MATHTUTOR_TEST_MODEL_CACHE", Path.home() / ".cache" / "mathtutor-test")
    )
    shared_models.mkdir(parents=True, exist_ok=True)
    (home / "models").symlink_to(shared_models, target_is_directory=True)
    os.environ["MATHTUTOR_HOME"] = str(home)
    # The operator's allowed data folders (mathtutor.paths): the tests' files under tmp_path and
    # the shared model cache that home/models links to. Tests of refused paths put their files
    # elsewhere (tests/test_paths.py).
    allowed = [tmp_path_factory.getbasetemp(), shared_models]
    os.environ["MATHTUTOR_DATA_DIRS"] = os.pathsep.join(str(path) for path in allowed)
    return home


@pytest.fixture(scope="session")
def gsm8k_dir() -> Path:
    if not (GSM8K_DIR / "test.jsonl").is_file():
        pytest.skip(f"GSM8K files not found at {GSM8K_DIR} (set MATHTUTOR_GSM8K_DIR)")
    return GSM8K_DIR


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A random-weight 2-layer llama with a byte tokenizer and a chat template."""
    from mathtutor.models import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_adapter_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """A LoRA adapter on the tiny model with non-zero weights, so it changes outputs."""
    return make_adapter(tiny_model_dir, tmp_path_factory.mktemp("tiny-adapter"), seed=1)


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serving(demo: Any, default_concurrency_limit: int = 4) -> Iterator[str]:
    """`demo` (a gr.Blocks) served in this process on a free local port; yields its URL and
    closes it after. The app's own launch admits 4 events at once (`app.py`)."""
    demo.queue(default_concurrency_limit=default_concurrency_limit).launch(
        prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True
    )
    try:
        yield demo.local_url
    finally:
        demo.close()


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module's in-process training (two cores shared with other jobs:
    many times faster here); use with `pytestmark = pytest.mark.usefixtures(...)`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_train_config(model_dir: Path, **changes):
    """A `TrainConfig` that trains the tiny llama for 2 steps on 24 generated problems (qa
    prompts, rank 4, no validation split, no checkpoint before the end); `changes` override."""
    from training.config import TrainConfig

    values = dict(
        model=str(model_dir), dataset="arithmetic", difficulty="easy", num_train_samples=24,
        val_fraction=0.0, prompt_format="qa", max_steps=2, batch_size=2, lora_rank=4,
        max_seq_length=1024, save_steps=100, seed=3,
    )  # fmt: skip
    return TrainConfig(**{**values, **changes})


def make_adapter(base_dir: Path, out_dir: Path, seed: int = 1, rank: int = 4) -> Path:
    """Write a real peft LoRA adapter whose B matrices are random (not the zero init)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        target_modules="all-linear",
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    peft_model.save_pretrained(out_dir)
    return out_dir


@pytest.fixture()
def tiny_loaded(tiny_model_dir):
    """A freshly loaded tiny model (not shared between tests: adapters mutate it)."""
    from mathtutor.models import clear_cache, load_model

    clear_cache()
    loaded = load_model(str(tiny_model_dir), device="cpu")
    yield loaded
    clear_cache()


@pytest.fixture(params=["float32", "bfloat16"])
def tiny_loaded_each_dtype(tiny_model_dir, request):
    """The tiny model loaded fresh in fp32, then in bf16: parity holds within each dtype."""
    from mathtutor.models import clear_cache, load_model

    clear_cache()
    loaded = load_model(str(tiny_model_dir), device="cpu", dtype=request.param)
    assert loaded.dtype_name == request.param
    yield loaded
    clear_cache()


@pytest.fixture(scope="session")
def bundled_dir(mathtutor_home) -> Path:
    """The bundled SmolLM2 as safetensors (converted once, then cached across sessions)."""
    from mathtutor.models import bundled_model_dir

    try:
        return bundled_model_dir()
    except ValueError as error:
        pytest.skip(str(error))
