"""Train tab handlers, called directly (no browser): recipe -> form -> config, preview,
estimate, following a run's curves and log, comparing runs, launching and stopping."""

from __future__ import annotations

import time

import gradio as gr
import pytest

from mathtutor.ui import train as tab
from mathtutor.ui.common import AppContext
from training import runs
from training.config import TrainConfig
from training.sft import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_values(model_dir, **changes) -> list:
    values = dict(
        model=str(model_dir), dataset="arithmetic", difficulty="easy", num_train_samples=24,
        val_fraction=0.25, eval_steps=1, prompt_format="qa", max_steps=3, batch_size=2,
        lora_rank=4, max_seq_length=1024, save_steps=100,
    )  # fmt: skip
    return tab.form_values(TrainConfig(**{**values, **changes}))


def test_every_recipe_fills_the_form_and_comes_back_unchanged():
    names = tab.recipe_choices()
    assert tab.CUSTOM in names and "bundled-quick" in names and len(names) == 9
    for name in names[1:]:
        values = tab.load_recipe(name)
        assert len(values) == len(tab.FORM_FIELDS)
        assert tab.form_config(values) == TrainConfig.from_yaml(tab.RECIPES_DIR / f"{name}.yaml")
    assert tab.form_config(tab.load_recipe(tab.CUSTOM, "/some/model")).model == "/some/model"


def test_the_form_accepts_what_widgets_send_and_names_bad_fields():
    values = tab.load_recipe("bundled-quick")
    index = {item.name: i for i, item in enumerate(tab.FORM_FIELDS)}
    values[index["max_steps"]] = 60.0  # gr.Number sends floats
    values[index["target_modules"]] = "q_proj, v_proj"
    config = tab.form_config(values)
    assert config.max_steps == 60 and config.target_modules == ["q_proj", "v_proj"]
    values[index["lora_rank"]] = 0
    with pytest.raises(ValueError, match="^lora_rank:"):
        tab.form_config(values)


def test_preview_and_estimate(tiny_model_dir):
    values = tiny_values(tiny_model_dir)
    table = tab.preview(values)
    assert table["headers"] == ["question", "target", "answer"] and len(table["data"]) == 5
    assert all(row[1].endswith(f"#### {row[2]}") for row in table["data"])
    text = tab.estimate_markdown(values)
    assert "fits" in text and "Trainable" in text and "GB" in text


def test_following_and_comparing_finished_runs(tiny_model_dir):
    first = train(tab.form_config(tiny_values(tiny_model_dir, seed=1)))
    second = train(tab.form_config(tiny_values(tiny_model_dir, seed=2)))
    status, bar, loss, lr, log, accuracy = tab.follow(first.run_id)
    assert "finished" in status and "step 3/3" in status and "100%" in bar
    assert accuracy is None and "Task accuracy" not in status  # this run measured none
    assert {trace.name for trace in loss.data} == {"loss", "eval_loss"}
    assert list(lr.data[0].x) == [1, 2, 3]
    assert "finished at step 3" in log
    table, ids = tab.runs_table()
    assert first.run_id in ids and second.run_id in ids
    assert table["headers"] == tab.RUN_COLUMNS
    both = tab.overlay(first.run_id, second.run_id)
    assert {trace.name for trace in both.data} >= {f"{first.run_id} loss", f"{second.run_id} loss"}
    assert tab.follow(None)[0] == "No run selected."


