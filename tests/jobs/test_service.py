"""The job service: submission stores everything or nothing; cancellation takes a request and a confirmation."""

import numpy as np
import pytest

from tests.support.pngs import input_set, png
from worker.config import load_settings
from worker.errors import (
    FileValidationError,
    JobConflictError,
    JobForbiddenError,
    JobNotFoundError,
    JobStateError,
    ModelUnavailableError,
    ReconError,
    ServiceBusyError,
    StorageError,
)
from worker.jobs.files import JobFiles
from worker.jobs.limits import MB
from worker.jobs.models import FUSION
from worker.jobs.record import CANCELLED, COMPLETED, PROCESSING, QUEUED
from worker.jobs.service import CANCEL_CONFIRMED_MESSAGE, CANCEL_REQUESTED_MESSAGE, JobService
from worker.jobs.store import SqliteJobStore
from worker.queue.tasks import HueyJobQueue


@pytest.fixture
def service(config, huey_queue):
    return JobService(SqliteJobStore(config.sqlite_path), HueyJobQueue(huey_queue), config)


def submit(service, **kwargs):
    views, depths = input_set(32)
    return service.submit(views, depths, **kwargs)


def test_a_submitted_job_is_queued_with_its_inputs_and_task(service, config, huey_queue):
    submitted = submit(service, model_type="fusion", options={"grid_resolution": 128})
    job = service.get(submitted.job.job_id)
    assert (job.status, job.progress, job.model_type) == (QUEUED, 0, "fusion")
    assert job.options == {**FUSION.resolve_options({}), "grid_resolution": 128}
    assert len(job.job_id) == 8 and job.job_id.isalnum() and job.job_id.lower() == job.job_id
    assert len(list(JobFiles.of(config.jobs_dir, job.job_id).inputs.iterdir())) == 12
    assert huey_queue.pending_count() == 1 and huey_queue.pending()[0].id == job.task_id
    assert service.queue_position(job) == 1


def test_the_model_defaults_to_the_best_available_and_options_to_their_defaults(service):
    job = submit(service).job
    assert job.model_type == "fusion"
    assert job.options == {option.name: option.default for option in FUSION.options}


def test_a_rejected_submission_leaves_nothing_behind(service, config, huey_queue):
    views, depths = input_set(32)
    with pytest.raises(FileValidationError):
        service.submit(views, depths[:5])
    with pytest.raises(ModelUnavailableError) as unknown:
        service.submit(views, depths, model_type="magic")
    assert "available models: fusion" in unknown.value.message
    with pytest.raises(ReconError) as bad_option:
        service.submit(views, depths, options={"grid_resolution": 4096})
    assert bad_option.value.field == "options.grid_resolution"
    assert huey_queue.pending_count() == 0
    assert not config.jobs_dir.exists() or not any(config.jobs_dir.iterdir())


def test_an_unknown_or_malformed_job_id_is_not_found(service):
    for job_id in ("zzzzzzzz", "../../etc", "ABCDEFGH"):
        with pytest.raises(JobNotFoundError):
            service.get(job_id)


def test_cancelling_needs_the_jobs_token(service):
    job = submit(service).job
    for token in (None, "", "wrong"):
        with pytest.raises(JobForbiddenError):
            service.cancel(job.job_id, token, confirm=False)


def test_a_queued_job_is_cancelled_in_two_steps_and_its_task_revoked(service, huey_queue):
    submitted = submit(service)
    job_id, token = submitted.job.job_id, submitted.token
    first = service.cancel(job_id, token, confirm=False)
    assert (first.status, first.message) == ("cancel_requested", CANCEL_REQUESTED_MESSAGE)
    assert service.get(job_id).status == QUEUED
    second = service.cancel(job_id, token, confirm=True)
    assert (second.status, second.message) == (CANCELLED, CANCEL_CONFIRMED_MESSAGE)
    assert service.get(job_id).status == CANCELLED and service.get(job_id).finished_at is not None
    assert huey_queue.is_revoked(submitted.job.task_id)
    again = service.cancel(job_id, token, confirm=True)
    assert again.status == CANCELLED


def test_a_confirmation_without_a_pending_request_conflicts(service):
    submitted = submit(service)
    with pytest.raises(JobConflictError):
        service.cancel(submitted.job.job_id, submitted.token, confirm=True)


