"""Puts a job back in the queue: after its worker shut down (hand-back) or died (retry).

A fresh task is enqueued first and the record flipped second: a task whose job is
no longer queued does nothing, so a crash between the two steps loses no job and
runs none twice.
"""

from __future__ import annotations

from . import lifecycle
from .queue_protocol import JobQueue
from .record import Job
from .store import JobStore


def requeue(store: JobStore, queue: JobQueue, job_id: str, claim: str | None, stage: str, count_attempt: bool) -> Job | None:
    """Back to `queued` (progress from 0 again) if the job is still processing under `claim`; None (and the task
    revoked) otherwise."""
    task = queue.new_task(job_id)
    queue.enqueue(task)

    job = store.mutate(job_id, lifecycle.requeue(claim, task.id, stage, count_attempt))
    if job is None:
        queue.revoke(task.id)
    return job
