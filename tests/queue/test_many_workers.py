"""Several workers on one Redis queue: each job runs on exactly one of them, and each loads its models once."""

import collections
import re

import pytest

from tests.support.processes import start_consumer
from tests.support.stack import Stack

JOBS = 5


@pytest.fixture
def stack(tmp_path, clean_redis):
    live = Stack(tmp_path, RECON_QUEUE=clean_redis, RECON_EMBEDDED_WORKERS="0")
    yield live
    live.close()


def test_two_workers_share_the_jobs_without_running_any_twice(stack, sphere_inputs):
    stack.workers += [start_consumer(stack.env, stack.workdir / "worker-a.log", workers=2),
                      start_consumer(stack.env, stack.workdir / "worker-b.log", workers=1)]
    job_ids = [stack.submit(sphere_inputs, grid_resolution=128, texture_size=0)["job_id"] for _ in range(JOBS)]
    for job_id in job_ids:
        assert stack.wait_for(job_id, ("completed",), timeout=120)["status"] == "completed"
    logs = {name: (stack.workdir / f"worker-{name}.log").read_text() for name in "ab"}
    completed = {name: re.findall(r"job ([0-9a-z]{8}) completed", log) for name, log in logs.items()}
    runs = collections.Counter(completed["a"] + completed["b"])
    assert sorted(runs) == sorted(job_ids) and set(runs.values()) == {1}
    assert completed["a"] and completed["b"], "both workers should have taken jobs"
    for log in logs.values():
        assert len(re.findall(r"loading model fusion", log)) == 1
