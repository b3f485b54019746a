"""What a worker does with one job: claim it, run its model with live progress, publish or clean up.

Cancellation is cooperative: the job record is the flag. Every progress update
and every heartbeat is a conditional write that holds only while this run's
claim on the job stands, and the next progress call unwinds the model with
JobCancelled once it does not (cancelled, or reaped after a lost heartbeat).
A consumer that is shutting down hands the job back to the queue instead.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import shutil
import socket
import threading
import time
import uuid
from enum import Enum

from ..config import Settings
from ..errors import JobCancelled, ReconError, ServiceBusyError
from ..jobs import lifecycle
from ..jobs.files import JobFiles
from ..jobs.models import MODELS, get_reconstructor
from ..jobs.queue_protocol import JobQueue
from ..jobs.record import CANCELLED, FAILED, Job
from ..jobs.requeue import requeue
from ..jobs.store import JobStore
from ..recon.inputs import load_inputs
from ..recon.previews import draw_previews
from ..recon.report import JobReport

log = logging.getLogger(__name__)

PROGRESS_START = 1
PROGRESS_END = 99
CLAIM_PATIENCE_S = 30.0  # a job store outage (a Redis restart) when a task starts is waited out this long
CLAIM_RETRY_S = 0.5


class Outcome(Enum):
    NOT_STARTED = "not started"
    FINISHED = "finished"
    HANDED_BACK = "handed back"


class JobInterrupted(Exception):
    """The consumer is shutting down: stop the model and hand the job back."""


class JobTimedOut(Exception):
    """The run passed RECON_JOB_TIME_LIMIT_S; carries the stage it was in."""


def new_claim() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}:{uuid.uuid4().hex[:8]}"


class ProgressReporter:
    """Maps a model's 0..1 fraction onto the job's 1..99; stops the model when the run must end.

    A run past the time limit fails at its next progress call; a retried run says which run it is."""

    def __init__(self, store: JobStore, job_id: str, claim: str, stopping: threading.Event | None,
                 deadline: float = math.inf, run_note: str = "") -> None:
        self.store = store
        self.job_id = job_id
        self.claim = claim
        self.stopping = stopping
        self.deadline = deadline
        self.run_note = run_note
        self.lost = threading.Event()
        self.stage = "starting"

    def __call__(self, fraction: float, stage: str) -> None:
        self.stage = stage
        if self.stopping is not None and self.stopping.is_set():
            raise JobInterrupted(self.job_id)
        if time.time() > self.deadline:
            raise JobTimedOut(self.stage)
        stage = f"{stage}{self.run_note}"
        progress = PROGRESS_START + round(min(max(fraction, 0.0), 1.0) * (PROGRESS_END - PROGRESS_START))
        if self.lost.is_set():
            raise JobCancelled(self.job_id)
        try:
            held = self.store.report_progress(self.job_id, self.claim, progress, stage, time.time())
        except ServiceBusyError:
            log.warning("progress of job %s not recorded: the job store is unavailable; going on", self.job_id)
            return
        if not held:
            self.lost.set()
            raise JobCancelled(self.job_id)


class Heartbeat:
    """Proves the worker is alive between progress updates; a dead worker's job is reaped (see reaper)."""

    def __init__(self, store: JobStore, job_id: str, claim: str, interval_s: float, lost: threading.Event) -> None:
        self.store = store
        self.job_id = job_id
        self.claim = claim
        self.interval_s = interval_s
        self.lost = lost
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"heartbeat-{job_id}", daemon=True)

    def _beat(self) -> None:
        while not self.done.wait(self.interval_s):
            try:
                alive = self.store.heartbeat(self.job_id, self.claim, time.time())
            except Exception:
                log.warning("heartbeat of job %s not recorded; trying again", self.job_id, exc_info=True)
                continue
            if not alive:
                self.lost.set()
                return

    def __enter__(self) -> "Heartbeat":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()


