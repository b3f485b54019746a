"""What the page and the client API do with jobs, on top of JobService.

Both the browser page and the `gradio_client` endpoints go through here, so they
check inputs, submit, follow and cancel in exactly one way: the same upload
validation as the REST API, jobs queued through JobService (never a direct
call), and cancellation only of jobs whose token this session holds.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Sequence

import gradio as gr

from worker.config import Settings
from worker.errors import FileValidationError, JobForbiddenError, ReconError
from worker.jobs.models import MODELS, availability, best_available_model
from worker.jobs.record import TERMINAL, Job
from worker.jobs.service import CancelOutcome, JobService
from worker.jobs.uploads import VIEW_COUNT, validate_upload_files
from worker.recon.rig import SLOT_NAMES

from .upload_guard import UploadPaths

Tokens = dict[str, str]
"""Job id -> job token, for the jobs this session submitted; kept in the session's gr.State."""

FOLLOWERS = 256
"""Progress loops (page and /wait) running at once; each polls the job store a few times a second."""
CHECKS_PER_MINUTE = 60
"""Input checks that decode files, per client; repeated checks of the same files are answered from memory."""
CHECK_MEMORY = 256

IDLE, OK, WARNING, ERROR = "idle", "ok", "warning", "error"
INPUT_FIELDS = ("views", "depth_renders", "cameras", "model_type", "options")
SLOT_LIST = ", ".join(SLOT_NAMES)
_INDEXED_FIELD = re.compile(r"^(views|depth_renders)\[(\d)\]")
_VERBS = {"is", "has", "must", "contains"}


@dataclass(frozen=True)
class Note:
    """A sentence shown next to one input: idle (a hint), ok, warning or error."""

    level: str
    text: str


def input_field(field: str | None) -> str | None:
    """The input a validation error belongs to: `depth_renders[3]` -> `depth_renders`."""
    if not field:
        return None
    return next((name for name in INPUT_FIELDS if field == name or field.startswith((name + "[", name + "."))), None)


def _subject(field: str) -> str:
    match = _INDEXED_FIELD.match(field)
    if match:
        index = int(match.group(2))
        return f"{'View' if match.group(1) == 'views' else 'Depth render'} {index} ({SLOT_NAMES[index]})"
    if field.startswith("cameras."):
        return f"cameras.json key {field[len('cameras.'):]}"
    return "cameras.json" if field == "cameras" else field


def error_sentence(error: ReconError) -> str:
    """The error's message with a subject when it has none, e.g. "View 2 (back) is not a PNG file"."""
    message = error.message
    if isinstance(error, FileValidationError) and error.field and message.split(" ", 1)[0] in _VERBS:
        return f"{_subject(error.field)} {message}"
    return message[:1].upper() + message[1:] if message.split(" ", 1)[0].isalpha() else message


def default_model(config: Settings) -> str:
    preferred = config.default_model
    if preferred in MODELS and availability()[preferred] is None:
        return preferred
    return best_available_model()


