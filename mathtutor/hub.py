"""Hub: push LoRA adapters with a model card, pull them back, list and search, deploy a Space.

Only the real `huggingface_hub` client talks to the Hub, imported inside the functions so that
importing this module stays cheap. The endpoint is `HF_ENDPOINT` (default huggingface.co), as
for the client itself. Every failure the Hub or the network can produce (401, 403, 404, no
connection, a timeout) becomes a `HubError` whose message says what to do; no message or log
line ever contains the token.

    python -m mathtutor.hub push --adapter_dir runs/r1/adapter --repo_id alice/gsm8k-lora
    python -m mathtutor.hub pull --repo_id alice/gsm8k-lora --expected_base HuggingFaceTB/SmolLM2-135M-Instruct
    python -m mathtutor.hub list
    python -m mathtutor.hub search --query gsm8k
    python -m mathtutor.hub deploy-space --space_id alice/mathtutor --hardware zero-a10g

The CLI takes the token from `HF_TOKEN` or `hf auth login`, never from a flag (a token on a
command line ends up in shell history and `ps`). Calls wait at most `HF_HUB_ETAG_TIMEOUT`
seconds (the client's own setting, default 10) for the Hub to answer.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from mathtutor import cli
from mathtutor.model_card import TAG, card_for_adapter
from mathtutor.models import base_model_id, read_adapter_config, same_base
from mathtutor.paths import check_id, check_repo_id, home_dir

logger = logging.getLogger(__name__)

DEFAULT_BASE_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"  # what "bundled" is on a Space
SPACE_SETTINGS_FILE = "mathtutor_space.json"  # default model/adapter of a deployed Space
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# gradio/oauth.py `_get_mocked_oauth_info`: outside a Space, gr.LoginButton signs in with this
# placeholder; the real credential is then the local login.
_GRADIO_MOCK_TOKEN = "mock-oauth-token-for-local-dev"
# Files of an adapter directory that are not uploaded (README.md is replaced by the card).
_ADAPTER_IGNORE = ["README.md", ".*", "*/.*", "*__pycache__*", "checkpoint-*", "*.pt", "*.pth",
                   "training_args.bin"]  # fmt: skip
# What a Space needs from this checkout; requirements.txt and README.md are generated.
_SPACE_ALLOW = ["app.py", "mathtutor/*", "training/*"]
_SPACE_IGNORE = ["*__pycache__*", "*.pyc", ".*", "*/.*", "tests/*"]


class HubError(ValueError):
    """The Hub refused or could not be reached; the message says what to do."""


@dataclass
class AdapterInfo:
    """An adapter repo on the Hub, as the Hub tab lists it."""

    repo_id: str
    base_model: str | None  # from the card's `base_model`, None when the card has none
    private: bool
    last_modified: str  # ISO 8601, "" when unknown
    downloads: int = 0
    likes: int = 0
    tags: list[str] = field(default_factory=list)
    url: str = ""


# --------------------------------------------------------------------------- auth and errors
def get_token(oauth_token: str | None = None) -> str | None:
    """The token to act with: the signed-in Space user's, else `HF_TOKEN`, else `hf auth login`.

    `oauth_token` is `gr.OAuthToken.token`, passed in by the UI.

    >>> get_token("hf_from_oauth")
    'hf_from_oauth'
    """
    if oauth_token and oauth_token != _GRADIO_MOCK_TOKEN:
        return oauth_token
    import huggingface_hub

    return huggingface_hub.get_token()


def whoami(token: str | None) -> str:
    """The user name the token belongs to."""
    token = _require_token(token, "Checking who is signed in")
    with _hub_errors("checking the token", token):
        return _api(token).whoami()["name"]


def validate_repo_id(repo_id: str) -> str:
    """Check `owner/name` (or a bare `name`) against the Hub's naming rules and return it.

    Each part is a safe id (`mathtutor.paths.check_repo_id`, the one id rule); the Hub also
    refuses '--', '..' and a '.git' ending.

    >>> validate_repo_id("alice/gsm8k-lora")
    'alice/gsm8k-lora'
    >>> validate_repo_id("alice/my adapter")
    Traceback (most recent call last):
    ValueError: repo_id 'alice/my adapter': the name 'my adapter': may only contain letters, digits, '-', '_' and '.'
    """
    parts = check_repo_id(repo_id, "repo_id").split("/")
    for label, part in zip(["owner", "name"][-len(parts) :], parts, strict=True):
        where = f"repo_id {repo_id!r}: the {label}"
        if "--" in part or ".." in part:
            raise ValueError(f"{where} may not contain '--' or '..'")
        if part.endswith(".git"):
            raise ValueError(f"{where} must start and end with a letter or digit (and not '.git')")
    return repo_id


def hub_endpoint() -> str:
    """`HF_ENDPOINT`, read at call time, else the client's default (https://huggingface.co)."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def _timeout_s() -> float:
    return float(os.environ.get("HF_HUB_ETAG_TIMEOUT") or 10)