def test_accuracy_is_followed_compared_listed_and_the_adapter_exported(tiny_model_dir):
    """Issue 13: the accuracy curve beside the loss, the overlay, the run list's best step,
    and the merged export of the run's adapter."""
    values = tiny_values(
        tiny_model_dir, val_fraction=0.0, max_steps=2, eval_every=1, eval_num_problems=2,
        eval_max_new_tokens=4, eval_max_share=1.0,
    )  # fmt: skip
    first = train(tab.form_config(values))
    second = train(tab.form_config(values))
    status, _, loss, _, log, accuracy = tab.follow(first.run_id)
    assert {trace.name for trace in loss.data} == {"loss"}
    assert "evaluation took" in log or "task accuracy" in log
    assert {trace.name for trace in accuracy.data} == {"accuracy", "strict", "flexible", "format"}
    assert list(accuracy.data[0].x) == [0, 1, 2]
    assert "2 held-out problems" in accuracy.layout.title.text
    assert "Task accuracy: accuracy " in status and "evaluation takes" in status
    table, _ = tab.runs_table()
    row = next(r for r in table["data"] if r[0] == first.run_id)
    assert row[tab.RUN_COLUMNS.index("best accuracy")].endswith("@ step 0")  # tie: the first
    both = tab.overlay_accuracy(first.run_id, second.run_id)
    assert {trace.name for trace in both.data} == {
        f"{first.run_id} accuracy",
        f"{second.run_id} accuracy",
    }
    text = tab.export_merged(first.run_id)
    assert "Merged model saved to" in text and "GGUF" in text
    assert (first.run_dir / "merged" / "model.safetensors").is_file()
    with pytest.raises(ValueError, match="Pick a finished run"):
        tab.export_merged(None)


def test_eta_from_the_metrics_of_a_running_run():
    info = runs.RunInfo("r", "running", runs.runs_root(), {}, step=10, max_steps=40)
    rows = [
        {"event": "begin", "step": 0, "time": 100.0},
        {"step": 10, "loss": 1.0, "time": 120.0},
    ]
    percent, eta = tab.progress(info, rows)
    assert percent == 25.0 and eta == "2.0 s/step, about 60 s left"


def test_the_tab_builds_with_stable_element_ids():
    with gr.Blocks() as demo:
        picker = gr.Dropdown(["bundled"], value="bundled")
        with gr.Tabs() as tabs, gr.Tab("Train", id="train") as train_tab:
            tab.build(AppContext(model_spec=picker, tabs=tabs), train_tab)
    ids = {block.elem_id for block in demo.blocks.values()}
    for elem_id in ("train-recipe", "train-launch", "train-stop", "train-resume", "train-loss-plot",
                    "train-lr-plot", "train-status", "train-progress", "train-log", "train-runs",
                    "train-estimate", "train-preview", "train-lora-rank", "train-learning-rate",
                    "train-accuracy-plot", "train-compare-accuracy-plot", "train-export",
                    "train-eval-every", "train-keep-best-by", "train-loss-type"):  # fmt: skip
        assert elem_id in ids, elem_id


def test_zerogpu_asks_for_dedicated_hardware(monkeypatch, tiny_model_dir):
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    with pytest.raises(ValueError, match="dedicated GPU hardware"):
        tab.launch(tiny_values(tiny_model_dir))
    with gr.Blocks() as demo:
        picker = gr.Dropdown(["bundled"], value="bundled")
        with gr.Tabs() as tabs, gr.Tab("Train") as train_tab:
            tab.build(AppContext(model_spec=picker, tabs=tabs), train_tab)
    launch_button = next(b for b in demo.blocks.values() if b.elem_id == "train-launch")
    assert launch_button.interactive is False


@pytest.mark.slow
def test_launch_and_stop_from_the_tab(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    values = tiny_values(tiny_model_dir, max_steps=4000, save_steps=10000)
    text, run_id = tab.launch(values)
    assert run_id in text
    deadline = time.time() + 300
    while runs.get_run(run_id).step == 0:
        assert time.time() < deadline, tab.follow(run_id)[4]
        time.sleep(0.5)
    assert "running" in tab.follow(run_id)[0]
    assert "Stop requested" in tab.stop(run_id)
    info = runs.wait(run_id, timeout=120)
    assert info.status == "stopped"
    status = tab.follow(run_id)[0]
    assert "stopped" in status and "Compare and Evaluate" in status
