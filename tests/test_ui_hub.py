"""The Hub tab's handlers against the test Hub (tests/hub_server.py), with real tiny adapters.

No browser: the handlers are called as gradio calls them, with a `gr.OAuthToken` where the
LoginButton would supply one. The tab is also built and launched offline without a token
(gradio's LoginButton would make that launch fail).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import gradio as gr
import pytest

from mathtutor import results, store
from mathtutor.ui import hub as tab
from mathtutor.ui.common import AppContext, system_choices
from tests import hub_server as test_hub
from tests.conftest import make_adapter
from tests.hub_server import BOB_TOKEN, READ_TOKEN, WRITE_TOKEN, free_port_url, front_matter

hub, hub_server = test_hub.hub, test_hub.hub_server  # fixtures, used by name below

REPO_ROOT = Path(__file__).resolve().parent.parent
ELEM_IDS = {
    "hub-status", "hub-push-adapter", "hub-push-repo", "hub-push-private", "hub-push",
    "hub-push-result", "hub-card-preview", "hub-pull-repo", "hub-pull", "hub-pull-result",
    "hub-search", "hub-search-results", "hub-my-adapters", "hub-deploy-space", "hub-deploy",
    "hub-deploy-result",
}  # fmt: skip


def signed_in(token: str = WRITE_TOKEN) -> gr.OAuthToken:
    """What gradio injects after a sign-in with the LoginButton."""
    return gr.OAuthToken(token=token, scope="openid profile write-repos", expires_at=0)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A clean mathtutor home (store, pulled adapters) for one test."""
    monkeypatch.setenv("MATHTUTOR_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def lora(home, tiny_model_dir, tmp_path) -> Path:
    """A real adapter on the tiny model, registered as `tiny-lora`."""
    path = make_adapter(tiny_model_dir, tmp_path / "tiny-lora", seed=3)
    store.register_adapter("tiny-lora", path, str(tiny_model_dir), "local")
    return path


def fake_summary_run(run_id: str, systems: list[str], labels: list[str], strict: list[int]):
    """An evaluation run in the store whose summary comes from results.summarize."""
    records = [
        {"system": label, "problem_id": str(i), "is_correct": bool(ok), "strict_correct": bool(ok),
         "flexible_correct": True, "follows_format": True, "num_tokens": 9, "finish_reason": "eos",
         "category": "correct" if ok else "reasoning", "seconds": 0.1}
        for label in labels for i, ok in enumerate(strict)
    ]  # fmt: skip
    config = {"systems": systems, "labels": labels, "dataset": "gsm8k", "split": "test"}
    store.create_eval_run(run_id, {**config, "prompt_format": "chat"})
    summary = dataclasses.replace(results.summarize(records, labels), prompt_format="chat")
    store.update_eval_run(run_id, status="finished", summary=summary.to_dict())
    return summary


# --------------------------------------------------------------------------- sign-in
def test_sign_in_state_without_and_with_a_token(hub, monkeypatch):
    assert tab.sign_in_status(None) == (tab.NOT_SIGNED_IN, "")
    assert "hf auth login" in tab.NOT_SIGNED_IN and "Sign in button" in tab.NOT_SIGNED_IN
    text, user = tab.sign_in_status(signed_in())
    assert user == "alice" and "Signed in as **alice**" in text

    monkeypatch.setenv("HF_TOKEN", BOB_TOKEN)  # locally the login is the credential
    assert tab.sign_in_status(None)[1] == "bob"
    # gradio's local sign-in mock hands out a placeholder: the local login still acts
    assert tab.sign_in_status(signed_in("mock-oauth-token-for-local-dev"))[1] == "bob"

    monkeypatch.setenv("HF_TOKEN", READ_TOKEN + "x")
    text, user = tab.sign_in_status(None)
    assert user == "" and "rejected the token (401" in text

    monkeypatch.setenv("HF_ENDPOINT", free_port_url())
    text, user = tab.sign_in_status(signed_in())
    assert user == "" and "could not be reached" in text


def test_on_a_space_only_the_visitors_own_sign_in_counts(hub, monkeypatch):
    monkeypatch.setenv("SYSTEM", "spaces")
    monkeypatch.setenv("SPACE_ID", "alice/mathtutor")
    monkeypatch.setenv("HF_TOKEN", WRITE_TOKEN)  # the Space owner's secret
    assert tab.on_space()
    assert tab.sign_in_status(None) == (tab.NOT_SIGNED_IN, "")
    assert tab.sign_in_status(signed_in(BOB_TOKEN))[1] == "bob"
    with pytest.raises(gr.Error, match="this Space's own Hub token is for"):
        tab.my_adapters(None)  # the Space's HF_TOKEN is there, but not for visitors
    monkeypatch.delenv("OAUTH_CLIENT_ID", raising=False)
    assert not tab.login_button_allowed()  # no `hf_oauth: true`: gradio would fail at launch
    monkeypatch.setenv("OAUTH_CLIENT_ID", "client-id")
    assert tab.login_button_allowed()


def test_login_button_only_when_gradio_can_sign_in(hub, monkeypatch):
    assert not tab.login_button_allowed()  # no token
    monkeypatch.setenv("HF_TOKEN", WRITE_TOKEN)
    assert tab.login_button_allowed()
    monkeypatch.setenv("HF_ENDPOINT", free_port_url())  # a token, but whoami would fail
    assert not tab.login_button_allowed()


# --------------------------------------------------------------------------- push
def test_push_gives_the_url_and_a_card_with_the_newest_evaluation(hub, home, lora, tiny_model_dir):
    from mathtutor.evaluate import EvalConfig, evaluate

    fake_summary_run("older", ["base", "tiny-lora"], ["base", "tiny-lora"], [1, 1, 1, 0])
    report = evaluate(
        EvalConfig(
            model=str(tiny_model_dir), systems=["base", "tiny-lora"], dataset="arithmetic",
            num_samples=4, max_new_tokens=8, batch_size=4, prompt_format="qa",
        )
    )  # fmt: skip
    fake_summary_run("newer-without-it", ["base"], ["base"], [1, 0, 0, 0])
    strict = report.summary.systems["tiny-lora"].strict

    choices = tab.adapter_choices()
    assert choices == [("tiny-lora (local)", str(lora.resolve()))]
    assert tab.refresh_adapters(None).value == str(lora.resolve())  # the newest is picked
    assert tab.default_repo(str(lora), "alice") == "alice/tiny-lora"
    assert tab.default_repo(str(lora), "") == "tiny-lora"
    preview = tab.card_preview(str(lora), "alice/tiny-lora")
    assert preview.startswith("```yaml\n") and "model-index:" in preview
    assert "prompt_format: qa" in preview and "num_samples: 4" in preview
    assert "| arithmetic (`mathtutor/arithmetic` default) | test | 4 | `qa` |" in preview

    text, repo_id = tab.push(str(lora), "tiny-lora", False, "first push", signed_in())
    assert repo_id == "alice/tiny-lora"
    assert (
        text.startswith("✅ Pushed to [alice/tiny-lora]") and f"{hub.url}/alice/tiny-lora" in text
    )
    files = hub.files("alice/tiny-lora")
    assert files["adapter_model.safetensors"] == (lora / "adapter_model.safetensors").read_bytes()
    meta = front_matter(files["README.md"].decode())
    result = meta["model-index"][0]["results"][0]
    strict_metric = result["metrics"][0]
    assert strict_metric["name"] == "strict-match"
    assert strict_metric["value"] == round(strict.value, 4)  # the real run, not "older"
    assert strict_metric["args"]["num_samples"] == 4 == strict.n
    assert result["dataset"]["type"] == "mathtutor/arithmetic"
    assert "mathtutor" in meta["tags"] and not hub.repos[("model", "alice/tiny-lora")].private


def test_card_of_a_training_run_adapter_carries_its_run_and_evaluation(
    hub, home, tiny_model_dir, tiny_adapter_dir
):
    from training.config import TrainConfig
    from training.runs import create_run

    config = TrainConfig(model=str(tiny_model_dir), run_name="tiny-sft", lora_rank=4, max_steps=3)
    run_dir = create_run(config, run_id="tiny-sft-1")
    shutil.copytree(tiny_adapter_dir, run_dir / "adapter")
    rows = [
        {"event": "begin", "step": 0, "max_steps": 3},
        {"step": 1, "max_steps": 3, "epoch": 0.5, "loss": 2.5, "elapsed": 1.0},
        {"step": 3, "max_steps": 3, "epoch": 1.0, "loss": 1.25, "eval_loss": 1.5, "elapsed": 2.0},
        {"event": "accuracy", "step": 2, "accuracy": 0.5, "accuracy_stderr": 0.1, "eval_n": 24},
        {"event": "accuracy", "step": 3, "accuracy": 0.25, "accuracy_stderr": 0.09, "eval_n": 24},
        {"event": "end", "step": 3, "max_steps": 3, "train_runtime": 84.0},
    ]
    text = "\n".join(json.dumps(row) for row in rows) + '\n{"step": 4, "lo'  # cut by a crash
    (run_dir / "metrics.jsonl").write_text(text)
    store.upsert_train_run("tiny-sft-1", status="finished", run_dir=run_dir)
    running = create_run(config, run_id="tiny-sft-2")  # not finished: not offered for a push
    shutil.copytree(tiny_adapter_dir, running / "adapter")
    store.upsert_train_run("tiny-sft-2", status="running", run_dir=running)
    adapter_dir = str((run_dir / "adapter").resolve())
    fake_summary_run("eval-1", ["base", adapter_dir], ["base", "adapter"], [1, 1, 1, 0])

    assert tab.adapter_choices() == [("tiny-sft-1 (train:tiny-sft-1)", adapter_dir)]
    preview = tab.card_preview(adapter_dir, "alice/tiny-sft")
    assert "Run: 3 steps, 1 epochs, final train loss 1.2500, final eval loss 1.5000, 1.4 min." in (
        preview
    )
    assert "| `lora_rank` | `4` |" in preview and "| `max_steps` | `3` |" in preview
    assert "value: 0.75" in preview and "75.0% ± 25.0" in preview  # strict 3/4 with its stderr
    assert "Trained in the mathtutor run `tiny-sft-1`" in preview
    # the best step measured during training (issue 13); this run kept its last step
    assert "Best held-out task accuracy during training: 50.0% ± 10.0, n = 24 at step 2." in preview
    assert "holds the weights of that step" not in preview


# --------------------------------------------------------------------------- pull and search
def test_pull_registers_the_adapter_and_search_finds_it(
    hub, home, lora, tiny_model_dir, tmp_path, monkeypatch
):
    tab.push(str(lora), "alice/shared-lora", False, "share", signed_in())
    monkeypatch.setenv("MATHTUTOR_HOME", str(tmp_path / "fresh-home"))  # another machine

    table, note = tab.search("shared")
    assert table["headers"] == tab.SEARCH_COLUMNS
    assert [row[0] for row in table["data"]] == ["alice/shared-lora"]
    assert note.startswith("1 adapter")
    assert table["data"][0][1] == "?"  # a local base path is not a Hub id: the card omits it
    row = table["data"][0]
    clicked = gr.SelectData(None, {"index": [0, 2], "value": row[2], "row_value": row})
    repo_id = tab.pick_repo(clicked)
    assert repo_id == "alice/shared-lora"
    assert tab.search("no-such-thing") == ({"headers": tab.SEARCH_COLUMNS, "data": []}, (
        "No adapters found."
    ))  # fmt: skip

    with pytest.raises(gr.Error, match="is an adapter for base model .* not for 'Hugging"):
        tab.pull(repo_id, "", "bundled", True)  # the app's base is another model
    assert store.list_adapters() == []
    text = tab.pull(repo_id, "", str(tiny_model_dir), True)
    assert text.startswith("✅ Pulled and registered as **alice/shared-lora**")
    assert "it now appears in Compare / Evaluate" in text
    assert [a["name"] for a in store.list_adapters()] == ["alice/shared-lora"]
    assert "alice/shared-lora" in system_choices(str(tiny_model_dir))  # Compare lists it
    other = tab.pull(repo_id, "main", "bundled", False)
    assert f"once `{tiny_model_dir}` is the base model" in other


def test_my_adapters_lists_the_users_repos(hub, home, lora):
    tab.push(str(lora), "alice/mine-private", True, "mine", signed_in())
    tab.push(str(lora), "bob-lora", False, "bob's", signed_in(BOB_TOKEN))
    table = tab.my_adapters(signed_in())
    assert table["headers"] == tab.MY_COLUMNS
    assert [row[:3] for row in table["data"]] == [
        ["alice/mine-private", table["data"][0][1], "private"]
    ]
    assert tab.my_adapters(signed_in(BOB_TOKEN))["data"][0][0] == "bob/bob-lora"
    with pytest.raises(gr.Error, match="needs a Hugging Face token"):
        tab.my_adapters(None)


# --------------------------------------------------------------------------- deploy
def test_deploy_gives_the_space_url(hub, home):
    text = tab.deploy("my-tutor", "", "alice/tiny-lora", "zero-a10g", False, signed_in())
    assert f"[{hub.url}/spaces/alice/my-tutor]" in text and "zero-a10g" in text
    settings = json.loads(hub.files("alice/my-tutor", repo_type="space")["mathtutor_space.json"])
    assert settings["adapter"] == "alice/tiny-lora"
    assert settings["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert "dedicated GPU" in tab.hardware_note("zero-a10g")
    assert "dedicated" not in tab.hardware_note("a10g-small")
    with pytest.raises(gr.Error, match="not a Space hardware flavor"):
        tab.deploy("my-tutor", "", "", "gpu-please", False, signed_in())
    with pytest.raises(gr.Error, match="needs a Hugging Face token"):
        tab.deploy("my-tutor", "", "", "cpu-basic", False, None)


# --------------------------------------------------------------------------- errors and the token
def test_bad_input_and_hub_failures_are_clear_messages(hub, home, lora, monkeypatch):
    cases = [
        (lambda: tab.push(str(lora), "alice/my adapter", True, "m", signed_in()), "repo_id"),
        (lambda: tab.push(str(lora), "alice/x", True, "m", None), "needs a Hugging Face token"),
        (lambda: tab.push(str(lora), "alice/x", True, "m", signed_in(READ_TOKEN)), "403"),
        (lambda: tab.push(str(lora), "bob/x", True, "m", signed_in()), "403"),
        (lambda: tab.push("", "alice/x", True, "m", signed_in()), "pick an adapter"),
        (lambda: tab.push(str(home), "alice/x", True, "m", signed_in()), "not a LoRA adapter"),
        (lambda: tab.pull("alice/none-such", "", "bundled", True), "no such repo"),
        (lambda: tab.pull("", "", "bundled", True), "repo_id is empty"),
    ]
    for call, expected in cases:
        with pytest.raises(gr.Error, match=expected) as error:
            call()
        assert "Traceback" not in str(error.value)
    assert not hub.repos.get(("model", "alice/x"))  # nothing was created by refused pushes

    monkeypatch.setenv("HF_ENDPOINT", free_port_url())  # the Hub is down
    for call in (
        lambda: tab.search("lora"),
        lambda: tab.pull("alice/x", "", "bundled", True),
        lambda: tab.push(str(lora), "alice/x", True, "m", signed_in()),
    ):
        with pytest.raises(gr.Error, match="could not be reached .*keeps working offline"):
            call()
    assert tab.card_preview(str(lora), "alice/x").startswith("```yaml")  # local work goes on


def test_the_token_never_appears_in_any_output(hub, home, lora, tiny_model_dir, caplog):
    caplog.set_level(logging.DEBUG)
    outputs: list = []
    adapter, leak = str(lora), "alice/leak-check"
    for token in (WRITE_TOKEN, READ_TOKEN, READ_TOKEN + "x"):
        oauth = signed_in(token)
        calls = [
            (tab.sign_in_status, oauth),
            (tab.push, adapter, leak, False, "m", oauth),
            (tab.card_preview, adapter, leak),
            (tab.pull, leak, "", str(tiny_model_dir), True, oauth),
            (tab.search, "leak"),
            (tab.my_adapters, oauth),
            (tab.deploy, "bad space", "", "", "cpu-basic", False, oauth),
            (tab.push, adapter, "bob/not-yours", False, "m", oauth),
        ]
        for function, *args in calls:
            try:
                outputs.append(function(*args))
            except gr.Error as error:
                outputs.append(str(error))
    text = json.dumps(outputs, default=str)
    assert "Pushed to" in text and "rejected the token" in text and "403" in text
    for token in (WRITE_TOKEN, READ_TOKEN):
        assert token not in text and token not in caplog.text


# --------------------------------------------------------------------------- the tab
def build_blocks(spec: str = "bundled") -> gr.Blocks:
    with gr.Blocks() as demo:
        model_spec = gr.Dropdown([spec], value=spec)
        with gr.Tabs() as tabs, gr.Tab("Hub", id="hub") as hub_tab:
            tab.build(AppContext(model_spec=model_spec, tabs=tabs), hub_tab)
    return demo


def elem_ids(demo: gr.Blocks) -> set[str]:
    return {c.get("props", {}).get("elem_id") for c in demo.config["components"]}


def test_the_tab_launches_offline_without_a_token(hub, home, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", free_port_url())
    demo = build_blocks()
    ids = elem_ids(demo)
    assert ids >= ELEM_IDS and "hub-login" not in ids and "hub-zerogpu" not in ids
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        import httpx

        assert httpx.get(demo.local_url, timeout=10).status_code == 200
    finally:
        demo.close()


def test_on_zerogpu_the_tab_says_training_needs_dedicated_hardware(hub, home, monkeypatch):
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    demo = build_blocks()
    notes = [
        c["props"].get("value") for c in demo.config["components"]
        if c.get("props", {}).get("elem_id") == "hub-zerogpu"
    ]  # fmt: skip
    assert len(notes) == 1 and "training needs dedicated GPU hardware" in notes[0]


def test_with_a_local_login_the_tab_has_a_sign_in_button_and_launches(hub, tmp_path):
    """In a fresh process, as `HF_TOKEN=... python app.py` would run against this Hub."""
    code = """
import gradio as gr
from gradio_client import Client
from mathtutor.ui import hub as tab
from mathtutor.ui.common import AppContext

with gr.Blocks() as demo:
    spec = gr.Dropdown(["bundled"], value="bundled")
    with gr.Tabs() as tabs, gr.Tab("Hub", id="hub") as hub_tab:
        tab.build(AppContext(model_spec=spec, tabs=tabs), hub_tab)
ids = {c.get("props", {}).get("elem_id") for c in demo.config["components"]}
assert "hub-login" in ids, ids
demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
print(Client(demo.local_url, verbose=False).predict(api_name="/sign_in_status"))
demo.close()
"""
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.url,
        "HF_TOKEN": WRITE_TOKEN,
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_HUB_OFFLINE": "0",
        "MATHTUTOR_HOME": str(tmp_path / "home"),
        "PYTHONPATH": str(REPO_ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Signed in as **alice** (with the local login)" in done.stdout
    assert WRITE_TOKEN not in done.stdout + done.stderr


def test_gradio_injects_the_sign_in_into_the_handlers():
    from gradio.utils import oauth_token_requirement

    for handler in (tab.sign_in_status, tab.push, tab.pull, tab.my_adapters, tab.deploy):
        assert oauth_token_requirement(handler) == "optional", handler.__name__


def test_doctests():
    import doctest

    assert doctest.testmod(tab).failed == 0
