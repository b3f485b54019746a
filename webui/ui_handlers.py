"""The page's event handlers: turn Studio's answers into component updates.

Each handler returns a dict keyed by the Page's components, so it updates only
what it names. The polling handler is an async generator under a shared limit of
studio.FOLLOWERS loops (no user waits for another user's loop, yet a stranger
cannot start loops without end); the 3D viewer is set by `finish`, a plain
function chained after it, because Model3D stays blank when a generator sets it.
"""

from __future__ import annotations

import time
from typing import AsyncIterator

import gradio as gr

from worker.errors import ReconError
from worker.jobs.record import ACTIVE, COMPLETED, Job

from .fragments import error_card_html, model_note_html, note_html, status_html
from .input_notes import ERROR, Note, error_sentence, input_field
from .page import Page
from .progress import Profiles, RunClock
from .report_view import summarize_report_file
from .served_results import ServedResults
from .slots import arrange, gallery_items, missing_slots, paths_in_slot_order
from .studio import Studio, Tokens


def _naming_missing(note: Note, gallery: list | None) -> Note:
    """An error note about a gallery short of files also names the empty slots, e.g. "Missing: bottom."."""
    missing = missing_slots(gallery)
    if note.level != ERROR or not missing:
        return note
    return Note(ERROR, f"{note.text.rstrip('.')}. Missing: {', '.join(missing)}.")


