"""Who may do what on a public Space: the gate, the rate limiter, the bounds, the training queue.

Pure tests first, then the real app (`app.build_demo()`) launched on a simulated Space and driven
with `gradio_client`, as a visitor on the internet would call it.

How the test signs in: gradio fills `gr.OAuthProfile | None` parameters from the Starlette
session cookie that its `/login/callback` route writes after a Hugging Face sign-in (gradio
6.31 `oauth.py`, `helpers.special_args`). The session middleware exists when the app has a
`gr.LoginButton`, and on a Space (`SYSTEM=spaces`, `SPACE_ID`, the `OAUTH_*` variables that
`hf_oauth: true` sets) gradio installs its real OAuth routes, whose cookie is signed with
sha256(`OAUTH_CLIENT_SECRET` + "-v4"). The test knows that secret because it set it, so it
signs the same `{"oauth_info": {...}}` session the callback would store and sends it as the
`Cookie` header of a `gradio_client.Client`: the server then injects that profile exactly as
after a real sign-in. A client without the cookie is an anonymous visitor.
"""

from __future__ import annotations

import base64
import doctest
import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from mathtutor import access, store
from mathtutor.render import visible_text
from tests.conftest import serving
from tests.hub_server import WRITE_TOKEN, free_port_url

# On a Space gradio starts its hot-reload watcher, which needs the `spaces` package; without it
# that one thread stops (gradio http_server.py), the app itself is unaffected.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
OWNER, VISITOR = "alice", "bob"
SECRET = "test-oauth-secret"


@pytest.fixture
def on_space(monkeypatch):
    monkeypatch.setenv("SPACE_ID", f"{OWNER}/mathtutor")
    monkeypatch.setenv("SPACE_AUTHOR_NAME", OWNER)
    monkeypatch.delenv("MATHTUTOR_ADMINS", raising=False)


# --------------------------------------------------------------------------- the gate
def test_locally_everything_is_open(monkeypatch):
    monkeypatch.delenv("SPACE_ID", raising=False)
    for action in access.OWNER_ONLY:
        access.require(action, None)
    access.check_bounds({"num_samples": 10_000, "k": 99}, None)
    assert doctest.testmod(access).failed == 0


def test_on_a_space_owner_only_actions_need_the_owner_or_an_admin(on_space, monkeypatch):
    for action in access.OWNER_ONLY:
        assert access.allowed(action, OWNER) and access.allowed(action, "ALICE")
        assert not access.allowed(action, VISITOR) and not access.allowed(action, None)
    with pytest.raises(PermissionError) as refused:
        access.require("train", None)
    assert str(refused.value) == (
        "Training on this Space is for its owner (alice) and MATHTUTOR_ADMINS; "
        "sign in as one of them."
    )
    with pytest.raises(PermissionError, match="you are signed in as bob"):
        access.require("delete_eval", VISITOR)
    with pytest.raises(PermissionError, match="sign in to act with your own Hugging Face"):
        access.require("space_token", None)
    monkeypatch.setenv("MATHTUTOR_ADMINS", " carol, Bob ")
    access.require("train", VISITOR)
    assert access.is_admin("carol") and not access.is_admin("dave")
    with pytest.raises(KeyError, match="unknown action"):
        access.allowed("launch_rockets", OWNER)


def test_visitor_bounds_name_the_field(on_space):
    access.check_bounds({"num_samples": 50, "num_systems": 3, "batch_size": None}, VISITOR)
    with pytest.raises(PermissionError, match=r"^num_samples: visitors may use at most 50 .*200"):
        access.check_bounds({"num_samples": 200}, VISITOR)
    with pytest.raises(PermissionError, match="max_new_tokens"):
        access.check_bounds({"max_new_tokens": 4096}, None)
    access.check_bounds({"num_samples": 100_000, "max_new_tokens": 4096}, OWNER)
    access.check_bounds({"max_new_tokens": "lots"}, VISITOR)  # the job's own check names it


def test_client_key_is_the_user_else_the_ip_and_forwarded_for_only_on_a_space(monkeypatch):
    headers = {"x-forwarded-for": "198.51.100.7, 10.0.0.2"}
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert access.client_key(None, "10.0.0.2", headers) == "ip:10.0.0.2"  # forgeable here
    monkeypatch.setenv("SPACE_ID", "alice/mathtutor")
    assert access.client_key(None, "10.0.0.2", headers) == "ip:198.51.100.7"
    assert access.client_key(None, "10.0.0.2", {}) == "ip:10.0.0.2"
    assert access.client_key("Bob", "10.0.0.2", headers) == "user:bob"
    assert access.client_key(None, None, None) == "ip:unknown"


