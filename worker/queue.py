"""The one Huey instance, and the consumer that runs inside the web process.

`huey_consumer worker.tasks.huey` runs the same queue on GPU hosts.
"""

from __future__ import annotations

import logging

import redis
from huey import RedisHuey, SqliteHuey
from huey.api import Huey
from huey.consumer import Consumer

from .config import Settings, settings
from .job_store import JobStore, RedisJobStore, SqliteJobStore

QUEUE_NAME = "recon"
POLL_INITIAL_DELAY_S = 0.05
POLL_MAX_DELAY_S = 0.25

log = logging.getLogger(__name__)


def make_huey(config: Settings) -> Huey:
    if config.uses_redis:
        return RedisHuey(QUEUE_NAME, url=config.queue_url, blocking=True, read_timeout=1)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(QUEUE_NAME, filename=str(config.sqlite_path))


def make_job_store(config: Settings) -> JobStore:
    if config.uses_redis:
        return RedisJobStore(redis.Redis.from_url(config.queue_url), prefix=QUEUE_NAME)
    return SqliteJobStore(config.sqlite_path)


class EmbeddedConsumer(Consumer):
    """A consumer that lives in a thread of the web process and leaves its signal handlers alone."""

    def _set_signal_handlers(self) -> None:
        pass


def start_embedded_consumer(queue: Huey, workers: int) -> EmbeddedConsumer:
    consumer = EmbeddedConsumer(
        queue,
        workers=workers,
        worker_type="thread",
        initial_delay=POLL_INITIAL_DELAY_S,
        max_delay=POLL_MAX_DELAY_S,
        backoff=1.15,
    )
    consumer.start()
    log.info("embedded consumer started with %d worker thread(s)", workers)
    return consumer


huey = make_huey(settings)
job_store = make_job_store(settings)
