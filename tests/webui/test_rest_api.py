"""The REST API's acceptance checklist, over HTTP against a live `python app.py` with its embedded worker."""

import io
import json
import socket
import zipfile
from concurrent.futures import ThreadPoolExecutor

import pytest
import trimesh
from PIL import Image
from pxr import Usd, UsdGeom

from tests.support.stack import Stack, input_files, track_progress
from tests.webui.live import QUICK_OPTIONS
from worker.recon.previews import GAP, HEADER, LEGEND, MARGIN, TURNTABLE_FRAMES, sheet_size


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    live = Stack(tmp_path_factory.mktemp("rest"))
    yield live
    live.close()


def test_twelve_pngs_give_a_job_id_and_the_job_completes(stack, sphere_inputs):
    submitted = stack.submit(sphere_inputs, **QUICK_OPTIONS)
    assert submitted["status"] == "queued" and len(submitted["job_id"]) == 8 and submitted["job_token"]
    assert submitted["created_at"].endswith("Z")
    record, _ = track_progress(stack, submitted["job_id"], timeout=60)
    assert record["status"] == "completed" and record["progress"] == 100
    assert record["started_at"] and record["finished_at"] and record["error"] is None
    report = stack.http.get(record["result"]["report"])
    assert report.status_code == 200 and json.loads(report.content)["model"] == "fusion"


@pytest.fixture(scope="module")
def completed(stack, sphere_inputs) -> str:
    job_id = stack.submit(sphere_inputs, **QUICK_OPTIONS)["job_id"]
    stack.wait_for(job_id, ("completed",), timeout=60)
    return job_id


def reopened(content: bytes, fmt: str) -> trimesh.Trimesh:
    return trimesh.load(io.BytesIO(content), file_type="zip" if fmt == "obj" else fmt, force="mesh", process=False)


def downloaded_twice_at_once(stack: Stack, links: dict) -> dict:
    """Each format asked for by two clients at once, before it exists: both get the same whole file."""
    downloads = {}
    for fmt in ("obj", "ply", "stl", "usdz"):
        with ThreadPoolExecutor(2) as pool:
            first, second = pool.map(stack.http.get, [links[fmt]] * 2)
        assert first.status_code == second.status_code == 200 and first.content == second.content, fmt
        downloads[fmt] = first
    return downloads


def test_the_result_downloads_in_every_format_with_the_same_geometry(stack, completed, tmp_path):
    glb = stack.http.get(f"/jobs/{completed}/result")
    assert glb.headers["content-type"] == "model/gltf-binary" and glb.content[:4] == b"glTF"
    reference = reopened(glb.content, "glb")
    links = stack.job(completed)["result"]
    downloads = downloaded_twice_at_once(stack, links)
    for fmt, name in (("obj", "-obj.zip"), ("ply", ".ply"), ("stl", ".stl"), ("usdz", ".usdz")):
        assert downloads[fmt].status_code == 200, downloads[fmt].text
        assert downloads[fmt].headers["content-disposition"].endswith(f'{completed}{name}"')
    for fmt in ("obj", "ply", "stl"):
        mesh = reopened(downloads[fmt].content, fmt)
        assert len(mesh.faces) == len(reference.faces) and abs(mesh.bounds - reference.bounds).max() < 1e-6
        assert len(mesh.vertices) == (3 * len(reference.faces) if fmt == "stl" else len(reference.vertices))
    output = stack.workdir / "data" / "jobs" / completed / "output"
    assert not [path.name for path in output.iterdir() if path.name.endswith(".partial")]
    names = zipfile.ZipFile(io.BytesIO(downloads["obj"].content)).namelist()
    assert sorted(name.rsplit(".", 1)[1] for name in names) == ["mtl", "obj", "png"]
    assert downloads["usdz"].headers["content-type"] == "model/vnd.usdz+zip"
    (tmp_path / "model.usdz").write_bytes(downloads["usdz"].content)
    stage = Usd.Stage.Open(str(tmp_path / "model.usdz"))
    mesh = next(UsdGeom.Mesh(prim) for prim in stage.Traverse() if prim.IsA(UsdGeom.Mesh))
    assert len(mesh.GetPointsAttr().Get()) == len(reference.vertices)
    assert any(prim.GetAttribute("inputs:file").IsValid() for prim in stage.Traverse())


def test_an_unknown_format_is_a_400_naming_the_field(stack, completed):
    response = stack.http.get(f"/jobs/{completed}/result", params={"format": "fbx"})
    assert response.status_code == 400 and response.json()["field"] == "format"
    assert "glb, obj, ply, stl, usdz" in response.json()["error"]


def test_model_type_is_also_accepted_as_a_form_field(stack, sphere_inputs):
    response = stack.http.post("/jobs", files=input_files(sphere_inputs), data={"model_type": "nonexistent"})
    assert response.status_code == 400 and response.json()["field"] == "model_type"
    assert "fusion" in response.json()["error"]


