"""Multiview Studio: `python app.py` serves the page, the REST API and (by default) the worker."""

from __future__ import annotations

import logging
import sys
from contextlib import asynccontextmanager
from typing import AsyncIterator

import uvicorn
from fastapi import FastAPI

from worker.config import ConfigError, settings

try:
    from worker.queue.huey_app import huey, job_store, start_embedded_consumer
except ConfigError as error:
    sys.exit(f"Multiview Studio cannot start: {error}")

from webui.server import create_app  # noqa: E402
from worker.jobs.reaper import Reaper  # noqa: E402
from worker.jobs.service import JobService  # noqa: E402
from worker.queue.tasks import HueyJobQueue  # noqa: E402

log = logging.getLogger("multiview-studio")


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    reaper = Reaper(job_store, HueyJobQueue(), settings).start()
    consumer = start_embedded_consumer(huey, settings.embedded_workers) if settings.embedded_workers else None
    try:
        yield
    finally:
        if consumer is not None:
            consumer.stop(graceful=True)
        reaper.stop()


def build_app() -> FastAPI:
    service = JobService(job_store, HueyJobQueue(), settings)
    return create_app(service, lifespan=lifespan)


app = build_app()

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # X-Forwarded-For names the client only when a configured proxy sent it; otherwise the peer address counts.
    uvicorn.run(
        app, host=settings.server_name, port=settings.server_port, timeout_graceful_shutdown=5,
        proxy_headers=bool(settings.forwarded_allow_ips), forwarded_allow_ips=settings.forwarded_allow_ips or None,
        limit_concurrency=settings.max_connections or None,
    )
