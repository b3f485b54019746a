"""Chaos run: Redis (append-only), the web process and two `huey_consumer` workers, all real processes.

Jobs are submitted at a steady pace while a worker is SIGKILLed (and restarted) every few
seconds, redis-server is restarted once, and about a tenth of the jobs are cancelled at
random moments. Afterwards every job must become terminal: completed with a valid GLB,
cancelled, or failed with a sentence; none completed twice, and no outputs left for jobs
that did not complete. A job is stuck when no open job's record (status, stage, progress,
place in the queue) has moved for 30 s: longer than a heartbeat timeout plus a worker's
restart, so a loaded machine that is slow is not taken for a service that hangs.

    python bench/chaos.py [--jobs 100] [--kill-every 6] [--cancel-fraction 0.1]
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import re
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.inputs import sphere  # noqa: E402
from tests.support.processes import Process, start_redis  # noqa: E402
from tests.support.stack import Stack, input_files  # noqa: E402

TERMINAL = ("completed", "failed", "cancelled")
STALL_S = 30.0
SETTLE_CAP_S = 300.0
JOB_OPTIONS = {"grid_resolution": 128, "texture_size": 0}


@dataclass
class ChaosResult:
    jobs: dict[str, dict] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    worker_kills: int = 0
    redis_restarts: int = 0
    cancels_confirmed: int = 0
    cancels_too_late: int = 0
    settle_s: float = 0.0

    def counts(self) -> dict[str, int]:
        return dict(collections.Counter(record["status"] for record in self.jobs.values()))


class Chaos:
    def __init__(self, workdir: Path, inputs: Path, seed: int) -> None:
        self.workdir = workdir
        self.inputs = inputs
        self.random = random.Random(seed)
        self.redis_dir = workdir / "redis"
        self.redis_dir.mkdir()
        self.redis, url = start_redis(self.redis_dir, appendonly=True)
        self.redis_port = int(url.rsplit(":", 1)[1].split("/")[0])
        self.stack = Stack(
            workdir / "stack", RECON_QUEUE=url, RECON_EMBEDDED_WORKERS="0", RECON_TORCH_THREADS="1",
            RECON_HEARTBEAT_INTERVAL_S="0.5", RECON_HEARTBEAT_TIMEOUT_S="3",
        )
        self.workers: list[Process] = [self.stack.start_worker() for _ in range(2)]
        self.tokens: dict[str, str] = {}
        self.result = ChaosResult()
        self.done = threading.Event()

    def call(self, action, attempts: int = 100):
        """Retry through the moments when Redis restarts (503) or a connection drops."""
        for _ in range(attempts):
            try:
                response = action()
            except httpx.HTTPError:
                time.sleep(0.1)
                continue
            if response.status_code != 503:
                return response
            time.sleep(0.1)
        raise RuntimeError("the service stayed unavailable")

    def submit(self) -> str:
        response = self.call(lambda: self.stack.http.post(
            "/jobs", files=input_files(self.inputs), data={"options": json.dumps(JOB_OPTIONS)}))
        assert response.status_code == 200, response.text
        job_id = response.json()["job_id"]
        self.tokens[job_id] = response.json()["job_token"]
        return job_id

    def kill_workers(self, every_s: float) -> None:
        while not self.done.wait(every_s):
            index = self.random.randrange(len(self.workers))
            self.workers[index].kill(signal.SIGKILL)
            self.workers[index].stop()
            self.result.worker_kills += 1
            self.workers[index] = self.stack.start_worker()

    def restart_redis(self) -> None:
        self.redis.stop()
        self.redis, _ = start_redis(self.redis_dir, port=self.redis_port, appendonly=True)
        self.result.redis_restarts += 1

    def cancel_later(self, job_id: str, delay_s: float) -> threading.Timer:
        """Request and confirm the cancellation at a random moment: queued, running, or already done (400)."""
        token = self.tokens[job_id]

        def cancel() -> None:
            self.call(lambda: self.stack.cancel(job_id, token, False))
            confirmed = self.call(lambda: self.stack.cancel(job_id, token, True))
            if confirmed.status_code == 200 and confirmed.json()["status"] == "cancelled":
                self.result.cancels_confirmed += 1
            else:
                self.result.cancels_too_late += 1

        timer = threading.Timer(delay_s, cancel)
        timer.start()
        return timer

    def run(self, jobs: int, pace_s: float, kill_every_s: float, cancel_fraction: float) -> ChaosResult:
        killer = threading.Thread(target=self.kill_workers, args=(kill_every_s,), daemon=True)
        killer.start()
        cancels = []
        try:
            for index in range(jobs):
                job_id = self.submit()
                if index == jobs // 3:
                    self.restart_redis()
                if self.random.random() < cancel_fraction:
                    cancels.append(self.cancel_later(job_id, self.random.uniform(0.0, 3.0)))
                time.sleep(pace_s)
            last_submission = time.monotonic()
            for timer in cancels:
                timer.join()
            self.done.set()
            killer.join()
            self.settle(last_submission)
            self.check_outputs()
        finally:
            self.done.set()
            self.stack.close()
            self.redis.stop()
        return self.result

    def settle(self, last_submission: float) -> None:
        """Wait while the open jobs move; those still open when nothing has moved for STALL_S are stuck."""
        last_state, last_move = None, time.monotonic()
        while True:
            for job_id in self.tokens:
                self.result.jobs[job_id] = self.call(lambda: self.stack.http.get(f"/jobs/{job_id}")).json()
            open_jobs = {j: r for j, r in self.result.jobs.items() if r["status"] not in TERMINAL}
            if not open_jobs:
                break
            state = {j: (r["status"], r["stage"], r["progress"], r.get("queue_position")) for j, r in open_jobs.items()}
            now = time.monotonic()
            if state != last_state:
                last_state, last_move = state, now
            if now - last_move > STALL_S or now - last_submission > SETTLE_CAP_S:
                self.result.problems += [f"job {j} stuck {r['status']} at {r['progress']}% while {r['stage']!r}"
                                         for j, r in open_jobs.items()]
                break
            time.sleep(0.5)
        self.result.settle_s = time.monotonic() - last_submission

    def check_outputs(self) -> None:
        completions = collections.Counter()
        for log in (self.workdir / "stack").glob("worker-*.log"):
            completions.update(re.findall(r"job ([0-9a-z]{8}) completed", log.read_text(errors="replace")))
        jobs_dir = self.workdir / "stack" / "data" / "jobs"
        for job_id, record in self.result.jobs.items():
            if completions[job_id] > 1:
                self.result.problems.append(f"job {job_id} completed {completions[job_id]} times")
            outputs = [p.name for p in (jobs_dir / job_id).glob("output*")]
            if record["status"] == "completed":
                glb = self.stack.http.get(f"/jobs/{job_id}/result")
                if glb.status_code != 200 or glb.content[:4] != b"glTF":
                    self.result.problems.append(f"job {job_id} completed without a valid GLB")
            elif record["status"] in TERMINAL and outputs:
                self.result.problems.append(f"job {job_id} is {record['status']} but left {outputs}")
            if record["status"] == "failed" and not (record["error"] or "").strip():
                self.result.problems.append(f"job {job_id} failed without a sentence")


def run_chaos(workdir: Path, jobs: int, pace_s: float, kill_every_s: float, cancel_fraction: float,
              seed: int = 7) -> ChaosResult:
    inputs = sphere(workdir / "inputs", 64, subdivisions=3)
    return Chaos(workdir, inputs, seed).run(jobs, pace_s, kill_every_s, cancel_fraction)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--pace", type=float, default=0.6, help="seconds between submissions")
    parser.add_argument("--kill-every", type=float, default=6.0)
    parser.add_argument("--cancel-fraction", type=float, default=0.1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        result = run_chaos(Path(tmp), args.jobs, args.pace, args.kill_every, args.cancel_fraction)
        wall = time.monotonic() - started
    print(f"\n{'jobs':<34}{len(result.jobs)}")
    for status in TERMINAL + ("queued", "processing"):
        print(f"  {status:<32}{result.counts().get(status, 0)}")
    print(f"{'worker SIGKILLs':<34}{result.worker_kills}")
    print(f"{'redis-server restarts':<34}{result.redis_restarts}")
    print(f"{'cancellations confirmed':<34}{result.cancels_confirmed}")
    print(f"{'cancellations too late (400)':<34}{result.cancels_too_late}")
    print(f"{'all terminal after last submit':<34}{result.settle_s:.1f} s (stuck: {STALL_S:.0f} s without a move)")
    failures = collections.Counter(r["error"] for r in result.jobs.values() if r["status"] == "failed")
    for error, count in failures.most_common():
        print(f"  failed x{count}: {error}")
    print(f"{'wall time':<34}{wall:.1f} s")
    print("problems:" if result.problems else "problems: none")
    for problem in result.problems:
        print(f"  {problem}")
    sys.exit(1 if result.problems else 0)


if __name__ == "__main__":
    main()
