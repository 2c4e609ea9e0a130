"""Model specs, the bundled model, adapters on one shared base (tiny real models)."""

from __future__ import annotations

import json
import shutil

import pytest

from mathtutor import models
from tests.conftest import make_adapter


def test_resolve_model_rejects_bad_specs(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        models.resolve_model("")
    with pytest.raises(ValueError, match="neither"):
        models.resolve_model("not a model!")
    with pytest.raises(ValueError, match="no config.json"):
        models.resolve_model(str(tmp_path))


def test_unknown_hub_id_offline_names_what_is_available():
    with pytest.raises(ValueError) as error:
        models.load_model("nobody-here/not-a-model-xyz", device="cpu")
    message = str(error.value)
    assert "nobody-here/not-a-model-xyz" in message
    assert "bundled" in message  # lists what does load offline


def test_load_is_cached_and_shared(tiny_model_dir):
    models.clear_cache()
    first = models.load_model(str(tiny_model_dir), device="cpu")
    second = models.load_model(str(tiny_model_dir), device="cpu")
    assert first is second
    assert first.tokenizer.padding_side == "left"
    assert first.names == ["base"]
    models.clear_cache()


def test_adapter_changes_outputs_on_one_copy_of_weights(tiny_loaded, tiny_adapter_dir):
    import torch

    ids = tiny_loaded.tokenizer("12 + 30 =", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        before = tiny_loaded.model(input_ids=ids).logits
    name = tiny_loaded.add_adapter(tiny_adapter_dir, "tuned")
    assert name == "tuned" and tiny_loaded.names == ["base", "tuned"]
    assert tiny_loaded.add_adapter(tiny_adapter_dir) == "tuned"  # same dir, same name
    with torch.no_grad():
        tuned = tiny_loaded.model(input_ids=ids, adapter_names=["tuned"]).logits
        base = tiny_loaded.model(input_ids=ids, adapter_names=["__base__"]).logits
    assert torch.allclose(base, before, atol=1e-5)
    assert not torch.allclose(tuned, before, atol=1e-3)
    base_params = {id(p) for n, p in tiny_loaded.model.named_parameters() if "lora" not in n}
    assert len(base_params) == sum(
        1 for n, _ in tiny_loaded.model.named_parameters() if "lora" not in n
    )


def test_adapters_on_a_bf16_base_stay_bf16(tiny_loaded_each_dtype, tiny_adapter_dir):
    """peft upcasts a loaded adapter to fp32; on a 16-bit base it is cast back (half the
    memory per adapter), and it still changes the output."""
    import torch

    loaded = tiny_loaded_each_dtype
    ids = loaded.tokenizer("12 + 30 =", return_tensors="pt")["input_ids"]
    name = loaded.add_adapter(tiny_adapter_dir, "tuned")
    dtypes = {p.dtype for n, p in loaded.model.named_parameters() if f".{name}." in n}
    assert dtypes == {loaded.dtype}, dtypes
    with torch.no_grad():
        tuned = loaded.model(input_ids=ids, adapter_names=[name]).logits
        base = loaded.model(input_ids=ids, adapter_names=["__base__"]).logits
    assert tuned.dtype == loaded.dtype and not torch.allclose(tuned, base, atol=1e-2)


def test_two_adapters_get_distinct_names(tiny_loaded, tiny_model_dir, tmp_path):
    first = make_adapter(tiny_model_dir, tmp_path / "a" / "tuned", seed=3)
    second = make_adapter(tiny_model_dir, tmp_path / "b" / "tuned", seed=4)
    assert tiny_loaded.add_adapter(first) == "tuned"
    assert tiny_loaded.add_adapter(second) == "tuned-2"
    assert tiny_loaded.names == ["base", "tuned", "tuned-2"]


def test_adapter_for_another_base_is_refused_naming_both(tiny_loaded, tiny_adapter_dir, tmp_path):
    other = tmp_path / "other-adapter"
    shutil.copytree(tiny_adapter_dir, other)
    config = json.loads((other / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "Qwen/Qwen2-0.5B-Instruct"
    (other / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError) as error:
        tiny_loaded.add_adapter(other)
    assert "Qwen/Qwen2-0.5B-Instruct" in str(error.value)
    assert tiny_loaded.base_model in str(error.value)


def test_corrupted_adapter_file_is_a_clear_error(tiny_loaded, tiny_adapter_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_adapter_dir, broken)
    weights = broken / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match="could not be loaded"):
        tiny_loaded.add_adapter(broken)
    (broken / "adapter_config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        tiny_loaded.add_adapter(broken)
    assert tiny_loaded.names == ["base"]  # nothing half-registered


def test_not_an_adapter_directory(tiny_loaded, tmp_path):
    with pytest.raises(ValueError, match="no adapter_config.json"):
        tiny_loaded.add_adapter(tmp_path)
    with pytest.raises(ValueError, match="is not a directory"):
        tiny_loaded.add_adapter("no such thing here")
    with pytest.raises(ValueError, match="a Hub id: `hub.adapter_dir` pulls it first"):
        tiny_loaded.add_adapter("alice/not-pulled")


def test_same_base_treats_bundled_and_its_hub_id_alike():
    assert models.same_base("bundled", models.BUNDLED_HUB_ID)
    assert models.same_base("/some/where/tiny-llama0", "/else/tiny-llama0")
    assert not models.same_base("Qwen/Qwen2-0.5B-Instruct", models.BUNDLED_HUB_ID)


@pytest.mark.slow
def test_bundled_model_loads_from_cache_and_answers(bundled_dir):
    from mathtutor.generate import GenerationSettings, generate_batch

    models.clear_cache()
    loaded = models.load_model("bundled", device="cpu")
    assert loaded.base_model == models.BUNDLED_HUB_ID
    assert (bundled_dir / "model.safetensors").is_file()
    prompt = loaded.tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2 + 3? Answer with a number."}],
        tokenize=False,
        add_generation_prompt=True,
    )
    [completion] = generate_batch(loaded, [prompt], settings=GenerationSettings(max_new_tokens=24))
    assert "5" in completion.text
    assert completion.finish_reason in {"eos", "length"}
    models.clear_cache()


def test_device_and_dtype_decisions():
    # The capability decides bf16: a T4 (7.5) only emulates it, so it gets fp16.
    assert models.device_for(cuda=True, mps=True) == "cuda"
    assert models.device_for(cuda=False, mps=True) == "mps"
    assert models.device_for(cuda=False) == "cpu"
    assert models.dtype_name("cuda", (7, 5)) == "float16"
    assert models.dtype_name("cuda", (8, 0)) == "bfloat16"
    assert models.dtype_name("cuda", (9, 0)) == "bfloat16"
    assert models.dtype_name("cuda", None) == "float16"
    assert models.dtype_name("cpu") == "float32" and models.dtype_name("mps") == "float16"


def test_auto_dtype_on_a_cpu_follows_its_bf16_flags(monkeypatch):
    amd_zen4 = "fpu sse2 avx2 avx512f avx512bw avx512_bf16 avx512_vnni"
    sapphire_rapids = "fpu avx512f amx_bf16 amx_tile amx_int8 avx512_fp16"
    old_xeon = "fpu sse2 avx2 avx512f avx512bw"
    assert models.dtype_name("cpu", flags=amd_zen4) == "bfloat16"
    assert models.dtype_name("cpu", flags=sapphire_rapids) == "bfloat16"
    assert models.dtype_name("cpu", flags=old_xeon) == "float32"
    assert models.dtype_name("cpu", flags="avx512_bf16x") == "float32"  # whole flags only
    assert models.check_dtype("fp32") == "float32" and models.check_dtype("BF16") == "bfloat16"
    with pytest.raises(ValueError, match="dtype 'int4' is not one of"):
        models.check_dtype("int4")
    monkeypatch.delenv(models.DTYPE_ENV, raising=False)
    monkeypatch.setattr(models, "cpu_flags", lambda: old_xeon)
    assert models.resolve_dtype("auto", "cpu") == "float32"
    monkeypatch.setattr(models, "cpu_flags", lambda: amd_zen4)
    assert models.resolve_dtype("auto", "cpu") == "bfloat16"
    assert models.resolve_dtype("float32", "cpu") == "float32"  # a named dtype is kept
    monkeypatch.setenv(models.DTYPE_ENV, "float32")  # the operator's choice for auto
    assert models.resolve_dtype(None, "cpu") == "float32"
    assert models.resolve_dtype("bf16", "cpu") == "bfloat16"
    with pytest.raises(ValueError, match="float16 needs a GPU"):
        models.resolve_dtype("float16", "cpu")
    monkeypatch.setenv(models.DTYPE_ENV, "fast")
    with pytest.raises(ValueError, match="MATHTUTOR_DTYPE 'fast'"):
        models.resolve_dtype("auto", "cpu")


def test_one_copy_per_dtype(tiny_model_dir):
    import torch

    models.clear_cache()
    fp32 = models.load_model(str(tiny_model_dir), device="cpu", dtype="float32")
    bf16 = models.load_model(str(tiny_model_dir), device="cpu", dtype="bfloat16")
    assert fp32 is not bf16
    assert fp32.model.dtype == torch.float32 and bf16.model.dtype == torch.bfloat16
    assert bf16.dtype_name == "bfloat16"
    assert models.load_model(str(tiny_model_dir), device="cpu", dtype=torch.bfloat16) is bf16
    assert models.load_model(str(tiny_model_dir), device="cpu", dtype="bf16") is bf16
    assert models.load_model(str(tiny_model_dir), device="cpu") is fp32  # auto = fp32 in tests
    models.clear_cache()


def test_cpu_machine_picks_cpu_fp32():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the CPU decisions are covered above")
    assert models.pick_device() in ("cpu", "mps")
    assert models.cuda_capability() is None and not models.native_bf16()
    assert models.pick_dtype("cpu") is torch.float32
