"""A compact HTML summary of a job's report.json, shown under the 3D viewer.

The report is written by whichever model ran, so every key is optional: what is
there is shown (time per stage, mesh size, per-view silhouette IoU, depth error
and PSNR, a refinement's before and after, warnings) and what is missing is left
out rather than failing the page.
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
        f"<span class='stage'><b>{escape(str(name).replace('_', ' '))}</b> {_number(seconds, 2)} s</span>"
        for name, seconds in stages
    )
    return f"<div class='report-stages'>{cells}</div>"


def _views_table(views: list) -> str:
    views = [view for view in views if isinstance(view, dict)]
    if not views:
        return ""
    psnr = any("psnr" in view for view in views)
    head = "<th>view</th><th>silhouette IoU</th><th>depth error</th>" + ("<th>PSNR (dB)</th>" if psnr else "")
    rows = "".join(
        f"<tr><td>{escape(str(view.get('slot', index)))}</td>"
        f"<td>{_number(view.get('silhouette_iou'), 3)}</td><td>{_number(view.get('depth_error'), 4)}</td>"
        + (f"<td>{_number(view.get('psnr'), 1)}</td>" if psnr else "")
        + "</tr>"
        for index, view in enumerate(views)
    )
    return f"<table class='report-views'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _refinement(report: dict) -> str:
    """For a refining model: the mean agreement with the inputs before and after refinement."""
    refinement = report.get("refinement")
    if not isinstance(refinement, dict):
        return ""
    before = (refinement.get("before") or {}).get("mean") or {}
    after = (refinement.get("after") or {}).get("mean") or {}
    changes = [
        f"{label} {_number(before.get(key), digits)} → {_number(after.get(key), digits)}"
        for key, label, digits in (("silhouette_iou", "IoU", 3), ("depth_error", "depth error", 4), ("psnr", "PSNR", 1))
        if before.get(key) is not None or after.get(key) is not None
    ]
    if isinstance(refinement.get("iterations"), int):
        changes.append(f"{refinement['iterations']} iterations")
    return f"<div class='report-refinement'><b>Refinement</b> {' · '.join(changes)}</div>" if changes else ""


def summarize_report(report: dict) -> str:
    """One headline (model, wall time, triangles), the stage times, the refinement (if any), the per-view table
    and any warnings."""
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
    items = "".join(f"<li>{escape(str(warning))}</li>" for warning in report.get("warnings") or [])
    warnings = f"<ul class='report-warnings'>{items}</ul>" if items else ""
    return (
        "<div class='report'>"
        f"<div class='report-head'>{' · '.join(facts)}</div>"
        f"{_stage_times(timings)}{_refinement(report)}{_views_table(report.get('views') or [])}{warnings}"
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
