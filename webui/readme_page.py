"""Serves the README as a page, so the app's "input format" link works wherever the app runs."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from markdown_it import MarkdownIt

README = Path(__file__).resolve().parents[1] / "README.md"
FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.S)
PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Multiview Studio: README</title>
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
def readme_html() -> str:
    markdown = MarkdownIt("commonmark").enable("table")
    markdown.add_render_rule("heading_open", _heading_with_anchor)
    return PAGE.format(body=markdown.render(FRONT_MATTER.sub("", README.read_text())))


def build_readme_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/README.md", response_class=HTMLResponse)
    def readme() -> str:
        return readme_html()

    return router