def test_cancellation_is_requested_then_confirmed(stack, slow_inputs):
    submitted = stack.submit(slow_inputs, grid_resolution=512)
    job_id, token = submitted["job_id"], submitted["job_token"]
    assert stack.http.post(f"/jobs/{job_id}/cancel").status_code == 403
    assert stack.cancel(job_id, "not-the-token", None).status_code == 403
    assert stack.cancel(job_id, token, True).status_code == 409
    requested = stack.cancel(job_id, token, False)
    assert requested.json() == {"status": "cancel_requested", "message": "Send confirm=true to confirm cancellation"}
    confirmed = stack.cancel(job_id, token, True)
    assert confirmed.json() == {"status": "cancelled", "message": "Job cancellation confirmed"}
    assert stack.job(job_id)["status"] == "cancelled"
    again = stack.cancel(job_id, token, True)
    assert again.status_code == 200 and again.json()["status"] == "cancelled"


def test_a_completed_job_cannot_be_cancelled(stack, sphere_inputs):
    submitted = stack.submit(sphere_inputs, **QUICK_OPTIONS)
    stack.wait_for(submitted["job_id"], ("completed",), timeout=60)
    response = stack.cancel(submitted["job_id"], submitted["job_token"], None)
    assert response.status_code == 400 and "completed" in response.json()["error"]


def test_a_job_s_pictures_of_the_fit_are_answered_as_its_result_until_it_completes(stack, slow_inputs):
    submitted = stack.submit(slow_inputs, grid_resolution=512)
    job_id, token = submitted["job_id"], submitted["job_token"]
    stack.wait_for(job_id, ("processing",), timeout=60)  # the answer names the status: one, not two between calls
    for picture in ("comparison.png", "turntable.webp"):
        early = stack.http.get(f"/jobs/{job_id}/{picture}")
        result = stack.http.get(f"/jobs/{job_id}/result")
        assert early.status_code == result.status_code == 400 and early.json() == result.json()
        assert early.json()["field"] == "job_id" and "once it is completed" in early.json()["error"]
    stack.cancel(job_id, token, False)
    stack.cancel(job_id, token, True)
    assert stack.http.get("/jobs/zzzzzzzz/comparison.png").status_code == 404


def test_a_completed_job_serves_its_comparison_sheet_and_turntable(stack, sphere_inputs):
    submitted = stack.submit(sphere_inputs, **QUICK_OPTIONS)
    stack.wait_for(submitted["job_id"], ("completed",), timeout=60)
    sheet = stack.http.get(f"/jobs/{submitted['job_id']}/comparison.png")
    assert sheet.status_code == 200 and sheet.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(sheet.content))
    assert image.format == "PNG"
    assert image.size == sheet_size(128, 128) == (MARGIN + 6 * (128 + GAP) + GAP, HEADER + 3 * (128 + GAP) + LEGEND)
    turntable = stack.http.get(f"/jobs/{submitted['job_id']}/turntable.webp")
    assert turntable.status_code == 200 and turntable.headers["content-type"] == "image/webp"
    assert Image.open(io.BytesIO(turntable.content)).n_frames == TURNTABLE_FRAMES


def test_a_wrong_file_count_is_a_400_naming_the_field(stack, sphere_inputs):
    files = [item for item in input_files(sphere_inputs) if item[1][0] != "depth_5_bottom.png"]
    response = stack.http.post("/jobs", files=files)
    assert response.status_code == 400
    assert response.json()["field"] == "depth_renders" and "got 5" in response.json()["error"]


def test_a_bad_file_is_named_by_its_index(stack, sphere_inputs):
    files = input_files(sphere_inputs)
    files[8] = ("depth_renders", ("depth_2_back.png", b"not a png at all", "image/png"))
    response = stack.http.post("/jobs", files=files)
    assert response.status_code == 400 and response.json()["field"] == "depth_renders[2]"


def test_unknown_jobs_are_404_with_a_flat_error(stack):
    for path in ("/jobs/zzzzzzzz", "/jobs/zzzzzzzz/result", "/jobs/..%2F..%2Fetc"):
        response = stack.http.get(path)
        assert response.status_code == 404
    assert set(stack.http.get("/jobs/zzzzzzzz").json()) == {"error", "field"}


def test_the_docs_list_every_endpoint(stack):
    assert stack.http.get("/docs").status_code == 200
    paths = stack.http.get("/openapi.json").json()["paths"]
    assert {"/jobs", "/jobs/{job_id}", "/jobs/{job_id}/cancel", "/jobs/{job_id}/result",
            "/jobs/{job_id}/report", "/jobs/{job_id}/comparison.png", "/jobs/{job_id}/turntable.webp",
            "/models"} <= set(paths)


def test_models_say_whether_they_can_run_here(stack):
    models = {m["name"]: m for m in stack.http.get("/models").json()}
    assert models["fusion"]["available"] and models["fusion"]["options"][0]["name"] == "grid_resolution"


def test_an_oversized_upload_is_refused_with_413_before_it_is_read(stack):
    host, port = stack.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(
            b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=x\r\n"
            b"Content-Length: 10737418240\r\n\r\n" + b"x" * 65536
        )
        answer = b"".join(iter(lambda: conn.recv(65536), b"")).decode(errors="replace")
    assert answer.startswith("HTTP/1.1 413") and "larger than" in answer
