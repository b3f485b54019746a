"""Serves the README and the documents it links to as pages, so those links work wherever the app runs."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "SECURITY.md", "ARCHITECTURE.md")
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
    return PAGE.format(title=name.removesuffix(".md"), body=body)


def build_readme_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)
    for name in DOCS:
        router.add_api_route(f"/{name}", _page(name), methods=["GET"])
    return router


def _page(name: str):
    """An endpoint without parameters: the document is fixed here, never chosen by the request."""

    def page() -> HTMLResponse:
        return HTMLResponse(doc_html(name))

    return page