class UiHandlers:
    def __init__(self, studio: Studio, results: ServedResults, page: Page) -> None:
        self.studio = studio
        self.results = results
        self.page = page
        self.profiles = Profiles()

    def arrange(self, value: list | None) -> list:
        """After an upload: put each file in its slot."""
        return arrange(gallery_items(value))

    def check(self, views: list | None, depths: list | None, cameras: str | None, request: gr.Request) -> dict:
        """Refresh the notes next to the inputs, before anything is queued."""
        notes = self.studio.checker.check_inputs(paths_in_slot_order(views), paths_in_slot_order(depths), cameras,
                                                 self.studio.client_of(request))
        page = self.page
        return {
            page.views_note: note_html(_naming_missing(notes["views"], views)),
            page.depths_note: note_html(_naming_missing(notes["depth_renders"], depths)),
            page.cameras_note: note_html(notes["cameras"]),
        }

    def describe_model(self, name: str) -> dict:
        """Show the chosen model's description, availability and options."""
        page = self.page
        return {
            page.model_note: model_note_html(name, self.studio.config),
            **{group: gr.update(visible=model == name) for model, group in page.option_groups.items()},
        }

    def _following(self, job: Job, position: int | None, tokens: Tokens) -> dict:
        """The page while it follows `job`: inputs locked, Cancel enabled when this session may cancel it."""
        page = self.page
        owned = self.studio.owns(tokens, job.job_id)
        return {
            page.active_job: job.job_id, page.job_box: job.job_id,
            page.status: status_html(job, position, owned),
            page.viewer: None, page.summary: "",
            page.download_glb: gr.update(visible=False, value=None),
            page.download_report: gr.update(visible=False, value=None),
            page.comparison: gr.update(visible=False, value=None), page.turntable: gr.update(visible=False, value=None),
            page.reconstruct: gr.update(interactive=False), page.track: gr.update(interactive=False),
            page.cancel: gr.update(interactive=owned and job.status in ACTIVE),
            page.confirm_dialog: gr.update(visible=False),
        }

    def reconstruct(self, values: dict, request: gr.Request) -> dict:
        """Queue a job from the page's inputs, or put the reason it cannot be queued next to the input at fault."""
        page = self.page
        model = values[page.model]
        options = {name: int(values[slider]) for name, slider in page.options.get(model, {}).items()}
        cleared = {page.model_note: model_note_html(model, self.studio.config), page.options_note: ""}
        try:
            job, tokens = self.studio.submit(
                paths_in_slot_order(values[page.views]), paths_in_slot_order(values[page.depths]),
                values[page.cameras], model, options, values[page.tokens], self.studio.client_of(request),
            )
        except ReconError as error:
            note = {
                "views": page.views_note, "depth_renders": page.depths_note, "cameras": page.cameras_note,
                "model_type": page.model_note, "options": page.options_note,
            }.get(input_field(error.field) or "", page.options_note)
            gallery = {page.views_note: values[page.views], page.depths_note: values[page.depths]}.get(note)
            text = _naming_missing(Note(ERROR, error_sentence(error)), gallery)
            return {**cleared, page.active_job: "", note: note_html(text)}
        position = self.studio.position(job)
        return {**cleared, **self._following(job, position, tokens), page.tokens: tokens}

    def track(self, job_id: str, tokens: Tokens) -> dict:
        """Re-attach the page to a job by its id."""
        page = self.page
        try:
            job = self.studio.job(job_id or "")
        except ReconError as error:
            return {page.active_job: "", page.status: error_card_html(error_sentence(error))}
        return self._following(job, self.studio.position(job), tokens)

    def attach_from_url(self, tokens: Tokens, request: gr.Request) -> dict:
        """`?job=<id>` in the page's URL re-attaches to that job."""
        job_id = request.query_params.get("job", "") if request else ""
        return self.track(job_id, tokens) if job_id else {self.page.active_job: ""}

    async def follow(self, job_id: str, tokens: Tokens) -> AsyncIterator[dict]:
        """Poll the job store and redraw the job card and its progress bar until the job ends."""
        if not job_id:
            yield {self.page.status: gr.skip()}
            return
        run = RunClock(self.profiles)
        try:
            async for job, position in self.studio.watch(job_id):
                now = time.time()
                left = run.observe(job, now)
                yield {self.page.status: status_html(job, position, self.studio.owns(tokens, job_id), left, now)}
        except ReconError as error:
            yield {self.page.status: error_card_html(error_sentence(error))}

    def finish(self, job_id: str, tokens: Tokens) -> dict:
        """Unlock the inputs; for a completed job show the mesh, the downloads and the report summary."""
        page = self.page
        update = {
            page.reconstruct: gr.update(interactive=True), page.track: gr.update(interactive=True),
            page.cancel: gr.update(interactive=False), page.confirm_dialog: gr.update(visible=False),
        }
        if not job_id:
            return update
        try:
            job = self.studio.job(job_id)
            update[page.status] = status_html(job, None, self.studio.owns(tokens, job_id))
            if job.status != COMPLETED:
                return update
            glb = self.studio.output(job, "result")
            report = self.studio.output(job, "report")
        except ReconError as error:
            update[page.status] = error_card_html(error_sentence(error))
            return update
        glb_copy = self.results.serve(glb, f"{job.job_id}.glb")
        report_copy = self.results.serve(report, f"{job.job_id}-report.json")
        return {
            **update,
            page.viewer: str(glb_copy),
            page.download_glb: gr.update(value=str(glb_copy), visible=True),
            page.download_report: gr.update(value=str(report_copy), visible=True),
            page.summary: summarize_report_file(report),
            page.comparison: self._preview(job, "comparison", f"{job.job_id}-comparison.png"),
            page.turntable: self._preview(job, "turntable", f"{job.job_id}-turntable.webp"),
        }

    def _preview(self, job: Job, kind: str, name: str) -> dict:
        """A picture of the fit, shown; hidden for a job completed before the worker drew them."""
        try:
            picture = self.results.serve(self.studio.output(job, kind), name)
        except ReconError:
            return gr.update(visible=False, value=None)
        return gr.update(value=str(picture), visible=True)

    def open_confirm(self, job_id: str) -> dict:
        page = self.page
        return {
            page.confirm_dialog: gr.update(visible=True),
            page.confirm_text: f"**Cancel job `{job_id}`?** The work done so far is lost.",
        }

    def close_confirm(self) -> dict:
        return {self.page.confirm_dialog: gr.update(visible=False)}

    def confirm_cancel(self, job_id: str, tokens: Tokens) -> dict:
        """"Yes, cancel": the two-step cancellation through JobService; the polling loop then sees `cancelled`."""
        page = self.page
        try:
            self.studio.cancel_confirmed(job_id, tokens)
        except ReconError as error:
            return {page.confirm_text: f"Could not cancel: {error_sentence(error)}"}
        return {page.confirm_dialog: gr.update(visible=False), page.cancel: gr.update(interactive=False)}
