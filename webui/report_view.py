"""A compact HTML summary of a job's report.json, shown under the 3D viewer.

The report is written by whichever model ran, so every key is optional: what is
there is shown (time per stage, mesh size, per-view silhouette IoU and depth
error, warnings) and what is missing is left out rather than failing the page.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any


def _number(value: Any, digits: int) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "–"
    return f"{value:,.{digits}f}" if digits else f"{value:,}"


def _stage_times(timings: dict) -> str:
    stages = [(name, seconds) for name, seconds in timings.items() if name != "total"]
    if not stages:
        return ""
    cells = "".join(
        f"<span class='stage'><b>{escape(str(name))}</b> {_number(seconds, 2)} s</span>" for name, seconds in stages
    )
    return f"<div class='report-stages'>{cells}</div>"


def _views_table(views: list) -> str:
    rows = "".join(
        f"<tr><td>{escape(str(view.get('slot', index)))}</td>"
        f"<td>{_number(view.get('silhouette_iou'), 3)}</td>"
        f"<td>{_number(view.get('depth_error'), 4)}</td></tr>"
        for index, view in enumerate(views) if isinstance(view, dict)
    )
    if not rows:
        return ""
    return (
        "<table class='report-views'><thead><tr><th>view</th><th>silhouette IoU</th>"
        f"<th>depth error</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def summarize_report(report: dict) -> str:
    """One headline (model, wall time, triangles), the stage times, the per-view table and any warnings."""
    mesh = report.get("mesh") if isinstance(report.get("mesh"), dict) else {}
    timings = report.get("timings") if isinstance(report.get("timings"), dict) else {}
    facts = [f"<b>{escape(str(report.get('model', 'model')))}</b>"]
    wall = report.get("wall_time_s", timings.get("total"))
    if wall is not None:
        facts.append(f"{_number(wall, 1)} s")
    if "triangles" in mesh:
        facts.append(f"{_number(mesh['triangles'], 0)} triangles")
    if "vertices" in mesh:
        facts.append(f"{_number(mesh['vertices'], 0)} vertices")
    if mesh.get("watertight") is True:
        facts.append("watertight")
    warnings = "".join(f"<li>{escape(str(warning))}</li>" for warning in report.get("warnings") or [])
    return (
        "<div class='report'>"
        f"<div class='report-head'>{' · '.join(facts)}</div>"
        f"{_stage_times(timings)}"
        f"{_views_table(report.get('views') or [])}"
        f"{f'<ul class=report-warnings>{warnings}</ul>' if warnings else ''}"
        "<div class='report-note'>IoU: overlap of the mesh's silhouette with each input's (1 is perfect); "
        "depth error: mean distance to the input depth, in world units.</div>"
        "</div>"
    )


def summarize_report_file(path: Path) -> str:
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return f"<div class='report'>The report could not be read ({escape(str(exc))}).</div>"
    return summarize_report(report if isinstance(report, dict) else {})
