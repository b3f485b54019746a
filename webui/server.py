"""One FastAPI app for the REST API and the Gradio page."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Callable

import gradio as gr
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from worker.errors import ReconError
from worker.service import JobService

from .body_limit import BodyLimitMiddleware
from .gradio_ui import build_demo
from .readme_page import build_readme_router
from .rest_api import build_router, http_error_response, recon_error_response, request_validation_response
from .theme import CSS, THEME

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

DESCRIPTION = (
    "Turns six views and six depth renders of an object into a textured 3D mesh. "
    "Submit with POST /jobs, follow GET /jobs/{job_id}, cancel in two steps with POST /jobs/{job_id}/cancel."
)


def create_app(service: JobService, lifespan: Lifespan | None = None) -> FastAPI:
    app = FastAPI(title="Multiview Studio", description=DESCRIPTION, version="1.0", lifespan=lifespan)
    app.add_exception_handler(ReconError, recon_error_response)
    app.add_exception_handler(RequestValidationError, request_validation_response)
    app.add_exception_handler(StarletteHTTPException, http_error_response)
    app.add_middleware(BodyLimitMiddleware, max_bytes=service.config.max_request_bytes)
    app.include_router(build_router(service))
    app.include_router(build_readme_router())
    return gr.mount_gradio_app(
        app, build_demo(service, service.config), path="/", max_file_size=f"{service.config.max_file_mb}mb",
        theme=THEME, css=CSS, footer_links=["api"],
    )
