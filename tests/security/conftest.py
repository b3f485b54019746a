"""Fixtures of the security tests: a pool of live servers, one per settings profile, and the raw Gradio client.

Starting `python app.py` costs ~12 s of CPU (torch and gradio imports), so the servers are shared by
profile rather than started per module, and all the profiles that the selected tests use start at once,
when the first of them is needed. A profile differs from the defaults only by settings that no other test
on it can notice (e.g. the nvdiffrec CPU budget on "default": no other test runs nvdiffrec).

A test module names the profiles it uses in SERVERS, and may name in PREPARE a function that sets up a
profile's data folder before its start (see test_leftovers).
"""

from __future__ import annotations

import os
import secrets
import shutil
import threading
from dataclasses import dataclass, field
from typing import Callable

import pytest

from tests.security.gradio_raw import GradioRaw
from tests.security.live import Server, start_servers


def _empty_secret(server: Server) -> None:
    (server.data_dir / "queue.secret").write_text("")


def _world_writable_secret(server: Server) -> None:
    path = server.data_dir / "queue.secret"
    path.write_text(secrets.token_hex(32))
    os.chmod(path, 0o666)


@dataclass(frozen=True)
class Profile:
    settings: dict[str, str]
    prepare: Callable[[Server], None] | None = None
    must_start: bool = True  # False: the test itself waits to see whether it starts or refuses to


PROFILES = {
    # The defaults; the nvdiffrec budget matters to test_cost's nvdiffrec job only.
    "default": Profile({"RECON_NVDIFFREC_CPU_BUDGET_S": "3"}),
    # No worker (jobs stay queued) and a 3 MB per-client quota: test_disk.
    "no-worker": Profile({"RECON_EMBEDDED_WORKERS": "0", "RECON_CLIENT_QUOTA_MB": "3"}),
    # Small limits: a 2 MB upload folder (test_disk), 1 MB files and a 2 s body timeout (test_edges), a 1 s
    # job time limit (test_cost). No other test on it runs a job or reaches another of these limits.
    "small": Profile({"RECON_UPLOAD_QUOTA_MB": "2", "RECON_MAX_FILE_MB": "1", "RECON_BODY_TIMEOUT_S": "2",
                      "RECON_JOB_TIME_LIMIT_S": "1"}),
    # 3 submissions per minute, no worker; restarted by its test: test_rate_limit.
    "rate-limit": Profile({"RECON_RATE_LIMIT_PER_MINUTE": "3", "RECON_EMBEDDED_WORKERS": "0"}),
    # A bad data/queue.secret before the start: test_edges.
    "empty-secret": Profile({}, prepare=_empty_secret, must_start=False),
    "writable-secret": Profile({}, prepare=_world_writable_secret, must_start=False),
}


@dataclass
class Pool:
    tmp_path_factory: pytest.TempPathFactory
    wanted: dict[str, list[Callable[[Server], None]]]
    servers: dict[str, Server] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, name: str) -> Server:
        with self.lock:
            if name not in self.servers:
                self._start({name, *self.wanted} - set(self.servers))
            return self.servers[name]

    def _start(self, names: set[str]) -> None:
        created = {}
        for name in sorted(names):
            profile = PROFILES[name]
            server = Server(name, self.tmp_path_factory.mktemp(f"sec-{name}"), dict(profile.settings))
            for prepare in ([profile.prepare] if profile.prepare else []) + self.wanted.get(name, []):
                prepare(server)
            created[name] = server
        self.servers.update(created)
        for name, server in created.items():
            if not PROFILES[name].must_start:
                server.launch()
        start_servers([server for name, server in created.items() if PROFILES[name].must_start])

    def close(self) -> None:
        for server in self.servers.values():
            server.close()
            shutil.rmtree(server.workdir, ignore_errors=True)
        self.servers.clear()


@pytest.fixture(scope="session")
def servers(request, tmp_path_factory) -> Pool:
    """servers.get(profile): the live server of that profile (all the profiles the selected tests use start
    together, on first use)."""
    wanted: dict[str, list[Callable[[Server], None]]] = {}
    for module in {getattr(item, "module", None) for item in request.session.items}:
        for name in getattr(module, "SERVERS", ()):
            wanted.setdefault(name, [])
        for name, prepare in getattr(module, "PREPARE", {}).items():
            wanted.setdefault(name, []).append(prepare)
    pool = Pool(tmp_path_factory, wanted)
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def last_pool_module(request) -> object | None:
    users = [item.module for item in request.session.items if "servers" in item.fixturenames]
    return users[-1] if users else None


@pytest.fixture(scope="module", autouse=True)
def stop_the_pool_after_the_last_module(request, servers, last_pool_module):
    """The pool's servers stop once the last module that may use them is done, not at the end of the session:
    an idle server still spends CPU polling its queue while the other directories' tests run."""
    yield
    if request.module is last_pool_module:
        servers.close()


@pytest.fixture
def gradio() -> Callable[[Server], GradioRaw]:
    """A raw Gradio client on a server; closed after the test."""
    clients: list[GradioRaw] = []

    def connect(server: Server) -> GradioRaw:
        client = GradioRaw(server.url)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()
