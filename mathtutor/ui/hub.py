"""Hub tab: who is signed in, push an adapter with its model card, pull and search, deploy a Space.

Every handler is a plain function over `mathtutor.hub` (tests call them without a browser) and
turns a HubError / ValueError into a clear toast via `user_error`; the rest of the app keeps
working when the Hub cannot be reached.

Auth: a handler takes `oauth_token: gr.OAuthToken | None`, which gradio fills in when the user
signed in with `gr.LoginButton`. On a Space only that token acts, so a visitor never pushes with
the Space owner's `HF_TOKEN` secret; locally the credential is `HF_TOKEN` or `hf auth login`
(gradio's local sign-in mock hands out a placeholder, which `hub.get_token` skips). No output
ever contains a token.

The model card shown before a push is rendered from what mathtutor knows about the adapter:
its base model (adapter_config.json), its training run (config.yaml, metrics.jsonl) when it
came from one, and the newest evaluation in the store that included it as a system.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from mathtutor import hub, store
from mathtutor.model_card import CardInfo, EvalResult, TrainingSummary, render_model_card
from mathtutor.models import BUNDLED, BUNDLED_HUB_ID, base_model_id, read_adapter_config
from mathtutor.ui.common import AppContext, dataframe_value, user_error
from mathtutor.zerogpu import on_zerogpu

NOT_SIGNED_IN = (
    "Not signed in: on a Space use the Sign in button; locally set HF_TOKEN or run `hf auth login`."
)
TRAINING_NEEDS_GPU = (
    "ZeroGPU lends a GPU for a few minutes per call: chat and evaluation work, **training "
    "needs dedicated GPU hardware** (e.g. `a10g-small` or `l4x1`)."
)
SEARCH_COLUMNS = ["repo id", "base model", "downloads", "likes", "updated"]
MY_COLUMNS = ["repo id", "base model", "visibility", "updated", "downloads"]
# Training settings a model card lists (names of training.config.TrainConfig fields).
CARD_HYPERPARAMETERS = (
    "method", "finetune", "lora_rank", "lora_alpha", "lora_dropout", "target_modules", "dataset",
    "num_train_samples", "prompt_format", "epochs", "max_steps", "learning_rate", "lr_scheduler",
    "batch_size", "gradient_accumulation_steps", "max_seq_length", "seed",
)  # fmt: skip
GRPO_HYPERPARAMETERS = ("num_generations", "beta", "temperature", "max_completion_length")
# mathtutor dataset name -> (Hub dataset id, display name, config) for model-index results.
EVAL_DATASETS = {
    "gsm8k": ("openai/gsm8k", "GSM8K", "main"),
    "gsm8k-socratic": ("openai/gsm8k", "GSM8K", "socratic"),
}


@dataclass
class LocalAdapter:
    """An adapter on this machine that can be pushed."""

    name: str  # registered name, or the training run id
    path: Path  # the adapter directory
    source: str  # "train:<run id>", "hub:<repo id>" or "local"


# --------------------------------------------------------------------------- sign-in
def on_space() -> bool:
    """Whether this runs on a Space: gradio's own test (gradio/utils.py `get_space`)."""
    return os.environ.get("SYSTEM") == "spaces" and bool(os.environ.get("SPACE_ID"))


def login_button_allowed() -> bool:
    """Whether a `gr.LoginButton` can be added without breaking the launch.

    gradio 6.31 installs its sign-in routes at launch: on a Space the real OAuth flow (which
    needs the `OAUTH_*` variables that `hf_oauth: true` provides), elsewhere a mock that signs
    in as the local login and raises at launch when there is no token or `whoami` fails. So:
    on a Space when OAuth is configured; locally when a token exists and the Hub accepts it.
    """
    if on_space():
        return bool(os.environ.get("OAUTH_CLIENT_ID"))
    token = hub.get_token()
    if not token:
        return False
    try:
        hub.whoami(token)
    except ValueError:  # HubError: offline, unreachable, rejected token
        return False
    return True


