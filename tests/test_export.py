"""Export (issue 13): a merged model gives the same greedy outputs as base + adapter; its card
says it is merged and from which adapter; GGUF is refused with an install hint when no converter
is installed; the merged folder pushes to the (test) Hub."""

from __future__ import annotations

import json

import pytest

from mathtutor import export
from mathtutor.generate import GenerationSettings, generate_batch
from mathtutor.models import clear_cache, load_model
from tests import hub_server as test_hub
from tests.hub_server import WRITE_TOKEN

hub, hub_server = test_hub.hub, test_hub.hub_server

PROMPTS = ["Question: 2 + 3 = ?\nAnswer:", "Tom has 4 apples and eats 1. How many?", "#### 7"]


def test_merged_model_gives_the_same_greedy_outputs(tiny_model_dir, tiny_adapter_dir, tmp_path):
    settings = GenerationSettings(max_new_tokens=12)
    clear_cache()
    loaded = load_model(str(tiny_model_dir), device="cpu")
    name = loaded.add_adapter(tiny_adapter_dir)
    with_adapter = [c.text for c in generate_batch(loaded, PROMPTS, name, settings)]
    bare = [c.text for c in generate_batch(loaded, PROMPTS, "base", settings)]
    assert with_adapter != bare  # the adapter changes outputs, so equality below means something
    clear_cache()

    out = export.merge_adapter(tiny_adapter_dir, tmp_path / "merged")
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert not (out / "adapter_config.json").exists()
    merged = load_model(str(out), device="cpu")
    assert [c.text for c in generate_batch(merged, PROMPTS, "base", settings)] == with_adapter
    clear_cache()
    card = (out / "README.md").read_text()
    assert "merged into its weights" in card and str(tiny_adapter_dir.resolve()) in card
    assert json.loads((out / "mathtutor.json").read_text())["merged_from"] == str(
        tiny_adapter_dir.resolve()
    )
    with pytest.raises(ValueError, match="^out_dir: .* already exists and is not empty"):
        export.merge_adapter(tiny_adapter_dir, out)


def test_bad_inputs_and_gguf_without_a_converter(tiny_model_dir, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="^adapter_dir: .* is not a directory"):
        export.merge_adapter(tmp_path / "nothing", tmp_path / "out")
    monkeypatch.setenv("MATHTUTOR_GGUF_CONVERTER", str(tmp_path / "missing.py"))
    assert "convert_hf_to_gguf.py" in export.gguf_problem()
    with pytest.raises(ValueError, match="^gguf: not available here: .*llama.cpp"):
        export.export_gguf(tiny_model_dir, tmp_path / "m.gguf")
    from mathtutor import cli

    assert cli.run(export.main, [str(tiny_model_dir), str(tmp_path / "o"), "--gguf"]) == 2
    assert not (tmp_path / "o").exists()  # refused before any merging


def test_merged_model_pushes_to_the_hub(hub, tiny_adapter_dir, tmp_path):
    from mathtutor import hub as mhub

    out = export.merge_adapter(tiny_adapter_dir, tmp_path / "merged")
    url = mhub.push_model(out, "alice/tiny-merged", WRITE_TOKEN)
    assert url.endswith("/alice/tiny-merged")
    stored = hub.files("alice/tiny-merged")
    assert stored["model.safetensors"] == (out / "model.safetensors").read_bytes()
    assert "merged into its weights" in stored["README.md"].decode()
    with pytest.raises(ValueError, match="is not a saved model"):
        mhub.push_model(tiny_adapter_dir, "alice/x", WRITE_TOKEN)
