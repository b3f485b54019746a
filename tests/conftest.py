import os
import shutil
import tempfile

os.environ["RECON_DATA_DIR"] = tempfile.mkdtemp(prefix="recon-tests-")
os.environ["RECON_QUEUE"] = "sqlite"

import pytest
import redis

from tests.support import inputs
from tests.support.processes import start_redis
from worker.config import load_settings
from worker.jobs.store import RedisJobStore, SqliteJobStore
from worker.queue.huey_app import huey
from worker.queue.tasks import HueyJobQueue


@pytest.fixture
def config(tmp_path):
    """Default settings over this test's own data folder; modules that need other values define their own."""
    return load_settings({"RECON_DATA_DIR": str(tmp_path)})


@pytest.fixture
def huey_queue():
    """The real Huey instance of worker.queue.huey_app (SQLite in the test session's data folder), emptied before
    and after the test."""
    huey.flush()
    yield huey
    huey.flush()


@pytest.fixture
def queue(huey_queue):
    """The job system's view of that queue."""
    return HueyJobQueue(huey_queue)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A real redis-server on a free loopback port, for the whole session."""
    workdir = tmp_path_factory.mktemp("redis")
    proc, url = start_redis(workdir)
    yield url
    proc.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    """A job store on each backend; modules that need one backend define their own `store`."""
    if request.param == "sqlite":
        return SqliteJobStore(tmp_path / "queue.db")
    url = request.getfixturevalue("clean_redis")
    return RedisJobStore(redis.Redis.from_url(url), prefix="test")


@pytest.fixture
def clean_redis(redis_url):
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield redis_url
    client.flushdb()


@pytest.fixture(scope="session")
def sphere_inputs(tmp_path_factory):
    """The 12 inputs of a coloured sphere at 128x128, rendered by the project's own render_inputs."""
    return inputs.sphere(tmp_path_factory.mktemp("sphere"), 128)


@pytest.fixture(scope="session")
def slow_inputs(tmp_path_factory):
    """The spot example enlarged to 1024x1024: with grid_resolution 512 and one torch thread, a fusion job
    runs 15-25 s on 2 cores (measured), long enough to cancel or kill with margin."""
    return inputs.enlarged(inputs.EXAMPLES / "spot", tmp_path_factory.mktemp("slow"), 1024)


# tests/run.sh runs the tests in two processes (pytest-xdist, --dist loadgroup). Tests that share live servers go
# to one process as one unit of work, so that no server starts twice; the units that take longest (the browser and
# worker tests, mostly waiting on real jobs) are handed out first, and the many short reconstruction modules last,
# to even out the two processes' ends.
FIRST_DIRECTORIES = ("tests/webui/", "tests/queue/", "tests/security/")
LAST_DIRECTORIES = ("tests/recon/",)


def _work_unit(item: pytest.Item, server_modules: set) -> str:
    if "servers" in item.fixturenames:
        return "security servers"  # one pool of profiles (tests/security/conftest.py)
    if item.module in server_modules:  # one server per settings (tests/webui/conftest.py)
        settings = getattr(item.module, "SERVER_ENV", {})
        return "web server " + (" ".join(f"{key}={value}" for key, value in sorted(settings.items())) or "shared")
    return item.nodeid.split("::")[0]


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which reads the marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    server_modules = {item.module for item in items if "live_server" in item.fixturenames}

    def hand_out_order(item: pytest.Item) -> tuple[int, int]:
        rank = 0 if item.nodeid.startswith(FIRST_DIRECTORIES) else 2 if item.nodeid.startswith(LAST_DIRECTORIES) else 1
        return rank, 0 if item.module in server_modules else 1

    items.sort(key=hand_out_order)
    for item in items:
        item.add_marker(pytest.mark.xdist_group(_work_unit(item, server_modules)))
