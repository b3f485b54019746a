"""The one Huey instance, and the consumer that runs inside the web process.

`huey_consumer worker.queue.tasks.huey` runs the same queue on GPU hosts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
import threading
from pathlib import Path

import redis
from huey import RedisHuey, SqliteHuey
from huey.api import Huey
from huey.consumer import Consumer
from huey.serializer import SignedSerializer

from ..config import ConfigError, Settings, settings
from ..jobs.store import JobStore, RedisJobStore, SqliteJobStore

QUEUE_NAME = "recon"
POLL_INITIAL_DELAY_S = 0.05
POLL_MAX_DELAY_S = 0.25
SECRET_FILE = "queue.secret"

log = logging.getLogger(__name__)


def queue_secret(config: Settings) -> str:
    """RECON_QUEUE_SECRET, else a secret made once and kept in the (shared) data folder.

    The file appears complete or not at all (written aside, then linked into place), so processes starting
    together on a fresh volume agree on it; one that others could write is refused, since the secret is what
    keeps a writable queue from running code."""
    if config.queue_secret:
        return config.queue_secret
    path = config.data_dir / SECRET_FILE
    config.data_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        _write_once(path, secrets.token_hex(32))
    mode = path.stat().st_mode
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(f"{path} is writable by other users (mode {stat.S_IMODE(mode):o}); "
                          f"make it private with: chmod 600 {path}")
    secret = path.read_text().strip()
    if not secret:
        raise ConfigError(f"{path} is empty; delete it (a new one is made at start) or set RECON_QUEUE_SECRET")
    return secret


def _write_once(path: Path, content: str) -> None:
    staging = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(staging, path)
    finally:
        staging.unlink(missing_ok=True)


class ShutdownAware:
    """Lets a running job see its consumer stopping (SIGTERM/SIGINT), so it can hand the job back.

    The stock `huey_consumer` builds its consumer with `create_consumer`, so this works there too.
    """

    stopping: threading.Event | None = None

    def create_consumer(self, consumer_class: type[Consumer] = Consumer, **options: object) -> Consumer:
        consumer = consumer_class(self, **options)
        self.stopping = consumer.stop_flag
        return consumer


class ReconSqliteHuey(ShutdownAware, SqliteHuey):
    pass


class ReconRedisHuey(ShutdownAware, RedisHuey):
    pass


def make_huey(config: Settings) -> Huey:
    """Task messages are pickles: signing them means a writable queue alone cannot run code."""
    serializer = SignedSerializer(secret=queue_secret(config), salt=QUEUE_NAME)
    if config.uses_redis:
        return ReconRedisHuey(QUEUE_NAME, url=config.queue_url, blocking=True, read_timeout=1, serializer=serializer)
    return ReconSqliteHuey(QUEUE_NAME, filename=str(config.sqlite_path), serializer=serializer)


def make_job_store(config: Settings) -> JobStore:
    if config.uses_redis:
        return RedisJobStore(redis.Redis.from_url(config.queue_url), prefix=QUEUE_NAME)
    return SqliteJobStore(config.sqlite_path)


class EmbeddedConsumer(Consumer):
    """A consumer that lives in a thread of the web process and leaves its signal handlers alone."""

    def _set_signal_handlers(self) -> None:
        pass


def start_embedded_consumer(queue: ShutdownAware, workers: int) -> Consumer:
    consumer = queue.create_consumer(
        consumer_class=EmbeddedConsumer,
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
