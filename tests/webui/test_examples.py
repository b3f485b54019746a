"""The examples on the page: the catalogue as webui.examples reads it, and the table in a real browser.

The browser half runs against a live `python app.py` in Debian's Chromium; screenshots go to
test-output/webui/. The Spot example's fusion run is in test_page.py; here the perspective example runs,
so a cameras.json filled by an example reaches the job.
"""

from __future__ import annotations

import io
import json
import re
import shutil

import numpy as np
from PIL import Image
from playwright.sync_api import Page, Request, expect

from tests.support.processes import REPO, wait_until
from tests.webui.test_page import job_id_on_page
from webui.examples import ShippedExample, example_rows, shipped_examples

MIN_IOU = 0.97
VIEWER_DRAWN_STD = 15.0  # grey levels: an empty viewer measured 4.5-5.0 (its badge and buttons), the cow 37.6
THUMBNAILS_LOADED = """() => {
  const images = [...document.querySelectorAll('#examples img')];
  return images.length > 0 && images.every((image) => image.complete && image.naturalWidth > 0);
}"""


def test_the_page_offers_the_catalogue_in_order_and_skips_a_missing_folder(tmp_path):
    shutil.copy(REPO / "examples" / "catalogue.json", tmp_path / "catalogue.json")
    catalogue = json.loads((tmp_path / "catalogue.json").read_text())
    for entry in catalogue[1:]:
        (tmp_path / entry["name"]).mkdir()
    assert [example.name for example in shipped_examples(tmp_path)] == [entry["name"] for entry in catalogue[1:]]
    assert shipped_examples(tmp_path / "nowhere") == []


def test_a_row_clears_cameras_json_unless_the_example_brings_one():
    rows = {example.name: row for example, row in zip(shipped_examples(), example_rows(shipped_examples()))}
    assert rows["spot"][4] is None
    assert rows["cow"][4] == str(REPO / "examples" / "cow" / "cameras.json")
    assert [caption for _, caption in rows["spot"][2]] == ["front", "right", "back", "left", "top", "bottom"]


def viewer_drawn(page: Page) -> bool:
    """Whether the 3D viewer's canvas shows more than its plain background."""
    pixels = np.asarray(Image.open(io.BytesIO(page.locator("#viewer canvas").screenshot())).convert("L"))
    return float(pixels.std()) > VIEWER_DRAWN_STD


def served_bytes(page: Page, selector: str) -> bytes:
    """The bytes the browser gets for the first image (or download link) under `selector`."""
    element = page.locator(selector).first
    url = element.get_attribute("src") or element.get_attribute("href")
    response = page.request.get(url)
    assert response.ok, url
    return response.body()


def expect_filled_by(page: Page, example: ShippedExample) -> None:
    """Both galleries hold the example's six files and cameras.json is the example's own, or empty."""
    for gallery in ("views", "depths"):
        expect(page.locator(f"#{gallery} .thumbnail-item")).to_have_count(6)
    wait_until(lambda: served_bytes(page, "#views .thumbnail-item img") ==
               (example.folder / "view_0_front.png").read_bytes(), 10, what=f"{example.name}'s front view")
    assert served_bytes(page, "#depths .thumbnail-item img") == (example.folder / "depth_0_front.png").read_bytes()
    cameras = page.locator("#cameras .file-preview")
    if example.cameras is None:
        expect(cameras).to_have_count(0)
    else:
        expect(cameras).to_contain_text("cameras")
        assert served_bytes(page, "#cameras a.download-link") == example.cameras.read_bytes()


def test_every_example_shows_a_thumbnail_image_and_its_name(open_page, screenshots):
    page = open_page()
    examples = shipped_examples()
    rows = page.locator("#examples tbody tr")
    expect(rows).to_have_count(len(examples))
    page.wait_for_function(THUMBNAILS_LOADED, timeout=10_000)
    assert [row.inner_text().strip() for row in rows.all()] == [example.label for example in examples]
    page.locator("#examples").screenshot(path=screenshots / "examples-table.png")


def test_clicking_an_example_fills_both_galleries_and_the_cameras_input(open_page):
    page = open_page()
    page.locator("#advanced").get_by_text("Advanced").click()
    examples = shipped_examples()
    for example in examples + examples[:1]:  # back to the first: a cameras.json left by the last is cleared
        page.locator("#examples").get_by_text(example.label).click()
        expect_filled_by(page, example)
        if example.name == "teapot":
            expect(page.locator("#depths-note")).to_contain_text("8-bit")


def note_checks(page: Page) -> list[list]:
    """The inputs of every note check the page sends from now on: [views, depths, cameras] as Gradio joins them."""
    checks: list[list] = []

    def joined(request: Request) -> None:
        if request.url.endswith("/queue/join") or "/queue/join?" in request.url:
            data = json.loads(request.post_data or "{}").get("data")
            if isinstance(data, list) and len(data) == 3 and all(isinstance(gallery, (list, type(None)))
                                                                  for gallery in data[:2]):
                checks.append(data)

    page.on("request", joined)
    return checks


def test_an_example_is_checked_with_its_files_never_with_the_galleries_it_replaces(open_page):
    """A check of the empty galleries sent along with the example's own could be drawn last and put the
    empty-gallery hints back under a filled gallery."""
    page = open_page()
    checks = note_checks(page)
    page.locator("#examples").get_by_text(shipped_examples()[0].label).click()
    expect(page.locator("#views-note .note-ok")).to_contain_text("6 views")
    page.wait_for_timeout(1000)  # any check sent with the click has been sent
    assert checks and all(len(views or []) == len(depths or []) == 6 for views, depths, _ in checks), checks


def test_the_perspective_example_reconstructs_with_fusion_through_its_cameras_json(
    open_page, live_server, screenshots
):
    page = open_page()
    page.locator("#advanced").get_by_text("Advanced").click()
    cow = next(example for example in shipped_examples() if example.name == "cow")
    page.locator("#examples").get_by_text(cow.label).click()
    expect_filled_by(page, cow)
    page.locator("#model input").click()
    page.get_by_role("option", name=re.compile("Fusion")).click()
    page.click("#reconstruct")
    expect(page.locator("#job-status .badge-completed")).to_be_visible(timeout=60_000)
    job_id = job_id_on_page(page)
    assert json.loads((live_server.inputs(job_id) / "cameras.json").read_text()) == json.loads(cow.cameras.read_text())
    report = live_server.http.get(f"/jobs/{job_id}/report").json()
    assert report["model"] == "fusion" and min(view["silhouette_iou"] for view in report["views"]) > MIN_IOU
    expect(page.locator("#viewer canvas")).to_be_visible(timeout=10_000)
    wait_until(lambda: viewer_drawn(page), 30, what="the viewer to draw the mesh")
    page.locator("#viewer").screenshot(path=screenshots / "examples-cow-result.png")
