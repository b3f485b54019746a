"""A worker runs a job to exactly one terminal state, publishing progress and honouring cancellation."""

import json
import threading

import pytest

from tests.support.stack import SLOTS
from worker.config import load_settings
from worker.errors import store_unavailable
from worker.jobs.files import COMPARISON_NAME, TURNTABLE_NAME, JobFiles
from worker.jobs.record import CANCELLED, COMPLETED, FAILED, PROCESSING, QUEUED, Job, hash_token, new_job_id
from worker.jobs.store import SqliteJobStore
from worker.jobs.uploads import store_inputs, validate_upload_files
from worker.queue.huey_app import huey
from worker.queue.runner import Outcome, run_job


class RecordingStore(SqliteJobStore):
    """A real SQLite store that also remembers every progress report, and can act after the n-th."""

    def __init__(self, path, act_after: int | None = None, act=None):
        super().__init__(path)
        self.reports: list[tuple[int, str]] = []
        self.act_after = act_after
        self.act = act

    def report_progress(self, job_id, claim, progress, stage, now):
        self.reports.append((progress, stage))
        if len(self.reports) == self.act_after:
            self.act(self, job_id)
        return super().report_progress(job_id, claim, progress, stage, now)


class OutageAtClaim(SqliteJobStore):
    """A real SQLite store whose first `refused` claims meet a store outage (a Redis restart); with `lands`, the
    last of them is written before the error hides the reply."""

    def __init__(self, path, refused: int, lands: bool):
        super().__init__(path)
        self.refused = refused
        self.lands = lands

    def claim(self, job_id, claim, now):
        if self.refused:
            self.refused -= 1
            if self.lands and not self.refused:
                super().claim(job_id, claim, now)
            raise store_unavailable("job store (Redis)")
        return super().claim(job_id, claim, now)


def cancel(store, job_id):
    store.transition(job_id, (PROCESSING,), status=CANCELLED)


def queue_job(store, config, input_dir, views=None, depths=None, **options) -> Job:
    views = views or [input_dir / f"view_{i}_{slot}.png" for i, slot in enumerate(SLOTS)]
    depths = depths or [input_dir / f"depth_{i}_{slot}.png" for i, slot in enumerate(SLOTS)]
    upload = validate_upload_files(views, depths, max_file_bytes=config.max_file_bytes, max_pixels=config.max_pixels)
    job = Job(new_job_id(), "fusion", 1.0, hash_token("t"), options={"grid_resolution": 128, **options}, task_id="first")
    store_inputs(upload, JobFiles.of(config.jobs_dir, job.job_id).inputs)
    store.create(job)
    return job


def test_a_job_completes_with_a_mesh_a_report_and_rising_progress(config, queue, sphere_inputs):
    store = RecordingStore(config.sqlite_path)
    job = queue_job(store, config, sphere_inputs)
    assert run_job(job.job_id, store, config, queue) is Outcome.FINISHED
    done = store.get(job.job_id)
    assert (done.status, done.progress, done.error) == (COMPLETED, 100, None)
    files = JobFiles.of(config.jobs_dir, job.job_id)
    assert files.result.read_bytes()[:4] == b"glTF" and not files.partial.exists()
    report = json.loads(files.report.read_text())
    assert report["job_id"] == job.job_id and len(report["views"]) == 6
    progress = [p for p, _ in store.reports]
    assert progress == sorted(progress) and len(set(progress)) >= 4
    assert len({stage for _, stage in store.reports}) >= 4
    assert (99, "drawing the comparison") in store.reports
    assert (files.output / COMPARISON_NAME).read_bytes()[:4] == b"\x89PNG"
    assert (files.output / TURNTABLE_NAME).read_bytes()[8:12] == b"WEBP"