_SESSION_TIMEOUT: float | None = None


def _api(token: str | None):
    """An HfApi on `hub_endpoint()`, with a timeout on the client's shared HTTP session.

    huggingface_hub sends API calls (whoami, create_repo, commit, list) without a timeout, so
    a Hub that accepts the connection and never answers would freeze the app. We install a
    client factory (the documented hook) that builds the library's default client plus one.
    """
    global _SESSION_TIMEOUT
    import huggingface_hub

    timeout = _timeout_s()
    if timeout != _SESSION_TIMEOUT:
        import httpx2
        from huggingface_hub.utils import _http  # the library's default factory (event hooks)

        def client_factory():
            client = _http.default_client_factory()
            client.timeout = httpx2.Timeout(timeout)
            return client

        huggingface_hub.set_client_factory(client_factory)
        _SESSION_TIMEOUT = timeout
    return huggingface_hub.HfApi(endpoint=hub_endpoint(), token=token or None)


def _require_token(token: str | None, action: str) -> str:
    if not token:
        raise HubError(
            f"{action} needs a Hugging Face token: sign in with the button (on a Space), "
            "or set HF_TOKEN / run `hf auth login` (locally). Nothing was sent."
        )
    return token


@contextmanager
def _hub_errors(
    action: str, token: str | None, repo_id: str = "", revision: str | None = None
) -> Iterator[None]:
    """Turn huggingface_hub / network exceptions raised inside into a `HubError`."""
    try:
        yield
    except HubError:
        raise
    except Exception as error:
        message = _error_message(error, action, repo_id, revision)
        if message is None:
            raise
        raise HubError(_scrub(message, token)) from error


def _error_message(error: Exception, action: str, repo_id: str, revision: str | None) -> str | None:
    """What to tell the user about an exception of the client, or None if it is not one."""
    import httpx2
    from huggingface_hub import errors

    if isinstance(error, errors.OfflineModeIsEnabled):
        return f"HF_HUB_OFFLINE is set, so {action} is not possible; unset it to use the Hub"
    if isinstance(error, errors.RevisionNotFoundError):
        return f"{repo_id} has no revision {revision!r} on the Hub ({action})"
    if isinstance(error, errors.RepositoryNotFoundError):
        return f"no such repo on the Hub: {repo_id!r} ({action}); check the name, and sign in if it is private"
    if isinstance(error, errors.RemoteEntryNotFoundError):
        return f"a file is missing in {repo_id} on the Hub ({action})"
    if isinstance(error, errors.HfHubHTTPError):
        return _http_message(error, action)
    if isinstance(error, httpx2.TimeoutException):
        return _unreachable(f"timeout after {_timeout_s():g} s")
    if isinstance(error, httpx2.ConnectError):
        return _unreachable("connection refused")
    if isinstance(error, (httpx2.TransportError, errors.LocalEntryNotFoundError)):
        return _unreachable(type(error).__name__)
    if isinstance(error, ValueError):  # e.g. the client's README metadata validation
        return f"The Hub refused {action}: {error}"
    return None


def _http_message(error, action: str) -> str:
    status = error.response.status_code if error.response is not None else None
    server = (error.server_message or "").strip().splitlines()
    detail = f": {server[0]}" if server else ""
    if status == 401:
        return (
            f"The Hub rejected the token (401 Unauthorized) while {action}{detail}. Sign in again "
            "(the button on a Space), or set HF_TOKEN / run `hf auth login` with a valid token."
        )
    if status == 403:
        return (
            f"The token is not allowed to do this (403 Forbidden) while {action}{detail}. Use a "
            "token with the 'write' role for your own namespace."
        )
    return f"The Hub answered {status} while {action}{detail}. Nothing was lost locally; try again."


