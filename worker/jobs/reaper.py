"""Settles what no worker will: jobs whose worker died, and jobs past their retention time.

Policy for a job whose worker died (SIGKILL, OOM, power loss: its heartbeat stops):
it is run again on another worker, up to RECON_JOB_ATTEMPTS runs in all (default 2,
i.e. retried once); after that it fails with a sentence that says so.

Huey delivers a task at most once: a worker killed between taking a task and
claiming its job, or a broker that lost messages, leaves a queued job without a
task. Such a job gets a fresh task; a duplicate is harmless, since only one run
can claim a job.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path

from ..config import Settings
from . import lifecycle
from .files import JobFiles
from .queue_protocol import JobQueue
from .record import CANCELLED, FAILED, PROCESSING, QUEUED, TERMINAL, is_job_id
from .requeue import requeue
from .store import JobStore

log = logging.getLogger(__name__)

SLOW_SWEEP_S = 10.0
ORPHAN_AGE_S = 30.0
STAGING_AGE_S = 600.0  # a submission writes its staging folder in well under a second


def settle_lost_jobs(store: JobStore, queue: JobQueue, config: Settings, now: float) -> list[str]:
    """Retry or fail every running job whose heartbeat is older than the timeout."""
    deadline = now - config.heartbeat_timeout_s
    settled = []
    for job_id in store.ids_with_status(PROCESSING):
        job = store.get(job_id)
        if job is None or job.status != PROCESSING or job.last_sign_of_life >= deadline:
            continue
        JobFiles.of(config.jobs_dir, job_id).discard_partial()
        stage = lifecycle.retry_stage(job.attempts + 1, config.job_attempts)
        if job.attempts < config.job_attempts and requeue(store, queue, job_id, job.worker, stage, count_attempt=True):
            log.warning("job %s: its worker stopped unexpectedly; queued again (run %d of %d)",
                        job_id, job.attempts + 1, config.job_attempts)
            settled.append(job_id)
        elif store.mutate(job_id, lifecycle.fail_lost(job.worker, deadline, now)):
            JobFiles.of(config.jobs_dir, job_id).discard_inputs()
            log.warning("job %s: %s", job_id, lifecycle.WORKER_LOST)
            settled.append(job_id)
    return settled


def repair_orphaned_jobs(store: JobStore, queue: JobQueue, now: float) -> list[str]:
    """Give a fresh task to every job queued for a while whose task is no longer in the queue."""
    queued = store.ids_with_status(QUEUED)
    if not queued:
        return []
    pending = queue.pending_task_ids()
    repaired = []
    for job_id in queued:
        job = store.get(job_id)
        if job is None or job.created_at >= now - ORPHAN_AGE_S or job.task_id in pending:
            continue
        task = queue.new_task(job_id)
        queue.enqueue(task)
        if store.transition(job_id, (QUEUED,), task_id=task.id) is None:
            queue.revoke(task.id)
            continue
        log.warning("job %s had lost its queue task; enqueued a fresh one", job_id)
        repaired.append(job_id)
    return repaired


def remove_leftovers(store: JobStore, config: Settings, now: float) -> list[Path]:
    """Staging folders of submissions that died midway, folders of jobs with no record, and the inputs of jobs
    that ended cancelled or failed (a worker that died could not remove them)."""
    removed = []
    if config.jobs_dir.is_dir():
        for folder in config.jobs_dir.iterdir():
            stale = _older_than(folder, now - STAGING_AGE_S)
            if stale and (_staging(folder) or is_job_id(folder.name) and store.get(folder.name) is None):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
                continue
            for path in folder.glob(".incoming-*") if folder.is_dir() else ():
                if _older_than(path, now - STAGING_AGE_S):
                    shutil.rmtree(path, ignore_errors=True)
                    removed.append(path)
    for status in (CANCELLED, FAILED):
        for job_id in store.ids_with_status(status):
            files = JobFiles.of(config.jobs_dir, job_id)
            if files.inputs.exists():
                files.discard_inputs()
                removed.append(files.inputs)
    return removed


def _staging(path: Path) -> bool:
    return path.name.startswith(".incoming-")


def _older_than(path: Path, deadline: float) -> bool:
    try:
        return path.stat().st_mtime < deadline
    except FileNotFoundError:
        return False


def remove_expired_jobs(store: JobStore, config: Settings, now: float) -> list[str]:
    deadline = now - config.retention_hours * 3600
    expired = []
    for status in TERMINAL:
        for job_id in store.ids_with_status(status):
            job = store.get(job_id)
            if job is not None and (job.finished_at or job.created_at) < deadline:
                JobFiles.of(config.jobs_dir, job_id).discard_all()
                store.delete(job_id)
                expired.append(job_id)
    return expired


class Reaper:
    """A daemon thread in the web process: lost jobs a few times per heartbeat timeout, the rest every 10 s."""

    def __init__(self, store: JobStore, queue: JobQueue, config: Settings) -> None:
        self.store = store
        self.queue = queue
        self.config = config
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="reaper", daemon=True)

    def _loop(self) -> None:
        interval = max(self.config.heartbeat_timeout_s / 3, 0.5)
        last_slow_sweep = 0.0
        while not self.stopping.wait(interval):
            try:
                now = time.time()
                settle_lost_jobs(self.store, self.queue, self.config, now)
                if now - last_slow_sweep >= SLOW_SWEEP_S:
                    repair_orphaned_jobs(self.store, self.queue, now)
                    remove_expired_jobs(self.store, self.config, now)
                    remove_leftovers(self.store, self.config, now)
                    last_slow_sweep = now
            except Exception:
                log.exception("reaper sweep failed; trying again")

    def start(self) -> "Reaper":
        now = time.time()
        settle_lost_jobs(self.store, self.queue, self.config, now)
        remove_leftovers(self.store, self.config, now)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()
