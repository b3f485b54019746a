"""Puts a job back in the queue: after its worker shut down (hand-back) or died (retry).

A fresh task is enqueued first and the record flipped second: a task whose job is
no longer queued does nothing, so a crash between the two steps loses no job and
runs none twice.
"""

from __future__ import annotations

from .job_store import JobStore
from .jobs import PROCESSING, QUEUED, Job
from .service import JobQueue


def requeue(store: JobStore, queue: JobQueue, job_id: str, claim: str | None, stage: str, count_attempt: bool) -> Job | None:
    """Back to `queued` (progress from 0 again) if the job is still processing under `claim`; None (and the task
    revoked) otherwise."""
    task = queue.new_task(job_id)
    queue.enqueue(task)

    def back(job: Job) -> bool:
        if job.status != PROCESSING or job.worker != claim:
            return False
        job.status, job.task_id, job.stage, job.progress = QUEUED, task.id, stage, 0
        job.worker = job.started_at = job.heartbeat_at = None
        if not count_attempt:
            job.attempts -= 1
        return True

    job = store.mutate(job_id, back)
    if job is None:
        queue.revoke(task.id)
    return job
