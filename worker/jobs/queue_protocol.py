"""What the job system needs from a queue. `worker.queue.tasks.HueyJobQueue` is the one implementation; the job
system never imports it, so the queue can be swapped (or faked in a test) by passing another."""

from __future__ import annotations

from typing import Protocol


class TaskHandle(Protocol):
    id: str


class JobQueue(Protocol):
    def new_task(self, job_id: str) -> TaskHandle: ...

    def enqueue(self, task: TaskHandle) -> None: ...

    def revoke(self, task_id: str) -> None: ...

    def pending_task_ids(self) -> set[str]: ...
