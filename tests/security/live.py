"""Live `python app.py` servers for the security tests, started with the deployment's defaults.

tests/support/processes.service_env turns the rate limit off (RECON_RATE_LIMIT_PER_MINUTE=0) for the
functional tests; here the defaults must hold, so the environment is built from scratch: every RECON_* and
GRADIO_* variable inherited from the test run is dropped, then only the data folder, the Gradio upload
folder, the port, one torch thread and no analytics are set, plus the setting a test names.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import httpx

from tests.support.processes import REPO, Process, free_port
from tests.support.stack import input_files

READY_TIMEOUT_S = 240  # all the profiles start at once: ~12 s of CPU each on a 2-core machine
RESPONSIVE_S = 2.0
SLOTS = ("front", "right", "back", "left", "top", "bottom")
EXAMPLE = REPO / "examples" / "spot"
FAST_FUSION = {"grid_resolution": 128, "target_triangles": 20000, "texture_size": 0}


def security_env(data_dir: Path, gradio_dir: Path, **settings: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("RECON_", "GRADIO_"))}
    env.update({
        "RECON_DATA_DIR": str(data_dir), "GRADIO_TEMP_DIR": str(gradio_dir), "RECON_TORCH_THREADS": "1",
        "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1",
    })
    env.update(settings)
    return env


@dataclass
class Server:
    """One `python app.py`; `launch` starts it without waiting, `wait_ready` waits for GET /models."""

    name: str
    workdir: Path
    settings: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: Process | None = None
    http: httpx.Client | None = None
    ready_at: float | None = None  # time.monotonic() when it first answered GET /models

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.gradio_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def gradio_dir(self) -> Path:
        return self.workdir / "gradio"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    @property
    def log_path(self) -> Path:
        return self.workdir / "web.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {**security_env(self.data_dir, self.gradio_dir, **self.settings),
                "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(self.port)}

    # --- the process -----------------------------------------------------------------------------------------

    def launch(self) -> "Server":
        self.process = Process([sys.executable, "app.py"], self.env, self.log_path)
        if self.http is None:
            self.http = httpx.Client(base_url=self.url, timeout=30)
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> "Server":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.process.alive():
                raise RuntimeError(f"app.py ({self.name}) exited with {self.process.popen.returncode}:\n"
                                   f"{self.log()[-4000:]}")
            if self.answers(within=1.0):
                self.ready_at = self.ready_at or time.monotonic()
                return self
            time.sleep(0.2)
        raise TimeoutError(f"app.py ({self.name}) did not serve GET /models within {timeout} s:\n{self.log()[-4000:]}")

    def wait_exit(self, timeout: float) -> int | None:
        """The exit code, or None when it still runs after `timeout` (or serves requests: it started)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.process.popen.poll()
            if code is not None:
                return code
            if self.answers(within=0.5):
                return None
            time.sleep(0.2)
        return None

    def stop(self, timeout: float = 5) -> None:
        if self.process is not None:
            self.process.stop(timeout=timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.alive():
            self.process.kill(signal.SIGKILL)
            self.process.popen.wait(10)
            self.process.log.close()

    def restart(self, graceful: bool = True) -> "Server":
        """Stop it (SIGTERM, or SIGKILL when not `graceful`) and start a new process on the same data folder
        and port."""
        self.stop() if graceful else self.kill()
        return self.launch().wait_ready()

    def revive(self) -> bool:
        """Restart a server that an earlier attack left wedged, so that each test meets a healthy server.
        Returns whether it had to."""
        if self.process is not None and self.process.alive() and self.answers():
            return False
        self.kill()
        self.launch().wait_ready()
        return True

    def close(self) -> None:
        if self.http is not None:
            self.http.close()
        self.stop()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # --- health ------------------------------------------------------------------------------------------------

    def answers(self, within: float = RESPONSIVE_S) -> bool:
        try:
            return httpx.get(f"{self.url}/models", timeout=within).status_code == 200
        except httpx.HTTPError:
            return False

    def models_latency(self, limit: float = RESPONSIVE_S) -> float | None:
        """Seconds GET /models took, or None when it did not answer 200 within `limit`."""
        started = time.monotonic()
        try:
            response = httpx.get(f"{self.url}/models", timeout=limit)
        except httpx.HTTPError:
            return None
        return time.monotonic() - started if response.status_code == 200 else None

    def assert_responsive(self) -> None:
        """How every test ends: the server still answers GET /models with 200 within 2 s."""
        latency = self.models_latency()
        assert latency is not None and latency < RESPONSIVE_S, (
            f"the server no longer answers GET /models within {RESPONSIVE_S} s (alive: {self.process.alive()})"
        )

    # --- REST ----------------------------------------------------------------------------------------------------

    def submit(self, files: list, model: str = "fusion", options: dict | None = None,
               headers: dict | None = None, timeout: float = 30) -> httpx.Response:
        data = {"options": json.dumps(options)} if options is not None else {}
        return self.http.post("/jobs", params={"model_type": model}, files=files, data=data, headers=headers,
                              timeout=timeout)

    def job(self, job_id: str) -> dict:
        response = self.http.get(f"/jobs/{job_id}", timeout=5)
        assert response.status_code == 200, response.text
        return response.json()

    def wait_job(self, job_id: str, predicate: Callable[[dict], bool], timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        record = self.job(job_id)
        while not predicate(record) and time.monotonic() < deadline:
            time.sleep(0.1)
            record = self.job(job_id)
        return record

    def cancel(self, job_id: str, token: str) -> tuple[httpx.Response, httpx.Response]:
        """The REST API's two steps: request, then confirm."""
        headers = {"Authorization": f"Bearer {token}"}
        requested = self.http.post(f"/jobs/{job_id}/cancel", headers=headers, timeout=10)
        confirmed = self.http.post(f"/jobs/{job_id}/cancel", headers=headers, json={"confirm": True}, timeout=10)
        return requested, confirmed

    def queue_secret(self) -> bytes:
        return (self.data_dir / "queue.secret").read_bytes()


def start_servers(servers: Iterable[Server]) -> list[Server]:
    """Launch every server at once (imports dominate start-up), then wait for each."""
    servers = [server.launch() for server in servers]
    errors: list[BaseException] = []

    def wait(server: Server) -> None:
        try:
            server.wait_ready()
        except BaseException as error:  # noqa: BLE001 - re-raised below
            errors.append(error)

    threads = [threading.Thread(target=wait, args=(server,)) for server in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        for server in servers:
            server.close()
        raise errors[0]
    return servers


# --- inputs ----------------------------------------------------------------------------------------------------


def example_files(folder: Path = EXAMPLE) -> list[tuple[str, tuple[str, bytes, str]]]:
    """The 12 multipart parts of POST /jobs for an input folder with view_{i}_{slot}.png / depth_{i}_{slot}.png."""
    return input_files(folder)


def parts(views: list[bytes], depths: list[bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return ([("views", (f"view_{i}.png", data, "image/png")) for i, data in enumerate(views)]
            + [("depth_renders", (f"depth_{i}.png", data, "image/png")) for i, data in enumerate(depths)])


def png_bytes(array, compress_level: int = 1) -> bytes:
    """A PNG of `array` (uint8 HxWx3/4 or HxW, uint16 HxW), written straight with zlib (no row filters): fast
    even for large noise images."""
    import zlib

    import numpy as np

    array = np.ascontiguousarray(array)
    height, width = array.shape[:2]
    channels = 1 if array.ndim == 2 else array.shape[2]
    bit_depth = 16 if array.dtype == np.uint16 else 8
    colour_type = {1: 0, 3: 2, 4: 6}[channels]
    rows = array.astype(">u2" if bit_depth == 16 else np.uint8).reshape(height, -1).view(np.uint8)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()
    return _png(width, height, bit_depth, colour_type, zlib.compress(raw, compress_level))


def _png(width: int, height: int, bit_depth: int, colour_type: int, idat: bytes) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def solid_png(width: int, height: int, colour: tuple[int, ...], bit_depth: int = 8) -> bytes:
    """A valid PNG of one colour: a large declared size in a small file (zlib does the rest).
    colour has 1 (greyscale), 3 (RGB) or 4 (RGBA) channels."""
    import struct
    import zlib

    colour_type = {1: 0, 3: 2, 4: 6}[len(colour)]
    sample = ">H" if bit_depth == 16 else ">B"
    row = b"\x00" + b"".join(struct.pack(sample, value) for value in colour) * width
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return _png(width, height, bit_depth, colour_type, body)


# --- the server's folders ------------------------------------------------------------------------------------


def tree_bytes(folder: Path) -> int:
    total = 0
    for root, _, names in os.walk(folder):
        for name in names:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                continue
    return total


def tree_files(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder` (links not followed): relative path -> (size, mtime_ns)."""
    files = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            try:
                stat = os.lstat(path)
            except FileNotFoundError:
                continue
            files[os.path.relpath(path, folder)] = (stat.st_size, stat.st_mtime_ns)
    return files


def files_with_bytes(folder: Path, wanted: Iterable[bytes], skip: Iterable[Path] = ()) -> list[Path]:
    """Files under `folder` (following links, as a server reading them would) whose bytes equal one of `wanted`."""
    wanted = {data for data in wanted if data}
    sizes = {len(data) for data in wanted}
    skip = {Path(path) for path in skip}
    found = []
    for root, _, names in os.walk(folder):
        for name in names:
            path = Path(root) / name
            if path in skip:
                continue
            try:
                if os.stat(path).st_size not in sizes:
                    continue
                if path.read_bytes() in wanted:
                    found.append(path)
            except OSError:
                continue
    return found


# --- what a client may see -------------------------------------------------------------------------------------

_SERVER_PATH = re.compile(r"(?<![\w.:/])/(?:etc|tmp|dev|proc|root|home|usr|var|work|data|srv|opt|app|mnt)(?:/|\b)")


def leaks(text: str, *paths: Path | str) -> list[str]:
    """What in `text` a stranger should not see: a server path, a Python object repr, a traceback."""
    found = []
    if "object at 0x" in text:
        found.append("a Python object repr ('object at 0x')")
    if "Traceback (most recent call last)" in text:
        found.append("a Python traceback")
    for path in paths:
        if str(path) and str(path) in text:
            found.append(f"the server path {str(path)!r}")
    match = _SERVER_PATH.search(text)
    if match:
        found.append(f"a server path ({text[max(0, match.start() - 40):match.end() + 40]!r})")
    return found
