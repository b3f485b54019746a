"""Multiview Studio: `python app.py` serves the page, the REST API and (by default) the worker."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import AsyncIterator

import uvicorn
from fastapi import FastAPI

from webui.server import create_app
from worker.config import settings
from worker.queue import huey, job_store, start_embedded_consumer
from worker.reaper import Reaper
from worker.service import JobService
from worker.tasks import HueyJobQueue

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
    uvicorn.run(app, host=settings.server_name, port=settings.server_port, timeout_graceful_shutdown=5)
