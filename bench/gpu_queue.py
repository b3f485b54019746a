"""The GPU check's queue part: a fusion and an nvdiffrec job sent over REST to a real `python app.py` and a real
`huey_consumer`, with the worker's peak GPU memory."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.gpu_run import EXAMPLE, GIB, LIMIT_S, MIN_PART_S, OUT_OF_TIME, Row, Run  # noqa: E402

# ---- a fusion and an nvdiffrec job through the real queue ----------------------------------------------------


def measured_consumer() -> None:
    """`huey_consumer worker.queue.tasks.huey` (same arguments), plus hooks that append to $GPU_CHECK_EVENTS when the
    worker is ready (after the project's own startup hook has loaded the models) and each task's peak GPU memory
    as torch's allocator saw it in this process (nvdiffrast's own rasterizer buffers are not included)."""
    from huey import signals
    from huey.bin.huey_consumer import consumer_main

    from worker.queue.tasks import huey

    events = Path(os.environ["GPU_CHECK_EVENTS"])

    def note(**event: object) -> None:
        with events.open("a") as handle:
            handle.write(json.dumps(event) + "\n")

    @huey.on_startup()
    def ready() -> None:
        if torch.cuda.is_available():
            torch.cuda.init()  # the CUDA context is the worker's, not the first job's
        note(ready=time.time())

    @huey.signal(signals.SIGNAL_EXECUTING)
    def reset_peak(signal_name: str, task: object) -> None:
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()

    @huey.signal(signals.SIGNAL_COMPLETE, signals.SIGNAL_ERROR)
    def record_peak(signal_name: str, task, *args: object) -> None:
        cuda = torch.cuda.is_available()
        note(job_id=task.args[0], peak_allocated=torch.cuda.max_memory_allocated() if cuda else None,
             peak_reserved=torch.cuda.max_memory_reserved() if cuda else None)

    consumer_main()


def read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_for(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def queue_job(run: Run, stack, model: str, events: Path) -> Row:
    """Submit examples/spot over REST, poll GET /jobs/{id} until it ends; wall time, stages, peak GPU memory."""
    import httpx

    def finished() -> bool:
        if not stack.web.alive():
            raise RuntimeError("app.py exited")
        try:
            return stack.job(job_id)["status"] in ("completed", "failed", "cancelled")
        except httpx.TransportError:  # a dropped or refused connection: ask again, as any client would
            return False

    limit = run.time_for(LIMIT_S["job"])
    if limit < MIN_PART_S:
        return Row("queue", f"{model} job", "skipped", "out of time", OUT_OF_TIME)
    start = time.monotonic()
    job_id = stack.submit(EXAMPLE, model)["job_id"]
    if not wait_for(finished, limit):
        return Row("queue", f"{model} job", "FAILED", f"not done after {limit:.0f} s", "queue.log")
    wall = time.monotonic() - start
    record = stack.job(job_id)
    run.table.details.setdefault("queue", {})[model] = {"record": record}
    if record["status"] != "completed":
        return Row("queue", f"{model} job", "FAILED", f"{record['status']} after {wall:.1f} s", record["error"] or "")
    report = stack.http.get(f"/jobs/{job_id}/report").json()
    run.table.details["queue"][model]["report"] = report
    peak = next((event for event in read_events(events) if event.get("job_id") == job_id), {})
    memory = (f"peak GPU memory {peak['peak_allocated'] / GIB:.2f} GiB allocated, "
              f"{peak['peak_reserved'] / GIB:.2f} GiB reserved" if peak.get("peak_allocated") is not None
              else "peak GPU memory n/a (CPU)")
    refinement = report.get("refinement") or {}
    backend = f"; {refinement['backend']}, {refinement['iterations']} iterations" if refinement else ""
    stages = " ".join(f"{name}={seconds:.2f}" for name, seconds in report.get("timings", {}).items()
                      if name != "total")
    return Row("queue", f"{model} job", "ok", f"completed in {wall:.1f} s (worker {report['wall_time_s']:.1f} s); "
               f"{memory}{backend}", f"stages (s): {stages}")


def part_queue(run: Run) -> None:
    """`python app.py` (its REST API, no embedded worker) and a real huey_consumer over a SQLite queue."""
    from tests.support.processes import Process
    from tests.support.stack import Stack

    workdir = run.scratch / "queue"
    events = workdir / "events.jsonl"
    env = {"RECON_QUEUE": "sqlite", "RECON_EMBEDDED_WORKERS": "0", "RECON_TORCH_THREADS": "0",
           "GRADIO_TEMP_DIR": str(workdir / "gradio"), "GPU_CHECK_EVENTS": str(events)}
    start = time.monotonic()
    stack = None
    try:
        stack = Stack(workdir, **env)
        web_s = time.monotonic() - start
        worker = Process([sys.executable, "-c", "from bench.gpu_queue import measured_consumer; measured_consumer()",
                          "worker.queue.tasks.huey", "-w", "1", "-k", "thread", "-d", "0.05", "-m", "0.25"],
                         stack.env, workdir / "worker.log")
        stack.workers.append(worker)
        wait_for(lambda: not worker.alive() or any("ready" in event for event in read_events(events)),
                 run.time_for(LIMIT_S["services"]))
        ready = worker.alive() and any("ready" in event for event in read_events(events))
        run.table.add(Row("queue", "services", "ok" if ready else "FAILED",
                          f"app.py serving in {web_s:.1f} s, huey_consumer ready (models loaded) in "
                          f"{time.monotonic() - start - web_s:.1f} s" if ready else "huey_consumer not ready",
                          "SQLite queue, RECON_EMBEDDED_WORKERS=0, one worker thread"))
        if ready:
            for model in ("fusion", "nvdiffrec"):
                run.table.add(queue_job(run, stack, model, events))
    finally:
        if stack is not None:
            stack.close()
        with run.log("queue").open("a") as log:
            for path in sorted(workdir.glob("*.log")):
                log.write(f"\n==== {path.name}\n{path.read_text(errors='replace')}")


