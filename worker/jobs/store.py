"""Job records in the queue's own backend, so the web process and every worker see one truth.

Every change is a read-modify-write under the backend's own atomicity (an
immediate SQLite transaction, a Redis WATCH/MULTI), so a cancel confirmed by
the web process and a progress update from a worker can never both win.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable, TypeVar

import redis

from ..errors import store_unavailable
from . import lifecycle
from .lifecycle import Change
from .record import PROCESSING, QUEUED, STATUSES, Job

T = TypeVar("T", bound=Callable)
REDIS_OUTAGES = (redis.ConnectionError, redis.TimeoutError)


class JobStore(ABC):
    @abstractmethod
    def create(self, job: Job) -> None: ...

    @abstractmethod
    def get(self, job_id: str) -> Job | None: ...

    @abstractmethod
    def mutate(self, job_id: str, change: Change) -> Job | None:
        """Apply `change` atomically; it returns False to leave the record alone."""

    @abstractmethod
    def ids_with_status(self, status: str) -> list[str]:
        """Oldest first."""

    @abstractmethod
    def count_queued_before(self, created_at: float) -> int: ...

    @abstractmethod
    def delete(self, job_id: str) -> None: ...

    @abstractmethod
    def take(self, key: str, amount: int, limit: int, window_s: float, now: float) -> float | None:
        """Add `amount` to counter `key` for the current fixed window of `window_s` seconds unless the window's
        total would pass `limit`: None when taken, else the seconds until the window ends.

        Counters live beside the jobs so that every web process (and a restarted one) shares them."""

    def transition(
        self, job_id: str, from_statuses: tuple[str, ...], claim: str | None = None, **fields: object
    ) -> Job | None:
        """Set `fields` if the job is in one of `from_statuses` (and, given a claim, still held by it)."""

        def change(job: Job) -> bool:
            if job.status not in from_statuses or (claim is not None and job.worker != claim):
                return False
            for name, value in fields.items():
                setattr(job, name, value)
            return True

        return self.mutate(job_id, change)

    def update(self, job_id: str, **fields: object) -> Job | None:
        return self.transition(job_id, STATUSES, **fields)

    def claim(self, job_id: str, claim: str, now: float) -> Job | None:
        """Take a queued job for one run; every later write of that run names the claim."""
        return self.mutate(job_id, lifecycle.claim(claim, now))

    def report_progress(self, job_id: str, claim: str, progress: int, stage: str, now: float) -> bool:
        """Progress never goes backwards; False once this run no longer holds the job (cancelled, reaped)."""

        def change(job: Job) -> bool:
            if job.status != PROCESSING or job.worker != claim:
                return False
            job.progress = max(job.progress, min(100, int(progress)))
            job.stage = stage
            job.heartbeat_at = now
            return True

        return self.mutate(job_id, change) is not None

    def heartbeat(self, job_id: str, claim: str, now: float) -> bool:
        return self.transition(job_id, (PROCESSING,), claim, heartbeat_at=now) is not None

    def queue_position(self, job: Job) -> int | None:
        """1 for the next job to start; None once the job has left the queue."""
        if job.status != QUEUED:
            return None
        return self.count_queued_before(job.created_at) + 1


class SqliteJobStore(JobStore):
    """A `jobs` table beside Huey's own tables, in the same SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._conn() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS jobs (job_id TEXT PRIMARY KEY, status TEXT NOT NULL,"
                " created_at REAL NOT NULL, data TEXT NOT NULL)"
            )
            conn.execute("CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created_at)")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS counters (key TEXT NOT NULL, window INTEGER NOT NULL,"
                " amount INTEGER NOT NULL, PRIMARY KEY (key, window))"
            )

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def create(self, job: Job) -> None:
        self._conn().execute(
            "INSERT INTO jobs (job_id, status, created_at, data) VALUES (?, ?, ?, ?)",
            (job.job_id, job.status, job.created_at, json.dumps(job.to_row())),
        )

    def get(self, job_id: str) -> Job | None:
        row = self._conn().execute("SELECT data FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return Job.from_row(json.loads(row[0])) if row else None

    def mutate(self, job_id: str, change: Change) -> Job | None:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT data FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            job = Job.from_row(json.loads(row[0])) if row else None
            if job is None or not change(job):
                conn.execute("ROLLBACK")
                return None
            conn.execute(
                "UPDATE jobs SET status = ?, data = ? WHERE job_id = ?",
                (job.status, json.dumps(job.to_row()), job_id),
            )
            conn.execute("COMMIT")
            return job
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def ids_with_status(self, status: str) -> list[str]:
        rows = self._conn().execute(
            "SELECT job_id FROM jobs WHERE status = ? ORDER BY created_at", (status,)
        ).fetchall()
        return [row[0] for row in rows]

    def count_queued_before(self, created_at: float) -> int:
        row = self._conn().execute(
            "SELECT COUNT(*) FROM jobs WHERE status = ? AND created_at < ?", (QUEUED, created_at)
        ).fetchone()
        return int(row[0])

    def delete(self, job_id: str) -> None:
        self._conn().execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))

    def take(self, key: str, amount: int, limit: int, window_s: float, now: float) -> float | None:
        window = int(now // window_s)
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM counters WHERE key = ? AND window < ?", (key, window))
            row = conn.execute("SELECT amount FROM counters WHERE key = ? AND window = ?", (key, window)).fetchone()
            if (row[0] if row else 0) + amount > limit:
                conn.execute("ROLLBACK")
                return (window + 1) * window_s - now
            conn.execute(
                "INSERT INTO counters (key, window, amount) VALUES (?, ?, ?)"
                " ON CONFLICT (key, window) DO UPDATE SET amount = amount + excluded.amount",
                (key, window, amount),
            )
            conn.execute("COMMIT")
            return None
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def _redis_outage_is_unavailable(method: T) -> T:
    """A Redis restart becomes a typed, retryable error (503 at the edge), not a crash."""

    @functools.wraps(method)
    def call(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except REDIS_OUTAGES as exc:
            raise store_unavailable("job store (Redis)") from exc

    return call  # type: ignore[return-value]


class RedisJobStore(JobStore):
    """One JSON value per job plus one sorted set per status (scored by creation time)."""

    def __init__(self, client: redis.Redis, prefix: str = "recon") -> None:
        self.client = client
        self.prefix = prefix

    def _key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def _index(self, status: str) -> str:
        return f"{self.prefix}:status:{status}"

    @_redis_outage_is_unavailable
    def create(self, job: Job) -> None:
        with self.client.pipeline() as pipe:
            pipe.set(self._key(job.job_id), json.dumps(job.to_row()))
            pipe.zadd(self._index(job.status), {job.job_id: job.created_at})
            pipe.execute()

    @_redis_outage_is_unavailable
    def get(self, job_id: str) -> Job | None:
        raw = self.client.get(self._key(job_id))
        return Job.from_row(json.loads(raw)) if raw else None

    @_redis_outage_is_unavailable
    def mutate(self, job_id: str, change: Change) -> Job | None:
        key = self._key(job_id)
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    job = Job.from_row(json.loads(raw)) if raw else None
                    before = job.status if job else None
                    if job is None or not change(job):
                        pipe.unwatch()
                        return None
                    pipe.multi()
                    pipe.set(key, json.dumps(job.to_row()))
                    if job.status != before:
                        pipe.zrem(self._index(before), job_id)
                        pipe.zadd(self._index(job.status), {job_id: job.created_at})
                    pipe.execute()
                    return job
                except redis.WatchError:
                    continue

    @_redis_outage_is_unavailable
    def ids_with_status(self, status: str) -> list[str]:
        return [member.decode() for member in self.client.zrange(self._index(status), 0, -1)]

    @_redis_outage_is_unavailable
    def count_queued_before(self, created_at: float) -> int:
        return int(self.client.zcount(self._index(QUEUED), "-inf", f"({created_at}"))

    @_redis_outage_is_unavailable
    def take(self, key: str, amount: int, limit: int, window_s: float, now: float) -> float | None:
        window = int(now // window_s)
        counter = f"{self.prefix}:counter:{key}:{window}"
        with self.client.pipeline() as pipe:
            pipe.incrby(counter, amount)
            pipe.expire(counter, int(window_s) + 1)
            total, _ = pipe.execute()
        if total > limit:
            self.client.decrby(counter, amount)
            return (window + 1) * window_s - now
        return None

    @_redis_outage_is_unavailable
    def delete(self, job_id: str) -> None:
        job = self.get(job_id)
        with self.client.pipeline() as pipe:
            pipe.delete(self._key(job_id))
            if job is not None:
                pipe.zrem(self._index(job.status), job_id)
            pipe.execute()
