"""Pipeline benchmark: queue latency, status throughput, cancel latency and a fusion job's stages.

Runs a live deployment per backend (SQLite: `python app.py` with its embedded worker;
Redis: `python app.py` plus one `huey_consumer`) and prints a table.

    python bench/pipeline.py [--jobs 20] [--status-seconds 5] [--cancels 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.inputs import EXAMPLES, enlarged, sphere  # noqa: E402
from tests.support.processes import start_redis, wait_until  # noqa: E402
from tests.support.stack import Stack  # noqa: E402

TARGETS = {
    "submit->start median (ms)": "< 100",
    "submit->start p95 (ms)": "",
    "GET /jobs/{id} (req/s)": "> 500",
    "confirm->stopped p95 (ms)": "< 1000",
    "fusion job at 512x512 (s)": "< 5",
}


def timestamp(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def submit_to_start(stack: Stack, inputs: Path, jobs: int) -> list[float]:
    """Each job is submitted to an idle worker; latency = started_at - created_at, in ms."""
    latencies = []
    for _ in range(jobs):
        job = stack.submit(inputs, grid_resolution=128)
        record = stack.wait_for(job["job_id"], ("completed", "failed"), timeout=60)
        latencies.append((timestamp(record["started_at"]) - timestamp(record["created_at"])) * 1000)
    return latencies


def status_throughput(stack: Stack, job_id: str, seconds: float, clients: int = 4) -> float:
    import httpx

    counts = [0] * clients
    stop = time.monotonic() + seconds

    def hammer(slot: int) -> None:
        with httpx.Client(base_url=stack.url) as http:
            while time.monotonic() < stop:
                assert http.get(f"/jobs/{job_id}").status_code == 200
                counts[slot] += 1

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.monotonic() - started)


def cancel_latency(stack: Stack, slow: Path, quick: Path, runs: int) -> list[float]:
    """Confirm->stopped, measured as the start of the next job on the (single) busy worker, in ms."""
    latencies = []
    for _ in range(runs):
        job = stack.submit(slow, grid_resolution=512)
        wait_until(lambda: stack.job(job["job_id"])["progress"] >= 5, 60, what="the slow job")
        stack.cancel(job["job_id"], job["job_token"], False)
        confirmed = time.time()
        stack.cancel(job["job_id"], job["job_token"], True)
        follower = stack.submit(quick, grid_resolution=128)
        record = stack.wait_for(follower["job_id"], ("processing", "completed"), timeout=30)
        latencies.append((timestamp(record["started_at"]) - confirmed) * 1000)
        stack.wait_for(follower["job_id"], ("completed",), timeout=60)
    return latencies


def fusion_job(stack: Stack, inputs: Path) -> tuple[float, dict]:
    job = stack.submit(inputs, grid_resolution=256)
    record = stack.wait_for(job["job_id"], ("completed", "failed"), timeout=120)
    report = json.loads(stack.http.get(f"/jobs/{job['job_id']}/report").content)
    return timestamp(record["finished_at"]) - timestamp(record["started_at"]), report["timings"]


def run_backend(name: str, workdir: Path, inputs: dict[str, Path], args: argparse.Namespace, env: dict) -> dict:
    stack = Stack(workdir / name, RECON_TORCH_THREADS="0", **env)
    try:
        if env.get("RECON_EMBEDDED_WORKERS") == "0":
            stack.start_worker()
        latencies = submit_to_start(stack, inputs["quick"], args.jobs)
        wall, timings = fusion_job(stack, inputs["full"])
        done = stack.submit(inputs["quick"], grid_resolution=128)
        stack.wait_for(done["job_id"], ("completed",), timeout=60)
        rps = status_throughput(stack, done["job_id"], args.status_seconds)
        cancels = cancel_latency(stack, inputs["slow"], inputs["quick"], args.cancels)
    finally:
        stack.close()
    return {
        "submit->start median (ms)": statistics.median(latencies),
        "submit->start p95 (ms)": percentile(latencies, 0.95),
        "GET /jobs/{id} (req/s)": rps,
        "confirm->stopped p95 (ms)": percentile(cancels, 0.95),
        "fusion job at 512x512 (s)": wall,
        "stages": timings,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--status-seconds", type=float, default=5.0)
    parser.add_argument("--cancels", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        inputs = {
            "quick": sphere(workdir / "quick", 64, subdivisions=3),
            "full": sphere(workdir / "full", 512, subdivisions=5),
            "slow": enlarged(EXAMPLES / "spot", workdir / "slow", 1024),
        }
        redis_proc, redis_url = start_redis(workdir)
        try:
            results = {
                "sqlite": run_backend("sqlite", workdir, inputs, args, {}),
                "redis": run_backend("redis", workdir, inputs, args, {"RECON_QUEUE": redis_url, "RECON_EMBEDDED_WORKERS": "0"}),
            }
        finally:
            redis_proc.stop()
    print(f"\n{'metric':<28} {'sqlite':>10} {'redis':>10}  target")
    for metric, target in TARGETS.items():
        print(f"{metric:<28} {results['sqlite'][metric]:>10.1f} {results['redis'][metric]:>10.1f}  {target}")
    print(f"\nfusion stages at 512x512, grid 256 (s)\n{'stage':<28} {'sqlite':>10} {'redis':>10}")
    for stage in results["sqlite"]["stages"]:
        print(f"{stage:<28} {results['sqlite']['stages'][stage]:>10.3f} {results['redis']['stages'].get(stage, 0):>10.3f}")


if __name__ == "__main__":
    main()
