"""The job store keeps one truth for the web process and every worker, on SQLite and on Redis."""

import time

import pytest
import redis

from tests.support.processes import free_port
from worker.errors import ServiceBusyError
from worker.jobs.record import CANCELLED, COMPLETED, PROCESSING, QUEUED, Job, hash_token, new_job_id
from worker.jobs.store import RedisJobStore


def make_job(created_at: float | None = None) -> Job:
    return Job(new_job_id(), "fusion", created_at or time.time(), hash_token("secret"))


def test_a_created_job_reads_back_identical(store):
    job = make_job()
    job.options = {"grid_resolution": 128}
    store.create(job)
    assert store.get(job.job_id) == job


def test_an_unknown_job_reads_as_none(store):
    assert store.get("zzzzzzzz") is None


def test_a_transition_applies_only_from_the_given_statuses(store):
    job = make_job()
    store.create(job)
    assert store.transition(job.job_id, (PROCESSING,), status=COMPLETED) is None
    assert store.transition(job.job_id, (QUEUED,), status=PROCESSING).status == PROCESSING
    assert store.get(job.job_id).status == PROCESSING


def test_a_claim_takes_a_queued_job_once_and_counts_the_run(store):
    job = make_job()
    store.create(job)
    claimed = store.claim(job.job_id, "worker-a", now=5.0)
    assert (claimed.status, claimed.worker, claimed.attempts, claimed.started_at) == (PROCESSING, "worker-a", 1, 5.0)
    assert store.claim(job.job_id, "worker-b", now=6.0) is None


def test_progress_never_goes_backwards_and_refreshes_the_heartbeat(store):
    job = make_job()
    store.create(job)
    store.claim(job.job_id, "worker-a", now=1.0)
    assert store.report_progress(job.job_id, "worker-a", 40, "fusing depth", now=10.0)
    assert store.report_progress(job.job_id, "worker-a", 20, "colouring", now=11.0)
    current = store.get(job.job_id)
    assert (current.progress, current.stage, current.heartbeat_at) == (40, "colouring", 11.0)


def test_progress_is_refused_once_the_run_no_longer_holds_the_job(store):
    job = make_job()
    store.create(job)
    assert not store.report_progress(job.job_id, "worker-a", 10, "fusing depth", now=1.0)
    store.claim(job.job_id, "worker-a", now=1.0)
    assert not store.report_progress(job.job_id, "worker-b", 10, "fusing depth", now=1.0)
    assert not store.heartbeat(job.job_id, "worker-b", now=1.0)
    store.transition(job.job_id, (PROCESSING,), status=CANCELLED)
    assert not store.report_progress(job.job_id, "worker-a", 10, "fusing depth", now=1.0)
    assert not store.heartbeat(job.job_id, "worker-a", now=1.0)


def test_status_listings_and_queue_positions_follow_creation_order(store):
    first, second, third = (make_job(created_at=100.0 + i) for i in range(3))
    for job in (third, first, second):
        store.create(job)
    assert store.ids_with_status(QUEUED) == [first.job_id, second.job_id, third.job_id]
    assert store.queue_position(store.get(third.job_id)) == 3
    store.transition(first.job_id, (QUEUED,), status=PROCESSING)
    assert store.ids_with_status(PROCESSING) == [first.job_id]
    assert store.queue_position(store.get(third.job_id)) == 2
    assert store.queue_position(store.get(first.job_id)) is None


def test_a_deleted_job_is_gone_from_record_and_listings(store):
    job = make_job()
    store.create(job)
    store.delete(job.job_id)
    assert store.get(job.job_id) is None
    assert store.ids_with_status(QUEUED) == []


def test_an_unreachable_redis_is_a_retryable_503():
    store = RedisJobStore(redis.Redis(port=free_port(), socket_connect_timeout=0.2))
    with pytest.raises(ServiceBusyError) as unavailable:
        store.get("abcdefgh")
    assert unavailable.value.status_code == 503 and unavailable.value.retry_after > 0
