"""What a worker does with one job: claim it, run its model with live progress, publish or clean up.

Cancellation is cooperative: the job record is the flag. Every progress update
and every heartbeat is a conditional write that fails once the job is no longer
`processing`, and the next progress call then unwinds the model with JobCancelled.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import threading
import time

from .config import Settings
from .errors import JobCancelled, ReconError
from .job_files import REPORT_NAME, JobFiles
from .job_store import JobStore
from .jobs import COMPLETED, FAILED, PROCESSING, QUEUED
from .models import get_reconstructor
from .recon.inputs import load_inputs
from .uploads import stored_input_paths

log = logging.getLogger(__name__)

PROGRESS_START = 1
PROGRESS_END = 99


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"


class ProgressReporter:
    """Maps a model's 0..1 fraction onto the job's 1..99 and stops the model once the job was cancelled."""

    def __init__(self, store: JobStore, job_id: str) -> None:
        self.store = store
        self.job_id = job_id
        self.stopped = threading.Event()
        self.stage = "starting"

    def __call__(self, fraction: float, stage: str) -> None:
        self.stage = stage
        fraction = min(max(fraction, 0.0), 1.0)
        progress = PROGRESS_START + round(fraction * (PROGRESS_END - PROGRESS_START))
        if self.stopped.is_set() or not self.store.report_progress(self.job_id, progress, stage, time.time()):
            self.stopped.set()
            raise JobCancelled(self.job_id)


class Heartbeat:
    """Proves the worker is alive between progress updates; a dead worker's job is reaped (see reaper)."""

    def __init__(self, store: JobStore, job_id: str, interval_s: float, stopped: threading.Event) -> None:
        self.store = store
        self.job_id = job_id
        self.interval_s = interval_s
        self.job_stopped = stopped
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"heartbeat-{job_id}", daemon=True)

    def _beat(self) -> None:
        while not self.done.wait(self.interval_s):
            if not self.store.heartbeat(self.job_id, time.time()):
                self.job_stopped.set()
                return

    def __enter__(self) -> "Heartbeat":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()


def run_job(job_id: str, store: JobStore, config: Settings, device: str = "cpu") -> bool:
    """Run one job to a terminal state. False when it was no longer queued (cancelled before it started)."""
    started = time.time()
    job = store.transition(
        job_id, (QUEUED,), status=PROCESSING, started_at=started, heartbeat_at=started,
        stage="starting", progress=PROGRESS_START, worker=worker_name(),
    )
    if job is None:
        log.info("job %s is no longer queued; not starting it", job_id)
        return False
    files = JobFiles.of(config.jobs_dir, job_id)
    reporter = ProgressReporter(store, job_id)
    with Heartbeat(store, job_id, config.heartbeat_interval_s, reporter.stopped):
        try:
            reporter(0.0, "loading model")
            model = get_reconstructor(job.model_type)
            reporter(0.0, "reading inputs")
            inputs = load_inputs(*stored_input_paths(files.inputs))
            files.discard_partial()
            files.partial.mkdir(parents=True)
            report = model(inputs, files.partial, reporter, job.options, device)
            report = {"job_id": job_id, "model": job.model_type, "options": job.options,
                      "warnings": job.warnings + report.pop("warnings", []), **report,
                      "wall_time_s": round(time.time() - started, 3)}
            (files.partial / REPORT_NAME).write_text(json.dumps(report, indent=2))
            reporter(1.0, "publishing result")
            _publish(store, files, job_id)
        except JobCancelled:
            log.info("job %s cancelled while %s", job_id, reporter.stage)
            files.discard_partial()
        except ReconError as exc:
            _fail(store, files, job_id, exc.message)
        except OSError as exc:
            log.exception("job %s failed while %s", job_id, reporter.stage)
            _fail(store, files, job_id, f"the worker could not read or write the job's files while {reporter.stage} ({exc.strerror or exc})")
        except Exception as exc:
            log.exception("job %s failed while %s", job_id, reporter.stage)
            _fail(store, files, job_id, f"the reconstruction failed unexpectedly while {reporter.stage} ({type(exc).__name__}); the worker log has the details")
    return True


def _publish(store: JobStore, files: JobFiles, job_id: str) -> None:
    shutil.rmtree(files.output, ignore_errors=True)
    os.replace(files.partial, files.output)
    done = store.transition(job_id, (PROCESSING,), status=COMPLETED, progress=100, stage="done", finished_at=time.time())
    if done is None:
        shutil.rmtree(files.output, ignore_errors=True)


def _fail(store: JobStore, files: JobFiles, job_id: str, message: str) -> None:
    files.discard_partial()
    store.transition(job_id, (PROCESSING,), status=FAILED, error=message, stage="failed", finished_at=time.time())

