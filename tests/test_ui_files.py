"""The real app's endpoints, called with `gradio_client` as a hostile client would: server paths
outside the allowed roots are refused with a message naming the rule and none of the file's
content; a real upload is read, and its errors quote only that upload.

The refused files live in a fresh `tempfile.mkdtemp()` folder, outside every allowed root
(conftest allows pytest's base temp folder only).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import gradio as gr
import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from mathtutor import paths
from mathtutor.ui import evaluate as eval_tab
from mathtutor.ui import train as train_tab
from tests.conftest import serving
from training.config import TrainConfig

SECRET = "hf_SECRETtoken1234567890"
RULE = "is outside the allowed folders (uploads, home, GSM8K dir, MATHTUTOR_DATA_DIRS)"


@pytest.fixture(scope="module")
def client():
    import app

    with serving(app.demo, default_concurrency_limit=1) as url:  # gradio's own default
        yield Client(url, verbose=False)


@pytest.fixture(scope="module")
def outside():
    """A credentials file and a bad-rows file outside every allowed root."""
    folder = Path(tempfile.mkdtemp(prefix="mathtutor-outside-"))
    (folder / "creds.jsonl").write_text(
        f'{{"token": "{SECRET}", "user": "{SECRET}"}}\n', encoding="utf-8"
    )
    (folder / "mine.jsonl").write_text(
        '{"problem": "What is 2 + 2?", "final": "4"}\n', encoding="utf-8"
    )
    yield folder
    shutil.rmtree(folder)


def train_form(dataset_path: str, **changes) -> list:
    """The Train form's values in endpoint order: bundled-quick reading `dataset_path`."""
    config = TrainConfig.from_yaml(train_tab.RECIPES_DIR / "bundled-quick.yaml")
    names = [f.name for f in train_tab.FORM_FIELDS]
    values = dict(zip(names, train_tab.form_values(config), strict=True))
    # an upload has no test split to measure accuracy on during training: that is off here
    values |= {"dataset": "upload", "dataset_path": dataset_path, "eval_every": 0, **changes}
    return list(values.values())


def eval_args(upload) -> list:
    """The Evaluate start endpoint's inputs: model, systems, upload, then the form widgets in
    the order the tab lays them out (main fields, upload fields, settings)."""
    groups = (eval_tab.MAIN_FIELDS, eval_tab.UPLOAD_FIELDS)
    fields = [f for group in groups for f in eval_tab.FORM_FIELDS if f.name in group]
    fields += [f for f in eval_tab.FORM_FIELDS if f not in fields]
    values = {f.name: f.default for f in fields} | {"dataset": "upload"}
    return ["bundled", ["base"], upload, *values.values()]


def assert_refused(client: Client, endpoint: str, args: list, field: str, path: str) -> None:
    """The call fails with our one-line rule naming the field, and shows none of the file."""
    with pytest.raises(AppError) as caught:
        client.predict(*args, api_name=endpoint)
    message = str(caught.value)
    assert f"{field}: {path} {RULE}" in message, message
    assert SECRET not in message and "root:" not in message


def test_the_endpoints_have_stable_names(client):
    names = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert {
        "/train_preview", "/train_estimate", "/train_recipe", "/train_upload",
        "/eval_start", "/eval_resume",
    } <= names  # fmt: skip


@pytest.mark.parametrize("endpoint", ["/train_preview", "/train_estimate"])
def test_train_preview_and_estimate_refuse_server_paths(client, outside, endpoint):
    for path in ("/etc/passwd", str(outside / "creds.jsonl")):
        assert_refused(client, endpoint, train_form(path), "dataset_path", path)


def raw_call(client: Client, api_name: str, data: list) -> str:
    """POST the inputs as JSON, the way a script without gradio_client would (no upload step:
    gradio_client would upload a local file named in a FileData dict itself), and return the
    server-sent events of the answer."""
    url = f"{client.src.rstrip('/')}/gradio_api/call/{api_name}"
    event = httpx.post(url, json={"data": data}, timeout=60).json()["event_id"]
    return httpx.get(f"{url}/{event}", timeout=120).text


def test_evaluate_start_refuses_server_paths(client, outside):
    """Gradio 6 itself refuses a gr.File value it did not receive as an upload ("not uploaded
    by a user", a bare error event); the handler's own check (EvalConfig) refuses the same path
    if it arrives some other way, naming the rule."""
    for path in ("/etc/passwd", str(outside / "creds.jsonl")):
        file_data = {"path": path, "meta": {"_type": "gradio.FileData"}}
        for upload in (path, file_data):
            answer = raw_call(client, "eval_start", eval_args(upload))
            assert answer.startswith("event: error"), answer
            assert SECRET not in answer and "root:" not in answer
        with pytest.raises(ValueError, match=re.escape(f"path: {path} {RULE}")):
            eval_tab.start("bundled", ["base"], path, {"dataset": "upload"})


def test_tutor_practice_set_refuses_server_paths(client, outside):
    """The Tutor's practice set reads uploads as Evaluate does: gradio refuses a gr.File value
    it did not receive, and the handler (tables.load_table) refuses the path itself."""
    from mathtutor.ui import practice as practice_tab

    defaults = ["", "", "test", "", "{question}", "answer", "", "", "", ""]
    for path in ("/etc/passwd", str(outside / "creds.jsonl")):
        file_data = {"path": path, "meta": {"_type": "gradio.FileData"}}
        for upload in (path, file_data):
            answer = raw_call(client, "tutor_practice", ["upload", upload, *defaults])
            assert answer.startswith("event: error"), answer
            assert SECRET not in answer and "root:" not in answer
        with pytest.raises(gr.Error, match=re.escape(f"path: {path} {RULE}")):
            practice_tab.open_practice("upload", path, {})


def test_evaluate_resume_and_recipe_refuse_path_ids(client):
    """Both pickers are dropdowns: gradio refuses a value that is not a choice; the handlers
    behind them refuse a path-like id themselves (the one id rule)."""
    before = sorted(paths.home_dir().rglob("*"))
    with pytest.raises(AppError, match="not in the list of choices"):
        client.predict("../../x", 1, api_name="/eval_resume")
    with pytest.raises(AppError, match="not in the list of choices"):
        client.predict("../../etc/passwd", "bundled", api_name="/train_recipe")
    with pytest.raises(ValueError, match=r"^run_id '\.\./\.\./x'"):
        eval_tab.start("", [], None, {}, run_id="../../x")
    with pytest.raises(ValueError, match=r"^recipe '\.\./\.\./etc/passwd'"):
        train_tab.load_recipe("../../etc/passwd")
    assert sorted(paths.home_dir().rglob("*")) == before


def test_a_real_upload_is_read_and_its_errors_quote_only_it(client, outside):
    """The browser's path: upload the file, then preview or evaluate the cached copy."""
    dataset, cached = client.predict(handle_file(outside / "mine.jsonl"), api_name="/train_upload")
    assert dataset == "upload" and Path(cached).name == "mine.jsonl"
    with pytest.raises(AppError, match="mine.jsonl: missing column 'question'; columns found"):
        client.predict(*train_form(cached), api_name="/train_preview")
    table = client.predict(
        *train_form(cached, question_field="problem", answer_field="final"),
        api_name="/train_preview",
    )
    assert [row[0] for row in table["data"]] == ["What is 2 + 2?"]
    with pytest.raises(AppError, match="mine.jsonl: missing column 'question'"):
        client.predict(*eval_args(handle_file(outside / "mine.jsonl")), api_name="/eval_start")
