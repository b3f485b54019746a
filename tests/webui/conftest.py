"""Fixtures of the web UI tests: live `python app.py` servers shared by the modules that need the same settings."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.support.processes import service_env, start_web
from tests.webui.live import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, SHARED_ENV, STOP_TIMEOUT_S, LiveServer

# A page update is a round trip through the server, which shares two cores with the browser and a running job in
# CI: Playwright's 5 s default failed there once (an example's note came late). Only a failing wait gets longer.
expect.set_options(timeout=15_000)


def _module_settings(module) -> dict[str, str]:
    return getattr(module, "SERVER_ENV", SHARED_ENV)


class WebServers:
    """Live servers by their settings, started on first use, shared by every module that asks for the same and
    stopped after the last of them: an idle server still spends CPU polling its queue."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory, items: list[pytest.Item]) -> None:
        self.tmp_path_factory = tmp_path_factory
        self.started: dict[tuple, LiveServer] = {}
        self.last_user = {self._key(_module_settings(item.module)): item.module
                          for item in items if "live_server" in item.fixturenames}

    @staticmethod
    def _key(overrides: dict[str, str]) -> tuple:
        return tuple(sorted(overrides.items()))

    def get(self, overrides: dict[str, str]) -> LiveServer:
        key = self._key(overrides)
        if key not in self.started:
            workdir = self.tmp_path_factory.mktemp("web")
            env = service_env(workdir / "data", GRADIO_TEMP_DIR=str(workdir / "gradio"),
                              GRADIO_ANALYTICS_ENABLED="False", RECON_TORCH_THREADS="1", **overrides)
            process, url = start_web(env, workdir / "web.log")
            self.started[key] = LiveServer(process, url, workdir / "data", workdir / "gradio",
                                           httpx.Client(base_url=url, timeout=30))
        return self.started[key]

    def done_with(self, module) -> None:
        key = self._key(_module_settings(module))
        if key in self.started and self.last_user.get(key) is module:
            self._stop(key)

    def close(self) -> None:
        for key in list(self.started):
            self._stop(key)

    def _stop(self, key: tuple) -> None:
        server = self.started.pop(key)
        server.http.close()
        server.process.stop(timeout=STOP_TIMEOUT_S)


@pytest.fixture(scope="session")
def web_servers(request, tmp_path_factory) -> WebServers:
    servers = WebServers(tmp_path_factory, request.session.items)
    yield servers
    servers.close()


@pytest.fixture(scope="module")
def live_server(request, web_servers) -> LiveServer:
    """`python app.py` on a free port with its own data folder and Gradio cache: SHARED_ENV, or the module's
    SERVER_ENV where it needs other settings."""
    yield web_servers.get(_module_settings(request.module))
    web_servers.done_with(request.module)


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, once per test module."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def open_page(browser, live_server):
    """open_page(query="") -> a page of the live server, loaded; closed after the test."""
    pages: list[Page] = []

    def open_(query: str = "") -> Page:
        page = browser.new_page(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
        page.goto(f"{live_server.url}/{query}")
        page.wait_for_selector("#views")
        expect(page.locator("#job-status")).to_contain_text(re.compile(r"No job yet|Job"))
        pages.append(page)
        return page

    yield open_
    for page in pages:
        page.close()
