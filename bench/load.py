"""Load run: concurrent gradio_client sessions submitting and waiting, plus a steady stream of status reads.

    python bench/load.py [--clients 50] [--status-rps 200] [--seconds 60]

Prints jobs completed, errors, and the status latency percentiles.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.inputs import sphere  # noqa: E402
from tests.support.stack import SLOTS, Stack  # noqa: E402


def client_session(url: str, inputs: Path, outcomes: list, errors: list) -> None:
    from gradio_client import Client, handle_file

    def gallery(kind: str) -> list[dict]:
        return [{"image": handle_file(str(inputs / f"{kind}_{i}_{slot}.png")), "caption": None}
                for i, slot in enumerate(SLOTS)]

    try:
        client = Client(url, verbose=False)
        job_id = client.predict(gallery("view"), gallery("depth"), "fusion", {"grid_resolution": 128}, None,
                                api_name="/submit")
        record = client.submit(job_id, api_name="/wait").result(timeout=600)
        outcomes.append(record["status"])
    except Exception as exc:
        errors.append(f"client: {type(exc).__name__}: {exc}")


def status_reader(url: str, job_ids: list[str], rps: float, seconds: float, latencies: list, errors: list) -> None:
    """Paced GETs of /jobs/{id}: request k is sent at start + k / rps, from a pool of connections."""
    start = time.monotonic()
    total = int(rps * seconds)
    local = threading.local()

    def one(k: int) -> None:
        delay = start + k / rps - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        http = getattr(local, "http", None)
        if http is None:
            http = local.http = httpx.Client(base_url=url, timeout=10)
        sent = time.monotonic()
        try:
            response = http.get(f"/jobs/{job_ids[k % len(job_ids)]}")
            if response.status_code != 200:
                errors.append(f"status {response.status_code}")
        except httpx.HTTPError as exc:
            errors.append(f"status: {type(exc).__name__}")
            return
        latencies.append(time.monotonic() - sent)

    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(one, range(total)))


def status_process(url: str, job_id: str, rps: float, seconds: float, results: "multiprocessing.Queue") -> None:
    """The status load comes from its own process, so the clients' threads do not skew its timings."""
    latencies: list[float] = []
    errors: list[str] = []
    status_reader(url, [job_id], rps, seconds, latencies, errors)
    results.put((latencies, errors))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--status-rps", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--separate-worker", action="store_true",
                        help="run the worker as a huey_consumer process instead of inside the web process")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        inputs = sphere(workdir / "inputs", 64, subdivisions=3)
        embedded = "0" if args.separate_worker else "1"
        stack = Stack(workdir / "stack", RECON_TORCH_THREADS="1", RECON_MAX_QUEUED=str(args.clients * 2),
                      RECON_EMBEDDED_WORKERS=embedded)
        try:
            if args.separate_worker:
                stack.start_worker()
            seed = stack.submit(inputs, grid_resolution=128)["job_id"]
            stack.wait_for(seed, ("completed",), timeout=120)
            outcomes: list[str] = []
            latencies: list[float] = []
            errors: list[str] = []
            started = time.monotonic()
            results = multiprocessing.Queue()
            reader = multiprocessing.Process(
                target=status_process, args=(stack.url, seed, args.status_rps, args.seconds, results))
            reader.start()
            clients = [threading.Thread(target=client_session, args=(stack.url, inputs, outcomes, errors))
                       for _ in range(args.clients)]
            for thread in clients:
                thread.start()
            for thread in clients:
                thread.join()
            jobs_wall = time.monotonic() - started
            read_latencies, read_errors = results.get()
            reader.join()
            latencies += read_latencies
            errors += read_errors
        finally:
            stack.close()
    print(f"\n{'gradio_client sessions':<32}{args.clients}")
    print(f"{'jobs completed':<32}{outcomes.count('completed')} of {args.clients} (all done in {jobs_wall:.1f} s)")
    print(f"{'status requests served':<32}{len(latencies)} in {args.seconds:.0f} s ({len(latencies) / args.seconds:.0f}/s)")
    print(f"{'status latency p50 / p95 / p99':<32}{percentile(latencies, .5) * 1000:.1f} / "
          f"{percentile(latencies, .95) * 1000:.1f} / {percentile(latencies, .99) * 1000:.1f} ms "
          f"(mean {statistics.fmean(latencies) * 1000:.1f})")
    print(f"{'errors':<32}{len(errors)}")
    for error in sorted(set(errors))[:10]:
        print(f"  {error}")
    sys.exit(1 if errors or outcomes.count("completed") != args.clients else 0)


if __name__ == "__main__":
    main()
