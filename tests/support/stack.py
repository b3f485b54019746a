"""A live deployment for tests: `python app.py` plus `huey_consumer` workers, over SQLite or a real Redis."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from .processes import Process, service_env, start_consumer, start_web, wait_until

SLOTS = ("front", "right", "back", "left", "top", "bottom")


def input_files(input_dir: Path) -> list[tuple[str, tuple[str, bytes, str]]]:
    files = []
    for kind, field in (("view", "views"), ("depth", "depth_renders")):
        for i, slot in enumerate(SLOTS):
            path = input_dir / f"{kind}_{i}_{slot}.png"
            files.append((field, (path.name, path.read_bytes(), "image/png")))
    return files


class Stack:
    def __init__(self, workdir: Path, **env: str) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.env = service_env(workdir / "data", **env)
        self.web, self.url = start_web(self.env, workdir / "web.log")
        self.http = httpx.Client(base_url=self.url, timeout=30)
        self.workers: list[Process] = []

    def start_worker(self) -> Process:
        worker = start_consumer(self.env, self.workdir / f"worker-{len(self.workers)}.log")
        self.workers.append(worker)
        return worker

    def submit(self, input_dir: Path, model: str = "fusion", **options: int) -> dict:
        import json

        response = self.http.post(
            "/jobs", params={"model_type": model}, files=input_files(input_dir),
            data={"options": json.dumps(options)} if options else None,
        )
        assert response.status_code == 200, response.text
        return response.json()

    def job(self, job_id: str) -> dict:
        response = self.http.get(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait_for(self, job_id: str, statuses: tuple[str, ...], timeout: float) -> dict:
        return wait_until(
            lambda: (record := self.job(job_id))["status"] in statuses and record,
            timeout, interval=0.05, what=f"job {job_id} to become {'/'.join(statuses)}",
        )

    def cancel(self, job_id: str, token: str, confirm: bool | None) -> httpx.Response:
        body = None if confirm is None else {"confirm": confirm}
        return self.http.post(f"/jobs/{job_id}/cancel", json=body, headers={"Authorization": f"Bearer {token}"})

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers.clear()

    def close(self) -> None:
        self.stop_workers()
        self.http.close()
        self.web.stop()


def track_progress(stack: Stack, job_id: str, timeout: float) -> tuple[dict, list[int]]:
    """Poll a job until it ends, recording every distinct progress value seen."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = stack.job(job_id)
        if not seen or record["progress"] != seen[-1]:
            seen.append(record["progress"])
        if record["status"] in ("completed", "failed", "cancelled"):
            return record, seen
        time.sleep(0.02)
    raise TimeoutError(f"job {job_id} did not finish in {timeout}s; progress seen {seen}")
