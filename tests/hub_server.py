"""A small Hugging Face Hub-compatible HTTP server for the tests of `mathtutor/hub.py`.

The real `huggingface_hub` 2.4 client talks to it over real HTTP on 127.0.0.1, so the tests
exercise the same requests a user's machine sends to huggingface.co. Request and response
shapes follow the client's source (`hf_api.py`, `_commit_api.py`, `file_download.py`,
`utils/_http.py`); see the route table at the bottom of `HubServer.__init__`.

Storage is a simple versioned store: file contents are blobs in a temp directory named by
their git sha1, and every commit is a new sha holding the full `path -> blob` map of the repo.
Tokens are configured per test (`HubServer.tokens`): a write token can write to its user's
namespace, a read token gets 403 on writes, an unknown token gets 401 everywhere, and no token
gets 401 on writes and 404 on private repos (the Hub's answers).

Use it from a test module:

    from tests.hub_server import hub, hub_server  # noqa: F401  (pytest fixtures)
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

WRITE_TOKEN = "hf_testWriteAliceTokenA1b2C3d4E5f6G7h8"
READ_TOKEN = "hf_testReadAliceTokenZ9y8X7w6V5u4T3s2"
BOB_TOKEN = "hf_testWriteBobTokenQ1w2E3r4T5y6U7i8O9"
DEFAULT_TOKENS = {
    WRITE_TOKEN: ("alice", "write"),
    READ_TOKEN: ("alice", "read"),
    BOB_TOKEN: ("bob", "write"),
}

KINDS = {"models": "model", "spaces": "space", "datasets": "dataset"}
URL_PREFIX = {"model": "", "space": "spaces/", "dataset": "datasets/"}
SPACE_SDKS = ("gradio", "streamlit", "docker", "static")
SPACE_COLORS = ("red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray")
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"


def git_sha1(data: bytes) -> str:
    """The git blob id of `data` (what the Hub reports as a regular file's oid and ETag)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def front_matter(text: str) -> dict:
    """The YAML block between the leading `---` lines of a README, or {} when there is none."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return {}
    for index, line in enumerate(lines[1:], start=1):
        if line.strip() == "---":
            loaded = yaml.safe_load("\n".join(lines[1:index]))
            return loaded if isinstance(loaded, dict) else {}
    return {}


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class Commit:
    oid: str
    message: str
    files: dict[str, str]  # path in repo -> blob sha1
    date: str


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    sdk: str | None
    created_at: str
    branches: dict[str, str] = field(default_factory=dict)  # branch -> commit oid
    commits: dict[str, Commit] = field(default_factory=dict)


def _error(status: int, message: str, code: str | None = None, **extra) -> JSONResponse:
    """The Hub's error shape: JSON `{"error": ...}` plus X-Error-Message / X-Error-Code headers."""
    headers = {"X-Error-Message": message}
    if code:
        headers["X-Error-Code"] = code
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


class HubServer:
    """Starlette app + uvicorn on a background thread, bound to a free port of 127.0.0.1."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.tokens: dict[str, tuple[str, str]] = {}
        self.repos: dict[tuple[str, str], Repo] = {}
        self.failures: dict[str, list[int]] = {}
        self.requests: list[tuple[str, str, bool]] = []  # (method, path, had a token)
        self.url = ""
        self._server = None
        self._thread: threading.Thread | None = None
        self.reset()
        repo = "/{kind}/{namespace}/{name}"
        self.app = Starlette(
            routes=[
                Route("/api/whoami-v2", self.whoami),
                Route("/api/repos/create", self.create_repo, methods=["POST"]),
                Route("/api/repos/delete", self.delete_repo, methods=["DELETE"]),
                Route("/api/validate-yaml", self.validate_yaml, methods=["POST"]),
                Route("/api/models", self.list_models),
                Route("/api" + repo, self.repo_info),
                Route("/api" + repo + "/revision/{revision:path}", self.repo_info),
                Route("/api" + repo + "/tree/{revision}", self.tree),
                Route("/api" + repo + "/tree/{revision}/{path:path}", self.tree),
                Route("/api" + repo + "/preupload/{revision}", self.preupload, methods=["POST"]),
                Route("/api" + repo + "/commit/{revision}", self.commit, methods=["POST"]),
                Route("/api" + repo + "/branch/{branch}", self.create_branch, methods=["POST"]),
                Route("/{kind}/{namespace}/{name}/resolve/{revision}/{path:path}", self.resolve),
                Route("/{namespace}/{name}/resolve/{revision}/{path:path}", self.resolve),
            ]
        )

    # ------------------------------------------------------------------ lifecycle and test hooks
    def reset(self) -> None:
        """Forget all repos, failures and logged requests; restore the default tokens."""
        with self.lock:
            self.tokens = dict(DEFAULT_TOKENS)
            self.repos = {}
            self.failures = {}
            self.requests = []

    def fail_next(self, route: str, status: int = 500, times: int = 1) -> None:
        """Answer the next `times` calls of `route` (a handler name, e.g. "commit") with `status`."""
        self.failures.setdefault(route, []).extend([status] * times)

    def start(self) -> None:
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the test Hub server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def add_repo(
        self,
        repo_id: str,
        files: dict[str, bytes],
        repo_type: str = "dataset",
        private: bool = False,
        branch: str = "main",
    ) -> str:
        """Store `files` as one commit of `repo_id` (created when new) on `branch` (a new branch
        starts from main); returns the commit's oid.

        For tests that need a repo to read (a dataset with Parquet / JSONL files) without
        pushing it through the write API first.
        """
        with self.lock:
            repo = self.repos.get((repo_type, repo_id))
            if repo is None:
                repo = Repo(repo_type, repo_id, private, None, _now())
                self.repos[(repo_type, repo_id)] = repo
            start = repo.branches.get(branch) or repo.branches.get(
                "main"
            )  # a new branch: from main
            head = repo.commits[start].files if start else {}
            stored = {path: self._store_blob(data) for path, data in files.items()}
            return self._new_commit(repo, branch, "add files", {**head, **stored}).oid

    def files(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> dict:
        """Path -> bytes of a stored revision (for assertions)."""
        repo = self.repos[(repo_type, repo_id)]
        commit = repo.commits[repo.branches.get(revision, revision)]
        return {path: (self.blobs / sha).read_bytes() for path, sha in commit.files.items()}

    # ------------------------------------------------------------------ helpers
    def _begin(self, request: Request, route: str):
        """Log the request, apply an injected failure, and authenticate.

        Returns (user, role), None for an anonymous caller, or an error Response.
        """
        header = request.headers.get("authorization")
        self.requests.append((request.method, request.url.path, header is not None))
        queued = self.failures.get(route)
        if queued:
            return _error(queued.pop(0), f"Internal error in {route} (injected by the test)")
        if header is None:
            return None
        token = header.removeprefix("Bearer ").strip()
        if token not in self.tokens:
            return _error(401, "Invalid credentials in Authorization header")
        return self.tokens[token]

    @staticmethod
    def _can_write(caller, namespace: str) -> Response | None:
        if caller is None:
            return _error(401, "Invalid username or password.")
        user, role = caller
        if role != "write":
            return _error(403, f"Your token has the '{role}' role: it cannot write to {namespace}")
        if user != namespace:
            return _error(403, f"You don't have the rights to write to the namespace {namespace}")
        return None

    def _repo(self, request: Request, caller) -> Repo | Response:
        params = request.path_params
        kind = params.get("kind", "models")
        if kind not in KINDS:
            return _error(404, "Not found")
        repo_id = f"{params['namespace']}/{params['name']}"
        repo = self.repos.get((KINDS[kind], repo_id))
        user = caller[0] if caller else None
        if repo is None or (repo.private and user != params["namespace"]):
            return _error(404, "Repository not found", "RepoNotFound")
        return repo

    @staticmethod
    def _commit_of(repo: Repo, revision: str) -> Commit | Response:
        oid = repo.branches.get(revision)
        if oid is None:
            matches = [
                sha for sha in repo.commits if len(revision) >= 7 and sha.startswith(revision)
            ]
            oid = matches[0] if len(matches) == 1 else None
        if oid is None:
            return _error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return repo.commits[oid]

    def _url(self, request: Request, repo: Repo) -> str:
        return f"{str(request.base_url).rstrip('/')}/{URL_PREFIX[repo.repo_type]}{repo.repo_id}"

    def _new_commit(self, repo: Repo, branch: str, message: str, files: dict[str, str]) -> Commit:
        seed = json.dumps([repo.repo_id, branch, message, files, len(repo.commits), time.time_ns()])
        commit = Commit(hashlib.sha1(seed.encode()).hexdigest(), message, files, _now())
        repo.commits[commit.oid] = commit
        repo.branches[branch] = commit.oid
        return commit

    def _store_blob(self, data: bytes) -> str:
        sha = git_sha1(data)
        path = self.blobs / sha
        if not path.exists():
            partial = path.with_suffix(".partial")
            partial.write_bytes(data)
            partial.replace(path)
        return sha

    def _card(self, commit: Commit) -> dict:
        sha = commit.files.get("README.md")
        return front_matter((self.blobs / sha).read_text("utf-8")) if sha else {}

    def _info(self, request: Request, repo: Repo, commit: Commit, with_card: bool = True) -> dict:
        """The JSON of `GET /api/models/{id}` (and of one item of `GET /api/models`)."""
        card = self._card(commit)
        tags = [str(tag) for tag in card.get("tags") or []]
        for key, prefix in (
            ("base_model", "base_model:"),
            ("datasets", "dataset:"),
            ("license", "license:"),
        ):
            values = card.get(key) or []
            tags += [
                prefix + str(value) for value in ([values] if isinstance(values, str) else values)
            ]
        if card.get("library_name"):
            tags.insert(0, str(card["library_name"]))
        info = {
            "_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": commit.oid,
            "lastModified": commit.date,
            "createdAt": repo.created_at,
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": tags,
            "siblings": [{"rfilename": path} for path in sorted(commit.files)],
        }
        if request.query_params.get("blobs", "").lower() in ("true", "1"):  # files_metadata=True
            info["siblings"] = [
                {"rfilename": path, "size": (self.blobs / sha).stat().st_size, "blobId": sha}
                for path, sha in sorted(commit.files.items())
            ]
        if repo.repo_type == "model":
            info |= {"modelId": repo.repo_id, "library_name": card.get("library_name")}
            info["pipeline_tag"] = card.get("pipeline_tag")
        if repo.repo_type == "space":
            info |= {"sdk": repo.sdk, "subdomain": repo.repo_id.replace("/", "-").lower()}
        if with_card and card:
            info["cardData"] = card
        return info

    # ------------------------------------------------------------------ routes
    async def whoami(self, request: Request) -> Response:
        caller = self._begin(request, "whoami")
        if isinstance(caller, Response):
            return caller
        if caller is None:
            return _error(401, "Invalid username or password.")
        user, role = caller
        return JSONResponse(
            {
                "type": "user",
                "id": hashlib.md5(user.encode()).hexdigest()[:24],
                "name": user,
                "fullname": user.title(),
                "email": f"{user}@example.com",
                "emailVerified": True,
                "avatarUrl": f"/avatars/{user}.svg",
                "isPro": False,
                "orgs": [],
                "auth": {
                    "type": "access_token",
                    "accessToken": {"displayName": f"{role} token", "role": role},
                },
            }
        )

    async def create_repo(self, request: Request) -> Response:
        caller = self._begin(request, "create_repo")
        if isinstance(caller, Response):
            return caller
        body = await request.json()
        namespace = body.get("organization") or (caller[0] if caller else "")
        denied = self._can_write(caller, namespace)
        if denied:
            return denied
        repo_type = body.get("type") or "model"
        repo_id = f"{namespace}/{body.get('name', '')}"
        with self.lock:
            existing = self.repos.get((repo_type, repo_id))
            if existing is not None:
                url = self._url(request, existing)
                return _error(409, f"You already created this {repo_type} repo", url=url)
            if repo_type == "space" and body.get("sdk") not in SPACE_SDKS:
                return _error(400, f"sdk must be one of {SPACE_SDKS}")
            visibility = body.get("visibility")
            private = visibility in ("private", "protected") or bool(body.get("private"))
            repo = Repo(repo_type, repo_id, private, body.get("sdk"), _now())
            self._new_commit(
                repo, "main", "initial commit", {".gitattributes": self._store_blob(GITATTRIBUTES)}
            )
            self.repos[(repo_type, repo_id)] = repo
        return JSONResponse({"url": self._url(request, repo), "name": repo_id, "id": repo_id})

    async def delete_repo(self, request: Request) -> Response:
        caller = self._begin(request, "delete_repo")
        if isinstance(caller, Response):
            return caller
        body = await request.json()
        namespace = body.get("organization") or (caller[0] if caller else "")
        denied = self._can_write(caller, namespace)
        if denied:
            return denied
        key = (body.get("type") or "model", f"{namespace}/{body.get('name', '')}")
        with self.lock:
            if self.repos.pop(key, None) is None:
                return _error(404, "Repository not found", "RepoNotFound")
        return Response(status_code=200)

    async def validate_yaml(self, request: Request) -> Response:
        caller = self._begin(request, "validate_yaml")
        if isinstance(caller, Response):
            return caller
        body = await request.json()
        try:
            problems = _metadata_problems(body.get("content", ""), body.get("repoType", "model"))
        except yaml.YAMLError as error:
            problems = [f"YAML could not be parsed: {error}"]
        if problems:
            errors = [{"message": problem} for problem in problems]
            return JSONResponse({"errors": errors, "warnings": []}, status_code=400)
        return JSONResponse({"errors": [], "warnings": []})

    async def list_models(self, request: Request) -> Response:
        caller = self._begin(request, "list_models")
        if isinstance(caller, Response):
            return caller
        query = request.query_params
        search = (query.get("search") or "").lower()
        author = query.get("author")
        filters = query.getlist("filter")
        limit = int(query.get("limit") or 1000)
        with_card = (query.get("cardData") or query.get("full") or "").lower() in ("true", "1")
        user = caller[0] if caller else None
        items = []
        for (repo_type, repo_id), repo in sorted(self.repos.items()):
            if repo_type != "model" or (repo.private and repo_id.split("/")[0] != user):
                continue
            if search not in repo_id.lower() or (author and repo_id.split("/")[0] != author):
                continue
            info = self._info(request, repo, repo.commits[repo.branches["main"]], with_card)
            if all(tag in info["tags"] for tag in filters):
                info.pop("siblings")
                items.append(info)
        return JSONResponse(items[:limit])

    async def repo_info(self, request: Request) -> Response:
        caller = self._begin(request, "repo_info")
        if isinstance(caller, Response):
            return caller
        repo = self._repo(request, caller)
        if isinstance(repo, Response):
            return repo
        commit = self._commit_of(repo, request.path_params.get("revision", "main"))
        if isinstance(commit, Response):
            return commit
        return JSONResponse(self._info(request, repo, commit))

    async def tree(self, request: Request) -> Response:
        caller = self._begin(request, "tree")
        if isinstance(caller, Response):
            return caller
        repo = self._repo(request, caller)
        if isinstance(repo, Response):
            return repo
        commit = self._commit_of(repo, request.path_params["revision"])
        if isinstance(commit, Response):
            return commit
        recursive = request.query_params.get("recursive", "").lower() in ("true", "1")
        prefix = request.path_params.get("path", "").strip("/")
        prefix = prefix + "/" if prefix else ""
        entries, folders = [], set()
        for path, sha in sorted(commit.files.items()):
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix) :]
            if "/" in rest and not recursive:
                folders.add(prefix + rest.split("/")[0])
                continue
            if recursive:
                parts = rest.split("/")[:-1]
                folders.update(prefix + "/".join(parts[: depth + 1]) for depth in range(len(parts)))
            size = (self.blobs / sha).stat().st_size
            entries.append({"type": "file", "oid": sha, "size": size, "path": path})
        if prefix and not entries and not folders:
            return _error(404, f"{prefix.rstrip('/')} does not exist", "EntryNotFound")
        folder_oid = lambda path: hashlib.sha1(path.encode()).hexdigest()  # noqa: E731
        entries += [
            {"type": "directory", "oid": folder_oid(p), "size": 0, "path": p}
            for p in sorted(folders)
        ]
        return JSONResponse(entries)

    async def preupload(self, request: Request) -> Response:
        caller = self._begin(request, "preupload")
        if isinstance(caller, Response):
            return caller
        denied = self._can_write(caller, request.path_params["namespace"])
        if denied:
            return denied
        repo = self._repo(request, caller)
        if isinstance(repo, Response):
            return repo
        commit = self._commit_of(repo, request.path_params["revision"])
        if isinstance(commit, Response):
            return commit
        body = await request.json()
        # Every file is "regular": its bytes travel base64-encoded in the commit call, so the
        # client never starts an LFS or Xet transfer against this server.
        files = [
            {
                "path": item["path"],
                "uploadMode": "regular",
                "shouldIgnore": False,
                "oid": commit.files.get(item["path"]),
            }
            for item in body.get("files", [])
        ]
        return JSONResponse({"files": files, "commitOid": commit.oid})

    async def commit(self, request: Request) -> Response:
        caller = self._begin(request, "commit")
        if isinstance(caller, Response):
            return caller
        denied = self._can_write(caller, request.path_params["namespace"])
        if denied:
            return denied
        repo = self._repo(request, caller)
        if isinstance(repo, Response):
            return repo
        branch = request.path_params["revision"]
        if branch not in repo.branches:
            return _error(404, f"Invalid rev id: {branch}", "RevisionNotFound")
        lines = [json.loads(line) for line in (await request.body()).splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            return _error(400, "The first NDJSON line of a commit must be the header")
        header = lines[0]["value"]
        with self.lock:
            head = repo.commits[repo.branches[branch]]
            if header.get("parentCommit") and header["parentCommit"] != head.oid:
                return _error(412, "A commit has happened since. Please refresh and try again.")
            files = dict(head.files)
            for line in lines[1:]:
                key, value = line.get("key"), line.get("value", {})
                if key == "file" and value.get("encoding") == "base64":
                    files[value["path"]] = self._store_blob(base64.b64decode(value["content"]))
                elif key == "deletedFile":
                    if files.pop(value["path"], None) is None:
                        return _error(404, "A file with this name doesn't exist", "EntryNotFound")
                elif key == "deletedFolder":
                    folder = value["path"].rstrip("/") + "/"
                    files = {
                        path: sha for path, sha in files.items() if not path.startswith(folder)
                    }
                else:
                    return _error(400, f"Unsupported commit operation {key!r} (only regular files)")
            commit = self._new_commit(repo, branch, header.get("summary", ""), files)
        url = f"{self._url(request, repo)}/commit/{commit.oid}"
        return JSONResponse(
            {"success": True, "commitOid": commit.oid, "commitUrl": url, "pullRequestUrl": None}
        )

    async def create_branch(self, request: Request) -> Response:
        caller = self._begin(request, "create_branch")
        if isinstance(caller, Response):
            return caller
        denied = self._can_write(caller, request.path_params["namespace"])
        if denied:
            return denied
        repo = self._repo(request, caller)
        if isinstance(repo, Response):
            return repo
        branch = request.path_params["branch"]
        if branch in repo.branches:
            return _error(409, f"Reference refs/heads/{branch} already exists")
        body = await request.json() if await request.body() else {}
        start = self._commit_of(repo, body.get("startingPoint") or "main")
        if isinstance(start, Response):
            return start
        repo.branches[branch] = start.oid
        return Response(status_code=200)

    async def resolve(self, request: Request) -> Response:
        caller = self._begin(request, "resolve")
        if isinstance(caller, Response):
            return caller
        repo = self._repo(request, caller)
        if isinstance(repo, Response):
            return repo
        commit = self._commit_of(repo, request.path_params["revision"])
        if isinstance(commit, Response):
            return commit
        sha = commit.files.get(request.path_params["path"])
        if sha is None:
            response = _error(404, "Entry not found", "EntryNotFound")
            response.headers["X-Repo-Commit"] = commit.oid
            return response
        data = (self.blobs / sha).read_bytes()
        headers = {
            "X-Repo-Commit": commit.oid,
            "ETag": f'"{sha}"',
            "Content-Length": str(len(data)),
        }
        body = b"" if request.method == "HEAD" else data
        return Response(body, headers=headers, media_type="application/octet-stream")


def _metadata_problems(content: str, repo_type: str) -> list[str]:
    """What `POST /api/validate-yaml` rejects in a README's front matter (a useful subset)."""
    meta = front_matter(content)
    problems = []
    for key in ("tags", "datasets", "models"):
        if key in meta and not (
            isinstance(meta[key], list) and all(isinstance(v, str) for v in meta[key])
        ):
            problems.append(f'"{key}" must be an array of strings')
    base_models = meta.get("base_model") or []
    for base in [base_models] if isinstance(base_models, str) else base_models:
        if not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", str(base)):
            problems.append(f'"base_model" {base!r} is not a model id from https://hf.co/models')
    if repo_type == "space":
        if meta.get("sdk") not in SPACE_SDKS:
            problems.append(f'"sdk" must be one of {SPACE_SDKS}')
        for key in ("colorFrom", "colorTo"):
            if key in meta and meta[key] not in SPACE_COLORS:
                problems.append(f'"{key}" must be one of {SPACE_COLORS}')
        for key in ("sdk_version", "python_version", "app_file"):
            if key in meta and not isinstance(meta[key], str):
                problems.append(f'"{key}" must be a string')
    for entry in meta.get("model-index") or []:
        if not isinstance(entry, dict) or "name" not in entry:
            problems.append('"model-index[]" needs a "name"')
            continue
        for result in entry.get("results") or []:
            task, dataset = result.get("task") or {}, result.get("dataset") or {}
            if "type" not in task or "type" not in dataset or "name" not in dataset:
                problems.append(
                    '"model-index[].results[]" needs task.type, dataset.type and dataset.name'
                )
            for metric in result.get("metrics") or []:
                if "type" not in metric or not isinstance(metric.get("value"), (int, float)):
                    problems.append(
                        '"model-index[].results[].metrics[]" needs type and a numeric value'
                    )
    return problems


def free_port_url() -> str:
    """A URL on a port nothing listens on (connections are refused)."""
    from tests.conftest import free_port

    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="session")
