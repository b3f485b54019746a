"""An uploaded mesh becomes 12 published inputs (and a cameras.json for a perspective rig), within the bounds."""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from tests.webui.test_mesh_files import MTL, TEXTURED_OBJ, png, write_zip
from webui.mesh_inputs import RENDERS_PER_MINUTE, MeshInputs, perspective_rig
from webui.upload_guard import UploadPaths
from worker.config import load_settings
from worker.errors import FileValidationError, ServiceBusyError
from worker.jobs.limits import ClientQuotas
from worker.jobs.store import SqliteJobStore
from worker.recon.rig import SLOT_NAMES, parse_cameras_json


def files_under(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*") if path.is_file()}


@pytest.fixture
def upload_folder(tmp_path) -> Path:
    return tmp_path / "gradio"


def make_renderer(tmp_path: Path, upload_folder: Path, **env: str) -> MeshInputs:
    config = load_settings({"GRADIO_TEMP_DIR": str(upload_folder), "RECON_DATA_DIR": str(tmp_path / "data"), **env})
    return MeshInputs(config, ClientQuotas(SqliteJobStore(tmp_path / "queue.db"), 30, 1024**3))


def uploaded_box(upload_folder: Path) -> Path:
    """A box as the page's upload would leave it: inside Gradio's upload folder."""
    path = upload_folder / "0123abcd" / "box.glb"
    path.parent.mkdir(parents=True)
    trimesh.creation.box((1.0, 0.5, 0.8)).export(path)
    return path


def test_a_zipped_textured_obj_becomes_twelve_uploads_in_slot_order_and_a_zip_of_them(tmp_path, upload_folder):
    renderer = make_renderer(tmp_path, upload_folder)
    upload = write_zip(upload_folder / "4567cdef" / "square.zip", {
        "square.obj": TEXTURED_OBJ.encode(), "square.mtl": MTL.encode(), "textures/paint.png": png(8, 8),
    })
    rendered = renderer.render(str(upload), "cube6", 256, "alice")
    assert [Path(path).name for path in rendered.views] == [f"view_{i}_{slot}.png" for i, slot in enumerate(SLOT_NAMES)]
    assert [Path(path).name for path in rendered.depths] == [f"depth_{i}_{slot}.png"
                                                             for i, slot in enumerate(SLOT_NAMES)]
    assert rendered.cameras is None  # cube6 is the default rig: the cameras input is cleared
    uploads = UploadPaths(upload_folder, renderer.limits.max_bytes)
    assert all(uploads.is_upload(path) for path in rendered.views + rendered.depths + [rendered.archive])
    with zipfile.ZipFile(rendered.archive) as archive:
        assert sorted(archive.namelist()) == sorted(
            [Path(path).name for path in rendered.views + rendered.depths] + ["cameras.json"]
        )
    assert rendered.triangles == 2
    front = np.asarray(Image.open(rendered.views[0]))
    assert tuple(front[128, 128]) == (200, 40, 40, 255)  # the texture's colour, seen by the front camera


def test_a_perspective_rig_comes_with_the_cameras_json_that_reads_back_as_that_rig(tmp_path, upload_folder):
    renderer = make_renderer(tmp_path, upload_folder)
    rendered = renderer.render(str(uploaded_box(upload_folder)), "perspective", 256, "alice")
    assert rendered.cameras is not None and UploadPaths(upload_folder, 10**6).is_upload(rendered.cameras)
    rig = parse_cameras_json(json.loads(Path(rendered.cameras).read_text()), 256, 256)
    assert rig.cameras == perspective_rig(256).cameras
    assert [camera.position.round(6).tolist() for camera in rig.cameras][:2] == [[0, 0, 3.5], [3.5, 0, 0]]


def test_a_path_that_is_not_an_upload_or_a_hostile_choice_is_refused_and_nothing_is_written(tmp_path, upload_folder):
    renderer = make_renderer(tmp_path, upload_folder)
    box = uploaded_box(upload_folder)
    before = files_under(upload_folder)
    outside = tmp_path / "box.glb"
    outside.write_bytes(box.read_bytes())
    for path, rig, size, field in ((str(outside), "cube6", 256, "mesh"), ("/etc/passwd", "cube6", 256, "mesh"),
                                   (str(box), "fisheye", 256, "rig"), (str(box), "cube6", 4096, "resolution")):
        with pytest.raises(FileValidationError) as caught:
            renderer.render(path, rig, size, "mallory")
        assert caught.value.field == field
    assert caught.value.message == "The resolution must be one of 256, 512."
    assert files_under(upload_folder) == before


def test_renders_count_against_the_client_per_minute(tmp_path, upload_folder):
    renderer = make_renderer(tmp_path, upload_folder)
    box = uploaded_box(upload_folder)
    for _ in range(RENDERS_PER_MINUTE):
        renderer.quotas.count_event("mallory", "mesh renders", RENDERS_PER_MINUTE)
    with pytest.raises(ServiceBusyError) as caught:
        renderer.render(str(box), "cube6", 256, "mallory")
    assert caught.value.status_code == 429


def test_a_render_past_the_time_limit_is_answered_in_time_and_publishes_nothing(tmp_path, upload_folder):
    renderer = make_renderer(tmp_path, upload_folder, RECON_MESH_RENDER_TIME_LIMIT_S="0.05")
    box = uploaded_box(upload_folder)
    before = files_under(upload_folder)
    started = time.monotonic()
    with pytest.raises(FileValidationError) as caught:
        renderer.render(str(box), "cube6", 256, "alice")
    assert time.monotonic() - started < 2
    assert caught.value.message == "Rendering the mesh took longer than 0.05 s; try 256 px or a simpler mesh."
    renderer.pool.shutdown(wait=True)  # the abandoned render finishes in the background
    assert files_under(upload_folder) == before


def test_a_render_the_page_stopped_waiting_for_stops_and_frees_its_slot(tmp_path, upload_folder):
    """20,000 triangles that each fill the front and back views: 10G pixel tests, minutes of rasterizing. Once the
    page stops waiting, the render stops at the rasterizer's next batch instead of holding one of the few render
    slots until it is done."""
    renderer = make_renderer(tmp_path, upload_folder, RECON_MESH_RENDER_TIME_LIMIT_S="0.5")
    count = 20_000
    heights = np.linspace(-0.5, 0.5, count)
    vertices = np.concatenate([[[-1.0, -1.0, z], [3.0, -1.0, z], [-1.0, 3.0, z]] for z in heights])
    path = upload_folder / "0123abcd" / "stack.ply"
    path.parent.mkdir(parents=True)
    trimesh.Trimesh(vertices, np.arange(3 * count).reshape(count, 3), process=False).export(path)
    with pytest.raises(FileValidationError, match="took longer than 0.5 s"):
        renderer.render(str(path), "cube6", 512, "mallory")
    started = time.monotonic()
    renderer.pool.shutdown(wait=True)
    assert time.monotonic() - started < 10  # all 6 views to the end: minutes
    assert renderer.free.acquire(blocking=False)
