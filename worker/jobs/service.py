"""The job service: the one place where jobs are submitted, read and cancelled.

The REST API and the Gradio UI both call this; neither talks to Huey directly.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..config import Settings
from ..errors import (
    JobConflictError,
    JobForbiddenError,
    JobNotFoundError,
    JobStateError,
    ReconError,
    ServiceBusyError,
    StorageError,
)
from . import lifecycle
from .files import OUTPUT_NAMES, JobFiles
from .limits import MB, ClientQuotas, DiskBudget
from .models import require_model
from .queue_protocol import JobQueue
from .record import (
    CANCELLED,
    COMPLETED,
    FAILED,
    PROCESSING,
    QUEUED,
    Job,
    hash_token,
    is_job_id,
    new_job_id,
    new_token,
    token_matches,
)
from .result_formats import ResultFormats, require_format
from .store import JobStore
from .uploads import UploadSource, store_inputs, validate_upload_files

CANCEL_REQUESTED_MESSAGE = "Send confirm=true to confirm cancellation"
CANCEL_CONFIRMED_MESSAGE = "Job cancellation confirmed"


@dataclass(frozen=True)
class SubmittedJob:
    job: Job
    token: str


@dataclass(frozen=True)
class CancelOutcome:
    status: str
    message: str


class JobService:
    def __init__(self, store: JobStore, queue: JobQueue, config: Settings) -> None:
        self.store = store
        self.queue = queue
        self.config = config
        self.quotas = ClientQuotas(store, config.rate_limit_per_minute, config.client_quota_mb * MB)
        self.disk = DiskBudget(config.jobs_dir, config.disk_quota_mb * MB, config.min_free_disk_mb * MB, "jobs")
        self.formats = ResultFormats(self.disk)

    def submit(
        self,
        views: Sequence[UploadSource],
        depth_renders: Sequence[UploadSource],
        cameras: UploadSource | None = None,
        model_type: str | None = None,
        options: dict | None = None,
        client: str = "anonymous",
    ) -> SubmittedJob:
        """Validate everything, then store inputs, record and task; on any failure none of them remains.

        Refusals come before anything is written: queue full (503), too many submissions or bytes from this
        client (429), no space for jobs (507)."""
        self._check_capacity(client)
        spec = require_model(model_type, self.config)
        resolved = spec.resolve_options(options)
        upload = validate_upload_files(
            views, depth_renders, cameras,
            max_file_bytes=self.config.max_file_bytes, max_pixels=self.config.max_pixels,
        )
        self.disk.reserve(upload.size)
        self.quotas.count_bytes(client, upload.size)
        job_id, token = new_job_id(), new_token()
        task = self.queue.new_task(job_id)
        job = Job(
            job_id=job_id, model_type=spec.name, created_at=time.time(), token_hash=hash_token(token),
            options=resolved, warnings=upload.warnings, task_id=task.id,
        )
        files = JobFiles.of(self.config.jobs_dir, job_id)
        try:
            store_inputs(upload, files.inputs)
            self.store.create(job)
            self.queue.enqueue(task)
        except BaseException as exc:
            files.discard_all()
            with contextlib.suppress(ReconError):
                self.store.delete(job_id)
            if isinstance(exc, OSError):
                raise StorageError(f"the server could not store the job's files ({exc.strerror or exc}); "
                                   "try again later") from exc
            raise
        return SubmittedJob(job, token)

    def _check_capacity(self, client: str) -> None:
        queued = len(self.store.ids_with_status(QUEUED))
        if queued >= self.config.max_queued:
            raise ServiceBusyError(
                f"the queue is full ({queued} jobs waiting); try again in a minute", retry_after=60, status_code=503
            )
        self.quotas.count_submission(client)

    def get(self, job_id: str) -> Job:
        job = self.store.get(job_id) if is_job_id(job_id) else None
        if job is None:
            raise JobNotFoundError(f"there is no job {job_id!r} (it may have expired)", field="job_id")
        return job

    def queue_position(self, job: Job) -> int | None:
        return self.store.queue_position(job)

    def cancel(self, job_id: str, token: str | None, confirm: bool) -> CancelOutcome:
        """Two steps: a request, then a confirmation within the confirm window."""
        job = self.get(job_id)
        if not token or not token_matches(token, job.token_hash):
            raise JobForbiddenError(
                "cancelling a job needs the job_token returned when it was submitted "
                "(Authorization: Bearer <job_token>)",
                field="authorization",
            )
        if job.status == CANCELLED:
            return CancelOutcome(CANCELLED, "Job is already cancelled")
        if job.status in (COMPLETED, FAILED):
            raise JobStateError(f"job {job_id} is already {job.status} and cannot be cancelled", field="job_id")
        now = time.time()
        if not confirm:
            if self.store.mutate(job_id, lifecycle.request_cancel(now)) is None:
                return self.cancel(job_id, token, confirm)
            return CancelOutcome("cancel_requested", CANCEL_REQUESTED_MESSAGE)
        requested = job.cancel_requested_at
        if requested is None or now - requested > self.config.cancel_confirm_window_s:
            raise JobConflictError(
                "no cancellation is pending for this job: request it first (confirm=false), "
                f"then confirm within {self.config.cancel_confirm_window_s:.0f} seconds",
                field="confirm",
            )
        return self._cancel_now(job, now)

    def _cancel_now(self, job: Job, now: float) -> CancelOutcome:
        if self.store.mutate(job.job_id, lifecycle.cancel(QUEUED, now)):
            self.queue.revoke(job.task_id)
            JobFiles.of(self.config.jobs_dir, job.job_id).discard_inputs()
            return CancelOutcome(CANCELLED, CANCEL_CONFIRMED_MESSAGE)
        if self.store.mutate(job.job_id, lifecycle.cancel(PROCESSING, now)):
            return CancelOutcome(CANCELLED, CANCEL_CONFIRMED_MESSAGE)
        current = self.get(job.job_id)
        if current.status == CANCELLED:
            return CancelOutcome(CANCELLED, CANCEL_CONFIRMED_MESSAGE)
        raise JobStateError(f"job {job.job_id} is already {current.status} and cannot be cancelled", field="job_id")

    def output_file(self, job_id: str, kind: str) -> Path:
        """A completed job's file of that kind: `result` (the GLB), `report`, `comparison` or `turntable`."""
        job = self.get(job_id)
        if job.status != COMPLETED:
            raise JobStateError(f"job {job_id} is {job.status}; its files exist once it is completed", field="job_id")
        files = JobFiles.of(self.config.jobs_dir, job_id)
        path = files.output / OUTPUT_NAMES[kind]
        if not path.is_file():
            raise JobNotFoundError(f"the {kind} of job {job_id} is no longer stored", field="job_id")
        return path

    def result_file(self, job_id: str, fmt: str = "glb") -> Path:
        """The completed job's mesh as `fmt` (glb, obj, ply, stl or usdz), converted from the GLB on first request."""
        require_format(fmt)
        self.output_file(job_id, "result")
        return self.formats.path(JobFiles.of(self.config.jobs_dir, job_id), fmt)
