"""Fixtures of the web UI tests: one live `python app.py` per test module, slow inputs once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.support.processes import service_env, start_web
from tests.webui.live import (
    EXAMPLE, SCREENSHOTS, SLOW_RESOLUTION, STOP_TIMEOUT_S, LiveServer, depths_of, views_of,
)


@pytest.fixture(scope="module")
def live_server(request, tmp_path_factory):
    """`python app.py` on a free port with its own data folder and Gradio cache; a module's SERVER_ENV adds settings."""
    workdir = tmp_path_factory.mktemp("web")
    overrides = getattr(request.module, "SERVER_ENV", {})
    env = service_env(workdir / "data", GRADIO_TEMP_DIR=str(workdir / "gradio"), GRADIO_ANALYTICS_ENABLED="False",
                      RECON_TORCH_THREADS="1", **overrides)
    process, url = start_web(env, workdir / "web.log")
    server = LiveServer(process, url, workdir / "data", workdir / "gradio", httpx.Client(base_url=url, timeout=30))
    yield server
    server.http.close()
    process.stop(timeout=STOP_TIMEOUT_S)
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def slow_inputs(tmp_path_factory) -> Path:
    """The spot example at 1024x1024 (nearest-neighbour, so depth values stay exact): with grid_resolution 512
    and one torch thread a fusion job runs about 20 s on 2 cores (measured), long enough to cancel with margin."""
    folder = tmp_path_factory.mktemp("spot1024")
    for path in [*views_of(EXAMPLE), *depths_of(EXAMPLE)]:
        with Image.open(path) as image:
            image.resize((SLOW_RESOLUTION, SLOW_RESOLUTION), Image.NEAREST).save(folder / path.name)
    return folder


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
