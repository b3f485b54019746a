"""A job's life: which moves exist, who may make them, and what each leaves on the record."""

import pytest

from worker.jobs import lifecycle
from worker.jobs.record import CANCELLED, COMPLETED, FAILED, PROCESSING, QUEUED, Job, hash_token, new_job_id


def job(status: str = QUEUED, worker: str | None = None) -> Job:
    return Job(new_job_id(), "fusion", 1.0, hash_token("t"), status=status, worker=worker)


def test_a_run_claims_a_queued_job_and_only_its_claim_can_finish_it():
    record = job()
    assert lifecycle.claim("run-a", 5.0)(record)
    assert (record.status, record.stage, record.worker, record.attempts) == (PROCESSING, "starting", "run-a", 1)
    assert not lifecycle.complete("run-b", 6.0)(record), "a run that was given up on cannot publish"
    assert lifecycle.complete("run-a", 6.0)(record)
    assert (record.status, record.progress, record.stage, record.finished_at) == (COMPLETED, 100, "done", 6.0)


@pytest.mark.parametrize("status", [COMPLETED, FAILED, CANCELLED])
def test_a_finished_job_never_moves_again(status):
    record = job(status, worker="run-a")
    for change in (lifecycle.claim("run-a", 1.0), lifecycle.complete("run-a", 1.0), lifecycle.fail("run-a", "x", 1.0),
                   lifecycle.requeue("run-a", "task", "again", True), lifecycle.cancel(status, 1.0),
                   lifecycle.request_cancel(1.0)):
        assert not change(record)
    assert record.status == status


def test_a_requeued_run_starts_from_nothing_and_a_hand_back_does_not_count_as_a_run():
    record = job()
    lifecycle.claim("run-a", 5.0)(record)
    record.progress = 45
    assert lifecycle.requeue("run-a", "task-2", lifecycle.HANDED_BACK_STAGE, count_attempt=False)(record)
    assert (record.status, record.progress, record.attempts, record.worker, record.task_id) == (QUEUED, 0, 0, None,
                                                                                                 "task-2")


def test_a_lost_run_fails_only_while_its_heartbeat_is_still_stale():
    record = job()
    lifecycle.claim("run-a", 5.0)(record)
    assert not lifecycle.fail_lost("run-a", deadline=5.0, now=20.0)(record), "it beat at the deadline"
    assert lifecycle.fail_lost("run-a", deadline=6.0, now=20.0)(record)
    assert (record.status, record.error, record.finished_at) == (FAILED, lifecycle.WORKER_LOST, 20.0)


def test_cancel_needs_the_status_it_saw_and_a_request_changes_no_status():
    record = job()
    assert lifecycle.request_cancel(3.0)(record) and (record.status, record.cancel_requested_at) == (QUEUED, 3.0)
    assert not lifecycle.cancel(PROCESSING, 4.0)(record)
    assert lifecycle.cancel(QUEUED, 4.0)(record)
    assert (record.status, record.stage) == (CANCELLED, "cancelled")


def test_every_status_has_its_moves_and_finished_ones_have_none():
    assert set(lifecycle.MOVES) == {QUEUED, PROCESSING, COMPLETED, FAILED, CANCELLED}
    assert all(not lifecycle.MOVES[status] for status in (COMPLETED, FAILED, CANCELLED))
