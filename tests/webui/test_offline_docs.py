"""/docs and /redoc work with no internet: their scripts and styles come from the app, and they render in a browser
whose every request to another host is refused."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from playwright.sync_api import Route, expect, sync_playwright

from tests.webui.live import CHROMIUM, CHROMIUM_ARGS

OPERATIONS = 6  # submit, status, cancel, result, report, models
# ReDoc's sidebar credit image: it hides itself when it cannot load (ReDoc has no setting to leave it out).
REDOC_CREDIT = "https://cdn.redoc.ly/redoc/logo-mini.svg"


class AssetLinks(HTMLParser):
    """Every URL a page loads by itself: script src, link href, img src."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href", "img": "src"}.get(tag)
        self.urls += [value for name, value in attrs if name == wanted and value]


def asset_urls(html: str) -> list[str]:
    parser = AssetLinks()
    parser.feed(html)
    return parser.urls


@pytest.fixture(scope="module")
def offline_page(live_server):
    """A browser page that may reach the live server only; `refused` collects what it tried elsewhere."""
    local = urlsplit(live_server.url).netloc
    refused: list[str] = []

    def only_local(route: Route) -> None:
        if urlsplit(route.request.url).netloc == local:
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort("internetdisconnected")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.route("**/*", only_local)
        yield page, refused
        browser.close()


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_every_asset_of_the_docs_comes_from_the_app(live_server, path):
    html = live_server.http.get(path).text
    urls = [urljoin(f"{live_server.url}{path}", url) for url in asset_urls(html)]
    assert any(url.endswith(".js") for url in urls)
    for url in urls:
        assert urlsplit(url).netloc == urlsplit(live_server.url).netloc, url
        assert live_server.http.get(url).status_code == 200, url


def test_swagger_ui_lists_the_operations_with_the_network_cut(live_server, offline_page, screenshots):
    page, refused = offline_page
    refused.clear()
    page.goto(f"{live_server.url}/docs")
    page.wait_for_selector(".opblock", timeout=20_000)
    assert page.locator(".opblock").count() >= OPERATIONS
    assert page.locator(".opblock-summary-path", has_text="/jobs/{job_id}/result").count() == 1
    page.screenshot(path=screenshots / "docs-offline.png")
    assert refused == []


def test_redoc_renders_the_operations_with_the_network_cut(live_server, offline_page, screenshots):
    page, refused = offline_page
    refused.clear()
    page.goto(f"{live_server.url}/redoc")
    page.wait_for_selector("[data-section-id^='operation/']", state="attached", timeout=20_000)
    assert page.locator("[data-section-id^='operation/']").count() >= OPERATIONS
    expect(page.locator("h2", has_text="Submit 6 views and 6 depth renders")).to_be_visible()
    page.screenshot(path=screenshots / "redoc-offline.png")
    assert [url for url in refused if url != REDOC_CREDIT] == []
