"""The estimate before launch: GPU memory a recipe needs, and a refusal when it cannot fit.

The device-memory probe is a parameter, so these tests give (device, free GB) numbers
instead of depending on this machine.
"""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

from tests.conftest import tiny_train_config
from training import estimate as estimate_module
from training import runs
from training.config import TrainConfig
from training.estimate import check_fits, estimate, gpu_requirement

RECIPES = sorted((Path(__file__).resolve().parent.parent / "training" / "recipes").glob("*.yaml"))


def test_pure_pieces():
    assert doctest.testmod(estimate_module).failed == 0
    assert gpu_requirement(12.0) == "T4 (16 GB) or larger"
    assert gpu_requirement(30.0) == "A100 (40 GB) or larger"
    assert gpu_requirement(33.0) == "H100 (80 GB) or larger"  # over 80% of 40 GB: too tight


def test_gpu_settings_follow_the_given_device(tiny_model_dir):
    config = tiny_train_config(tiny_model_dir)
    on_gpu = estimate(config, memory=("cuda (Tesla T4)", 15.0))
    on_cpu = estimate(config, memory=("cpu", 15.0))
    assert on_gpu.device == "cuda (Tesla T4)" and on_gpu.verdict == "fits"
    assert on_gpu.weights_gb == pytest.approx(on_cpu.weights_gb / 2)  # bf16 vs fp32 weights
    assert on_gpu.total_gb == pytest.approx(on_gpu.gpu_gb)
    assert on_cpu.gpu_gb == pytest.approx(on_gpu.gpu_gb)  # the GPU need, whatever the machine
    assert estimate(config, memory=("cpu", on_cpu.total_gb * 0.9)).verdict == "will not fit"


def test_launch_is_refused_when_the_device_cannot_fit_it(tiny_model_dir):
    config = tiny_train_config(tiny_model_dir, recipe="tiny-test")
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
    assert len(RECIPES) == 8
    for path in RECIPES:
        config = TrainConfig.from_yaml(path)
        try:
            result = estimate(config, memory=("cpu", 1000.0))
        except ValueError as error:  # offline: a Hub model's config cannot be read
            assert config.model != "bundled"
            assert f"model {config.model!r} could not be loaded from the Hub" in str(error)
            assert "These load offline: bundled" in str(error)
            continue
        assert result.gpu_gb > 0
        if config.recipe == "bundled-quick":
            assert gpu_requirement(result.gpu_gb) == "T4 (16 GB) or larger"


def test_the_train_tab_shows_the_gpu_need(tiny_model_dir):
    from mathtutor.ui import train as tab

    text = tab.estimate_markdown(tab.form_values(tiny_train_config(tiny_model_dir)))
    assert "| Needs on a GPU | ~" in text and "(16 GB) or larger" in text


def test_estimate_calibrates_from_measured_step_times(tiny_model_dir, tmp_path, monkeypatch):
    """Issue 13: the time rests on runs measured here, and says when it extrapolates."""
    monkeypatch.setattr(estimate_module, "step_times_path", lambda: tmp_path / "step_times.json")
    config = tiny_train_config(tiny_model_dir)
    memory = ("cpu", 100.0)
    rough = estimate(config, memory)
    assert not rough.calibrated and rough.calibration.startswith("rough")
    assert rough.seconds_per_step == pytest.approx(rough.raw_seconds_per_step)

    estimate_module.record_step_time(config, 4 * rough.raw_seconds_per_step, memory)
    calibrated = estimate(config, memory)
    assert calibrated.calibrated and not calibrated.extrapolating
    assert calibrated.seconds_per_step == pytest.approx(4 * rough.raw_seconds_per_step, rel=1e-3)
    assert calibrated.total_seconds == pytest.approx(4 * rough.total_seconds, rel=1e-3)
    assert "calibrated from 1 run measured here" in calibrated.calibration

    bigger = estimate(config.replace(batch_size=16), memory)  # 8x the tokens per step
    assert bigger.extrapolating and "extrapolating from 1 run" in bigger.calibration
    other = estimate(config.replace(lora_rank=8, finetune="full"), memory)
    assert other.extrapolating and "other models or settings" in other.calibration
    elsewhere = estimate(config, ("cuda (NVIDIA H200)", 100.0))  # another device: not used
    assert not elsewhere.calibrated


def test_a_finished_run_records_its_step_time(tiny_model_dir, tmp_path, monkeypatch):
    import json

    import torch

    from training.sft import train

    monkeypatch.setattr(estimate_module, "step_times_path", lambda: tmp_path / "step_times.json")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = train(tiny_train_config(tiny_model_dir, max_steps=3))
    finally:
        torch.set_num_threads(threads)
    records = json.loads((tmp_path / "step_times.json").read_text())
    assert [row["model"] for row in records] == [str(tiny_model_dir)]
    measured = estimate_module.measured_seconds_per_step(runs.read_metrics(result.run_id))
    assert records[0]["measured_seconds_per_step"] == pytest.approx(measured, rel=1e-3)
    assert estimate(tiny_train_config(tiny_model_dir)).calibrated


def test_cpu_time_uses_the_bf16_rate_where_bf16_is_computed(tiny_model_dir, monkeypatch):
    from training import estimate as module

    monkeypatch.setattr(module, "CPU_BF16_SPEEDUP", 2.5)
    fp32 = estimate(tiny_train_config(tiny_model_dir, precision="float32"), memory=("cpu", 15.0))
    bf16 = estimate(tiny_train_config(tiny_model_dir, precision="bfloat16"), memory=("cpu", 15.0))
    assert fp32.seconds_per_step / bf16.seconds_per_step == pytest.approx(2.5)
    monkeypatch.setenv("MATHTUTOR_DTYPE", "bfloat16")  # auto on a CPU that computes bf16
    auto = estimate(tiny_train_config(tiny_model_dir), memory=("cpu", 15.0))
    assert auto.seconds_per_step == pytest.approx(bf16.seconds_per_step)
