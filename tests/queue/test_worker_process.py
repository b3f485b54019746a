"""A real deployment: `python app.py` (no embedded worker) plus `huey_consumer` processes, on SQLite and Redis."""

import signal
import time

import pytest

from tests.support.processes import wait_until
from tests.support.stack import Stack, track_progress

SMALL = {"grid_resolution": 128, "texture_size": 0}  # vertex colours: half the time of a texture
SLOW = {"grid_resolution": 512}


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def stack(request, tmp_path_factory):
    env = {"RECON_EMBEDDED_WORKERS": "0", "RECON_HEARTBEAT_INTERVAL_S": "0.5", "RECON_HEARTBEAT_TIMEOUT_S": "3"}
    if request.param == "redis":
        env["RECON_QUEUE"] = request.getfixturevalue("redis_url").replace("/0", "/1")
    live = Stack(tmp_path_factory.mktemp(request.param), **env)
    yield live
    live.close()


@pytest.fixture
def worker(stack):
    process = stack.start_worker()
    yield process
    stack.stop_workers()


def test_a_job_runs_to_completion_with_rising_progress(stack, worker, sphere_inputs):
    submitted = stack.submit(sphere_inputs, **SMALL)
    record, seen = track_progress(stack, submitted["job_id"], timeout=60)
    assert record["status"] == "completed", record
    assert seen == sorted(seen) and len(set(seen)) >= 3 and seen[-1] == 100
    glb = stack.http.get(record["result"]["glb"])
    assert glb.status_code == 200 and glb.content[:4] == b"glTF"
    assert glb.headers["content-type"] == "model/gltf-binary"


def test_a_job_cancelled_while_queued_never_starts(stack, sphere_inputs):
    first = stack.submit(sphere_inputs, **SMALL)
    assert stack.cancel(first["job_id"], first["job_token"], None).json()["status"] == "cancel_requested"
    assert stack.cancel(first["job_id"], first["job_token"], True).json()["status"] == "cancelled"
    stack.start_worker()
    try:
        second = stack.submit(sphere_inputs, **SMALL)
        assert stack.wait_for(second["job_id"], ("completed",), timeout=60)
        cancelled = stack.job(first["job_id"])
        assert cancelled["status"] == "cancelled" and cancelled["started_at"] is None
    finally:
        stack.stop_workers()


def test_a_running_job_stops_within_two_seconds_of_the_confirmation(stack, worker, slow_inputs, sphere_inputs):
    slow = stack.submit(slow_inputs, **SLOW)
    wait_until(lambda: stack.job(slow["job_id"])["progress"] >= 5, 60, what="the slow job to be under way")
    stack.cancel(slow["job_id"], slow["job_token"], False)
    confirmed_at = time.time()
    assert stack.cancel(slow["job_id"], slow["job_token"], True).json()["status"] == "cancelled"
    follower = stack.submit(sphere_inputs, **SMALL)
    started = stack.wait_for(follower["job_id"], ("processing", "completed"), timeout=10)
    from datetime import datetime

    started_at = datetime.fromisoformat(started["started_at"].replace("Z", "+00:00")).timestamp()
    assert started_at - confirmed_at < 2.0, "the worker was still busy with the cancelled job"
    record = stack.job(slow["job_id"])
    assert record["status"] == "cancelled" and record["result"] is None
    assert not (stack.workdir / "data" / "jobs" / slow["job_id"] / "output.partial").exists()


def test_a_killed_worker_s_job_is_retried_once_then_fails_with_a_sentence(stack, slow_inputs):
    slow = stack.submit(slow_inputs, **SLOW)
    for run in (1, 2):
        worker = stack.start_worker()
        wait_until(lambda: stack.job(slow["job_id"])["status"] == "processing", 60, what=f"run {run} to start")
        worker.kill(signal.SIGKILL)
        killed_at = time.monotonic()
        record = stack.wait_for(slow["job_id"], ("queued", "failed"), timeout=30)
        assert time.monotonic() - killed_at < 30
        stack.stop_workers()
    assert record["status"] == "failed" and "the worker stopped unexpectedly" in record["error"]


def test_a_worker_stopped_with_sigterm_hands_its_job_back(stack, worker, slow_inputs):
    slow = stack.submit(slow_inputs, **SLOW)
    wait_until(lambda: stack.job(slow["job_id"])["progress"] >= 5, 60, what="the slow job to be under way")
    worker.kill(signal.SIGTERM)
    record = stack.wait_for(slow["job_id"], ("queued",), timeout=5)
    assert "handed back" in record["stage"] and record["started_at"] is None
    worker.popen.wait(10)
    stack.cancel(slow["job_id"], slow["job_token"], False)
    assert stack.cancel(slow["job_id"], slow["job_token"], True).json()["status"] == "cancelled"
