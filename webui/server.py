"""One FastAPI app for the REST API and the Gradio page, with the guards a public demo needs in front of both."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Callable

import gradio as gr
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from worker.errors import ReconError
from worker.jobs.limits import MB, DiskBudget
from worker.jobs.service import JobService

from .body_limit import BodyLimitMiddleware
from .gradio_ui import build_demo
from .mcp_tools import MCP_PATH, McpEndpoint
from .readme_page import build_readme_router
from .rest_api import (
    build_router,
    http_error_response,
    not_served_response,
    recon_error_response,
    request_validation_response,
)
from .theme import CSS, THEME
from .upload_guard import GradioRequestGuard, UploadPaths

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

DESCRIPTION = (
    "Turns six views and six depth renders of an object into a textured 3D mesh. "
    "Submit with POST /jobs, follow GET /jobs/{job_id}, cancel in two steps with POST /jobs/{job_id}/cancel."
)


def create_app(service: JobService, lifespan: Lifespan | None = None) -> FastAPI:
    config = service.config
    mcp = McpEndpoint(service)
    # /docs and /redoc load Swagger UI and ReDoc from the package's own files: no CDN, so they work offline.
    app = FastAPIOffline(title="Multiview Studio", description=DESCRIPTION, version="1.0",
                         lifespan=mcp.around(lifespan))
    app.add_exception_handler(ReconError, recon_error_response)
    app.add_exception_handler(RequestValidationError, request_validation_response)
    app.add_exception_handler(StarletteHTTPException, http_error_response)
    demo = build_demo(service, config)
    uploads = DiskBudget(config.upload_folder, config.upload_quota_mb * MB, config.min_free_disk_mb * MB, "uploads")
    app.add_middleware(GradioRequestGuard, paths=UploadPaths(config.upload_folder, config.max_file_bytes),
                       quotas=service.quotas, disk=uploads, events=frozenset(demo.fns))
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_request_bytes, timeout_s=config.body_timeout_s)
    app.include_router(build_router(service))
    app.include_router(build_readme_router(config))
    app.add_route(MCP_PATH, mcp, include_in_schema=False)
    app = gr.mount_gradio_app(
        app, demo, path="/", max_file_size=f"{config.max_file_mb}mb", theme=THEME, css=CSS, footer_links=["api"],
        blocked_paths=[str(config.data_dir)], show_error=False,
    )
    # Gradio checks client-sent file paths only once it believes it has launched, which mounting never sets.
    demo.has_launched = True
    mounted = app.routes[-1].app
    for status in (404, 405):
        mounted.add_exception_handler(status, http_error_response)
    mounted.add_exception_handler(403, not_served_response)
    return app
