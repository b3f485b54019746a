"""What the web UI tests share: the live server handle, the input files and their constants."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import httpx

from tests.support.processes import REPO, Process, wait_until
from tests.support.stack import SLOTS
from worker.jobs.files import JobFiles

EXAMPLE = REPO / "examples" / "spot"
SCREENSHOTS = REPO / "test-output" / "webui"
SLOW_OPTIONS = {"grid_resolution": 512}
QUICK_OPTIONS = {"grid_resolution": 128, "texture_size": 512}  # where the mesh is not checked: Spot in ~5 s, not ~12
STOP_TIMEOUT_S = 3  # a gradio_client heartbeat stream keeps uvicorn's graceful shutdown waiting
LONG_JOB_BUDGET_S = 66  # nvdiffrec's refinement on a CPU: with its few seconds of fusion, a job of over a minute
MAX_MESH_TRIANGLES = 5_000  # a dropped mesh over this is refused (the page's mesh section)
SHARED_ENV = {"RECON_EMBEDDED_WORKERS": "1", "RECON_NVDIFFREC_CPU_BUDGET_S": str(LONG_JOB_BUDGET_S),
              "RECON_MAX_MESH_TRIANGLES": str(MAX_MESH_TRIANGLES)}  # the server of every module without its own


def views_of(folder: Path) -> list[Path]:
    return [folder / f"view_{index}_{slot}.png" for index, slot in enumerate(SLOTS)]


def depths_of(folder: Path) -> list[Path]:
    return [folder / f"depth_{index}_{slot}.png" for index, slot in enumerate(SLOTS)]


@dataclass
class LiveServer:
    process: Process
    url: str
    data_dir: Path
    gradio_dir: Path
    http: httpx.Client

    def job(self, job_id: str) -> dict:
        response = self.http.get(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def job_ids(self) -> set[str]:
        jobs_dir = self.data_dir / "jobs"
        return {path.name for path in jobs_dir.iterdir()} if jobs_dir.is_dir() else set()

    def wait_for(self, job_id: str, predicate: Callable[[dict], bool], timeout: float, what: str) -> dict:
        def matching() -> dict | None:
            record = self.job(job_id)
            return record if predicate(record) else None

        return wait_until(matching, timeout, interval=0.05, what=what)

    def inputs(self, job_id: str) -> Path:
        return JobFiles.of(self.data_dir / "jobs", job_id).inputs

    def partial_output(self, job_id: str) -> Path:
        """The folder a worker writes into while it works on the job; it goes when the worker stops."""
        return JobFiles.of(self.data_dir / "jobs", job_id).partial


CHROMIUM = "/usr/bin/chromium"  # Debian's; Playwright's own browser download does not work here
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
