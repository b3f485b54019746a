"""Serves the README and the documents it links to as pages, so those links work wherever the app runs.

The README's commands name the address of a local run, http://127.0.0.1:7860; a
served page shows the address its reader reached the app on instead. That address
comes from the request's Host header only when it is a plain host[:port], and is
HTML-escaped; anything else gets the address the server was configured with.
"""

from __future__ import annotations

import html
import re
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from markdown_it import MarkdownIt

from worker.config import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "SECURITY.md", "ARCHITECTURE.md", "docs/INPUT_FORMAT.md")
LOCAL_ADDRESS = "http://127.0.0.1:7860"
HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
                  r"|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")
WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}
FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.S)
PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Multiview Studio: {title}</title>
<style>body{{font:16px/1.55 system-ui,sans-serif;max-width:56rem;margin:2rem auto;padding:0 1rem;color:#1f2937}}
pre,code{{background:#f3f4f6;border-radius:4px}}pre{{padding:.75rem;overflow:auto}}
table{{border-collapse:collapse}}td,th{{border:1px solid #d1d5db;padding:.3rem .5rem;text-align:left}}</style>
</head><body>{body}</body></html>"""


def slug(text: str) -> str:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def _heading_with_anchor(self, tokens, idx, options, env):
    tokens[idx].attrSet("id", slug(tokens[idx + 1].content))
    return self.renderToken(tokens, idx, options, env)


@cache
def doc_html(name: str) -> str:
    markdown = MarkdownIt("commonmark").enable("table")
    markdown.add_render_rule("heading_open", _heading_with_anchor)
    body = markdown.render(FRONT_MATTER.sub("", (ROOT / name).read_text()))
    return PAGE.format(title=Path(name).stem, body=body)


def configured_address(config: Settings) -> str:
    """Where the server listens, as a reader on the same machine would type it."""
    host = WILDCARD_HOSTS.get(config.server_name, config.server_name)
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{host}:{config.server_port}"


def reader_address(request: Request, fallback: str) -> str:
    """The scheme and host the reader used, when the Host header is a plain host[:port]; else `fallback`."""
    host = request.headers.get("host", "")
    if not HOST.fullmatch(host):
        return fallback
    scheme = "https" if request.url.scheme == "https" else "http"
    return f"{scheme}://{host}"


def build_readme_router(config: Settings) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    fallback = configured_address(config)
    for name in DOCS:
        router.add_api_route(f"/{name}", _page(name, fallback), methods=["GET"])
    return router


def _page(name: str, fallback: str):
    """An endpoint for one fixed document: the request chooses only the address shown in it."""

    def page(request: Request) -> HTMLResponse:
        address = html.escape(reader_address(request, fallback), quote=True)
        return HTMLResponse(doc_html(name).replace(LOCAL_ADDRESS, address),
                            headers={"Vary": "Host", "Cache-Control": "no-cache"})

    return page
