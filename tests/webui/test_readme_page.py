"""The served documents and the README's own examples, against a live `python app.py`.

The README's blocks marked `rest-example` (bash) and `mcp-example` (Python) are run as
they are written, from a folder that looks like the repository root, so they cannot rot.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
import trimesh

from tests.support.processes import REPO
from webui.readme_page import DOCS

README = (REPO / "README.md").read_text()
EXAMPLE_TIMEOUT_S = 240


def marked_blocks(language: str, mark: str) -> list[str]:
    return re.findall(rf"^```{language} {mark}\n(.*?)^```$", README, re.S | re.M)


@pytest.fixture
def repository_root(tmp_path) -> Path:
    """A scratch folder where `examples/` is the repository's, so the examples write nothing into the clone."""
    (tmp_path / "examples").symlink_to(REPO / "examples")
    return tmp_path


def run_example(args: list[str], folder: Path, url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "URL": url}
    return subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True, timeout=EXAMPLE_TIMEOUT_S,
                          check=False)


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        found = dict(attrs)
        if tag == "a" and found.get("href"):
            self.hrefs.append(found["href"])
        if found.get("id"):
            self.ids.add(found["id"])


def parsed(html: str) -> Links:
    links = Links()
    links.feed(html)
    return links


def raw_get(url: str, path: str, host: bytes) -> bytes:
    """A GET with a Host header no HTTP library would send."""
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_the_readme_marks_rest_and_mcp_examples():
    assert len(marked_blocks("bash", "rest-example")) == 2 and len(marked_blocks("python", "mcp-example")) == 1


def test_the_readme_rest_examples_run_as_written(live_server, repository_root):
    script = "set -eu\n" + "\n".join(marked_blocks("bash", "rest-example"))
    done = run_example(["bash", "-c", script], repository_root, live_server.url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"status":"cancel_requested"' in done.stdout and '"status":"cancelled"' in done.stdout
    assert '"name":"fusion"' in done.stdout
    mesh = trimesh.load(repository_root / "spot.glb", file_type="glb", force="mesh")
    assert len(mesh.faces) > 100
    assert '"model": "fusion"' in (repository_root / "spot-report.json").read_text().replace('":"', '": "')


def test_the_readme_mcp_example_runs_a_job_with_the_mcp_client(live_server, repository_root):
    (repository_root / "example.py").write_text(marked_blocks("python", "mcp-example")[0])
    done = run_example([sys.executable, "example.py"], repository_root, live_server.url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "submit_reconstruction" in done.stdout and " completed" in done.stdout
    mesh = trimesh.load(repository_root / "spot-mcp.glb", file_type="glb", force="mesh")
    assert len(mesh.faces) > 100


def test_the_served_readme_shows_the_address_the_reader_used(live_server):
    page = live_server.http.get("/README.md", headers={"Host": "studio.example:8080"})
    assert page.status_code == 200 and page.headers["vary"] == "Host"
    assert "http://studio.example:8080/docs" in page.text and "127.0.0.1:7860" not in page.text


def test_a_host_header_that_is_no_plain_host_is_never_shown(live_server):
    answer = raw_get(live_server.url, "/README.md", b'x"><script>alert(1)</script>')
    assert answer.startswith(b"HTTP/1.1 200")
    assert b"<script>" not in answer and b"alert(1)" not in answer
    assert live_server.url.encode() + b"/docs" in answer  # the configured address instead


@pytest.mark.parametrize("name", DOCS)
def test_every_link_between_the_served_documents_resolves(live_server, name):
    page = live_server.http.get(f"/{name}")
    assert page.status_code == 200
    for href in parsed(page.text).hrefs:
        if urlsplit(href).scheme:
            continue
        target = urlsplit(urljoin(f"{live_server.url}/{name}", href))
        linked = live_server.http.get(target.path) if target.path != f"/{name}" else page
        assert linked.status_code == 200, f"{name} links to {href}"
        assert not target.fragment or target.fragment in parsed(linked.text).ids, f"{name} links to {href}"


def test_the_page_links_to_the_input_format_document(live_server):
    assert "docs/INPUT_FORMAT.md" in live_server.http.get("/").text
