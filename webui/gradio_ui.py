"""The page: layout and event wiring. What each event does lives in ui_handlers.

Inputs first (the six-slot galleries, examples, model and its options), then the
result (the job card with its progress bar, the 3D viewer, the downloads, the
report summary); side by side on a wide screen, one above the other on a narrow
one. Under both, once a job completes, the pictures of the fit (comparison sheet,
turntable). The cancel confirmation is a modal dialog over the whole page. Every
page event is private; the named client endpoints come from client_api.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from worker.config import Settings, settings
from worker.errors import ReconError
from worker.jobs.models import MODELS, ModelSpec, OptionSpec, availability, best_available_model
from worker.jobs.service import JobService
from worker.recon.rig import SLOT_NAMES

from .client_api import add_client_api
from .examples import examples_table
from .format_downloads import format_downloads
from .fragments import IDLE_STATUS, model_note_html, note_html
from .mesh_inputs import MeshSection
from .page import Page
from .served_results import ServedResults
from .studio import FOLLOWERS, Studio
from .ui_handlers import UiHandlers

INPUT_FORMAT_LINK = "docs/INPUT_FORMAT.md"
UPLOAD_SWEEP_S = 600
UPLOAD_MAX_AGE_S = 3600  # uploads wait only for a Reconstruct click: submitted inputs are copied into the job
OPTION_CHOICES = {"texture_size": (0, 512, 1024, 2048, 4096), "refine_shape": (0, 1)}
CHOICE_LABELS = {("texture_size", 0): "none (vertex colours)", ("refine_shape", 0): "colours only",
                 ("refine_shape", 1): "shape and colours"}
PAGE_SCRIPT = (Path(__file__).parent / "page.js").read_text()
EVENT_QUEUE_SIZE = 256  # events waiting for a worker thread; past it Gradio answers "queue full"
# Gradio's queue looks for new events every 1 ms and for progress every 10 ms while idle: 8% of a core for a page
# nobody uses (measured on a bare Blocks). 20 ms and 50 ms cost a page event that much latency at most.
QUEUE_IDLE_POLL_S = 0.02
PROGRESS_IDLE_POLL_S = 0.05
JOB_IN_URL = """(jobId) => {
  const url = new URL(window.location.href);
  if (jobId && url.searchParams.get("job") !== jobId) {
    url.searchParams.set("job", jobId);
    window.history.replaceState(null, "", url);
  }
}"""

HEADER = f"""
<h1>Multiview Studio</h1>
<p class="tagline">Six views and six depth renders of an object in, a textured 3D mesh out.</p>
<p>Give one view and one depth render per camera slot ({", ".join(SLOT_NAMES)}): PNGs of the same square size,
the views 8-bit RGB or RGBA, the depth renders one-channel 8- or 16-bit with 0 as background. The cameras follow the
default cube6 rig unless you upload a cameras.json under Advanced; the
<a href="{INPUT_FORMAT_LINK}" target="_blank">input format</a> has every detail.</p>
"""


def model_choices(config: Settings) -> list[tuple[str, str]]:
    reasons = availability(config)
    return [
        (spec.label if reasons[name] is None else f"{spec.label} (unavailable: {reasons[name]})", name)
        for name, spec in MODELS.items()
    ]


def _accepts(spec: ModelSpec, option: OptionSpec, value: int) -> bool:
    try:
        spec.resolve_options({option.name: value})
    except ReconError:
        return False
    return True


def _option_input(spec: ModelSpec, option: OptionSpec) -> gr.Slider | gr.Radio:
    """A slider over the option's range, or for an option with a few meaningful values the valid ones to pick."""
    elem_id = f"option-{spec.name}-{option.name}"
    if option.name in OPTION_CHOICES:
        values = [value for value in OPTION_CHOICES[option.name] if _accepts(spec, option, value)]
        return gr.Radio(
            [(CHOICE_LABELS.get((option.name, value), str(value)), value) for value in values], value=option.default,
            label=option.label, info=option.help, elem_id=elem_id,
        )
    return gr.Slider(
        option.minimum, option.maximum, value=option.default, step=1, label=option.label, info=option.help,
        elem_id=elem_id,
    )


def _gallery(title: str, hint: str, elem_id: str) -> gr.Gallery:
    gr.HTML(f"<div class='section-title'><b>{title}</b> <span>{hint}</span></div>", elem_classes="section-head")
    return gr.Gallery(
        show_label=False, type="filepath", interactive=True, columns=6, rows=1, height=136, object_fit="contain",
        file_types=["image"], elem_id=elem_id, allow_preview=True,
    )


