"""Settles what no worker will: jobs whose worker died, and jobs past their retention time."""

from __future__ import annotations

import logging
import threading
import time

from .config import Settings
from .job_files import JobFiles
from .job_store import JobStore
from .jobs import FAILED, PROCESSING, TERMINAL, WORKER_LOST, Job

log = logging.getLogger(__name__)

RETENTION_SWEEP_S = 60.0


def settle_lost_jobs(store: JobStore, config: Settings, now: float) -> list[str]:
    """Fail every running job whose heartbeat is older than the timeout (SIGKILL, OOM, power loss)."""
    deadline = now - config.heartbeat_timeout_s

    def lost(job: Job) -> bool:
        if job.status != PROCESSING or (job.heartbeat_at or job.started_at or job.created_at) >= deadline:
            return False
        job.status, job.error, job.stage, job.finished_at = FAILED, WORKER_LOST, "failed", now
        return True

    settled = [job_id for job_id in store.ids_with_status(PROCESSING) if store.mutate(job_id, lost)]
    for job_id in settled:
        JobFiles.of(config.jobs_dir, job_id).discard_partial()
        log.warning("job %s: %s", job_id, WORKER_LOST)
    return settled


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
    """A daemon thread in the web process: checks for lost jobs a few times per timeout, expiry once a minute."""

    def __init__(self, store: JobStore, config: Settings) -> None:
        self.store = store
        self.config = config
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="reaper", daemon=True)

    def sweep(self, now: float | None = None) -> None:
        settle_lost_jobs(self.store, self.config, time.time() if now is None else now)

    def _loop(self) -> None:
        interval = max(self.config.heartbeat_timeout_s / 3, 0.5)
        last_expiry = 0.0
        while not self.stopping.wait(interval):
            try:
                now = time.time()
                settle_lost_jobs(self.store, self.config, now)
                if now - last_expiry >= RETENTION_SWEEP_S:
                    remove_expired_jobs(self.store, self.config, now)
                    last_expiry = now
            except Exception:
                log.exception("reaper sweep failed; trying again")

    def start(self) -> "Reaper":
        self.sweep()
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()
