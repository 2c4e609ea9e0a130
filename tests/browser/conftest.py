"""Browser-test fixtures: the real app in a subprocess, headless Chromium, gradio helpers.

    pytest -m browser tests/browser     # needs Debian's `chromium` and Python `playwright`

`app` starts `python app.py` once per session on a free port, with its own MATHTUTOR_HOME
where a tiny LoRA adapter (`ADAPTER`) is already registered, the tiny random-weight llama as
its base model (`MATHTUTOR_MODEL`), the shared GSM8K files and no network (HF_HUB_OFFLINE=1).
`running_app()` starts another one for tests that need different settings or may wedge it.
`page` / `phone_page` give each test a fresh browser context (1280x900 desktop, 390x844
phone). A failing test leaves `tests/_artifacts/<test>.png` (the page as it was) and
`<test>.log` (uncaught page errors and the tail of the app's output).

The helpers (`open_app`, `textbox`, `choose`, `set_slider`, ...) find gradio 6 components by
the `elem_id`s the tab modules set. Without chromium or playwright every test here is skipped
with the reason; CI installs both, so there they run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "_artifacts"
CHROMIUM = Path(os.environ.get("MATHTUTOR_CHROMIUM", "/usr/lib/chromium/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ADAPTER = "tiny-lora"  # the adapter registered in the session app's home
STARTUP_TIMEOUT_S = 90.0
TIMEOUT_MS = 30_000  # default wait for an element or an expectation
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
    "device_scale_factor": 2,
}


# --------------------------------------------------------------------------- the app
@dataclass
class App:
    """A running `python app.py`: where it answers, its data directory and its output."""

    url: str
    home: Path
    log: Path
    process: subprocess.Popen

    def log_tail(self, chars: int = 8000) -> str:
        """The last `chars` characters the app printed (stdout and stderr together)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text[-chars:]


def prepare_home(home: Path, model_dir: Path, adapter_dir: Path | None) -> Path:
    """A fresh MATHTUTOR_HOME: the shared model cache linked in, the adapter registered."""
    from mathtutor import store

    home.mkdir(parents=True, exist_ok=True)
    shared_models = Path(
        os.environ.get("MATHTUTOR_TEST_MODEL_CACHE", Path.home() / ".cache" / "mathtutor-test")
    )
    shared_models.mkdir(parents=True, exist_ok=True)
    if not (home / "models").exists():
        (home / "models").symlink_to(shared_models, target_is_directory=True)
    if adapter_dir is not None:
        store.register_adapter(
            ADAPTER, adapter_dir, str(model_dir), "test", path=home / "mathtutor.db"
        )
    return home


