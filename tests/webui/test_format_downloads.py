"""The page offers the result in the other formats: pick one, download it, and it opens with the GLB's mesh."""

from __future__ import annotations

import io

import pytest
import trimesh
from playwright.sync_api import expect, sync_playwright
from pxr import Usd, UsdGeom

from tests.support.stack import input_files
from tests.webui.live import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(scope="module")
def page(live_server):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser.new_page(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
        browser.close()


@pytest.fixture(scope="module")
def completed(live_server, sphere_inputs) -> str:
    response = live_server.http.post("/jobs", files=input_files(sphere_inputs),
                                     data={"options": '{"grid_resolution": 128}'})
    job_id = response.json()["job_id"]
    live_server.wait_for(job_id, lambda job: job["status"] == "completed", 90, "the job to complete")
    return job_id


def test_the_choice_appears_with_the_result_and_gives_a_usdz(page, live_server, completed, screenshots, tmp_path):
    page.goto(live_server.url)
    expect(page.locator("#views")).to_be_visible(timeout=30_000)
    expect(page.locator("#format-choice")).to_be_hidden()

    page.goto(f"{live_server.url}/?job={completed}")
    expect(page.locator("#viewer canvas")).to_be_visible(timeout=30_000)
    page.locator("#format-choice input").click()
    page.get_by_role("option", name="USDZ: textured, for AR and USD tools").click()
    button = page.locator("#download-format")
    expect(button).to_contain_text("Download USDZ", timeout=30_000)
    page.screenshot(path=screenshots / "format-download.png")
    with page.expect_download() as download:
        button.click()
    assert download.value.suggested_filename == f"{completed}.usdz"
    download.value.save_as(tmp_path / download.value.suggested_filename)

    glb = trimesh.load(io.BytesIO(live_server.http.get(f"/jobs/{completed}/result").content), file_type="glb",
                       force="mesh", process=False)
    stage = Usd.Stage.Open(str(tmp_path / f"{completed}.usdz"))
    mesh = next(UsdGeom.Mesh(prim) for prim in stage.Traverse() if prim.IsA(UsdGeom.Mesh))
    assert len(mesh.GetPointsAttr().Get()) == len(glb.vertices)
