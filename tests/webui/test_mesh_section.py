"""The page's "start from a mesh" section in a real browser against a live `python app.py`: a dropped mesh fills
both galleries, and those inputs reconstruct the mesh. Screenshots go to test-output/webui/."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest
import trimesh
from playwright.sync_api import Page, expect

from tests.webui.live import MAX_MESH_TRIANGLES, SLOTS
from tests.webui.test_page import gallery_slots, job_id_on_page
from worker.recon.evaluate import chamfer_distance
from worker.recon.render_inputs import NORMALIZED_SIZE, normalize_mesh

CHAMFER_SHARE = 0.01  # of the normalised mesh's longest side


@pytest.fixture
def page(browser, live_server):
    page = browser.new_page(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    page.goto(live_server.url)
    page.wait_for_selector("#views")
    page.locator("#mesh-inputs").get_by_text("No depth renders? Start from a mesh").click()
    yield page
    page.close()


def render(page: Page, mesh: Path, rig: str, resolution: str) -> None:
    """Drop `mesh` on the section, pick the rig and the resolution, press Render and wait for the note."""
    page.set_input_files("#mesh-file input[type=file]", str(mesh))
    page.locator("#mesh-rig").get_by_text(rig).click()
    page.locator("#mesh-resolution").get_by_text(resolution).click()
    page.click("#mesh-render")
    expect(page.locator("#mesh-note .note-ok")).to_contain_text(f"on the {rig} rig at {resolution}×{resolution}",
                                                                timeout=60_000)


def test_a_dropped_mesh_fills_both_galleries_and_those_inputs_reconstruct_it(page, live_server, screenshots, tmp_path):
    source = trimesh.creation.capsule(height=0.8, radius=0.45, count=(24, 24))
    source.export(tmp_path / "capsule.glb")
    section = page.locator("#mesh-inputs")
    expect(page.locator("#mesh-note")).to_contain_text(f"at most 20 MB and {MAX_MESH_TRIANGLES:,} triangles")
    section.screenshot(path=screenshots / "mesh-01-section.png")

    render(page, tmp_path / "capsule.glb", "cube6", "256")
    expect(page.locator("#views-note .note-ok")).to_contain_text("6 views, 256×256")
    expect(page.locator("#depths-note .note-ok")).to_contain_text("16-bit")
    assert gallery_slots(page, "views") == [(slot, f"view_{i}_{slot}.png") for i, slot in enumerate(SLOTS)]
    assert gallery_slots(page, "depths") == [(slot, f"depth_{i}_{slot}.png") for i, slot in enumerate(SLOTS)]
    with page.expect_download() as download:
        page.click("#mesh-download")
    with zipfile.ZipFile(download.value.path()) as archive:
        assert len(archive.namelist()) == 13 and "cameras.json" in archive.namelist()
    section.screenshot(path=screenshots / "mesh-02-rendered.png")
    page.screenshot(path=screenshots / "mesh-03-page.png", full_page=True)

    page.locator("#model input").click()
    page.get_by_role("option", name=re.compile("Fusion")).click()
    page.click("#reconstruct")
    expect(page.locator("#job-status .badge-completed")).to_be_visible(timeout=120_000)
    response = live_server.http.get(f"/jobs/{job_id_on_page(page)}/result")
    result = trimesh.load(io.BytesIO(response.content), file_type="glb", force="mesh")
    chamfer = chamfer_distance(result, normalize_mesh(source), samples=20_000)
    print(f"Chamfer of the reconstruction to the dropped mesh: {chamfer:.5f} ({chamfer / NORMALIZED_SIZE:.3%})")
    assert chamfer < CHAMFER_SHARE * NORMALIZED_SIZE


def test_a_perspective_rig_also_fills_the_cameras_input(page, tmp_path):
    trimesh.creation.box((1.0, 0.6, 0.8)).export(tmp_path / "box.ply")
    render(page, tmp_path / "box.ply", "perspective", "256")
    expect(page.locator("#mesh-note .note-ok")).to_contain_text("and the cameras.json under Advanced")
    page.click("#advanced")
    expect(page.locator("#cameras")).to_contain_text("cameras.json")
    expect(page.locator("#cameras-note .note-ok")).to_have_text("Custom rig from cameras.json.")
    expect(page.locator("#views-note .note-ok")).to_contain_text("6 views, 256×256")


def test_a_mesh_over_the_triangle_limit_gets_a_sentence_and_the_galleries_stay_empty(page, tmp_path, screenshots):
    trimesh.creation.icosphere(subdivisions=5).export(tmp_path / "dense.glb")  # 20,480 triangles
    page.set_input_files("#mesh-file input[type=file]", str(tmp_path / "dense.glb"))
    page.click("#mesh-render")
    expect(page.locator("#mesh-note .note-error")).to_have_text(
        "The mesh declares 20,480 triangles; at most 5,000 are accepted (simplify it first)."
    )
    assert gallery_slots(page, "views") == gallery_slots(page, "depths") == []
    expect(page.locator("#mesh-download")).to_be_hidden()
    page.locator("#mesh-inputs").screenshot(path=screenshots / "mesh-04-refused.png")