def user_token(oauth_token: gr.OAuthToken | None) -> str | None:
    """The token a handler acts with: on a Space the visitor's only, else the local login too."""
    given = oauth_token.token if oauth_token is not None else None
    if on_space():
        return given
    return hub.get_token(given)


def sign_in_status(oauth_token: gr.OAuthToken | None = None) -> tuple[str, str]:
    """Handler: (status markdown, user name or ""); never raises, never shows the token."""
    token = user_token(oauth_token)
    if not token:
        return NOT_SIGNED_IN, ""
    try:
        user = hub.whoami(token)
    except ValueError as error:
        return f"⚠️ Sign-in could not be checked: {error}", ""
    how = "with the Sign in button" if on_space() else "with the local login"
    return f"✅ Signed in as **{user}** ({how}).", user


# --------------------------------------------------------------------------- local adapters
def local_adapters() -> list[LocalAdapter]:
    """Registered adapters, then finished training runs' adapters not registered (no repeats)."""
    found: dict[Path, LocalAdapter] = {}
    for row in store.list_adapters():
        path = Path(row["path"]).resolve()
        found.setdefault(path, LocalAdapter(row["name"], path, row["source"]))
    for run in store.list_train_runs():
        path = (Path(run["run_dir"]) / "adapter").resolve()
        if run["status"] == "finished" and (path / "adapter_config.json").is_file():
            found.setdefault(path, LocalAdapter(run["id"], path, f"train:{run['id']}"))
    return list(found.values())


def adapter_choices() -> list[tuple[str, str]]:
    """(label, adapter directory) pairs for the push picker."""
    return [(f"{a.name} ({a.source})", str(a.path)) for a in local_adapters()]


def refresh_adapters(current: str | None) -> gr.Dropdown:
    """Handler: re-read the adapters; keep the picked one, else pick the newest."""
    choices = adapter_choices()
    paths = [path for _, path in choices]
    value = current if current in paths else (paths[0] if paths else None)
    return gr.Dropdown(choices=choices, value=value)


def _local(adapter_dir: str) -> LocalAdapter:
    """The listed adapter at this directory, or an unlisted one named after the directory."""
    if not adapter_dir or not str(adapter_dir).strip():
        raise ValueError("adapter: pick an adapter to push (train one, or pull one first)")
    path = Path(adapter_dir).expanduser().resolve()
    for adapter in local_adapters():
        if adapter.path == path:
            return adapter
    return LocalAdapter(path.name, path, "local")


def repo_name(name: str) -> str:
    """A Hub-valid repo name from an adapter name.

    >>> repo_name("alice/tiny lora--v2")
    'tiny-lora-v2'
    """
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name.split("/")[-1])
    name = re.sub(r"-{2,}", "-", re.sub(r"\.{2,}", ".", name)).strip("-.")
    return name[:96].strip("-.") or "mathtutor-adapter"


def default_repo(adapter_dir: str, username: str) -> str:
    """Handler: `<user>/<adapter name>` (just the name when nobody is signed in)."""
    if not adapter_dir:
        return ""
    name = repo_name(_local(adapter_dir).name)
    return f"{username}/{name}" if username else name


