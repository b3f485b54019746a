"""The job record: what the web process, every worker and every client agree a job is."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from nanoid import generate

QUEUED = "queued"
PROCESSING = "processing"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
STATUSES = (QUEUED, PROCESSING, COMPLETED, FAILED, CANCELLED)
ACTIVE = (QUEUED, PROCESSING)
TERMINAL = (COMPLETED, FAILED, CANCELLED)

JOB_ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
JOB_ID_LENGTH = 8
_JOB_ID = re.compile(rf"[0-9a-z]{{{JOB_ID_LENGTH}}}")


_JSON_FIELDS = {"options": dict, "warnings": list}


def new_job_id() -> str:
    return generate(JOB_ID_ALPHABET, JOB_ID_LENGTH)


def is_job_id(value: str) -> bool:
    """Checked before an id touches storage or the filesystem."""
    return isinstance(value, str) and _JOB_ID.fullmatch(value) is not None


def new_token() -> str:
    return secrets.token_urlsafe(24)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, token_hash: str) -> bool:
    return hmac.compare_digest(hash_token(token), token_hash)


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Job:
    job_id: str
    model_type: str
    created_at: float
    token_hash: str
    status: str = QUEUED
    progress: int = 0
    stage: str = "waiting in queue"
    options: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    task_id: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    heartbeat_at: float | None = None
    cancel_requested_at: float | None = None
    error: str | None = None
    worker: str | None = None
    attempts: int = 0

    @property
    def last_sign_of_life(self) -> float:
        """When its run last proved alive: the heartbeat, else the run's start, else the job's creation."""
        return self.heartbeat_at or self.started_at or self.created_at

    def to_row(self) -> dict[str, object]:
        row = asdict(self)
        for name in _JSON_FIELDS:
            row[name] = json.dumps(row[name])
        return row

    @classmethod
    def from_row(cls, row: dict) -> "Job":
        values = dict(row)
        for name, empty in _JSON_FIELDS.items():
            values[name] = json.loads(values[name]) if values.get(name) else empty()
        return cls(**values)

    def public(self) -> dict[str, object]:
        """The flat record clients see: no token hash, timestamps as ISO 8601 UTC."""
        return {
            "job_id": self.job_id,
            "status": self.status,
            "progress": self.progress,
            "stage": self.stage,
            "model_type": self.model_type,
            "options": self.options,
            "warnings": self.warnings,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "error": self.error,
        }
