"""A job's life: the moves between its statuses, who makes each, and the stage text each one shows.

    queued --claim--> processing --complete--> completed
      |  ^               |  |
      |  +--requeue------+  +--fail / fail_lost--> failed
      +--cancel--> cancelled <--cancel--+

Every status change is one of the changes below, applied atomically by JobStore.mutate; a
change returns False to leave the record alone (the job moved on meanwhile), so a cancel
confirmed by the web process and a worker's completion can never both win. A run's changes
name its claim: a run that was given up on can no longer move its job.
"""

from __future__ import annotations

from typing import Callable

from .record import CANCELLED, COMPLETED, FAILED, PROCESSING, QUEUED, Job

Change = Callable[[Job], bool]

MOVES = {
    QUEUED: (PROCESSING, CANCELLED),
    PROCESSING: (COMPLETED, FAILED, CANCELLED, QUEUED),
    COMPLETED: (),
    FAILED: (),
    CANCELLED: (),
}

STARTING_STAGE = "starting"
DONE_STAGE = "done"
FAILED_STAGE = "failed"
CANCELLED_STAGE = "cancelled"
HANDED_BACK_STAGE = "waiting in queue (handed back by a worker that shut down)"
WORKER_LOST = "the worker stopped unexpectedly while running this job; please submit it again"


def retry_stage(run: int, runs: int) -> str:
    return f"waiting in queue (retrying: run {run} of {runs}; its worker stopped unexpectedly)"


def _move(job: Job, status: str, stage: str) -> None:
    if status not in MOVES[job.status]:
        raise ValueError(f"a job cannot move from {job.status} to {status}")
    job.status, job.stage = status, stage


def _held(job: Job, claim: str | None) -> bool:
    return job.status == PROCESSING and job.worker == claim


def claim(run: str, now: float) -> Change:
    """A worker takes a queued job for one run; asked again by the same run (its first reply lost), it holds."""

    def change(job: Job) -> bool:
        if _held(job, run):
            return True
        if job.status != QUEUED:
            return False
        _move(job, PROCESSING, STARTING_STAGE)
        job.worker, job.attempts, job.error = run, job.attempts + 1, None
        job.started_at = job.heartbeat_at = now
        return True

    return change


def complete(run: str, now: float) -> Change:
    def change(job: Job) -> bool:
        if not _held(job, run):
            return False
        _move(job, COMPLETED, DONE_STAGE)
        job.progress, job.finished_at = 100, now
        return True

    return change


def fail(run: str | None, message: str, now: float) -> Change:
    def change(job: Job) -> bool:
        if not _held(job, run):
            return False
        _move(job, FAILED, FAILED_STAGE)
        job.error, job.finished_at = message, now
        return True

    return change


def fail_lost(run: str | None, deadline: float, now: float) -> Change:
    """The reaper fails a run whose heartbeat stopped before `deadline`, if nothing moved it meanwhile."""

    def change(job: Job) -> bool:
        return job.last_sign_of_life < deadline and fail(run, WORKER_LOST, now)(job)

    return change


def requeue(run: str | None, task_id: str, stage: str, count_attempt: bool) -> Change:
    """Back to the queue with a fresh task: a worker that shut down (hand-back) or died (retry)."""

    def change(job: Job) -> bool:
        if not _held(job, run):
            return False
        _move(job, QUEUED, stage)
        job.task_id, job.progress = task_id, 0
        job.worker = job.started_at = job.heartbeat_at = None
        if not count_attempt:
            job.attempts -= 1
        return True

    return change


def request_cancel(now: float) -> Change:
    """The first of the two cancel steps: the status stays, the request is remembered."""

    def change(job: Job) -> bool:
        if job.status not in (QUEUED, PROCESSING):
            return False
        job.cancel_requested_at = now
        return True

    return change


def cancel(was: str, now: float) -> Change:
    """The confirmed cancel, if the job is still `was` (queued: its task is revoked; processing: its run stops)."""

    def change(job: Job) -> bool:
        if job.status != was or CANCELLED not in MOVES[job.status]:
            return False
        _move(job, CANCELLED, CANCELLED_STAGE)
        job.finished_at = now
        return True

    return change