# --------------------------------------------------------------------------- the model card
def card_info(adapter_dir: str, repo_id: str) -> CardInfo:
    """What the card says: base model, training run and the newest evaluation of the adapter."""
    adapter = _local(adapter_dir)
    config = read_adapter_config(adapter.path)
    base = base_model_id(config.get("base_model_name_or_path") or "") or "unknown"
    info = CardInfo(base_model=base, adapter_repo=repo_id.strip() or repo_name(adapter.name))
    run_dir = _run_dir(adapter)
    if run_dir is not None:
        train_config = _read_yaml(run_dir / "config.yaml")
        keys = CARD_HYPERPARAMETERS
        if train_config.get("method") == "grpo":
            keys += GRPO_HYPERPARAMETERS
        info.hyperparameters = {k: train_config[k] for k in keys if k in train_config}
        info.recipe = train_config.get("recipe") or None
        info.training = training_summary(run_dir / "metrics.jsonl")
        if info.training is not None:
            from training.runs import best_accuracy_fields

            fields = best_accuracy_fields(run_dir, train_config.get("keep_best_by", "last"))
            info.training = dataclasses.replace(info.training, **fields)
        dataset = train_config.get("dataset")
        if dataset and dataset not in EVAL_DATASETS:
            info.datasets = []  # generated or uploaded problems: no Hub dataset to name
        info.description = f"Trained in the mathtutor run `{run_dir.name}`."
    evaluation = newest_evaluation(adapter)
    if evaluation is not None:
        info.evaluations = [evaluation]
    return info


