"""What the page and the client API do with jobs, on top of JobService.

Both the browser page and the `gradio_client` endpoints go through here, so they
check inputs, submit, follow and cancel in exactly one way: the same upload
validation as the REST API, jobs queued through JobService (never a direct
call), and cancellation only of jobs whose token this session holds.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import AsyncIterator, Sequence

import gradio as gr

from worker.config import Settings
from worker.errors import JobForbiddenError
from worker.jobs.record import TERMINAL, Job
from worker.jobs.service import CancelOutcome, JobService

from .input_notes import InputChecker
from .upload_guard import UploadPaths

Tokens = dict[str, str]
"""Job id -> job token, for the jobs this session submitted; kept in the session's gr.State."""

FOLLOWERS = 256
"""Progress loops (page and /wait) running at once; each polls the job store a few times a second."""


class Studio:
    """The page's and the client API's one way to submit, follow and cancel jobs."""

    def __init__(self, service: JobService, config: Settings, poll_interval_s: float = 0.3) -> None:
        self.service = service
        self.config = config
        self.poll_interval_s = poll_interval_s
        self.uploads = UploadPaths(config.upload_folder, config.max_file_bytes)
        self.checker = InputChecker(config, service.quotas, self.uploaded)

    def uploaded(self, views: Sequence[str], depths: Sequence[str], cameras: str | None,
                 ) -> tuple[list[str], list[str], str | None]:
        """The paths as given, once each is known to be an upload of this page; else FileValidationError."""
        return (
            [self.uploads.check(path, f"views[{index}]") for index, path in enumerate(views)],
            [self.uploads.check(path, f"depth_renders[{index}]") for index, path in enumerate(depths)],
            self.uploads.check(cameras, "cameras") if cameras else None,
        )

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