def _unreachable(reason: str) -> str:
    return (
        f"The Hub could not be reached at {hub_endpoint()} ({reason}); mathtutor keeps working offline "
        "with local models and adapters."
    )


def _scrub(text: str, token: str | None) -> str:
    """Defence in depth: a server message echoing the token never reaches the user."""
    return text.replace(token, "hf_***") if token else text


# --------------------------------------------------------------------------- adapters
def push_adapter(
    adapter_dir: str | Path,
    repo_id: str,
    token: str | None,
    private: bool = True,
    commit_message: str = "Upload LoRA adapter with mathtutor",
    revision: str | None = None,
    card: str | None = None,
) -> str:
    """Upload an adapter directory plus a README.md model card as one commit; return the repo URL.

    Creates the repo when needed (an existing repo keeps its visibility) and the `revision`
    branch when given. Local files are only read, so an interrupted push loses nothing and
    running it again completes it. `card` defaults to `model_card.card_for_adapter`: the base
    model, the training run's settings and curve, and the newest evaluation of the adapter.
    """
    adapter_dir = Path(adapter_dir)
    config = read_adapter_config(adapter_dir)
    repo_id = validate_repo_id(repo_id)
    if not commit_message.strip():
        raise ValueError("commit_message is empty")
    token = _require_token(token, "Pushing an adapter")
    from huggingface_hub import CommitOperationAdd

    # A base loaded from mathtutor's bundled cache is a local path here but a Hub id for
    # everyone else: the uploaded adapter_config.json names the Hub id (the local file is kept).
    local_base = config.get("base_model_name_or_path") or ""
    base = base_model_id(local_base) if local_base else ""
    operations = [
        CommitOperationAdd(path, str(adapter_dir / path))
        for path in _matching_files(adapter_dir, allow=None, ignore=_ADAPTER_IGNORE)
    ]
    if base != local_base:
        config_bytes = json.dumps({**config, "base_model_name_or_path": base}, indent=2).encode()
        operations = [op for op in operations if op.path_in_repo != "adapter_config.json"]
        operations.append(CommitOperationAdd("adapter_config.json", config_bytes))
    api = _api(token)
    with _hub_errors(f"pushing to {repo_id}", token, repo_id, revision):
        if "/" not in repo_id:
            repo_id = f"{api.whoami()['name']}/{repo_id}"
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision and revision != "main":
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        if card is None:
            card = card_for_adapter(adapter_dir, repo_id)
        operations.append(CommitOperationAdd("README.md", card.encode("utf-8")))
        commit = api.create_commit(
            repo_id, operations, commit_message=commit_message, revision=revision
        )
    logger.info(
        "pushed %d files of %s to %s (commit %s)",
        len(operations),
        adapter_dir,
        repo_id,
        commit.oid[:8],
    )
    return f"{hub_endpoint()}/{repo_id}"


