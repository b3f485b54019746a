"""The mounted app: Gradio's own check of client-sent paths runs (mounting alone skips it), the data folder is
blocked, and unknown routes answer in the API's flat error shape."""

import glob
import json

import pytest
from fastapi.testclient import TestClient

from webui import upload_guard
from webui.server import create_app
from worker.config import load_settings
from worker.jobs.service import JobService
from worker.queue.huey_app import make_job_store
from worker.queue.tasks import HueyJobQueue


@pytest.fixture
def client(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    config = load_settings({"RECON_DATA_DIR": str(tmp_path / "data"), "GRADIO_TEMP_DIR": str(tmp_path / "gradio")})
    with TestClient(create_app(JobService(make_job_store(config), HueyJobQueue(), config))) as client:
        client.config = config
        yield client


def completed(client, fn_index: int, data: list, session: str) -> dict:
    joined = client.post("/gradio_api/queue/join", json={"data": data, "fn_index": fn_index, "session_hash": session})
    assert joined.status_code == 200, joined.text
    with client.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as stream:
        for line in stream.iter_lines():
            message = json.loads(line[5:]) if line.startswith("data:") else {}
            if message.get("msg") == "process_completed":
                return message
    raise AssertionError("no process_completed message")


def test_gradio_itself_refuses_a_server_path_when_the_guard_in_front_is_off(client, monkeypatch):
    """The root fix: with only Gradio's own check, /etc/passwd sent to /submit is refused and not copied."""
    monkeypatch.setattr(upload_guard.GradioRequestGuard, "_refusal", lambda self, body: None)
    config = client.get("/config").json()
    submit = next(index for index, dep in enumerate(config["dependencies"]) if dep.get("api_name") == "submit")
    gallery = [{"image": {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}, "caption": None}]
    message = completed(client, submit, [gallery, [], "fusion", {}, None], "s1")
    assert message["success"] is False
    assert not glob.glob(f"{client.config.upload_folder}/**/passwd", recursive=True)


def test_unknown_routes_answer_in_the_flat_error_shape(client):
    for method, path in (("GET", "/nope"), ("POST", "/jobs/x/nope"), ("GET", "/gradio_api/nope")):
        response = client.request(method, path)
        assert response.status_code in (404, 405) and set(response.json()) == {"error", "field"}