def _inputs_column(chosen_model: str, studio: Studio) -> dict:
    hints = studio.checker.check_inputs([], [], None)
    parts: dict = {}
    parts["views"] = _gallery("Views", "one per slot: front, right, back, left, top, bottom", "views")
    parts["views_note"] = gr.HTML(note_html(hints["views"]), elem_id="views-note", elem_classes="input-note")
    parts["depths"] = _gallery("Depth renders", "same slots and size; 16-bit greyscale PNG, 0 = background", "depths")
    parts["depths_note"] = gr.HTML(note_html(hints["depth_renders"]), elem_id="depths-note", elem_classes="input-note")
    cameras = gr.File(
        label="cameras.json (optional custom rig)", file_types=[".json"], type="filepath", elem_id="cameras",
        height=120, render=False,
    )
    examples = examples_table(parts["views"], parts["depths"], cameras)
    mesh = MeshSection(studio.config, studio.service.quotas).fills(parts["views"], parts["depths"], cameras)
    parts["fills"] = [mesh] if examples is None else [examples.load_input_event, mesh]
    parts["model"] = gr.Dropdown(
        choices=model_choices(studio.config), value=chosen_model, label="Model", elem_id="model", interactive=True,
    )
    parts["model_note"] = gr.HTML(
        model_note_html(chosen_model, studio.config), elem_id="model-note", elem_classes="input-note"
    )
    parts["option_groups"], parts["options"] = {}, {}
    with gr.Accordion("Advanced", open=False, elem_id="advanced"):
        parts["cameras"] = cameras.render()
        parts["cameras_note"] = gr.HTML(note_html(hints["cameras"]), elem_id="cameras-note", elem_classes="input-note")
        for name, spec in MODELS.items():
            with gr.Column(visible=name == chosen_model, elem_id=f"options-{name}") as group:
                parts["option_groups"][name] = group
                parts["options"][name] = {option.name: _option_input(spec, option) for option in spec.options}
        parts["options_note"] = gr.HTML(elem_id="options-note", elem_classes="input-note")
    with gr.Row():
        parts["reconstruct"] = gr.Button("Reconstruct", variant="primary", size="lg", elem_id="reconstruct", scale=3)
        parts["cancel"] = gr.Button("Cancel", size="lg", interactive=False, elem_id="cancel", scale=1)
    return parts


def _confirm_dialog() -> dict:
    """The cancel confirmation: an overlay over the whole page holding the dialog (page.js makes it modal)."""
    parts: dict = {}
    with gr.Column(visible=False, elem_id="confirm-modal") as overlay:
        parts["confirm_dialog"] = overlay
        with gr.Column(elem_id="confirm-dialog"):
            parts["confirm_text"] = gr.Markdown(elem_id="confirm-text")
            with gr.Row(elem_id="confirm-buttons"):
                parts["confirm_yes"] = gr.Button("Yes, cancel", variant="stop", elem_id="confirm-yes")
                parts["confirm_no"] = gr.Button("No, keep running", elem_id="confirm-no")
    return parts


def _result_column() -> dict:
    parts: dict = {}
    parts["status"] = gr.HTML(IDLE_STATUS, elem_id="job-status", js_on_load=PAGE_SCRIPT)
    parts["viewer"] = gr.Model3D(
        label="Result", interactive=False, height=460, elem_id="viewer", clear_color=(0.97, 0.98, 0.99, 1.0),
    )
    with gr.Row():
        parts["download_glb"] = gr.DownloadButton(
            "Download GLB", visible=False, elem_id="download-glb", variant="primary"
        )
        parts["download_report"] = gr.DownloadButton("Download report.json", visible=False, elem_id="download-report")
    parts["formats"] = format_downloads()
    parts["summary"] = gr.HTML(elem_id="report-summary")
    with gr.Row(elem_id="track-row", equal_height=True):
        parts["job_box"] = gr.Textbox(
            show_label=False, placeholder="Re-attach to a job: paste its id, e.g. k3m8xq2p", max_lines=1, scale=4,
            container=False, elem_id="job-id",
        )
        parts["track"] = gr.Button("Track", scale=1, size="md", elem_id="track")
    return parts


def _previews() -> dict:
    """Pictures of the fit, once a job completes: the page's full width, so that the sheet's six columns read
    (its layout: worker/recon/previews.py); the sheet names its own rows and columns, so no label covers them."""
    parts: dict = {}
    with gr.Row(equal_height=False, elem_id="previews"):
        parts["comparison"] = gr.Image(
            label="Comparison with the inputs", show_label=False, type="filepath", interactive=False, visible=False,
            buttons=["download", "fullscreen"], elem_id="comparison", scale=4,
        )
        parts["turntable"] = gr.Image(
            label="Turntable", type="filepath", interactive=False, visible=False, buttons=["download"],
            elem_id="turntable", scale=1, min_width=280,
        )
    return parts