def push_model(
    model_dir: str | Path,
    repo_id: str,
    token: str | None,
    private: bool = True,
    commit_message: str = "Upload merged model with mathtutor",
) -> str:
    """Upload a merged model folder (`mathtutor.export.merge_adapter`: safetensors, config,
    tokenizer, its README.md card) as one commit; return the repo URL."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file() or not any(model_dir.glob("*.safetensors")):
        raise ValueError(f"{model_dir} is not a saved model (config.json and *.safetensors)")
    repo_id = validate_repo_id(repo_id)
    token = _require_token(token, "Pushing a model")
    from huggingface_hub import CommitOperationAdd

    operations = [
        CommitOperationAdd(path, str(model_dir / path))
        for path in _matching_files(model_dir, allow=None, ignore=["*.gguf", ".*"])
    ]
    api = _api(token)
    with _hub_errors(f"pushing to {repo_id}", token, repo_id, None):
        if "/" not in repo_id:
            repo_id = f"{api.whoami()['name']}/{repo_id}"
        api.create_repo(repo_id, private=private, exist_ok=True)
        api.create_commit(repo_id, operations, commit_message=commit_message)
    return f"{hub_endpoint()}/{repo_id}"


def pull_adapter(
    repo_id: str,
    revision: str | None = None,
    token: str | None = None,
    expected_base: str | None = None,
    cache_dir: str | Path | None = None,
) -> Path:
    """Download an adapter into `<home>/adapters/<owner>--<name>` and return that directory.

    Checks first that the repo holds `adapter_config.json` and, when `expected_base` is given,
    that the adapter was trained on that base model. The new files replace an older pull only
    once they are all downloaded, and the adapter is registered in the store (named by its repo
    id) so Compare and Evaluate list it. `cache_dir` is huggingface_hub's download cache.
    """
    repo_id = validate_repo_id(repo_id)
    from huggingface_hub import hf_hub_download, snapshot_download

    api = _api(token)
    common = {"endpoint": hub_endpoint(), "token": token or None, "cache_dir": cache_dir}
    common["etag_timeout"] = _timeout_s()
    action = f"pulling {repo_id}"
    with _hub_errors(action, token, repo_id, revision):
        info = api.model_info(repo_id, revision=revision, timeout=_timeout_s())
        if "adapter_config.json" not in {sibling.rfilename for sibling in info.siblings or []}:
            raise HubError(f"{repo_id} is not a LoRA adapter: no adapter_config.json")
        config_path = hf_hub_download(repo_id, "adapter_config.json", revision=info.sha, **common)
    config = read_adapter_config(Path(config_path).parent, label=repo_id, need_weights=False)
    base = config.get("base_model_name_or_path")
    if expected_base and not same_base(base or "", expected_base):
        raise HubError(
            f"{repo_id} is an adapter for base model {base!r}, not for {expected_base!r}: "
            f"load {base} as the base model, or pick an adapter trained on {expected_base}"
        )
    with _hub_errors(action, token, repo_id, revision):
        snapshot = snapshot_download(
            repo_id, revision=info.sha, ignore_patterns=[".gitattributes"], **common
        )
    # adapters/<owner>--<name>: each part passed check_id, and '--' cannot occur in a part,
    # so the folder is one safe name and two repos never share it
    target = home_dir() / "adapters" / check_id(repo_id.replace("/", "--"), "repo_id")
    _install(Path(snapshot), target)
    from mathtutor import store

    details = {
        "revision": revision or "main",
        "commit": info.sha,
        "url": f"{hub_endpoint()}/{repo_id}",
    }
    store.register_adapter(repo_id, target, base or "unknown", f"hub:{repo_id}", details)
    logger.info("pulled %s@%s into %s", repo_id, info.sha[:8], target)
    return target


def adapter_dir(source: str | Path, token: str | None = None) -> Path:
    """An adapter directory as given, or a Hub id (`owner/name`) pulled into the home first.

    >>> adapter_dir("no such thing here")
    Traceback (most recent call last):
    ValueError: adapter 'no such thing here' is neither a directory nor a Hub id like 'user/name'
    """
    path = Path(source).expanduser()
    if path.is_dir():
        return path.resolve()
    text = str(source).strip()
    if text.count("/") == 1 and not text.startswith((".", "/", "~")):
        return pull_adapter(validate_repo_id(text), token=token).resolve()
    raise ValueError(f"adapter {text!r} is neither a directory nor a Hub id like 'user/name'")


def list_my_adapters(token: str | None) -> list[AdapterInfo]:
    """The signed-in user's adapter repos (the ones tagged `mathtutor`), newest first."""
    token = _require_token(token, "Listing your adapters")
    api = _api(token)
    with _hub_errors("listing your adapters", token):
        user = api.whoami()["name"]
        models = list(api.list_models(author=user, filter=TAG, cardData=True, limit=1000))
    return sorted((_adapter_info(m) for m in models), key=lambda a: a.last_modified, reverse=True)


def search_adapters(query: str, limit: int = 20) -> list[AdapterInfo]:
    """Public adapters whose id contains `query`: mathtutor's first, then other peft adapters."""
    if not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    from huggingface_hub.errors import HfHubHTTPError

    api = _api(None)
    found: dict[str, AdapterInfo] = {}
    with _hub_errors("searching the Hub", None):
        # Listing retries for ~20 s when the Hub is down; this probe fails fast instead
        # (any HTTP answer, even a 404, means the Hub is reachable).
        with suppress(HfHubHTTPError):
            api.model_info(DEFAULT_BASE_MODEL, timeout=_timeout_s(), token=False)
        for tag in (TAG, "peft"):
            for model in api.list_models(
                search=query.strip() or None, filter=tag, cardData=True, limit=limit
            ):
                found.setdefault(model.id, _adapter_info(model))
            if len(found) >= limit:
                break
    return list(found.values())[:limit]


