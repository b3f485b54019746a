"""The page in a real browser (Debian's Chromium) against a live `python app.py`.

Screenshots of the main states go to test-output/webui/.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
from PIL import Image
from playwright.sync_api import Page, expect

from tests.support.processes import wait_until
from tests.webui.live import EXAMPLE, QUICK_OPTIONS, SLOTS, SLOW_OPTIONS, depths_of, views_of
from worker.jobs.models import FUSION
from worker.jobs.record import ACTIVE
from worker.recon.previews import TURNTABLE_SIZE, sheet_size

PROGRESSBAR = "#job-status [role=progressbar]"
PROGRESS_SHOTS = {5: "09-progress-5s.png", 50: "10-progress-50s.png"}
RECORD_PROGRESS = """() => {
  window.__values = [];
  setInterval(() => {
    const bar = document.querySelector('#job-status [role=progressbar]');
    const value = bar ? parseFloat(bar.getAttribute('aria-valuenow')) : NaN;
    if (!isNaN(value) && window.__values[window.__values.length - 1] !== value) window.__values.push(value);
  }, 20);
}"""
SAMPLE_PROGRESS = """() => {
  const bar = document.querySelector('#job-status [role=progressbar]');
  const box = bar ? bar.getBoundingClientRect() : null;
  if (!box || box.width === 0 || box.height === 0) return null;
  return {value: Number(bar.getAttribute('aria-valuenow')), elapsed: bar.querySelector('.job-elapsed').textContent,
          left: bar.querySelector('.job-left').textContent};
}"""

LOADED_SIZE = "img => img.complete ? [img.naturalWidth, img.naturalHeight] : null"


def gallery_slots(page: Page, gallery: str) -> list[tuple[str, str]]:
    """(caption, file name) of each thumbnail, in gallery order."""
    items = page.locator(f"#{gallery} .thumbnail-item")
    return [
        (item.locator(".caption-label").inner_text(), Path(item.locator("img").get_attribute("src")).name)
        for item in items.all()
    ]


def job_id_on_page(page: Page) -> str:
    return page.locator("#job-status code").inner_text()


def test_an_example_fills_both_galleries_and_a_job_progresses_to_a_mesh_in_the_viewer(
    open_page, live_server, screenshots
):
    page = open_page()
    expect(page.locator("#job-status")).not_to_contain_text("on the left")  # the columns stack on a narrow screen
    page.screenshot(path=screenshots / "01-empty.png", full_page=True)
    page.locator("#examples").get_by_text("Spot the cow").click()
    expect(page.locator("#views-note .note-ok")).to_contain_text("6 views, 256×256")
    expect(page.locator("#depths-note .note-ok")).to_contain_text("16-bit")
    assert gallery_slots(page, "views") == [(slot, f"view_{i}_{slot}.png") for i, slot in enumerate(SLOTS)]
    assert gallery_slots(page, "depths") == [(slot, f"depth_{i}_{slot}.png") for i, slot in enumerate(SLOTS)]

    page.locator("#model input").click()
    page.get_by_role("option", name=re.compile("Fusion")).click()
    expect(page.locator("#model-note")).to_contain_text("Fuses the six depth renders")
    page.screenshot(path=screenshots / "02-example-loaded.png", full_page=True)

    page.evaluate(RECORD_PROGRESS)
    page.click("#reconstruct")
    expect(page.locator("#job-status .badge")).to_have_text(re.compile("Queued|Running|Completed"))
    job_id = job_id_on_page(page)
    expect(page.locator("#cancel")).to_be_enabled()
    expect(page).to_have_url(re.compile(rf"\?job={job_id}$"))
    wait_until(lambda: len(page.evaluate("window.__values")) >= 4, 60, what="the progress bar to move")
    page.screenshot(path=screenshots / "03-progress.png", full_page=True)

    expect(page.locator("#job-status .badge-completed")).to_be_visible(timeout=90_000)
    values = page.evaluate("window.__values")
    increases = sum(later > earlier for earlier, later in zip(values, values[1:]))
    assert increases >= 2, values
    expect(page.locator("#viewer canvas")).to_be_visible(timeout=10_000)
    expect(page.locator("#cancel")).to_be_disabled()
    expect(page.locator("#reconstruct")).to_be_enabled()
    summary = page.locator("#report-summary")
    expect(summary).to_contain_text("triangles")
    expect(summary.locator(".report-views tbody tr")).to_have_count(6)
    for picture, size in (("comparison", sheet_size(256, 256)), ("turntable", (TURNTABLE_SIZE, TURNTABLE_SIZE))):
        image = page.locator(f"#{picture} img")
        expect(image).to_be_visible(timeout=10_000)
        wait_until(lambda image=image, size=size: image.evaluate(LOADED_SIZE) == list(size), 10,
                   what=f"the {picture} to load")
    assert page.locator("#turntable img").get_attribute("src").endswith(f"{job_id}-turntable.webp")
    with page.expect_download() as sheet:
        page.locator("#comparison").get_by_label("Download").click()
    assert sheet.value.suggested_filename == f"{job_id}-comparison.png"
    time.sleep(3)
    page.screenshot(path=screenshots / "04-result.png", full_page=True)
    page.locator("#comparison").screenshot(path=screenshots / "13-comparison.png")

    with page.expect_download() as download:
        page.click("#download-glb")
    assert download.value.suggested_filename == f"{job_id}.glb"
    assert Path(download.value.path()).read_bytes()[:4] == b"glTF"
    assert live_server.job(job_id)["status"] == "completed"


def test_uploaded_files_go_to_the_slots_their_names_give(open_page, live_server):
    page = open_page()
    page.set_input_files("#views input[type=file]", [str(path) for path in reversed(views_of(EXAMPLE))])
    expect(page.locator("#views .thumbnail-item")).to_have_count(6)
    expect(page.locator("#views-note .note-ok")).to_be_visible()
    assert gallery_slots(page, "views") == [(slot, f"view_{i}_{slot}.png") for i, slot in enumerate(SLOTS)]
    expect(page.locator("#depths-note .note-idle")).to_contain_text("Add 6 depth renders")

    uploads = uploaded_copies(live_server, views_of(EXAMPLE))
    assert len(uploads) == 6
    page.close()
    time.sleep(2)
    assert all(path.exists() for path in uploads), "uploads are named by content and shared: they expire by age"


def test_a_cameras_json_put_in_or_taken_out_by_hand_updates_its_note(open_page, tmp_path):
    page = open_page()
    page.click("#advanced")
    page.locator("#examples").get_by_text("Spot the cow").click()
    expect(page.locator("#views-note .note-ok")).to_be_visible()
    note = page.locator("#cameras-note")
    expect(note).to_contain_text("without it the default cube6 rig applies")
    page.set_input_files("#cameras input[type=file]", str(EXAMPLE.parent / "cow" / "cameras.json"))
    expect(note.locator(".note-ok")).to_have_text("Custom rig from cameras.json.")
    page.locator("#cameras").get_by_label("Clear").click()
    expect(note).to_contain_text("without it the default cube6 rig applies")
    (tmp_path / "cameras.json").write_text("{not json")
    page.set_input_files("#cameras input[type=file]", str(tmp_path / "cameras.json"))
    expect(note.locator(".note-error")).to_contain_text("cameras")


def test_a_wrong_file_count_is_shown_next_to_the_gallery_and_nothing_is_queued(open_page, live_server, screenshots):
    page = open_page()
    before = live_server.job_ids()
    page.set_input_files("#views input[type=file]", [str(path) for path in views_of(EXAMPLE)[:5]])
    page.set_input_files("#depths input[type=file]", [str(path) for path in depths_of(EXAMPLE)])
    error = page.locator("#views-note .note-error")
    expect(error).to_contain_text("Expected exactly 6 views (front, right, back, left, top, bottom), got 5.")
    expect(error).to_contain_text("Missing: bottom.")
    page.click("#reconstruct")
    expect(error).to_contain_text("got 5. Missing: bottom.")
    page.wait_for_timeout(1000)
    expect(page.locator("#job-status")).to_contain_text("No job yet")
    expect(page.locator("#cancel")).to_be_disabled()
    assert live_server.job_ids() == before
    page.screenshot(path=screenshots / "05-wrong-count.png", full_page=True)
    page.set_viewport_size({"width": 420, "height": 900})
    assert page.locator("#job-status").bounding_box()["y"] > page.locator("#reconstruct").bounding_box()["y"]
    page.screenshot(path=screenshots / "12-narrow.png", full_page=True)

    unavailable = [model for model in live_server.http.get("/models").json() if not model["available"]]
    if unavailable:
        page.set_input_files("#views input[type=file]", [str(path) for path in views_of(EXAMPLE)[5:]])
        expect(page.locator("#views-note .note-ok")).to_be_visible()
        page.locator("#model input").click()
        page.get_by_role("option", name=re.compile(re.escape(unavailable[0]["label"]))).click()
        expect(page.locator("#model-note")).to_contain_text("Not available on this deployment")
        page.click("#reconstruct")
        expect(page.locator("#model-note .note-error")).to_contain_text("cannot run on this deployment")
        assert live_server.job_ids() == before


def test_cancel_asks_in_a_modal_dialog_no_or_escape_keep_the_job_running_yes_cancels_it(
    open_page, live_server, slow_inputs, screenshots
):
    page = open_page()
    page.set_input_files("#views input[type=file]", [str(path) for path in views_of(slow_inputs)])
    page.set_input_files("#depths input[type=file]", [str(path) for path in depths_of(slow_inputs)])
    expect(page.locator("#depths-note .note-ok")).to_contain_text("6 depth renders")
    page.click("#advanced")
    assert not overlapping(page.locator("#cameras [data-testid=block-label]"), page.locator("#cameras .icon-wrap"))
    texture = page.locator("#option-fusion-texture_size label")
    expect(texture).to_have_text(["none (vertex colours)", "512", "1024", "2048", "4096"])
    grid = page.locator("#option-fusion-grid_resolution input[type=number]")
    expect(grid).to_have_value(str(FUSION.resolve_options({})["grid_resolution"]))  # the registry's default
    page.wait_for_timeout(300)
    grid.fill(str(SLOW_OPTIONS["grid_resolution"]))
    grid.press("Tab")
    expect(page.locator("#option-fusion-grid_resolution input[type=range]")).to_have_value("512")
    page.click("#reconstruct")
    expect(page.locator("#job-status code")).to_be_visible()
    job_id = job_id_on_page(page)
    assert live_server.job(job_id)["options"].items() >= SLOW_OPTIONS.items()
    live_server.wait_for(job_id, lambda job: job["status"] == "processing" and job["progress"] >= 14, 60,
                         "the slow job to be fusing depth")

    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    cancel_box = page.locator("#cancel").bounding_box()
    page.click("#cancel")
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_have_attribute("role", "dialog")
    expect(dialog).to_have_attribute("aria-modal", "true")
    expect(dialog).to_contain_text(f"Cancel job {job_id}? The work done so far is lost.")
    expect(page.locator("#confirm-no")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#confirm-yes")).to_be_focused()  # Tab goes round inside the dialog
    page.keyboard.press("Shift+Tab")
    expect(page.locator("#confirm-no")).to_be_focused()
    assert_centred_in_viewport(page, dialog)
    page.screenshot(path=screenshots / "06-confirm-cancel.png")
    page.mouse.click(cancel_box["x"] + 10, cancel_box["y"] + 10)  # the page behind: covered
    page.mouse.click(5, 5)
    page.wait_for_timeout(500)
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.locator("#cancel")).to_be_focused()
    page.click("#cancel")
    expect(dialog).to_be_visible()
    page.click("#confirm-no")
    expect(dialog).to_be_hidden()
    progress = live_server.job(job_id)["progress"]
    later = live_server.wait_for(job_id, lambda job: job["progress"] > progress or job["status"] != "processing",
                                 30, "the job to keep running")
    assert later["status"] == "processing"
    expect(page.locator("#job-status .badge-processing")).to_be_visible()

    waiting = open_page(f"?job={submit_over_rest(live_server, EXAMPLE)}")
    expect(waiting.locator("#job-status .badge-queued")).to_be_visible()
    expect(waiting.locator("#job-status")).to_contain_text("Position 1 in the queue")
    expect(waiting.locator(PROGRESSBAR)).to_have_attribute("aria-valuenow", "0")
    expect(waiting.locator("#cancel")).to_be_disabled()
    waiting.screenshot(path=screenshots / "07-queued.png", full_page=True)

    page.click("#cancel")
    expect(dialog).to_be_visible()
    assert live_server.partial_output(job_id).is_dir()
    page.click("#confirm-yes")
    clicked = time.monotonic()
    expect(page.locator("#job-status .badge-cancelled")).to_be_visible(timeout=3000)
    assert time.monotonic() - clicked < 3
    assert live_server.job(job_id)["status"] == "cancelled"
    expect(dialog).to_be_hidden()
    expect(page.locator("#reconstruct")).to_be_enabled()
    expect(page.locator("#cancel")).to_be_disabled()
    page.screenshot(path=screenshots / "08-cancelled.png", full_page=True)
    wait_until(lambda: not live_server.partial_output(job_id).exists(), 15, what="the worker to stop the job")
    wait_until(lambda: not live_server.inputs(job_id).exists(), 15, what="the cancelled job's inputs to be removed")


def test_the_progress_bar_stays_through_a_minute_long_job_and_a_reload(open_page, live_server, screenshots):
    for earlier in live_server.job_ids():  # the job starts at once: a minute of it runs while the bar is sampled
        live_server.wait_for(earlier, lambda job: job["status"] not in ACTIVE, 90, "the earlier jobs to end")
    page = open_page()
    page.locator("#examples").get_by_text("Spot the cow").click()
    expect(page.locator("#depths-note .note-ok")).to_be_visible()
    page.locator("#model input").click()
    page.get_by_role("option", name=re.compile("nvdiffrec")).click()
    page.click("#advanced")
    expect(page.locator("#option-nvdiffrec-refine_shape label")).to_have_text(["colours only", "shape and colours"])
    # Refinement on the colours alone reaches the automatic count early; asked for more, it runs its CPU budget.
    iterations = page.locator("#option-nvdiffrec-iterations input[type=number]")
    page.wait_for_timeout(300)
    iterations.fill("5000")
    iterations.press("Tab")
    expect(page.locator("#option-nvdiffrec-iterations input[type=range]")).to_have_value("5000")
    page.click("#reconstruct")
    expect(page.locator(PROGRESSBAR)).to_be_visible()
    job_id = job_id_on_page(page)
    assert live_server.job(job_id)["options"]["iterations"] == 5000
    samples = []
    for second in range(60):
        samples.append(page.evaluate(SAMPLE_PROGRESS))
        if second in PROGRESS_SHOTS:
            page.screenshot(path=screenshots / PROGRESS_SHOTS[second])
        page.wait_for_timeout(1000)
    shown = [sample for sample in samples if sample is not None]
    assert len(shown) >= 0.95 * len(samples), samples
    values = [sample["value"] for sample in shown]
    assert values == sorted(values) and values[-1] > values[0], values
    elapsed = [seconds(sample["elapsed"]) for sample in shown]
    assert elapsed == sorted(elapsed) and elapsed[-1] - elapsed[0] >= 50, elapsed
    assert all(sample["left"] == "" or sample["left"].endswith(" left") for sample in shown)
    assert any(sample["left"] for sample in shown[-15:]), shown[-15:]  # a steady refinement: a time left
    assert live_server.job(job_id)["status"] == "processing"

    reloaded = open_page(f"?job={job_id}")
    expect(reloaded.locator(PROGRESSBAR)).to_be_visible()
    again = reloaded.evaluate(SAMPLE_PROGRESS)
    assert again["value"] >= values[-1] and seconds(again["elapsed"]) >= elapsed[-1]
    reloaded.screenshot(path=screenshots / "11-progress-reloaded.png")
    page.click("#cancel")
    page.click("#confirm-yes")
    expect(page.locator("#job-status .badge-cancelled")).to_be_visible(timeout=5000)
    expect(reloaded.locator("#job-status .badge-cancelled")).to_be_visible(timeout=5000)
    expect(reloaded.locator(PROGRESSBAR)).to_have_count(0)


def test_a_job_is_re_attached_from_the_url_and_every_session_shares_one_served_copy(open_page, live_server):
    job_id = submit_over_rest(live_server, EXAMPLE)
    live_server.wait_for(job_id, lambda job: job["status"] == "completed", 90, "the REST job to complete")
    page = open_page(f"?job={job_id}")
    expect(page.locator("#job-status .badge-completed")).to_be_visible(timeout=20_000)
    expect(page.locator("#job-id input, #job-id textarea")).to_have_value(job_id)
    expect(page.locator("#viewer canvas")).to_be_visible(timeout=10_000)
    expect(page.locator("#cancel")).to_be_disabled()
    second = open_page(f"?job={job_id}")
    expect(second.locator("#viewer canvas")).to_be_visible(timeout=20_000)
    assert len(list(live_server.gradio_dir.rglob(f"{job_id}.glb"))) == 1


def test_a_failed_job_shows_its_error_sentence(open_page, tmp_path):
    blank_view = np.zeros((64, 64, 4), np.uint8)
    blank_depth = np.zeros((64, 64), np.uint16)
    for index, slot in enumerate(SLOTS):
        Image.fromarray(blank_view).save(tmp_path / f"view_{index}_{slot}.png")
        Image.fromarray(blank_depth).save(tmp_path / f"depth_{index}_{slot}.png")
    page = open_page()
    page.set_input_files("#views input[type=file]", [str(path) for path in views_of(tmp_path)])
    page.set_input_files("#depths input[type=file]", [str(path) for path in depths_of(tmp_path)])
    expect(page.locator("#depths-note .note-ok")).to_be_visible()
    page.click("#reconstruct")
    card = page.locator("#job-status")
    expect(card.locator(".badge-failed")).to_be_visible(timeout=60_000)
    expect(card).to_contain_text("Every silhouette is empty, so there is no object to reconstruct")
    expect(card).not_to_contain_text("Traceback")
    expect(page.locator("#reconstruct")).to_be_enabled()


def test_an_unknown_job_id_is_answered_in_words(open_page):
    page = open_page()
    page.fill("#job-id input, #job-id textarea", "zzzzzzzz")
    page.click("#track")
    expect(page.locator("#job-status")).to_contain_text("There is no job 'zzzzzzzz'")


def seconds(clock: str) -> int:
    """"1:05" -> 65."""
    return sum(int(part) * 60**power for power, part in enumerate(reversed(clock.split(":"))))


def overlapping(first, second) -> bool:
    a, b = first.bounding_box(), second.bounding_box()
    return a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"] and \
        a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"]


def assert_centred_in_viewport(page: Page, locator) -> None:
    box, view = locator.bounding_box(), page.viewport_size
    assert 0 <= box["x"] and box["x"] + box["width"] <= view["width"], (box, view)
    assert 0 <= box["y"] and box["y"] + box["height"] <= view["height"], (box, view)
    assert abs(box["x"] + box["width"] / 2 - view["width"] / 2) <= 2, (box, view)
    assert abs(box["y"] + box["height"] / 2 - view["height"] / 2) <= 2, (box, view)


def uploaded_copies(live_server, originals: list[Path]) -> list[Path]:
    """The server's copies of these files in its Gradio cache (named by content, so matched by bytes)."""
    wanted = {path.read_bytes() for path in originals}
    return [path for path in live_server.gradio_dir.rglob("*.png") if path.read_bytes() in wanted]


def submit_over_rest(live_server, folder: Path) -> str:
    files = [("views", (path.name, path.read_bytes(), "image/png")) for path in views_of(folder)]
    files += [("depth_renders", (path.name, path.read_bytes(), "image/png")) for path in depths_of(folder)]
    response = live_server.http.post("/jobs", files=files, data={"options": json.dumps(QUICK_OPTIONS)})
    assert response.status_code == 200, response.text
    return response.json()["job_id"]
