"""The named endpoints, driven by `gradio_client` against a live `python app.py`."""

from __future__ import annotations

import io
import threading
import time
import zipfile
from pathlib import Path

import pytest
import trimesh
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from pxr import Usd, UsdGeom

from tests.support.processes import REPO
from tests.webui.live import EXAMPLE, QUICK_OPTIONS, SLOW_OPTIONS, depths_of, views_of
from worker.jobs.record import is_job_id

SERVER_ENV = {"RECON_EMBEDDED_WORKERS": "2"}
ENDPOINTS = {"/submit", "/status", "/wait", "/cancel", "/result"}


def gallery(paths: list[Path]) -> list[dict]:
    return [{"image": handle_file(str(path)), "caption": None} for path in paths]


def submit(client: Client, folder: Path, options: dict | None = None, views: int = 6) -> str:
    return client.predict(
        views=gallery(views_of(folder)[:views]), depth_renders=gallery(depths_of(folder)), model="fusion",
        options=options or {}, cameras=None, api_name="/submit",
    )


@pytest.fixture
def connect(live_server, tmp_path):
    """A new client, i.e. a new session; the URL includes the mount path `/`."""

    def connect_() -> Client:
        return Client(f"{live_server.url}/", verbose=False, download_files=str(tmp_path))

    return connect_


def follow(client: Client, job_id: str) -> tuple[list[tuple[float, dict]], list]:
    """Every record /wait streams, with the time it arrived, and the progress updates seen meanwhile."""
    job = client.submit(job_id, api_name="/wait")
    records, progress = [], []
    for record in job:
        records.append((time.monotonic(), record))
        if job.status().progress_data:
            progress.extend(job.status().progress_data)
    return records, progress


def test_only_the_five_named_endpoints_are_public(live_server):
    info = live_server.http.get("/gradio_api/info").json()
    assert set(info["named_endpoints"]) == ENDPOINTS
    assert info["unnamed_endpoints"] == {}


def test_submit_wait_with_progress_and_download_the_mesh(connect, live_server):
    client = connect()
    job_id = submit(client, EXAMPLE, QUICK_OPTIONS)
    assert client.predict(job_id, api_name="/status")["status"] in ("queued", "processing")
    records, progress = follow(client, job_id)
    statuses = [record["status"] for _, record in records]
    values = [record["progress"] for _, record in records]
    assert statuses[-1] == "completed" and values[-1] == 100
    assert len({value for value in values if 0 < value < 100}) >= 3, values
    assert values == sorted(values)
    assert progress and 0 <= progress[0].progress <= 1 and progress[0].desc

    glb = Path(client.predict(job_id, api_name="/result"))
    assert glb.name == f"{job_id}.glb" and glb.read_bytes()[:4] == b"glTF"
    assert client.predict(job_id, api_name="/status")["status"] == "completed"
    assert live_server.job(job_id)["status"] == "completed"


def test_a_running_job_is_cancelled_in_two_steps_by_its_own_client_only(connect, live_server, slow_inputs):
    owner, stranger = connect(), connect()
    job_id = submit(owner, slow_inputs, SLOW_OPTIONS)
    live_server.wait_for(job_id, lambda job: job["status"] == "processing", 60, "the slow job to start")

    with pytest.raises(AppError, match="not submitted from this session"):
        stranger.predict(job_id, False, api_name="/cancel")
    with pytest.raises(AppError, match="request it first"):
        owner.predict(job_id, True, api_name="/cancel")
    assert owner.predict(job_id, False, api_name="/cancel")["status"] == "cancel_requested"
    assert owner.predict(job_id, api_name="/status")["status"] == "processing"
    confirmed = time.monotonic()
    assert owner.predict(job_id, True, api_name="/cancel")["status"] == "cancelled"
    records, _ = follow(owner, job_id)
    assert records[-1][1]["status"] == "cancelled" and time.monotonic() - confirmed < 3
    with pytest.raises(AppError, match="is cancelled"):
        owner.predict(job_id, api_name="/result")


def test_two_clients_at_once_both_see_their_job_progress(connect, live_server):
    clients = [connect(), connect()]
    job_ids = [submit(client, EXAMPLE, QUICK_OPTIONS) for client in clients]
    streams: list[list[tuple[float, dict]]] = [[], []]

    def run(index: int) -> None:
        streams[index] = follow(clients[index], job_ids[index])[0]

    threads = [threading.Thread(target=run, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    windows = []
    for stream in streams:
        assert stream and stream[-1][1]["status"] == "completed"
        running = [(arrived, record["progress"]) for arrived, record in stream if record["status"] == "processing"]
        assert len({progress for _, progress in running}) >= 3, running
        windows.append((running[0][0], running[-1][0]))
    assert windows[0][0] < windows[1][1] and windows[1][0] < windows[0][1], "the two jobs never ran side by side"


def test_wrong_inputs_are_refused_in_words_and_nothing_is_queued(connect, live_server):
    before = live_server.job_ids()
    with pytest.raises(AppError, match=r"Expected exactly 6 views \(front, right, back, left, top, bottom\), got 5"):
        submit(connect(), EXAMPLE, views=5)
    with pytest.raises(AppError, match="grid_resolution must be a whole number from 128 to 512"):
        submit(connect(), EXAMPLE, {"grid_resolution": 4096})
    with pytest.raises(AppError, match="there is no job|There is no job"):
        connect().predict("zzzzzzzz", api_name="/status")
    assert live_server.job_ids() == before


def run_example(live_server, endpoint: str, monkeypatch, **replace: str) -> object:
    """Run the Python example the "Use via API" page shows for `endpoint`, from the repository root, as a user
    would paste it; `replace` swaps an example value for another (e.g. the job id of a real job)."""
    code = live_server.http.get("/gradio_api/info").json()["named_endpoints"][endpoint]["code_snippets"]["python"]
    for shown, actual in replace.items():
        code = code.replace(shown, actual)
    printed: list = []
    monkeypatch.chdir(REPO)
    exec(compile(code, endpoint, "exec"), {"print": printed.append})  # noqa: S102 - the page's own example
    return printed[0]


def test_the_api_pages_examples_run_and_the_result_comes_in_each_format(live_server, monkeypatch, connect):
    job_id = run_example(live_server, "/submit", monkeypatch)
    assert is_job_id(job_id)
    live_server.wait_for(job_id, lambda job: job["status"] == "completed", 180, "the example job to complete")
    assert run_example(live_server, "/status", monkeypatch, k3m8xq2p=job_id)["status"] == "completed"

    client = connect()
    assert Path(client.predict(job_id, api_name="/result")).name == f"{job_id}.glb"
    archive = Path(client.predict(job_id, "obj", api_name="/result"))
    assert archive.name == f"{job_id}-obj.zip" and zipfile.is_zipfile(archive)
    usdz = Path(client.predict(job_id=job_id, format="usdz", api_name="/result"))
    stage = Usd.Stage.Open(str(usdz))
    glb = trimesh.load(io.BytesIO(live_server.http.get(f"/jobs/{job_id}/result").content), file_type="glb",
                       force="mesh", process=False)
    points = next(UsdGeom.Mesh(prim) for prim in stage.Traverse() if prim.IsA(UsdGeom.Mesh)).GetPointsAttr().Get()
    assert len(points) == len(glb.vertices)
    with pytest.raises(AppError, match="Format must be one of glb, obj, ply, stl, usdz"):
        client.predict(job_id, "fbx", api_name="/result")
