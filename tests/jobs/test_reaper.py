"""The reaper retries, then fails, jobs whose worker died, and removes jobs past their retention time."""

import os
import time

import pytest

from worker.config import load_settings
from worker.jobs.files import JobFiles
from worker.jobs.lifecycle import WORKER_LOST, retry_stage
from worker.jobs.reaper import (
    remove_expired_jobs,
    remove_leftovers,
    repair_orphaned_jobs,
    settle_lost_jobs,
)
from worker.jobs.record import CANCELLED, COMPLETED, FAILED, PROCESSING, QUEUED, Job, hash_token, new_job_id
from worker.jobs.store import SqliteJobStore


@pytest.fixture
def config(tmp_path):
    return load_settings({"RECON_DATA_DIR": str(tmp_path), "RECON_HEARTBEAT_TIMEOUT_S": "15",
                          "RECON_RETENTION_HOURS": "1", "RECON_JOB_ATTEMPTS": "2"})


@pytest.fixture
def store(config):
    return SqliteJobStore(config.sqlite_path)


def running_job(store, heartbeat_at: float, claim: str = "worker-a") -> Job:
    job = Job(new_job_id(), "fusion", heartbeat_at - 1, hash_token("t"))
    store.create(job)
    store.claim(job.job_id, claim, now=heartbeat_at)
    return job


def test_a_lost_job_on_its_first_run_is_queued_again_with_a_fresh_task(store, queue, config):
    now = 1000.0
    lost = running_job(store, heartbeat_at=now - 16)
    store.update(lost.job_id, progress=45)
    alive = running_job(store, heartbeat_at=now - 5)
    files = JobFiles.of(config.jobs_dir, lost.job_id)
    files.partial.mkdir(parents=True)
    assert settle_lost_jobs(store, queue, config, now) == [lost.job_id]
    retried = store.get(lost.job_id)
    assert (retried.status, retried.stage, retried.attempts, retried.worker) == (QUEUED, retry_stage(2, 2), 1, None)
    assert retried.progress == 0, "the next run's progress starts again, not at the dead run's 45%"
    assert [task.id for task in queue.queue.pending()] == [retried.task_id]
    assert store.get(alive.job_id).status == PROCESSING
    assert not files.partial.exists()


def test_a_job_lost_on_its_last_run_fails_with_a_sentence(store, queue, config):
    now = 1000.0
    job = running_job(store, heartbeat_at=now - 100)
    settle_lost_jobs(store, queue, config, now - 80)
    store.claim(job.job_id, "worker-b", now=now - 16)
    assert settle_lost_jobs(store, queue, config, now) == [job.job_id]
    failed = store.get(job.job_id)
    assert failed.status == FAILED and failed.error == WORKER_LOST
    assert "the worker stopped unexpectedly" in failed.error


def test_queued_jobs_are_never_reaped(store, queue, config):
    job = Job(new_job_id(), "fusion", 0.0, hash_token("t"))
    store.create(job)
    assert settle_lost_jobs(store, queue, config, time.time()) == []
    assert store.get(job.job_id).status == QUEUED


def test_finished_jobs_past_retention_are_removed_with_their_files(store, config):
    now = 100_000.0
    old, recent = (Job(new_job_id(), "fusion", 0.0, hash_token("t")) for _ in range(2))
    for job, finished in ((old, now - 3601), (recent, now - 60)):
        store.create(job)
        store.transition(job.job_id, (QUEUED,), status=COMPLETED, finished_at=finished)
        JobFiles.of(config.jobs_dir, job.job_id).output.mkdir(parents=True)
    assert remove_expired_jobs(store, config, now) == [old.job_id]
    assert store.get(old.job_id) is None and not JobFiles.of(config.jobs_dir, old.job_id).root.exists()
    assert store.get(recent.job_id) is not None and JobFiles.of(config.jobs_dir, recent.job_id).root.exists()


def test_a_queued_job_whose_task_was_lost_gets_a_fresh_one(store, queue, config):
    now = 1000.0
    orphan = Job(new_job_id(), "fusion", now - 31, hash_token("t"), task_id="lost-with-a-killed-worker")
    young = Job(new_job_id(), "fusion", now - 5, hash_token("t"), task_id="not-enqueued-yet")
    waiting = Job(new_job_id(), "fusion", now - 60, hash_token("t"))
    task = queue.new_task(waiting.job_id)
    waiting.task_id = task.id
    queue.enqueue(task)
    for job in (orphan, young, waiting):
        store.create(job)
    assert repair_orphaned_jobs(store, queue, now) == [orphan.job_id]
    repaired = store.get(orphan.job_id)
    assert repaired.status == QUEUED and repaired.task_id in queue.pending_task_ids()
    assert store.get(young.job_id).task_id == "not-enqueued-yet"


def test_leftovers_of_submissions_and_jobs_that_ended_without_a_result_are_swept(store, config):
    """A SIGKILL during a submission leaves a staging folder and maybe a folder without a record; a worker
    that died leaves the inputs of a job that failed or was cancelled. None of them survives a sweep."""
    now = time.time()
    hour_ago = now - 3600
    recordless = config.jobs_dir / new_job_id()
    stale_staging = recordless / ".incoming-abc123"
    fresh_staging = config.jobs_dir / new_job_id() / ".incoming-def456"
    for folder in (stale_staging, fresh_staging, config.jobs_dir / ".incoming-xyz"):
        folder.mkdir(parents=True)
    for path in (stale_staging, recordless, config.jobs_dir / ".incoming-xyz"):
        os.utime(path, (hour_ago, hour_ago))
    ended = {}
    for status in (FAILED, CANCELLED, COMPLETED):
        job = Job(new_job_id(), "fusion", now, hash_token("t"))
        store.create(job)
        store.transition(job.job_id, (QUEUED,), status=status, finished_at=now)
        JobFiles.of(config.jobs_dir, job.job_id).inputs.mkdir(parents=True)
        ended[status] = JobFiles.of(config.jobs_dir, job.job_id).inputs

    remove_leftovers(store, config, now)
    assert not recordless.exists() and not (config.jobs_dir / ".incoming-xyz").exists()
    assert fresh_staging.exists(), "a submission being written right now is left alone"
    assert not ended[FAILED].exists() and not ended[CANCELLED].exists()
    assert ended[COMPLETED].exists()