class Studio:
    def __init__(self, service: JobService, config: Settings, poll_interval_s: float = 0.3) -> None:
        self.service = service
        self.config = config
        self.poll_interval_s = poll_interval_s
        self.uploads = UploadPaths(config.upload_folder, config.max_file_bytes)
        self._checked: OrderedDict[tuple, dict[str, Note]] = OrderedDict()
        self._checked_lock = threading.Lock()

    def uploaded(self, views: Sequence[str], depths: Sequence[str], cameras: str | None,
                 ) -> tuple[list[str], list[str], str | None]:
        """The paths as given, once each is known to be an upload of this page; else FileValidationError."""
        return (
            [self.uploads.check(path, f"views[{index}]") for index, path in enumerate(views)],
            [self.uploads.check(path, f"depth_renders[{index}]") for index, path in enumerate(depths)],
            self.uploads.check(cameras, "cameras") if cameras else None,
        )

    def check_inputs(self, views: Sequence[str], depths: Sequence[str], cameras: str | None,
                     client: str = "unknown") -> dict[str, Note]:
        """The notes under the galleries and the cameras upload, from the REST API's own validation.

        Uploads are named by their content, so the notes for the same paths never change: they are kept, and
        only checks that decode files count against the client's CHECKS_PER_MINUTE."""
        key = (tuple(views), tuple(depths), cameras)
        with self._checked_lock:
            if key in self._checked:
                self._checked.move_to_end(key)
                return self._checked[key]
        try:
            self.uploaded(views, depths, cameras)
            if len(views) == len(depths) == VIEW_COUNT:
                self.service.quotas.count_event(client, "checks", CHECKS_PER_MINUTE)
        except ReconError as error:  # not an upload (FileValidationError naming it), or too many checks (429)
            return {**self._hints(), input_field(error.field) or "views": Note(ERROR, error_sentence(error))}
        notes = self._notes(views, depths, cameras)
        with self._checked_lock:
            self._checked[key] = notes
            if len(self._checked) > CHECK_MEMORY:
                self._checked.popitem(last=False)
        return notes

    @staticmethod
    def _hints() -> dict[str, Note]:
        return {
            "views": Note(IDLE, f"Add {VIEW_COUNT} views, one per slot: {SLOT_LIST}."),
            "depth_renders": Note(IDLE, f"Add {VIEW_COUNT} depth renders: the same slots, the same size as the views."),
            "cameras": Note(IDLE, "Optional: without it the default cube6 rig applies."),
        }

    def _notes(self, views: Sequence[str], depths: Sequence[str], cameras: str | None) -> dict[str, Note]:
        notes = self._hints()
        galleries = (("views", views, "views"), ("depth_renders", depths, "depth renders"))
        if any(len(files) != VIEW_COUNT for _, files, _ in galleries):
            for field, files, what in galleries:
                if len(files) == VIEW_COUNT:
                    notes[field] = Note(OK, f"{VIEW_COUNT} {what}, one per slot.")
                elif files:
                    notes[field] = Note(ERROR, f"Expected exactly {VIEW_COUNT} {what} ({SLOT_LIST}), got {len(files)}.")
            return notes
        try:
            upload = validate_upload_files(
                views, depths, cameras, max_file_bytes=self.config.max_file_bytes, max_pixels=self.config.max_pixels
            )
        except FileValidationError as error:
            notes[input_field(error.field) or "views"] = Note(ERROR, error_sentence(error))
            return notes
        notes["views"] = Note(OK, f"{VIEW_COUNT} views, {upload.width}×{upload.height}.")
        depth_text = f"{VIEW_COUNT} depth renders, {upload.depth_bits}-bit."
        notes["depth_renders"] = (
            Note(WARNING, f"{depth_text} {upload.warnings[0][:1].upper()}{upload.warnings[0][1:]}.")
            if upload.warnings else Note(OK, depth_text)
        )
        if cameras:
            notes["cameras"] = Note(OK, "Custom rig from cameras.json.")
        return notes

    def submit(
        self,
        views: Sequence[str],
        depths: Sequence[str],
        cameras: str | None,
        model: str | None,
        options: dict | None,
        tokens: Tokens,
        client: str,
    ) -> tuple[Job, Tokens]:
        """Queue a job through JobService; raises ReconError (with `.field`) when anything is wrong."""
        views, depths, cameras = self.uploaded(views, depths, cameras)
        submitted = self.service.submit(views, depths, cameras, model or None, options or {}, client=client)
        return submitted.job, {**tokens, submitted.job.job_id: submitted.token}

    @staticmethod
    def client_of(request: gr.Request | None) -> str:
        """The address submissions are rate-limited by."""
        return request.client.host if request is not None and request.client else "unknown"

    def job(self, job_id: str) -> Job:
        return self.service.get(job_id.strip())

    def position(self, job: Job) -> int | None:
        """1 for the next job to start; None once it has left the queue."""
        return self.service.queue_position(job)

    def record(self, job: Job, position: int | None) -> dict:
        """The job as clients see it (as GET /jobs/{id}), with its place in the queue."""
        return {**job.public(), "queue_position": position}

    def _job_and_position(self, job_id: str) -> tuple[Job, int | None]:
        job = self.job(job_id)
        return job, self.position(job)

    async def watch(self, job_id: str) -> AsyncIterator[tuple[Job, int | None]]:
        """Yield (job, queue position) whenever either changes, until the job ends; polls the job store."""
        last = None
        while True:
            job, position = await asyncio.to_thread(self._job_and_position, job_id)
            state = (job.status, job.progress, job.stage, position)
            if state != last:
                last = state
                yield job, position
            if job.status in TERMINAL:
                return
            await asyncio.sleep(self.poll_interval_s)

    def owns(self, tokens: Tokens, job_id: str) -> bool:
        return job_id in tokens

    def cancel(self, job_id: str, tokens: Tokens, confirm: bool) -> CancelOutcome:
        """The REST API's two steps (request, then confirm), for a job this session submitted."""
        job = self.job(job_id)
        if not self.owns(tokens, job.job_id):
            raise JobForbiddenError(
                f"job {job.job_id} was not submitted from this session, so it cannot be cancelled here "
                "(the REST API cancels any job with its job_token)",
                field="job_id",
            )
        return self.service.cancel(job.job_id, tokens[job.job_id], confirm)

    def cancel_confirmed(self, job_id: str, tokens: Tokens) -> CancelOutcome:
        """The user already confirmed in the page: request and confirm in one go."""
        self.cancel(job_id, tokens, confirm=False)
        return self.cancel(job_id, tokens, confirm=True)

    def output(self, job: Job, kind: str) -> Path:
        """The GLB (`result`) or report.json (`report`) of a completed job: the only files the UI hands out."""
        return self.service.output_file(job.job_id, kind)