def _adapter_info(model) -> AdapterInfo:
    base = getattr(model.card_data, "base_model", None) if model.card_data else None
    if base is None:
        base = next(
            (t.split(":")[-1] for t in model.tags or [] if t.startswith("base_model:")), None
        )
    return AdapterInfo(
        repo_id=model.id,
        base_model=base[0] if isinstance(base, list) and base else base,
        private=bool(model.private),
        last_modified=model.last_modified.isoformat() if model.last_modified else "",
        downloads=model.downloads or 0,
        likes=model.likes or 0,
        tags=list(model.tags or []),
        url=f"{hub_endpoint()}/{model.id}",
    )


def _install(snapshot: Path, target: Path) -> None:
    """Copy a downloaded snapshot to `target`, replacing an older copy only when complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    # copytree copies what the cache's symlinks point to; `.cache` is the client's bookkeeping.
    shutil.copytree(snapshot, partial, ignore=shutil.ignore_patterns(".cache"))
    if target.exists():
        target.rename(old)
    partial.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _matching_files(root: Path, allow: list[str] | None, ignore: list[str]) -> list[str]:
    """Relative posix paths of files under `root` that pass huggingface_hub's pattern filter."""
    from huggingface_hub.utils import filter_repo_objects

    paths = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    return list(filter_repo_objects(paths, allow_patterns=allow, ignore_patterns=ignore))


# --------------------------------------------------------------------------- Spaces
def deploy_space(
    space_id: str,
    token: str | None,
    base_model: str = "bundled",
    adapter_repo: str | None = None,
    hardware: str = "cpu-basic",
    private: bool = False,
) -> str:
    """Create (or update) a Gradio Space running this app; return its URL.

    One commit uploads app.py, mathtutor/ and training/ from this checkout, the Space
    requirements (`spaces_config/requirements.txt`), a README.md whose front matter is
    `spaces_config/README.md` filled in with the model, adapter and `suggested_hardware`, and
    `mathtutor_space.json` with the defaults the app starts with (see `read_space_settings`).
    The hardware is a suggestion shown on the Space; paid hardware is never requested.
    """
    space_id = validate_repo_id(space_id)
    if adapter_repo:
        adapter_repo = validate_repo_id(adapter_repo)
    base_model = DEFAULT_BASE_MODEL if base_model in ("bundled", "", None) else base_model.strip()
    if Path(base_model).expanduser().exists() or "/" not in base_model:
        raise ValueError(
            f"base_model {base_model!r} is not a Hub id: a Space loads models from the Hub "
            f"(e.g. {DEFAULT_BASE_MODEL}); push a local model first"
        )
    from huggingface_hub import CommitOperationAdd, SpaceHardware

    flavors = [flavor.value for flavor in SpaceHardware]
    if hardware not in flavors:
        raise ValueError(
            f"hardware {hardware!r} is not a Space hardware flavor: expected one of {flavors}"
        )
    token = _require_token(token, "Deploying a Space")
    if not (PROJECT_ROOT / "app.py").is_file():
        raise ValueError(f"{PROJECT_ROOT / 'app.py'} is missing: there is no app to deploy")
    settings = {"base_model": base_model, "adapter": adapter_repo, "hardware": hardware}
    generated = {
        "README.md": render_space_readme(base_model, adapter_repo, hardware),
        "requirements.txt": (PROJECT_ROOT / "spaces_config" / "requirements.txt").read_text(
            "utf-8"
        ),
        SPACE_SETTINGS_FILE: json.dumps(settings, indent=2) + "\n",
    }
    files = _matching_files(PROJECT_ROOT, allow=_SPACE_ALLOW, ignore=_SPACE_IGNORE)
    operations = [CommitOperationAdd(path, str(PROJECT_ROOT / path)) for path in files]
    operations += [
        CommitOperationAdd(path, text.encode("utf-8")) for path, text in generated.items()
    ]
    api = _api(token)
    with _hub_errors(f"deploying the Space {space_id}", token, space_id):
        if "/" not in space_id:
            space_id = f"{api.whoami()['name']}/{space_id}"
        api.create_repo(
            space_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True
        )
        message = f"Deploy mathtutor: {base_model}" + (f" + {adapter_repo}" if adapter_repo else "")
        api.create_commit(space_id, operations, commit_message=message, repo_type="space")
    logger.info("deployed %d files to the Space %s", len(operations), space_id)
    return f"{hub_endpoint()}/spaces/{space_id}"