def _answers(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
    try:
        with opener.open(url, timeout=3) as response:
            return response.status == 200
    except OSError:
        return False


@contextmanager
def running_app(home: Path, model_dir: Path, env: dict[str, str] | None = None) -> Iterator[App]:
    """Start `python app.py` on a free port and stop it on exit; fail with its output."""
    port = free_port()
    full_env = {
        **os.environ,
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "MATHTUTOR_HOME": str(home),
        "MATHTUTOR_MODEL": str(model_dir),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",
    }
    full_env.pop("HF_TOKEN", None)  # the app signs in only where a test says so
    full_env.update(env or {})
    log = home / f"app-{port}.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "app.py"],
            cwd=REPO,
            env=full_env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    app = App(url=f"http://127.0.0.1:{port}/", home=home, log=log, process=process)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _answers(app.url):
            if process.poll() is not None:
                pytest.fail(
                    f"python app.py exited with code {process.returncode} before answering "
                    f"on {app.url}; its output:\n{app.log_tail()}",
                    pytrace=False,
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"python app.py did not answer on {app.url} within {STARTUP_TIMEOUT_S:.0f}"
                    f" s; its output:\n{app.log_tail()}",
                    pytrace=False,
                )
            time.sleep(0.5)
        yield app
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Chromium and playwright are both here, or every browser test is skipped (with why)."""
    pytest.importorskip(
        "playwright.sync_api", reason="Python playwright is not installed (pip install playwright)"
    )
    if not CHROMIUM.is_file():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture(scope="session")
def app(chromium, tiny_model_dir, tiny_adapter_dir, tmp_path_factory) -> Iterator[App]:
    """The app every browser test shares: tiny base model, `ADAPTER` registered, offline.

    GSM8K comes from `MATHTUTOR_GSM8K_DIR`, inherited (tests/conftest.py sets its default).
    """
    home = prepare_home(tmp_path_factory.mktemp("app-home"), tiny_model_dir, tiny_adapter_dir)
    with running_app(home, tiny_model_dir) as started:
        yield started


# --------------------------------------------------------------------------- the browser
@pytest.fixture(scope="session")
def browser(chromium):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        launched.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures can tell that a test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def _page(browser, request, options: dict):
    context = browser.new_context(**options)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^\w.-]+", "_", request.node.name)
        try:
            page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)
        except Exception as error:  # a crashed page must not hide the test's own failure
            errors.append(f"screenshot failed: {error}")
        apps = [value for value in request.node.funcargs.values() if isinstance(value, App)]
        text = "uncaught page errors:\n" + ("\n".join(errors) or "(none)") + "\n"
        for started in apps:
            text += f"\n--- output of the app at {started.url}:\n{started.log_tail()}\n"
        (ARTIFACTS / f"{name}.log").write_text(text)
    context.close()


@pytest.fixture()
def page(browser, request):
    """A fresh desktop-size page (1280x900) in its own browser context."""
    yield from _page(browser, request, DESKTOP)


@pytest.fixture()
def phone_page(browser, request):
    """A fresh phone-size page (390x844, touch, mobile viewport) in its own context."""
    yield from _page(browser, request, PHONE)


# --------------------------------------------------------------------------- gradio helpers
def open_app(page, app: App, tab: str | None = None) -> None:
    """Load the app and wait until the base-model picker is there; then open `tab`."""
    from playwright.sync_api import expect

    page.goto(app.url)
    expect(page.locator("#model-spec")).to_be_visible(timeout=60_000)
    if tab:
        open_tab(page, tab)


def open_tab(page, label: str) -> None:
    """Select the tab named `label` (through gradio's overflow menu when it is folded away)."""
    from playwright.sync_api import expect

    button = page.get_by_role("tab", name=label, exact=True)
    more = page.get_by_role("button", name="More tabs")
    expect(button.or_(more).filter(visible=True).first).to_be_visible()
    if not button.is_visible():  # folded: the menu lists it as a plain button
        more.click()
        button = page.locator(".overflow-dropdown").get_by_role("button", name=label, exact=True)
    button.click()
    expect(page.get_by_role("tab", name=label, exact=True)).to_have_attribute(
        "aria-selected", "true"
    )


def textbox(page, elem_id: str):
    """The text field of the gr.Textbox with this elem_id (textarea or single-line input)."""
    return page.locator(f"#{elem_id} textarea, #{elem_id} input").first


def choose(page, elem_id: str, option: str, multiselect: bool = False) -> None:
    """Pick `option` in the gr.Dropdown with this elem_id, as a user does (open, click).

    With `multiselect`, the option is added to the chosen ones (shown as tokens).
    """
    from playwright.sync_api import expect

    field = page.locator(f"#{elem_id} input[role=combobox]")
    field.click()
    listbox = field.get_attribute("aria-controls")  # the id of this dropdown's option list
    page.locator(f'[id="{listbox}"] [role=option][aria-label="{option}"]').click()
    if multiselect:
        field.press("Escape")
        expect(page.locator(f"#{elem_id} .token", has_text=option)).to_have_count(1)
    else:
        expect(field).to_have_value(option)


def table_rows(page, elem_id: str):
    """The body rows of the gr.Dataframe with this elem_id (one first-column cell each)."""
    return page.locator(f'#{elem_id} [data-testid^="cell-"][data-col="0"]')


def table_cell(page, elem_id: str, row: int, column: int):
    """One body cell of the gr.Dataframe with this elem_id (0-based row and column)."""
    return page.locator(f"#{elem_id} [data-testid=cell-{row}-{column}]")


def type_until_held(box, value: float, key: str = "Enter") -> None:
    """Type `value` into the input `box`, then `key`, until the value has held for a moment.

    An input that has just been shown (an accordion opening, a recipe filling the form) can be
    re-mounted with its old value right after a fill, so type again until it sticks.
    """
    from playwright.sync_api import expect

    for _ in range(20):
        box.fill(str(value))
        box.press(key)
        box.page.wait_for_timeout(300)
        if box.input_value() == str(value):
            box.page.wait_for_timeout(300)
            if box.input_value() == str(value):
                break
    expect(box).to_have_value(str(value))


def set_slider(page, label: str, value: float) -> None:
    """Type `value` into the number box of the gr.Slider labelled `label`."""
    box = page.locator(f'input[aria-label="number input for {label}"]').filter(visible=True)
    type_until_held(box, value)


def open_accordion(page, label: str) -> None:
    """Open the gr.Accordion titled `label` (no-op when it is open already)."""
    button = page.locator("button.label-wrap", has_text=label).first
    if "open" not in (button.get_attribute("class") or "").split():
        button.click()


def markdown(page, elem_id: str):
    """The rendered text of the gr.Markdown with this elem_id (not its progress overlay)."""
    return page.locator(f"#{elem_id} [data-testid=markdown]")


def bot_messages(page, elem_id: str):
    """The assistant messages of the gr.Chatbot with this elem_id."""
    return page.locator(f"#{elem_id} [data-testid=bot]")


def user_messages(page, elem_id: str):
    """The user messages of the gr.Chatbot with this elem_id."""
    return page.locator(f"#{elem_id} [data-testid=user]")


def toasts(page, kind: str = "error"):
    """Visible gradio toasts of one kind: error, warning, info or success."""
    return page.locator(f"[data-testid=toast-body].{kind}")


def wait_without_error(page, locator, timeout: float = TIMEOUT_MS) -> None:
    """Wait until `locator` is visible; fail at once, with its text, if an error toast shows.

    (An error toast fades after a few seconds, so waiting for the result alone would time out
    minutes later and say only that the result never came.)
    """
    from playwright.sync_api import expect

    expect(locator.or_(toasts(page)).first).to_be_visible(timeout=timeout)
    error = toasts(page)
    if error.count():
        text = " ".join(error.first.inner_text().split())
        pytest.fail(f"error toast instead of a result: {text}", pytrace=False)


def screenshot(page, name: str) -> Path:
    """Save the whole page to tests/_artifacts/<name>.png (git-ignored) and return the path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    return path