def run_job(
    job_id: str,
    store: JobStore,
    config: Settings,
    queue: JobQueue,
    device: str = "cpu",
    stopping: threading.Event | None = None,
) -> Outcome:
    """Run one job until it completes, fails, is cancelled, or is handed back because the consumer stops."""
    claim = new_claim()
    job = _claim(store, job_id, claim, stopping)
    if job is None:
        log.info("job %s is no longer queued; not starting it", job_id)
        return Outcome.NOT_STARTED
    started = job.started_at
    files = JobFiles.of(config.jobs_dir, job_id)
    run_note = f" (retrying: run {job.attempts} of {config.job_attempts})" if job.attempts > 1 else ""
    reporter = ProgressReporter(store, job_id, claim, stopping, started + config.job_time_limit_s, run_note)
    with Heartbeat(store, job_id, claim, config.heartbeat_interval_s, reporter.lost):
        try:
            reporter(0.0, "loading model")
            model = get_reconstructor(job.model_type, config)
            reporter(0.0, "reading inputs")
            inputs = load_inputs(*files.stored_inputs())
            files.start_partial()
            options, notes = MODELS[job.model_type].fit_to_device(job.options, device)
            made = model(inputs, files.partial_result, reporter, options, device)
            draw_previews(inputs, files.partial_result, files.partial_comparison, files.partial_turntable,
                          lambda done: reporter(1.0, "drawing the comparison"))
            report: JobReport = {"job_id": job_id, **made, "model": job.model_type, "options": options,
                                 "warnings": notes + made["warnings"], "wall_time_s": round(time.time() - started, 3)}
            files.partial_report.write_text(json.dumps(report, indent=2))
            reporter(1.0, "publishing result")
            _publish(store, files, job_id, claim)
        except JobCancelled:
            log.info("job %s stopped while %s: it is no longer this worker's to run", job_id, reporter.stage)
            files.discard_partial()
            if _ended_without_result(store, job_id):
                files.discard_inputs()
        except JobTimedOut as exc:
            _fail(store, files, job_id, claim,
                  f"the job passed the server's time limit of {config.job_time_limit_s:.0f} s while {exc}; "
                  "try smaller inputs or lower options")
        except JobInterrupted:
            files.discard_partial()
            if requeue(store, queue, job_id, claim, lifecycle.HANDED_BACK_STAGE, count_attempt=False) is not None:
                log.info("job %s handed back to the queue: the worker is shutting down", job_id)
                return Outcome.HANDED_BACK
        except ReconError as exc:
            _fail(store, files, job_id, claim, exc.message)
        except OSError as exc:
            log.exception("job %s failed while %s", job_id, reporter.stage)
            _fail(store, files, job_id, claim, _storage_sentence(exc, reporter.stage))
        except Exception as exc:
            log.exception("job %s failed while %s", job_id, reporter.stage)
            _fail(store, files, job_id, claim, f"the reconstruction failed unexpectedly while {reporter.stage} ({type(exc).__name__}); the worker log has the details")
    return Outcome.FINISHED


def _claim(store: JobStore, job_id: str, claim: str, stopping: threading.Event | None) -> Job | None:
    """Take the job, waiting out a short store outage: a task that gave up here would leave its job queued
    without a task until the reaper repaired it (ORPHAN_AGE_S after its submission, then up to a slow sweep).
    A claim whose write landed before the outage hid the reply is found again (lifecycle.claim). A consumer that
    is shutting down does not wait."""
    deadline = time.monotonic() + CLAIM_PATIENCE_S
    while True:
        try:
            return store.claim(job_id, claim, time.time())
        except ServiceBusyError:
            if time.monotonic() >= deadline or stopping is not None and stopping.is_set():
                raise
            log.warning("job %s: the job store is unavailable; trying again to start it", job_id)
            time.sleep(CLAIM_RETRY_S)


def _storage_sentence(exc: OSError, stage: str) -> str:
    if exc.errno == errno.ENOSPC:
        return f"the server ran out of disk space while {stage}; try again later or ask its operator to free space"
    return f"the worker could not read or write the job's files while {stage} ({exc.strerror or exc})"


def _publish(store: JobStore, files: JobFiles, job_id: str, claim: str) -> None:
    shutil.rmtree(files.output, ignore_errors=True)
    os.replace(files.partial, files.output)
    done = store.mutate(job_id, lifecycle.complete(claim, time.time()))
    if done is None:
        shutil.rmtree(files.output, ignore_errors=True)
    else:
        log.info("job %s completed", job_id)


def _fail(store: JobStore, files: JobFiles, job_id: str, claim: str, message: str) -> None:
    files.discard_partial()
    if store.mutate(job_id, lifecycle.fail(claim, message, time.time())):
        files.discard_inputs()


def _ended_without_result(store: JobStore, job_id: str) -> bool:
    """Cancelled or failed: its inputs will never be read again (a reaped run's job may be queued again)."""
    job = store.get(job_id)
    return job is None or job.status in (CANCELLED, FAILED)
