"""Hub tab in headless Chromium, against the project's test Hub server (tests/hub_server.py).

The app runs with `HF_ENDPOINT` pointing at the test Hub on 127.0.0.1 and `HF_TOKEN` set to
alice's write token: that is what gradio's local sign-in mock needs (outside a Space,
`gr.LoginButton` signs in as the machine's Hub login, checked with `whoami` at launch). The
user signs in with the button, pushes the tiny adapter with its model card, finds it by
search, pulls it back, and sees it in the Compare tab. Without a token the tab says how to
sign in, and Push gives a clear message instead of failing.
"""

from __future__ import annotations

import json

import pytest

from tests.browser.conftest import (
    ADAPTER,
    choose,
    markdown,
    open_accordion,
    open_app,
    open_tab,
    prepare_home,
    running_app,
    screenshot,
    textbox,
    toasts,
)
from tests.hub_server import WRITE_TOKEN, hub_server  # noqa: F401  (a pytest fixture)

pytestmark = pytest.mark.browser
expect = pytest.importorskip(
    "playwright.sync_api", reason="Python playwright is not installed"
).expect

HUB_S = 60_000  # ms: a push or pull of the tiny adapter over local HTTP


@pytest.fixture(scope="module")
def hub_app(chromium, hub_server, tiny_model_dir, tiny_adapter_dir, tmp_path_factory):  # noqa: F811
    """An app signed in to the test Hub as alice (HF_TOKEN), with the tiny adapter registered."""
    hub_server.reset()
    home = prepare_home(tmp_path_factory.mktemp("hub-app-home"), tiny_model_dir, tiny_adapter_dir)
    env = {
        "HF_ENDPOINT": hub_server.url,
        "HF_HUB_OFFLINE": "0",  # the test Hub is 127.0.0.1
        "HF_HUB_DISABLE_XET": "1",
        "HF_HOME": str(home / "hf-home"),  # no cached login or downloads from the real machine
        "HF_TOKEN": WRITE_TOKEN,
    }
    with running_app(home, tiny_model_dir, env) as started:
        yield started


def test_sign_in_push_search_pull(hub_app, hub_server, page):  # noqa: F811
    open_app(page, hub_app, "Hub")
    status = markdown(page, "hub-status")
    expect(status).to_contain_text("Signed in as alice")
    assert WRITE_TOKEN not in page.locator("body").inner_text()

    # gradio's local OAuth mock: the button goes to /login/huggingface and comes back.
    login = page.locator("#hub-login")
    expect(login).to_contain_text("Sign in")
    with page.expect_navigation(url=hub_app.url):  # back to the app, on its first tab
        login.click()
    open_tab(page, "Hub")
    expect(page.locator("#hub-login")).to_contain_text("Logout (alice)")
    expect(status).to_contain_text("Signed in as alice")

    # Push the registered adapter, public so that search finds it.
    choose(page, "hub-push-adapter", f"{ADAPTER} (test)")
    repo = textbox(page, "hub-push-repo")
    expect(repo).to_have_value(f"alice/{ADAPTER}")
    open_accordion(page, "Model card preview")
    expect(markdown(page, "hub-card-preview")).to_contain_text("- mathtutor")
    private = page.locator("#hub-push-private input[type=checkbox]")
    private.uncheck()
    page.locator("#hub-push").click()
    expect(markdown(page, "hub-push-result")).to_contain_text(
        f"Pushed to alice/{ADAPTER}", timeout=HUB_S
    )
    files = hub_server.files(f"alice/{ADAPTER}")
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md"} <= set(files)
    assert "mathtutor" in files["README.md"].decode()
    assert json.loads(files["adapter_config.json"])["r"] == 4

    # Search the Hub, pick the result, pull it.
    textbox(page, "hub-search").fill(ADAPTER)
    page.locator("#hub-search-run").click()
    expect(markdown(page, "hub-search-note")).to_contain_text("1 adapter", timeout=HUB_S)
    cell = page.locator("#hub-search-results [data-testid=cell-0-0]")  # first row, repo id
    expect(cell).to_have_text(f"alice/{ADAPTER}")
    cell.click()
    expect(textbox(page, "hub-pull-repo")).to_have_value(f"alice/{ADAPTER}")
    page.locator("#hub-pull").click()
    expect(markdown(page, "hub-pull-result")).to_contain_text(
        f"Pulled and registered as alice/{ADAPTER}", timeout=HUB_S
    )
    pulled = hub_app.home / "adapters" / f"alice--{ADAPTER}"
    assert (pulled / "adapter_model.safetensors").read_bytes() == (
        files["adapter_model.safetensors"]
    )
    expect(toasts(page)).to_have_count(0)
    screenshot(page, "hub")

    # The pulled adapter is a system in Compare without a restart.
    open_tab(page, "Compare")
    choose(page, "compare-right-system", f"alice/{ADAPTER}")
    assert WRITE_TOKEN not in page.content()


def test_without_a_token_the_tab_says_how_to_sign_in(app, page):
    open_app(page, app, "Hub")
    expect(markdown(page, "hub-status")).to_contain_text("Not signed in")
    expect(page.locator("#hub-login")).to_have_count(0)  # the launch must not need a login
    choose(page, "hub-push-adapter", f"{ADAPTER} (test)")
    page.locator("#hub-push").click()
    toast = toasts(page).first
    expect(toast).to_contain_text("token")
    assert "Traceback" not in toast.inner_text()
    expect(markdown(page, "hub-push-result")).to_have_text("")
    # The failed push leaves the Repo box as it was (no "Error" badge over it) ...
    expect(page.locator("#hub-push-repo").get_by_text("Error", exact=True)).to_have_count(0)
    expect(textbox(page, "hub-push-repo")).to_be_visible()
    # ... and the refresh button has a name, not only a symbol.
    expect(page.get_by_role("button", name="↻ Refresh")).to_be_visible()