# --------------------------------------------------------------------------- the limiter
def test_the_window_slides_and_keys_are_separate():
    limiter = access.RateLimiter("Compare", limit=3, period=10)
    assert [limiter.wait_time("a", now=t) for t in (0, 1, 2, 3)] == [0, 0, 0, 7]
    assert limiter.wait_time("b", now=3) == 0  # another client has its own allowance
    assert limiter.wait_time("a", now=9.5) == pytest.approx(0.5)  # refused calls do not count
    assert limiter.wait_time("a", now=10.5) == 0  # the call at t=0 left the window
    assert limiter.wait_time("a", now=10.6) == pytest.approx(0.4)  # t=1 leaves next
    with pytest.raises(ValueError, match="limit must be >= 1"):
        access.RateLimiter("x", limit=0)


def test_the_limiter_forgets_the_least_recent_clients_beyond_max_keys():
    limiter = access.RateLimiter("Compare", limit=1, period=60, max_keys=2)
    for now, key in enumerate(("a", "b", "c")):
        limiter.wait_time(key, now=float(now))
    assert limiter.wait_time("b", now=3.0) > 0 and limiter.wait_time("c", now=3.0) > 0
    assert limiter.wait_time("a", now=3.0) == 0  # "a" was forgotten: memory stays bounded


def test_check_counts_visitors_and_says_how_long_to_wait(on_space):
    limiter = access.RateLimiter("the tutor", limit=1, period=60)
    limiter.check("ip:192.0.2.1", None)
    with pytest.raises(access.RateLimited, match="Please wait 60 seconds") as refused:
        limiter.check("ip:192.0.2.1", None)
    assert isinstance(refused.value, PermissionError) and 59 < refused.value.wait <= 60
    for _ in range(5):
        limiter.check("user:alice", OWNER)  # the owner is not limited


# --------------------------------------------------------------------------- the training queue
def test_the_queue_takes_a_few_runs_per_user_and_a_few_overall():
    access.check_run_queue("bob", ["alice", "bob", None])
    with pytest.raises(PermissionError, match="You already have 2 runs queued or running"):
        access.check_run_queue("Bob", ["bob", "BOB"])
    with pytest.raises(PermissionError, match="You already have 2"):
        access.check_run_queue(None, [None, None])  # anonymous launches share one allowance
    with pytest.raises(PermissionError, match="4 training runs are already queued or running"):
        access.check_run_queue("erin", ["alice", "bob", "carol", "dave"])


def _active_run(run_id: str, user: str | None, config) -> Path:
    """A run that counts as running: its recorded process is this (live) test process."""
    from training import runs

    directory = runs.create_run(config, run_id)
    if user:
        (directory / "launched_by").write_text(user)
    store.upsert_train_run(run_id, status="running", run_dir=directory, pid=os.getpid())
    return directory


def test_launching_beyond_the_users_bound_is_refused_and_creates_nothing(
    tmp_path, monkeypatch, tiny_model_dir
):
    from training import runs
    from training.config import TrainConfig

    monkeypatch.setenv("MATHTUTOR_HOME", str(tmp_path / "home"))
    config = TrainConfig(model=str(tiny_model_dir), dataset="arithmetic", max_steps=1)
    for index in range(2):
        _active_run(f"bob-{index}", "bob", config)
    with pytest.raises(PermissionError, match="You already have 2 runs queued or running"):
        runs.launch(config, check=False, user="bob")
    run_dirs = sorted(p.name for p in runs.runs_root().iterdir() if not p.name.startswith("."))
    assert run_dirs == ["bob-0", "bob-1"]  # (the queue's lock file is the only other entry)
    assert len(store.list_train_runs()) == 2
    assert [runs.launched_by(info) for info in runs.list_runs()] == ["bob", "bob"]