def render_space_readme(base_model: str, adapter_repo: str | None, hardware: str) -> str:
    """`spaces_config/README.md` with this deployment's models, preload and hardware filled in."""
    import yaml

    template = (PROJECT_ROOT / "spaces_config" / "README.md").read_text("utf-8")
    _, header, body = template.split("---\n", 2)
    meta = yaml.safe_load(header)
    meta["suggested_hardware"] = hardware
    meta["models"] = [base_model] + ([adapter_repo] if adapter_repo else [])
    meta["preload_from_hub"] = [base_model] + ([adapter_repo] if adapter_repo else [])
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    deployment = (
        f"\n## This deployment\n\n- Base model: `{base_model}`\n"
        f"- Adapter: `{adapter_repo or 'none'}`\n- Suggested hardware: `{hardware}`\n"
    )
    return f"---\n{front}---\n{body.rstrip()}\n{deployment}"


def read_space_settings(directory: str | Path | None = None) -> dict:
    """The defaults a deployed Space starts with (`mathtutor_space.json`), {} when absent.

    Keys: `base_model` (Hub id), `adapter` (repo id or None), `hardware`.
    """
    path = Path(directory or PROJECT_ROOT) / SPACE_SETTINGS_FILE
    if not path.is_file():
        return {}
    try:
        settings = json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    return settings if isinstance(settings, dict) else {}


# --------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    """`python -m mathtutor.hub {push,pull,list,search,deploy-space}` (errors: see `cli.run`)."""
    parser = cli.ArgumentParser(
        prog="python -m mathtutor.hub", description=__doc__.split("\n")[0], epilog=cli.DEBUG_HELP
    )
    commands = parser.add_subparsers(dest="command", required=True)
    push = commands.add_parser("push", help="upload an adapter directory with a model card")
    push.add_argument("--adapter_dir", required=True)
    push.add_argument("--repo_id", required=True)
    push.add_argument("--private", action=argparse.BooleanOptionalAction, default=True)
    push.add_argument("--commit_message", default="Upload LoRA adapter with mathtutor")
    push.add_argument("--revision", default=None)
    push.add_argument(
        "--card", default=None, help="a README.md to push instead of the card mathtutor writes"
    )
    pull = commands.add_parser("pull", help="download an adapter into the mathtutor home")
    pull.add_argument("--repo_id", required=True)
    pull.add_argument("--revision", default=None)
    pull.add_argument("--expected_base", default=None)
    pull.add_argument("--cache_dir", default=None)
    commands.add_parser("list", help="your adapters (tagged mathtutor)")
    search = commands.add_parser("search", help="public adapters")
    search.add_argument("--query", default="")
    search.add_argument("--limit", type=int, default=20)
    deploy = commands.add_parser("deploy-space", help="deploy this app as your own Space")
    deploy.add_argument("--space_id", required=True)
    deploy.add_argument("--base_model", default="bundled")
    deploy.add_argument("--adapter_repo", default=None)
    deploy.add_argument("--hardware", default="cpu-basic")
    deploy.add_argument("--private", action=argparse.BooleanOptionalAction, default=False)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "push":
        card = Path(args.card).read_text("utf-8") if args.card else None
        print(
            push_adapter(
                args.adapter_dir,
                args.repo_id,
                get_token(),
                private=args.private,
                commit_message=args.commit_message,
                revision=args.revision,
                card=card,
            )
        )
    elif args.command == "pull":
        print(
            pull_adapter(
                args.repo_id,
                revision=args.revision,
                token=get_token(),
                expected_base=args.expected_base,
                cache_dir=args.cache_dir,
            )
        )
    elif args.command == "deploy-space":
        print(
            deploy_space(
                args.space_id,
                get_token(),
                base_model=args.base_model,
                adapter_repo=args.adapter_repo,
                hardware=args.hardware,
                private=args.private,
            )
        )
    else:
        if args.command == "list":
            found = list_my_adapters(get_token())
        else:
            found = search_adapters(args.query, args.limit)
        for adapter in found:
            visibility = "private" if adapter.private else "public"
            print(f"{adapter.repo_id}\tbase={adapter.base_model or '?'}\t{visibility}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
