"""The named endpoints for `gradio_client`: /submit, /status, /wait, /cancel, /result.

They are API-only events (no trigger in the page) on hidden components, so the
client sees typed, documented parameters; the session's job tokens stay in the
same gr.State as the page's, which is how /cancel knows the jobs this client
submitted. Every other event of the app is private. The "Use via API" page shows
examples that run: the shipped Spot inputs (paths from the repository root, as
in the README) and a job id's shape, not Gradio's generic bus photo and PDF.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, TypeVar

import gradio as gr

from worker.errors import ReconError
from worker.jobs.files import download_name
from worker.jobs.models import MODELS
from worker.jobs.result_formats import FORMATS
from worker.recon.rig import SLOT_NAMES

from .fragments import progress_text
from .input_notes import error_sentence
from .served_results import ServedResults
from .slots import gallery_items
from .studio import FOLLOWERS, Studio, Tokens

EXAMPLE_FOLDER = "examples/spot"
EXAMPLE_JOB_ID = "k3m8xq2p"
Shown = TypeVar("Shown", bound=gr.components.Component)


def _user_error(error: ReconError) -> gr.Error:
    return gr.Error(error_sentence(error), print_exception=False)


def example_gallery(kind: str) -> list[dict]:
    """The Spot example's six `kind` files (view, depth) in slot order, as the API page shows a Gallery's value."""
    paths = [f"{EXAMPLE_FOLDER}/{kind}_{index}_{slot}.png" for index, slot in enumerate(SLOT_NAMES)]
    return [{"image": {"path": path, "url": path, "meta": {"_type": "gradio.FileData"}}, "caption": None}
            for path in paths]


def _with_example(component: Shown, example: Any) -> Shown:
    """The API page shows a parameter's initial value, or else its component's example_payload(): a required
    input gets no initial value and this example."""
    component.value = None
    component.example_payload = lambda: example
    return component


def add_client_api(studio: Studio, results: ServedResults, tokens: gr.State, default_model: str) -> None:
    with gr.Column(visible=False):
        views = _with_example(gr.Gallery(label="Views (6, slot order: front, right, back, left, top, bottom)",
                                         type="filepath"), example_gallery("view"))
        depth_renders = _with_example(gr.Gallery(label="Depth renders (6, same order and size)", type="filepath"),
                                      example_gallery("depth"))
        model = gr.Dropdown(choices=list(MODELS), value=default_model, label="Model")
        options = gr.JSON(value={}, label="Model options, e.g. {\"grid_resolution\": 256}")
        cameras = _with_example(gr.File(label="cameras.json (optional)", type="filepath", file_types=[".json"]), None)
        job_id = _with_example(gr.Textbox(label="Job id"), EXAMPLE_JOB_ID)
        confirm = gr.Checkbox(value=False, label="Confirm (false: request, true: confirm)")
        record = gr.JSON(label="Job record")
        outcome = gr.JSON(label="Cancellation outcome")
        fmt = gr.Dropdown(choices=list(FORMATS), value="glb", allow_custom_value=True,  # refused in words below
                          label="Format: glb, obj (zip with texture), ply, stl, usdz")
        mesh = gr.File(label="Mesh file")

    def submit(
        views: list, depth_renders: list, model: str, options: dict | None, tokens: Tokens, request: gr.Request,
        cameras: str | None = None,
    ) -> tuple[str, Tokens]:
        try:
            if options is not None and not isinstance(options, dict):
                raise ReconError('options must be a JSON object, e.g. {"grid_resolution": 256}', field="options")
            job, tokens = studio.submit(
                [path for path, _ in gallery_items(views)], [path for path, _ in gallery_items(depth_renders)],
                cameras, model, options, tokens, studio.client_of(request),
            )
        except ReconError as error:
            raise _user_error(error) from None
        return job.job_id, tokens

    def status(job_id: str) -> dict:
        try:
            job = studio.job(job_id)
            return studio.record(job, studio.position(job))
        except ReconError as error:
            raise _user_error(error) from None

    async def wait(job_id: str, progress: gr.Progress = gr.Progress()) -> AsyncIterator[dict]:
        try:
            async for job, position in studio.watch(job_id):
                progress(job.progress / 100, desc=progress_text(job, position))
                yield studio.record(job, position)
        except ReconError as error:
            raise _user_error(error) from None

    def cancel(job_id: str, confirm: bool, tokens: Tokens) -> dict:
        try:
            result = studio.cancel(job_id, tokens, bool(confirm))
        except ReconError as error:
            raise _user_error(error) from None
        return {"status": result.status, "message": result.message}

    def result(job_id: str, format: str = "glb") -> str:  # "format": the parameter's name in the client API
        try:
            job = studio.job(job_id)
            path = studio.service.result_file(job.job_id, format)
        except ReconError as error:
            raise _user_error(error) from None
        return str(results.serve(path, download_name(job.job_id, format)))

    gr.on([], submit, [views, depth_renders, model, options, tokens, cameras], [job_id, tokens], api_name="submit",
          api_description="Queue a job: 6 views and 6 depth renders in slot order, a model and its options. "
                          f"Returns the job id. The example's files are the shipped {EXAMPLE_FOLDER} inputs: run it "
                          "from the repository root.")
    gr.on([], status, [job_id], [record], api_name="status",
          api_description="The job record: status, progress 0-100, stage, queue_position, warnings, error.")
    gr.on([], wait, [job_id], [record], api_name="wait", concurrency_limit=FOLLOWERS, concurrency_id="follow",
          api_description="Streams the job record whenever it changes (with progress) until the job ends.")
    window = f"{studio.config.cancel_confirm_window_s:.0f} seconds"
    gr.on([], cancel, [job_id, confirm, tokens], [outcome], api_name="cancel",
          api_description=f"Two steps, as the REST API: confirm=false requests, then confirm=true within {window} "
                          "cancels. Only jobs submitted by this client session.")
    gr.on([], result, [job_id, fmt], [mesh], api_name="result",
          api_description="The mesh of a completed job: glb (default), obj (a zip with its material and texture), "
                          "ply (vertex colours), stl or usdz; each format but glb is made on first request.")