# --------------------------------------------------------------------------- the app on a Space
def session_cookie(username: str) -> str:
    """The session cookie gradio's `/login/callback` sets after `username` signs in."""
    from itsdangerous import TimestampSigner

    session = {
        "oauth_info": {
            "access_token": f"hf_oauth_{username}",
            "token_type": "bearer",
            "scope": "openid profile",
            "expires_at": int(time.time()) + 3600,
            "userinfo": {
                "name": username.title(),
                "preferred_username": username,
                "profile": f"https://huggingface.co/{username}",
                "picture": "",
            },
        }
    }
    secret = hashlib.sha256((SECRET + "-v4").encode()).hexdigest()  # gradio oauth.attach_oauth
    data = base64.b64encode(json.dumps(session).encode("utf-8"))
    return "session=" + TimestampSigner(secret).sign(data).decode("utf-8")


@pytest.fixture(scope="module")
def space(tmp_path_factory, tiny_model_dir, tiny_adapter_dir):
    """The app as a public Space owned by alice, with some of alice's work in its home."""
    import gradio.oauth

    import app  # first import outside the Space's variables: `app.demo` stays a local app
    from training import runs
    from training.config import TrainConfig

    home = tmp_path_factory.mktemp("space-home")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "SYSTEM": "spaces",
            "SPACE_ID": f"{OWNER}/mathtutor",
            "SPACE_AUTHOR_NAME": OWNER,
            "OAUTH_CLIENT_ID": "test-client",
            "OAUTH_CLIENT_SECRET": SECRET,
            "OAUTH_SCOPES": "openid profile",
            "OPENID_PROVIDER_URL": free_port_url(),  # never contacted: no test logs in for real
            "HF_TOKEN": WRITE_TOKEN,  # the owner's secret, which visitors must not act with
            "HF_ENDPOINT": free_port_url(),
            "MATHTUTOR_HOME": str(home),
            "MATHTUTOR_MODEL": str(tiny_model_dir),
        }.items():
            patch.setenv(name, value)
            if hasattr(gradio.oauth, name):  # read once when gradio is imported
                patch.setattr(gradio.oauth, name, value)
        patch.delenv("MATHTUTOR_ADMINS", raising=False)
        patch.setitem(access.LIMITERS, "compare", access.RateLimiter("Compare", 3, 600))

        config = TrainConfig(model=str(tiny_model_dir), dataset="arithmetic", max_steps=2)
        stopped = runs.create_run(config, "alice-stopped")
        (stopped / "checkpoints" / "checkpoint-1").mkdir(parents=True)
        store.upsert_train_run("alice-stopped", status="stopped", run_dir=stopped)
        _active_run("alice-running", OWNER, config)
        store.create_eval_run("alice-eval", {"dataset": "gsm8k", "systems": ["base"]})
        store.update_eval_run("alice-eval", status="finished")
        store.register_adapter("alice-lora", tiny_adapter_dir, str(tiny_model_dir), "local")

        demo = app.build_demo()
        with serving(demo) as url:
            yield {"url": url, "home": home, "config": config, "demo": demo}


def client(space, username: str | None = None):
    from gradio_client import Client

    headers = {"Cookie": session_cookie(username)} if username else None
    return Client(space["url"], verbose=False, headers=headers)