def _wire(demo: gr.Blocks, page: Page, handlers: UiHandlers) -> None:
    private = {"api_visibility": "private"}
    checked = [page.views, page.depths, page.cameras]
    notes = [page.views_note, page.depths_note, page.cameras_note]
    for gallery in (page.views, page.depths):
        gallery.upload(handlers.arrange, [gallery], [gallery], show_progress="hidden", **private).then(
            handlers.check, checked, notes, show_progress="hidden", **private
        )
    # A fill sets all three inputs, but the change it fires in one can carry the others' old values, and that
    # check's notes can be drawn last: a fill is followed by its own check, and the cameras input (which every
    # fill sets) is checked only on what a person does to it.
    for trigger in (page.views.change, page.depths.change, page.cameras.upload, page.cameras.clear,
                    *(fill.then for fill in page.fills)):
        trigger(handlers.check, checked, notes, show_progress="hidden", **private)
    page.model.change(
        handlers.describe_model, [page.model], [page.model_note, *page.option_groups.values()],
        show_progress="hidden", **private,
    )

    finish_outputs = [
        page.status, page.viewer, page.download_glb, page.download_report, page.summary, page.comparison,
        page.turntable,
        page.reconstruct, page.cancel, page.track, page.confirm_dialog,
    ]
    start_outputs = finish_outputs + [page.active_job, page.job_box]

    def then_follow(event: gr.events.Dependency) -> None:
        """Put the job in the URL (a reload re-attaches), poll until it ends (the job card carries the progress
        bar: Gradio's own overlay is hidden), then show the result."""
        event.then(None, [page.job_box], None, js=JOB_IN_URL, **private).then(
            handlers.follow, [page.active_job, page.tokens], [page.status], show_progress="hidden",
            concurrency_limit=FOLLOWERS, concurrency_id="follow", **private,
        ).then(handlers.finish, [page.active_job, page.tokens], finish_outputs, show_progress="hidden", **private)

    option_inputs = [field for group in page.options.values() for field in group.values()]
    then_follow(page.reconstruct.click(
        handlers.reconstruct, {page.views, page.depths, page.cameras, page.model, page.tokens, *option_inputs},
        start_outputs + [page.tokens, page.views_note, page.depths_note, page.cameras_note, page.model_note,
                         page.options_note],
        show_progress="hidden", api_name="reconstruct", **private,
    ))
    for trigger in (page.track.click, page.job_box.submit):
        then_follow(
            trigger(handlers.track, [page.job_box, page.tokens], start_outputs, show_progress="hidden", **private)
        )
    then_follow(demo.load(handlers.attach_from_url, [page.tokens], start_outputs, show_progress="hidden", **private))

    page.cancel.click(
        handlers.open_confirm, [page.active_job], [page.confirm_dialog, page.confirm_text], queue=False, **private
    )
    page.confirm_no.click(handlers.close_confirm, None, [page.confirm_dialog], queue=False, **private)
    page.confirm_yes.click(
        handlers.confirm_cancel, [page.active_job, page.tokens], [page.confirm_dialog, page.confirm_text, page.cancel],
        queue=False, **private,
    )


def build_demo(service: JobService, config: Settings = settings) -> gr.Blocks:
    """The page and the client API for one JobService; mounted at / by webui.server."""
    studio = Studio(service, config)
    served = ServedResults(config.upload_folder)
    chosen = best_available_model(config)
    with gr.Blocks(title="Multiview Studio", delete_cache=(UPLOAD_SWEEP_S, UPLOAD_MAX_AGE_S)) as demo:
        tokens = gr.State({})
        active_job = gr.State("")
        gr.HTML(HEADER, elem_id="header")
        with gr.Row(equal_height=False):
            with gr.Column(scale=6, min_width=420):
                inputs = _inputs_column(chosen, studio)
            with gr.Column(scale=5, min_width=420):
                results = _result_column()
        previews = _previews()
        dialog = _confirm_dialog()
        formats = results.pop("formats")
        page = Page(tokens=tokens, active_job=active_job, **inputs, **results, **previews, **dialog)
        _wire(demo, page, UiHandlers(studio, served, page))
        formats.wire(studio, served, page.viewer, page.active_job)
        add_client_api(studio, served, tokens, chosen)
    demo.queue(default_concurrency_limit=8, max_size=EVENT_QUEUE_SIZE)
    demo._queue.sleep_when_free = QUEUE_IDLE_POLL_S
    demo._queue.progress_update_sleep_when_free = PROGRESS_IDLE_POLL_S
    return demo
