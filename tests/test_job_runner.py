"""A worker runs a job to exactly one terminal state, publishing progress and honouring cancellation."""

import json

import pytest

from tests.support.stack import SLOTS
from worker.config import load_settings
from worker.job_files import JobFiles
from worker.job_runner import run_job
from worker.job_store import SqliteJobStore
from worker.jobs import CANCELLED, COMPLETED, FAILED, PROCESSING, QUEUED, Job, hash_token, new_job_id
from worker.uploads import store_inputs, validate_upload_files


class RecordingStore(SqliteJobStore):
    """A real SQLite store that also remembers every progress report, and can cancel after the n-th."""

    def __init__(self, path, cancel_after: int | None = None):
        super().__init__(path)
        self.reports: list[tuple[int, str]] = []
        self.cancel_after = cancel_after

    def report_progress(self, job_id, progress, stage, now):
        self.reports.append((progress, stage))
        if self.cancel_after is not None and len(self.reports) == self.cancel_after:
            self.transition(job_id, (PROCESSING,), status=CANCELLED)
        return super().report_progress(job_id, progress, stage, now)


@pytest.fixture
def config(tmp_path):
    return load_settings({"RECON_DATA_DIR": str(tmp_path)})


def queue_job(store, config, input_dir, views=None, depths=None, **options) -> Job:
    views = views or [input_dir / f"view_{i}_{slot}.png" for i, slot in enumerate(SLOTS)]
    depths = depths or [input_dir / f"depth_{i}_{slot}.png" for i, slot in enumerate(SLOTS)]
    upload = validate_upload_files(views, depths, max_file_bytes=config.max_file_bytes, max_pixels=config.max_pixels)
    job = Job(new_job_id(), "fusion", 1.0, hash_token("t"), options={"grid_resolution": 128, **options})
    store_inputs(upload, JobFiles.of(config.jobs_dir, job.job_id).inputs)
    store.create(job)
    return job


def test_a_job_completes_with_a_mesh_a_report_and_rising_progress(config, sphere_inputs):
    store = RecordingStore(config.sqlite_path)
    job = queue_job(store, config, sphere_inputs)
    assert run_job(job.job_id, store, config)
    done = store.get(job.job_id)
    assert (done.status, done.progress, done.error) == (COMPLETED, 100, None)
    files = JobFiles.of(config.jobs_dir, job.job_id)
    assert files.result.read_bytes()[:4] == b"glTF" and not files.partial.exists()
    report = json.loads(files.report.read_text())
    assert report["job_id"] == job.job_id and len(report["views"]) == 6
    progress = [p for p, _ in store.reports]
    assert progress == sorted(progress) and len(set(progress)) >= 4
    assert len({stage for _, stage in store.reports}) >= 4


def test_a_cancelled_job_stops_at_its_next_progress_update_and_leaves_no_outputs(config, sphere_inputs):
    store = RecordingStore(config.sqlite_path, cancel_after=4)
    job = queue_job(store, config, sphere_inputs)
    assert run_job(job.job_id, store, config)
    assert store.get(job.job_id).status == CANCELLED
    assert len(store.reports) == 4
    files = JobFiles.of(config.jobs_dir, job.job_id)
    assert not files.partial.exists() and not files.output.exists()


def test_a_job_that_is_no_longer_queued_is_not_started(config, sphere_inputs):
    store = RecordingStore(config.sqlite_path)
    job = queue_job(store, config, sphere_inputs)
    store.transition(job.job_id, (QUEUED,), status=CANCELLED)
    assert not run_job(job.job_id, store, config)
    assert store.reports == [] and store.get(job.job_id).started_at is None


def test_inputs_without_any_surface_fail_with_a_sentence(config, tmp_path):
    from tests.support.pngs import png
    import numpy as np

    blank_views = [png(np.full((64, 64, 3), 128, np.uint8)) for _ in SLOTS]
    blank_depths = [png(np.zeros((64, 64), np.uint16)) for _ in SLOTS]
    store = RecordingStore(config.sqlite_path)
    job = queue_job(store, config, tmp_path, views=blank_views, depths=blank_depths)
    run_job(job.job_id, store, config)
    failed = store.get(job.job_id)
    assert failed.status == FAILED and failed.error and "Traceback" not in failed.error
    assert not JobFiles.of(config.jobs_dir, job.job_id).partial.exists()
