"""Real processes for the tests: redis-server, `python app.py`, `huey_consumer`, each on a free loopback port."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


class Process:
    """A child process in its own process group, so that stopping it stops everything it started."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path, cwd: Path = REPO) -> None:
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.popen = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 10) -> None:
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self.log.close()

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")


def start_redis(workdir: Path, port: int | None = None, appendonly: bool = False) -> tuple[Process, str]:
    """Start redis-server; with `appendonly` and the same workdir and port, a restart keeps its data."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (apt-get install -y redis-server)")
    port = port or free_port()
    proc = Process(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(workdir),
         "--appendonly", "yes" if appendonly else "no", "--appendfsync", "always"],
        dict(os.environ), workdir / "redis.log",
    )
    url = f"redis://127.0.0.1:{port}/0"
    import redis

    wait_until(lambda: _redis_ready(redis, url), 10, what="redis-server")
    return proc, url


def _redis_ready(redis_module, url: str) -> bool:
    try:
        return bool(redis_module.Redis.from_url(url).ping())
    except redis_module.ConnectionError:
        return False


def service_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"RECON_DATA_DIR": str(data_dir), "RECON_TORCH_THREADS": "1", "RECON_RATE_LIMIT_PER_MINUTE": "0",
                "PYTHONUNBUFFERED": "1"})
    env.update(overrides)
    return env


def start_web(env: dict[str, str], log_path: Path) -> tuple[Process, str]:
    port = free_port()
    env = {**env, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)}
    proc = Process([sys.executable, "app.py"], env, log_path)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if not proc.alive():
            raise RuntimeError(f"app.py exited:\n{proc.output()}")
        try:
            return httpx.get(f"{url}/models", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, 60, interval=0.2, what="app.py to serve")
    return proc, url


def start_consumer(env: dict[str, str], log_path: Path, workers: int = 1) -> Process:
    args = [sys.executable, "-m", "huey.bin.huey_consumer", "worker.queue.tasks.huey",
            "-w", str(workers), "-k", "thread", "-d", "0.05", "-m", "0.25", "-g", "TERM", "-t", "30"]
    return Process(args, env, log_path)
