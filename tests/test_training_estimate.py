"""The estimate before launch: GPU memory a recipe needs, and a refusal when it cannot fit.

The device-memory probe is a parameter, so these tests give (device, free GB) numbers
instead of depending on this machine.
"""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

from training import estimate as estimate_module
from training import runs
from training.config import TrainConfig
from training.estimate import check_fits, estimate, gpu_requirement

RECIPES = sorted((Path(__file__).resolve().parent.parent / "training" / "recipes").glob("*.yaml"))


def tiny_config(model_dir, **changes) -> TrainConfig:
    values = dict(
        model=str(model_dir), dataset="arithmetic", difficulty="easy", num_train_samples=24,
        val_fraction=0.0, prompt_format="qa", max_steps=2, batch_size=2, lora_rank=4,
        max_seq_length=1024, save_steps=100, seed=3,
    )  # fmt: skip
    return TrainConfig(**{**values, **changes})


def test_pure_pieces():
    assert doctest.testmod(estimate_module).failed == 0
    assert gpu_requirement(12.0) == "T4 (16 GB) or larger"
    assert gpu_requirement(30.0) == "A100 (40 GB) or larger"
    assert gpu_requirement(33.0) == "H100 (80 GB) or larger"  # over 80% of 40 GB: too tight


def test_gpu_settings_follow_the_given_device(tiny_model_dir):
    config = tiny_config(tiny_model_dir)
    on_gpu = estimate(config, memory=("cuda (Tesla T4)", 15.0))
    on_cpu = estimate(config, memory=("cpu", 15.0))
    assert on_gpu.device == "cuda (Tesla T4)" and on_gpu.verdict == "fits"
    assert on_gpu.weights_gb == pytest.approx(on_cpu.weights_gb / 2)  # bf16 vs fp32 weights
    assert on_gpu.total_gb == pytest.approx(on_gpu.gpu_gb)
    assert on_cpu.gpu_gb == pytest.approx(on_gpu.gpu_gb)  # the GPU need, whatever the machine
    assert estimate(config, memory=("cpu", on_cpu.total_gb * 0.9)).verdict == "will not fit"


def test_launch_is_refused_when_the_device_cannot_fit_it(tiny_model_dir):
    config = tiny_config(tiny_model_dir, recipe="tiny-test")
    need = estimate(config, memory=("cpu", 100.0)).total_gb
    with pytest.raises(ValueError) as error:
        runs.check_launchable(config, memory=("cpu", need / 2))
    message = str(error.value)
    assert "recipe 'tiny-test' needs ~" in message and "will not fit" in message
    assert "or larger" in message and "qlora" in message  # what hardware, and what to change
    runs.check_launchable(config, memory=("cpu", need * 2))  # fits: no error
    assert check_fits(config, memory=("cuda (H100)", need * 1.1)).verdict == "tight"


def test_every_seed_recipe_states_its_gpu_need_or_why_not():
    """Recipes on the bundled model are estimated offline; Hub models need their config."""
    assert len(RECIPES) == 7
    for path in RECIPES:
        config = TrainConfig.from_yaml(path)
        try:
            result = estimate(config, memory=("cpu", 1000.0))
        except ValueError as error:  # offline: a Hub model's config cannot be read
            assert config.model != "bundled"
            assert f"cannot read the config of {config.model!r}" in str(error)
            continue
        assert result.gpu_gb > 0
        if config.recipe == "bundled-quick":
            assert gpu_requirement(result.gpu_gb) == "T4 (16 GB) or larger"


def test_the_train_tab_shows_the_gpu_need(tiny_model_dir):
    from mathtutor.ui import train as tab

    text = tab.estimate_markdown(tab.form_values(tiny_config(tiny_model_dir)))
    assert "| Needs on a GPU | ~" in text and "(16 GB) or larger" in text


def test_cpu_time_uses_the_bf16_rate_where_bf16_is_computed(tiny_model_dir, monkeypatch):
    from training import estimate as module

    monkeypatch.setattr(module, "CPU_BF16_SPEEDUP", 2.5)
    fp32 = estimate(tiny_config(tiny_model_dir, precision="float32"), memory=("cpu", 15.0))
    bf16 = estimate(tiny_config(tiny_model_dir, precision="bfloat16"), memory=("cpu", 15.0))
    assert fp32.seconds_per_step / bf16.seconds_per_step == pytest.approx(2.5)
    monkeypatch.setenv("MATHTUTOR_DTYPE", "bfloat16")  # auto on a CPU that computes bf16
    auto = estimate(tiny_config(tiny_model_dir), memory=("cpu", 15.0))
    assert auto.seconds_per_step == pytest.approx(bf16.seconds_per_step)