def test_a_stale_request_must_be_made_again(service, config):
    submitted = submit(service)
    service.cancel(submitted.job.job_id, submitted.token, confirm=False)
    service.store.update(submitted.job.job_id, cancel_requested_at=1.0)
    with pytest.raises(JobConflictError):
        service.cancel(submitted.job.job_id, submitted.token, confirm=True)


def test_a_running_job_is_marked_cancelled_at_once(service):
    submitted = submit(service)
    service.store.transition(submitted.job.job_id, (QUEUED,), status=PROCESSING)
    service.cancel(submitted.job.job_id, submitted.token, confirm=False)
    assert service.cancel(submitted.job.job_id, submitted.token, confirm=True).status == CANCELLED
    assert service.get(submitted.job.job_id).status == CANCELLED


def test_a_finished_job_cannot_be_cancelled(service):
    submitted = submit(service)
    service.store.transition(submitted.job.job_id, (QUEUED,), status=COMPLETED)
    with pytest.raises(JobStateError):
        service.cancel(submitted.job.job_id, submitted.token, confirm=False)


def test_outputs_exist_only_for_completed_jobs(service):
    submitted = submit(service)
    with pytest.raises(JobStateError):
        service.output_file(submitted.job.job_id, "result")


def test_a_full_queue_refuses_new_jobs_with_retry_after(tmp_path, huey_queue):
    config = load_settings({"RECON_DATA_DIR": str(tmp_path / "full"), "RECON_MAX_QUEUED": "2"})
    service = JobService(SqliteJobStore(config.sqlite_path), HueyJobQueue(huey_queue), config)
    submit(service), submit(service)
    with pytest.raises(ServiceBusyError) as refused:
        submit(service)
    assert refused.value.status_code == 503 and refused.value.retry_after > 0
    assert huey_queue.pending_count() == 2


def test_submissions_are_rate_limited_per_client(tmp_path, huey_queue):
    config = load_settings({"RECON_DATA_DIR": str(tmp_path / "rate"), "RECON_RATE_LIMIT_PER_MINUTE": "1"})
    service = JobService(SqliteJobStore(config.sqlite_path), HueyJobQueue(huey_queue), config)
    submit(service, client="10.0.0.1")
    submit(service, client="10.0.0.2")
    with pytest.raises(ServiceBusyError) as refused:
        submit(service, client="10.0.0.1")
    assert refused.value.status_code == 429


def test_a_client_past_its_daily_bytes_is_refused_before_anything_is_written(tmp_path, huey_queue):
    config = load_settings({"RECON_DATA_DIR": str(tmp_path / "bytes"), "RECON_CLIENT_QUOTA_MB": "2"})
    service = JobService(SqliteJobStore(config.sqlite_path), HueyJobQueue(huey_queue), config)
    noise = [png(np.random.default_rng(i).integers(0, 256, (256, 256, 4), dtype=np.uint8)) for i in range(6)]
    _, depths = input_set(256)
    assert 1.2 * MB < sum(map(len, noise + depths)) < 2 * MB
    service.submit(noise, depths, client="10.0.0.1")
    with pytest.raises(ServiceBusyError) as refused:
        service.submit(noise, depths, client="10.0.0.1")
    assert refused.value.status_code == 429 and "per day" in refused.value.message
    assert len(list(config.jobs_dir.iterdir())) == 1 and huey_queue.pending_count() == 1
    service.submit(noise, depths, client="10.0.0.2")


def test_no_space_for_jobs_is_a_507_before_anything_is_written(tmp_path, huey_queue):
    config = load_settings({"RECON_DATA_DIR": str(tmp_path / "disk"), "RECON_DISK_QUOTA_MB": "1"})
    service = JobService(SqliteJobStore(config.sqlite_path), HueyJobQueue(huey_queue), config)
    (config.jobs_dir / "filler").mkdir(parents=True)
    (config.jobs_dir / "filler" / "f").write_bytes(b"x" * (1024 * 1024))
    with pytest.raises(StorageError) as refused:
        submit(service)
    assert refused.value.status_code == 507
    assert [path.name for path in config.jobs_dir.iterdir()] == ["filler"] and huey_queue.pending_count() == 0


def test_a_job_cancelled_while_queued_loses_its_inputs(service, config):
    submitted = submit(service)
    service.cancel(submitted.job.job_id, submitted.token, confirm=False)
    service.cancel(submitted.job.job_id, submitted.token, confirm=True)
    assert not JobFiles.of(config.jobs_dir, submitted.job.job_id).inputs.exists()
