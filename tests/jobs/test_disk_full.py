"""A full disk fails the submission or the job with a clear sentence, keeps nothing half-written, and the service goes on."""

import os
import subprocess

import pytest

from tests.support.pngs import input_set
from worker.config import load_settings
from worker.errors import StorageError
from worker.jobs.files import JobFiles
from worker.jobs.record import FAILED, QUEUED
from worker.jobs.service import JobService
from worker.jobs.store import SqliteJobStore
from worker.queue.huey_app import huey
from worker.queue.runner import run_job
from worker.queue.tasks import HueyJobQueue


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs mounted as the jobs folder (needs root; skipped where mounting is not allowed)."""
    jobs = tmp_path / "data" / "jobs"
    jobs.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(jobs)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    yield jobs
    subprocess.run(["umount", str(jobs)], check=True)


def fill(directory) -> None:
    with open(directory / "filler", "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
        except OSError:
            pass


def make_service(tmp_path, **env: str) -> JobService:
    config = load_settings({"RECON_DATA_DIR": str(tmp_path / "data"), **env})
    return JobService(SqliteJobStore(config.sqlite_path), HueyJobQueue(huey), config)


@pytest.fixture
def service(tmp_path, small_disk):
    """No free-space reserve, so that writes themselves meet the full disk."""
    huey.flush()
    yield make_service(tmp_path, RECON_MIN_FREE_DISK_MB="0")
    huey.flush()


def test_the_free_space_reserve_refuses_a_submission_before_a_byte_is_written(tmp_path, small_disk):
    views, depths = input_set(32)
    with pytest.raises(StorageError, match="nearly full") as refused:
        make_service(tmp_path).submit(views, depths)
    assert refused.value.status_code == 507 and os.listdir(small_disk) == []


def test_a_submission_that_does_not_fit_is_refused_and_leaves_nothing(service, small_disk):
    fill(small_disk)
    views, depths = input_set(32)
    with pytest.raises(StorageError) as refused:
        service.submit(views, depths)
    assert refused.value.status_code == 507 and "could not store" in refused.value.message
    assert sorted(os.listdir(small_disk)) == ["filler"]
    assert service.store.ids_with_status(QUEUED) == [] and huey.pending_count() == 0
    (small_disk / "filler").unlink()
    assert service.submit(views, depths).job.status == QUEUED


def test_a_job_whose_outputs_do_not_fit_fails_with_a_sentence(service, small_disk, sphere_inputs):
    views = sorted(sphere_inputs.glob("view_*.png"))
    depths = sorted(sphere_inputs.glob("depth_*.png"))
    job = service.submit(views, depths, options={"grid_resolution": 128}).job
    fill(small_disk)
    run_job(job.job_id, service.store, service.config, service.queue)
    failed = service.get(job.job_id)
    assert failed.status == FAILED and "ran out of disk space" in failed.error
    assert not JobFiles.of(service.config.jobs_dir, job.job_id).partial.exists()