def test_a_cancelled_job_stops_at_its_next_progress_update_and_leaves_no_outputs(config, queue, sphere_inputs):
    store = RecordingStore(config.sqlite_path, act_after=4, act=cancel)
    job = queue_job(store, config, sphere_inputs)
    assert run_job(job.job_id, store, config, queue) is Outcome.FINISHED
    assert store.get(job.job_id).status == CANCELLED
    assert len(store.reports) == 4
    files = JobFiles.of(config.jobs_dir, job.job_id)
    assert not files.partial.exists() and not files.output.exists() and not files.inputs.exists()


def test_a_job_that_is_no_longer_queued_is_not_started(config, queue, sphere_inputs):
    store = RecordingStore(config.sqlite_path)
    job = queue_job(store, config, sphere_inputs)
    store.transition(job.job_id, (QUEUED,), status=CANCELLED)
    assert run_job(job.job_id, store, config, queue) is Outcome.NOT_STARTED
    assert store.reports == [] and store.get(job.job_id).started_at is None


def test_a_shutting_down_worker_hands_its_job_back_to_the_queue(config, queue, sphere_inputs):
    stopping = threading.Event()
    store = RecordingStore(config.sqlite_path, act_after=3, act=lambda *_: stopping.set())
    job = queue_job(store, config, sphere_inputs)
    assert run_job(job.job_id, store, config, queue, stopping=stopping) is Outcome.HANDED_BACK
    back = store.get(job.job_id)
    assert (back.status, back.attempts, back.worker, back.started_at) == (QUEUED, 0, None, None)
    assert back.task_id != "first" and [task.id for task in huey.pending()] == [back.task_id]
    assert not JobFiles.of(config.jobs_dir, job.job_id).partial.exists()


def test_inputs_without_any_surface_fail_with_a_sentence(config, queue, tmp_path):
    import numpy as np

    from tests.support.pngs import png

    blank_views = [png(np.full((64, 64, 3), 128, np.uint8)) for _ in SLOTS]
    blank_depths = [png(np.zeros((64, 64), np.uint16)) for _ in SLOTS]
    store = RecordingStore(config.sqlite_path)
    job = queue_job(store, config, tmp_path, views=blank_views, depths=blank_depths)
    run_job(job.job_id, store, config, queue)
    failed = store.get(job.job_id)
    assert failed.status == FAILED and failed.error and "Traceback" not in failed.error
    files = JobFiles.of(config.jobs_dir, job.job_id)
    assert not files.partial.exists() and not files.inputs.exists(), "a failed job keeps no inputs"


def test_a_job_past_the_time_limit_fails_with_a_sentence_and_keeps_no_files(tmp_path, queue, sphere_inputs):
    config = load_settings({"RECON_DATA_DIR": str(tmp_path), "RECON_JOB_TIME_LIMIT_S": "0"})
    store = RecordingStore(config.sqlite_path)
    job = queue_job(store, config, sphere_inputs)
    run_job(job.job_id, store, config, queue)
    failed = store.get(job.job_id)
    assert failed.status == FAILED and "time limit of 0 s" in failed.error
    files = JobFiles.of(config.jobs_dir, job.job_id)
    assert not files.partial.exists() and not files.inputs.exists()


def test_a_retried_run_says_which_run_it_is(config, queue, sphere_inputs):
    store = RecordingStore(config.sqlite_path)
    job = queue_job(store, config, sphere_inputs)
    store.update(job.job_id, attempts=1)
    run_job(job.job_id, store, config, queue)
    assert all(stage.endswith("(retrying: run 2 of 2)") for _, stage in store.reports)


@pytest.mark.parametrize("lands", [False, True], ids=["refused", "written, reply lost"])
def test_a_store_outage_as_the_task_starts_is_waited_out_and_the_job_runs_once(config, queue, sphere_inputs, lands):
    store = OutageAtClaim(config.sqlite_path, refused=2, lands=lands)
    job = queue_job(store, config, sphere_inputs)
    assert run_job(job.job_id, store, config, queue) is Outcome.FINISHED
    done = store.get(job.job_id)
    assert (done.status, done.attempts, store.refused) == (COMPLETED, 1, 0)