def _run_dir(adapter: LocalAdapter) -> Path | None:
    """The training run directory an adapter came from, if any."""
    if adapter.source.startswith("train:"):
        run = store.get_train_run(adapter.source.removeprefix("train:"))
        if run is not None and Path(run["run_dir"]).is_dir():
            return Path(run["run_dir"])
    parent = adapter.path.parent
    if adapter.path.name == "adapter" and (parent / "config.yaml").is_file():
        return parent
    return None


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        return {}
    try:
        loaded = yaml.safe_load(path.read_text("utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is not valid YAML: {error}") from error
    return loaded if isinstance(loaded, dict) else {}


def training_summary(metrics_path: Path) -> TrainingSummary | None:
    """The end of a run's curve from metrics.jsonl (training/callbacks.py rows); None if empty."""
    rows = []
    if metrics_path.is_file():
        for line in metrics_path.read_text("utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a crash
                continue
            if isinstance(row, dict):
                rows.append(row)
    if not rows:
        return None

    def last(key: str) -> float | None:
        return next(
            (row[key] for row in reversed(rows) if isinstance(row.get(key), (int, float))), None
        )

    end = next((row for row in reversed(rows) if row.get("event") == "end"), {})
    return TrainingSummary(
        steps=int(last("step") or 0),
        final_train_loss=last("loss"),
        final_eval_loss=last("eval_loss"),
        epochs=last("epoch"),
        seconds=end.get("train_runtime") or last("elapsed"),
    )


def newest_evaluation(adapter: LocalAdapter) -> EvalResult | None:
    """Strict/flexible match of the adapter in the newest evaluation run that included it.

    A run names its systems as given (registered name, directory or Hub id) in
    `config["systems"]`; the summary is keyed by `config["labels"]` at the same position.
    """
    aliases = {adapter.name, str(adapter.path)}
    if adapter.source.startswith("hub:"):
        aliases.add(adapter.source.removeprefix("hub:"))
    for run in store.list_eval_runs():
        summary, config = run.get("summary"), run.get("config") or {}
        if not isinstance(summary, dict):
            continue
        systems = config.get("systems") or []
        labels = config.get("labels") or summary.get("order") or systems
        for position, system in enumerate(systems):
            if system not in aliases and _resolved(system) != adapter.path:
                continue
            label = labels[position] if position < len(labels) else system
            result = _eval_result(summary.get("systems", {}).get(label), summary, config)
            if result is not None:
                return result
    return None


def _resolved(system: str) -> Path | None:
    path = Path(system).expanduser()
    return path.resolve() if path.is_dir() else None


def _eval_result(stats: Any, summary: dict, config: dict) -> EvalResult | None:
    if not isinstance(stats, dict) or not stats.get("strict") or not stats.get("flexible"):
        return None
    name = config.get("dataset", "gsm8k")
    dataset, display, subset = EVAL_DATASETS.get(name, (f"mathtutor/{name}", name, "default"))
    return EvalResult(
        strict_match=stats["strict"]["value"],
        flexible_match=stats["flexible"]["value"],
        num_samples=int(stats["strict"]["n"]),
        prompt_format=summary.get("prompt_format") or config.get("prompt_format", "chat"),
        strict_match_stderr=stats["strict"].get("stderr"),
        flexible_match_stderr=stats["flexible"].get("stderr"),
        dataset=dataset,
        dataset_name=display,
        config=subset,
        split=config.get("split", "test"),
    )


def card_preview(adapter_dir: str, repo_id: str) -> str:
    """Handler: the card as it will be pushed, its YAML front matter shown as a code block."""
    if not adapter_dir:
        return "*Pick an adapter to see its model card.*"
    try:
        card = render_model_card(card_info(adapter_dir, repo_id))
    except Exception as error:
        raise user_error(error) from error
    _, meta, body = card.split("---\n", 2)
    return f"```yaml\n{meta}```\n\n{body}"


# --------------------------------------------------------------------------- push and pull
def _owned(repo_id: str, token: str) -> str:
    """`owner/name`: a bare name goes to the signed-in user's namespace."""
    repo_id = hub.validate_repo_id(repo_id.strip())
    return repo_id if "/" in repo_id else f"{hub.whoami(token)}/{repo_id}"


def push(
    adapter_dir: str,
    repo_id: str,
    private: bool,
    commit_message: str,
    oauth_token: gr.OAuthToken | None = None,
) -> tuple[str, str]:
    """Handler: upload the adapter with its model card; (a link to the repo, `owner/name`)."""
    try:
        token = user_token(oauth_token)
        if not token:
            raise hub.HubError(f"Pushing needs a Hugging Face token. {NOT_SIGNED_IN}")
        repo_id = _owned(repo_id, token)
        card = render_model_card(card_info(adapter_dir, repo_id))
        url = hub.push_adapter(
            _local(adapter_dir).path, repo_id, token, bool(private), commit_message, card=card
        )
    except Exception as error:
        raise user_error(error) from error
    visibility = "private" if private else "public"
    return f"✅ Pushed to [{repo_id}]({url}) ({visibility}): {url}", repo_id


def _base_id(spec: str) -> str:
    return BUNDLED_HUB_ID if spec in ("", None, BUNDLED) else base_model_id(spec)


def _deployable_base(spec: str | None) -> str:
    """The base model a Space would load: the app's current base when it is a Hub id.

    >>> _deployable_base("bundled"), _deployable_base("/tmp/my-model")
    ('HuggingFaceTB/SmolLM2-135M-Instruct', 'HuggingFaceTB/SmolLM2-135M-Instruct')
    """
    base = _base_id(spec or "")
    is_hub_id = base.count("/") == 1 and not base.startswith((".", "/", "~"))
    return base if is_hub_id and not Path(base).exists() else hub.DEFAULT_BASE_MODEL


def pull(
    repo_id: str,
    revision: str,
    spec: str,
    match_base: bool,
    oauth_token: gr.OAuthToken | None = None,
) -> str:
    """Handler: download an adapter and register it; says where it now shows up."""
    try:
        repo_id = hub.validate_repo_id((repo_id or "").strip())
        target = hub.pull_adapter(
            repo_id,
            revision=(revision or "").strip() or None,
            token=user_token(oauth_token),
            expected_base=_base_id(spec) if match_base else None,
        )
        base = base_model_id(read_adapter_config(target).get("base_model_name_or_path") or "")
    except Exception as error:
        raise user_error(error) from error
    where = "it now appears in Compare / Evaluate"
    if not match_base and base and base_model_id(base).lower() != _base_id(spec).lower():
        where = f"it appears in Compare / Evaluate once `{base}` is the base model"
    return f"✅ Pulled and registered as **{repo_id}** (base `{base or 'unknown'}`); {where}."


def search(query: str) -> tuple[dict[str, Any], str]:
    """Handler: public adapters matching the query (table) and a one-line count."""
    try:
        found = hub.search_adapters(query or "")
    except Exception as error:
        raise user_error(error) from error
    rows = [_row(adapter) for adapter in found]
    note = f"{len(rows)} adapter(s); click a row to pull it." if rows else "No adapters found."
    return dataframe_value(rows, SEARCH_COLUMNS), note


def _row(adapter: hub.AdapterInfo) -> dict[str, Any]:
    """One table row (SEARCH_COLUMNS and MY_COLUMNS pick from it)."""
    return {
        "repo id": adapter.repo_id,
        "base model": adapter.base_model or "?",
        "visibility": "private" if adapter.private else "public",
        "updated": adapter.last_modified[:10],
        "downloads": adapter.downloads,
        "likes": adapter.likes,
    }


def pick_repo(event: gr.SelectData) -> str:
    """Handler: the repo id of the clicked table row."""
    row = event.row_value or []
    return str(row[0]) if row else ""


def my_adapters(oauth_token: gr.OAuthToken | None = None) -> dict[str, Any]:
    """Handler: the signed-in user's adapters (tagged mathtutor), newest first."""
    try:
        found = hub.list_my_adapters(user_token(oauth_token))
    except Exception as error:
        raise user_error(error) from error
    rows = [_row(adapter) for adapter in found]
    return dataframe_value(rows, MY_COLUMNS)


# --------------------------------------------------------------------------- Space deploy
def hardware_note(hardware: str) -> str:
    """Handler: what the chosen Space hardware can do."""
    if hardware == "zero-a10g":
        return "ℹ️ " + TRAINING_NEEDS_GPU
    if hardware.startswith("cpu"):
        return "ℹ️ CPU: the bundled 135M model chats; evaluation is slow and training slower."
    return "ℹ️ Dedicated GPU: chat, evaluation and training all run on the Space."


def deploy(
    space_id: str,
    base_model: str,
    adapter_repo: str,
    hardware: str,
    private: bool,
    oauth_token: gr.OAuthToken | None = None,
) -> str:
    """Handler: create or update the user's Space running this app; a link to it."""
    try:
        url = hub.deploy_space(
            (space_id or "").strip(),
            user_token(oauth_token),
            base_model=(base_model or "").strip() or "bundled",
            adapter_repo=(adapter_repo or "").strip() or None,
            hardware=hardware,
            private=bool(private),
        )
    except Exception as error:
        raise user_error(error) from error
    return (
        f"✅ Deployed: [{url}]({url}). The Space builds in a few minutes; its card suggests "
        f"`{hardware}` hardware (set it in the Space's settings)."
    )


# --------------------------------------------------------------------------- the tab
def build(ctx: AppContext, tab: gr.Tab) -> None:
    from huggingface_hub import SpaceHardware

    username = gr.State("")
    with gr.Row():
        status = gr.Markdown("*Open this tab to check who is signed in.*", elem_id="hub-status")
        if login_button_allowed():
            gr.LoginButton(elem_id="hub-login", scale=0)
        refresh = gr.Button("↻", elem_id="hub-refresh", scale=0, size="sm")
    if on_zerogpu():
        gr.Markdown("ℹ️ This Space runs on ZeroGPU. " + TRAINING_NEEDS_GPU, elem_id="hub-zerogpu")
    with gr.Row(equal_height=False):
        with gr.Column():
            gr.Markdown("### Push an adapter")
            adapter = gr.Dropdown(
                adapter_choices(),
                value=None,
                label="Adapter",
                info="Registered adapters and finished training runs; or paste a directory.",
                allow_custom_value=True,
                elem_id="hub-push-adapter",
            )
            repo = gr.Textbox(
                label="Repo", placeholder="alice/smollm2-gsm8k-lora", elem_id="hub-push-repo"
            )
            with gr.Row():
                private = gr.Checkbox(True, label="Private", elem_id="hub-push-private")
                message = gr.Textbox(
                    "Upload LoRA adapter with mathtutor",
                    label="Commit message",
                    elem_id="hub-push-message",
                    scale=3,
                )
            push_button = gr.Button("Push to the Hub", variant="primary", elem_id="hub-push")
            push_result = gr.Markdown(elem_id="hub-push-result")
            with gr.Accordion("Model card preview", open=False):
                preview = gr.Markdown(card_preview("", ""), elem_id="hub-card-preview")
        with gr.Column():
            gr.Markdown("### Pull an adapter")
            with gr.Row():
                pull_repo = gr.Textbox(
                    label="Repo id", placeholder="alice/smollm2-gsm8k-lora", elem_id="hub-pull-repo"
                )
                revision = gr.Textbox(
                    label="Revision", placeholder="main", elem_id="hub-pull-revision", scale=0
                )
            match_base = gr.Checkbox(
                True,
                label="Only if it was trained on the selected base model",
                elem_id="hub-pull-match-base",
            )
            pull_button = gr.Button("Pull", variant="primary", elem_id="hub-pull")
            pull_result = gr.Markdown(elem_id="hub-pull-result")
            with gr.Row():
                query = gr.Textbox(
                    label="Search public adapters",
                    placeholder="gsm8k, smollm2, …",
                    elem_id="hub-search",
                    scale=3,
                )
                search_button = gr.Button("Search", elem_id="hub-search-run", scale=0)
            search_note = gr.Markdown(elem_id="hub-search-note")
            results = gr.Dataframe(
                headers=SEARCH_COLUMNS, interactive=False, elem_id="hub-search-results"
            )
    with gr.Accordion("My adapters on the Hub", open=False):
        list_button = gr.Button("List my adapters", size="sm", elem_id="hub-my-refresh")
        mine = gr.Dataframe(headers=MY_COLUMNS, interactive=False, elem_id="hub-my-adapters")
    with gr.Accordion("Deploy your own Space", open=False):
        with gr.Row():
            space = gr.Textbox(
                "mathtutor",
                label="Space",
                info="owner/name, or a name in your account",
                elem_id="hub-deploy-space",
            )
            base = gr.Textbox(
                _deployable_base(ctx.model_spec.value),
                label="Base model (Hub id)",
                elem_id="hub-deploy-base",
            )
            space_adapter = gr.Textbox(
                label="Adapter repo (optional)", elem_id="hub-deploy-adapter"
            )
            hardware = gr.Dropdown(
                [flavor.value for flavor in SpaceHardware],
                value="cpu-basic",
                label="Suggested hardware",
                elem_id="hub-deploy-hardware",
            )
            space_private = gr.Checkbox(False, label="Private", elem_id="hub-deploy-private")
        note = gr.Markdown(hardware_note("cpu-basic"), elem_id="hub-deploy-note")
        deploy_button = gr.Button("Deploy my own Space", variant="primary", elem_id="hub-deploy")
        deploy_result = gr.Markdown(elem_id="hub-deploy-result")

    for trigger in (tab.select, refresh.click):
        trigger(sign_in_status, None, [status, username]).then(refresh_adapters, adapter, adapter)
    adapter.change(default_repo, [adapter, username], repo).then(
        card_preview, [adapter, repo], preview
    )
    gr.on([repo.blur, repo.submit], card_preview, [adapter, repo], preview)
    push_button.click(push, [adapter, repo, private, message], [push_result, repo]).success(
        lambda repo_id: repo_id, repo, space_adapter
    )
    pull_button.click(pull, [pull_repo, revision, ctx.model_spec, match_base], pull_result).success(
        refresh_adapters, adapter, adapter
    )
    gr.on([query.submit, search_button.click], search, query, [results, search_note])
    results.select(pick_repo, None, pull_repo)
    mine.select(pick_repo, None, pull_repo)
    list_button.click(my_adapters, None, mine)
    hardware.change(hardware_note, hardware, note)
    deploy_button.click(
        deploy, [space, base, space_adapter, hardware, space_private], deploy_result
    )