def hub_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    """One test Hub for the session (state is reset by the `hub` fixture)."""
    server = HubServer(tmp_path_factory.mktemp("hub-server"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def hub(hub_server: HubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> HubServer:
    """A fresh, empty test Hub that `huggingface_hub` (and mathtutor.hub) talk to.

    HF_ENDPOINT points at it; HF_TOKEN is unset and the cached-login file is moved to an empty
    temp dir, so a developer's real login never reaches the tests (and downloads land in that
    temp dir, not in the real Hub cache). conftest.py sets
    HF_HUB_OFFLINE for the suite; it is lifted here because this Hub is 127.0.0.1.
    """
    from huggingface_hub import constants

    hub_server.reset()
    monkeypatch.setenv("HF_ENDPOINT", hub_server.url)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf-home" / "token"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"))
    return hub_server


@pytest.fixture
def hub_datasets(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[HubServer]:
    """The test Hub as `datasets.load_dataset` sees it: `datasets.config` and
    `huggingface_hub.constants` read HF_ENDPOINT, the offline flag and the cache folder at
    import, so they are set there too (the cache in a temp dir), and tables loaded by earlier
    tests are forgotten."""
    import datasets.config

    from mathtutor import tables

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", hub.url)
    monkeypatch.setattr(
        datasets.config,
        "HUB_DATASETS_URL",
        hub.url + "/datasets/{repo_id}/resolve/{revision}/{path}",
    )
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(
        constants,
        "HUGGINGFACE_CO_URL_TEMPLATE",
        hub.url + "/{repo_id}/resolve/{revision}/{filename}",
    )
    host = hub.url.split("//", 1)[1].split(":")[0]
    monkeypatch.setattr(constants, "HF_URL_HOSTS", constants.HF_URL_HOSTS | {host})
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")
    tables.clear_cache()
    yield hub
    tables.clear_cache()


def parquet_bytes(rows: list[dict]) -> bytes:
    """`rows` as one Parquet file (what the Hub's dataset viewer and `push_to_hub` store)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    return buffer.getvalue()


def jsonl_bytes(rows: list[dict]) -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


def dataset_card(configs: dict[str, dict[str, str]]) -> bytes:
    """A dataset README whose front matter declares `configs` ({config: {split: path glob}})."""
    entries = [
        {
            "config_name": name,
            "data_files": [{"split": split, "path": path} for split, path in splits.items()],
        }
        for name, splits in configs.items()
    ]
    return ("---\n" + yaml.safe_dump({"configs": entries}) + "---\n").encode()


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A URL whose server accepts connections and never answers (every read times out)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