def snapshot(home: Path) -> tuple:
    """Every file under the home (but the database) and every stored row."""
    files = {
        str(path.relative_to(home)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(home.rglob("*"))
        if path.is_file() and not path.name.startswith("mathtutor.db")
    }
    return files, store.list_train_runs(), store.list_eval_runs(), store.list_adapters()


def test_visitors_see_the_owner_buttons_disabled(space):
    components = space["demo"].config["components"]
    props = {c["props"].get("elem_id"): c["props"] for c in components if "props" in c}
    for elem_id in ("train-launch", "train-stop", "train-resume", "eval-delete-run", "hub-pull"):
        assert props[elem_id]["interactive"] is False, elem_id
    assert props["compare-run"].get("interactive") is not False
    assert "hub-login" in props  # the Space has sign-in, so the owner can unlock them


def test_visitors_calling_owner_endpoints_are_refused_and_nothing_changes(space):
    from gradio_client.exceptions import AppError

    from mathtutor.ui import train

    values = train.form_values(space["config"])
    adapter = str(store.list_adapters()[0]["path"])
    calls = {
        "/train_launch": (values, "Training on this Space is for its owner (alice)"),
        "/train_stop": (["alice-running"], "Stopping a training run on this Space is for"),
        "/train_resume": (["alice-stopped"], "Resuming a training run on this Space is for"),
        "/delete_run": (["alice-eval"], "Deleting an evaluation on this Space is for"),
        "/pull": (["alice/lora", "", "bundled", True], "Pulling an adapter onto this Space"),
    }
    anonymous_only = {  # a signed-in visitor pushes and deploys with their own token: allowed
        "/push": ([adapter, "alice/stolen", False, "m"], "Using this Space's own Hub token"),
        "/deploy": (["alice/x", "", "", "cpu-basic", False], "Using this Space's own Hub token"),
        "/my_adapters": ([], "Using this Space's own Hub token"),
    }
    before = snapshot(space["home"])
    for who in (VISITOR, None):
        visitor = client(space, who)
        # The run pickers offer the runs once listed in this session, as the tabs do on open.
        visitor.predict(api_name="/train_runs")
        visitor.predict(None, api_name="/eval_runs")
        for api_name, (args, message) in {**calls, **({} if who else anonymous_only)}.items():
            with pytest.raises(AppError) as refused:
                visitor.predict(*args, api_name=api_name)
            assert message in str(refused.value), (who, api_name, str(refused.value))
            if who:
                assert f"you are signed in as {who}" in str(refused.value)
    assert snapshot(space["home"]) == before
    assert not (space["home"] / "runs" / "alice-running" / "STOP").exists()


def test_a_visitor_can_still_compare_and_the_owner_can_stop_a_run(space):
    args = [str(space["config"].model), "base", "base", "What is 2 + 3?", "5", "chat", 16, 0, 1, 0]
    args.append(False)  # calculator
    left, right, left_md, right_md, *_ = client(space, VISITOR).predict(
        *args, api_name="/run_compare"
    )
    assert visible_text(left[0]["content"][0]["text"]) == "What is 2 + 3?"
    assert left == right and left_md == right_md and "incorrect (reference 5)" in left_md
    # Compare's Stop endpoint takes any caller's token, keeps only well-formed ones (bounded)
    from mathtutor.ui import stops

    client(space, VISITOR).predict("../../etc/passwd", api_name="/compare_stop")
    client(space, VISITOR).predict("visitorrun00000001", api_name="/compare_stop")
    assert stops.stopped("visitorrun00000001") and not stops.stopped("../../etc/passwd")
    owner = client(space, OWNER)
    owner.predict(api_name="/train_runs")
    text = owner.predict("alice-running", api_name="/train_stop")
    assert "Stop requested for `alice-running`" in text
    assert (space["home"] / "runs" / "alice-running" / "STOP").is_file()


def test_two_clients_from_one_ip_share_the_compare_allowance(space):
    from gradio_client.exceptions import AppError

    access.LIMITERS["compare"] = access.RateLimiter("Compare", 2, 600)
    args = [str(space["config"].model), "base", "base", "1 + 1?", "", "chat", 16, 0, 1, 0, False]
    first, second = client(space), client(space)  # two sessions, one address (127.0.0.1)
    first.predict(*args, api_name="/run_compare")
    second.predict(*args, api_name="/run_compare")
    with pytest.raises(AppError, match="You're going fast! Please wait"):
        first.predict(*args, api_name="/run_compare")
    with pytest.raises(AppError, match="going fast"):
        client(space).predict(*args, api_name="/run_compare")
    client(space, VISITOR).predict(*args, api_name="/run_compare")  # signed in: counted apart
    client(space, OWNER).predict(*args, api_name="/run_compare")


def test_a_visitors_evaluation_is_bounded_before_anything_runs(space):
    from gradio_client.exceptions import AppError

    from mathtutor.ui import evaluate

    main, upload = evaluate.MAIN_FIELDS, evaluate.UPLOAD_FIELDS
    ordered = [f for f in evaluate.FORM_FIELDS if f.name in main]
    ordered += [f for f in evaluate.FORM_FIELDS if f.name in upload]
    ordered += [f for f in evaluate.FORM_FIELDS if f.name not in (*main, *upload)]
    form = {f.name: f.default for f in ordered} | {"num_samples": 200, "batch_size": 0}
    args = [str(space["config"].model), ["base"], None, *(form[f.name] for f in ordered)]
    runs_before = store.list_eval_runs()
    with pytest.raises(AppError, match="num_samples: visitors may use at most 50 on this Space"):
        client(space, VISITOR).predict(*args, api_name="/eval_start")
    assert store.list_eval_runs() == runs_before
