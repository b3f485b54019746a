"""The Huey tasks. GPU hosts run them with `huey_consumer worker.queue.tasks.huey`."""

from __future__ import annotations

import logging
import sqlite3

import redis
from huey.api import Huey, Task

from ..config import settings
from ..errors import store_unavailable
from ..jobs.models import load_available_models
from ..recon.devices import resolve_device, set_threads
from .huey_app import huey, job_store
from .runner import Outcome, run_job

log = logging.getLogger(__name__)
LOG_FORMAT = "[%(asctime)s] %(levelname)s:%(name)s:%(threadName)s:%(message)s"


@huey.on_startup()
def load_models() -> None:
    """Once per worker: fix torch's threads and load every model that can run here."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    set_threads(settings.torch_threads)
    log.info("models loaded on %s: %s", resolve_device(settings.device), ", ".join(load_available_models(settings)))


QUEUE_OUTAGES = (redis.ConnectionError, redis.TimeoutError, sqlite3.OperationalError)


class HueyJobQueue:
    """The service's view of the queue: build a task (to know its id), enqueue, revoke, list what waits."""

    def __init__(self, queue: Huey = huey) -> None:
        self.queue = queue

    def new_task(self, job_id: str) -> Task:
        return reconstruct.s(job_id)

    def enqueue(self, task: Task) -> None:
        try:
            self.queue.enqueue(task)
        except QUEUE_OUTAGES as exc:
            raise store_unavailable("job queue") from exc

    def revoke(self, task_id: str) -> None:
        self.queue.revoke_by_id(task_id, revoke_once=True)

    def pending_task_ids(self) -> set[str]:
        return {task.id for task in self.queue.pending()}


@huey.task(context=True)
def reconstruct(job_id: str, task: Task | None = None) -> None:
    outcome = run_job(job_id, job_store, settings, HueyJobQueue(), resolve_device(settings.device), huey.stopping)
    if outcome is Outcome.NOT_STARTED and task is not None:
        huey.restore_by_id(task.id)
