"""A compact HTML summary of a job's report.json, shown under the 3D viewer.

The report's shape is `worker.recon.report.JobReport`. It is read once into a `ReportView`, the one place that
allows for what a model does not report (a file from an older version, a model without a refinement), so the
HTML below works from typed fields: time per stage, mesh size, per-view silhouette IoU, depth error and PSNR,
a refinement's before and after, warnings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any, Mapping

REFINEMENT_MEANS = (("silhouette_iou", "IoU", 3), ("depth_error", "depth error", 4), ("psnr", "PSNR", 1))


def _number(value: Any, digits: int) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "–"
    return f"{value:,.{digits}f}" if digits else f"{value:,}"


def _mapping(value: object) -> Mapping:
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class ReportView:
    model: str
    wall_time_s: float | None
    triangles: int | None
    vertices: int | None
    watertight: bool
    simplify_error_pct: float | None  # RMS distance the simplification reached, % of the object's diagonal
    timings: dict[str, float]  # per stage, without the total
    views: list[Mapping]  # worker.recon.report.ViewCheck
    refinement: list[str]  # "IoU 0.980 → 0.990", ..., "120 iterations"; empty without a refinement
    warnings: list[str]

    @classmethod
    def of(cls, report: Mapping) -> "ReportView":
        mesh, timings = _mapping(report.get("mesh")), _mapping(report.get("timings"))
        return cls(
            model=str(report.get("model", "model")),
            wall_time_s=report.get("wall_time_s", timings.get("total")),
            triangles=mesh.get("triangles"),
            vertices=mesh.get("vertices"),
            watertight=mesh.get("watertight") is True,
            simplify_error_pct=mesh.get("simplify_error_pct"),
            timings={str(name): seconds for name, seconds in timings.items() if name != "total"},
            views=[view for view in report.get("views") or [] if isinstance(view, Mapping)],
            refinement=_refinement_changes(_mapping(report.get("refinement"))),
            warnings=[str(warning) for warning in report.get("warnings") or []],
        )


def _refinement_changes(refinement: Mapping) -> list[str]:
    """For a refining model: the mean agreement with the inputs before and after refinement, and whether the
    refinement was kept (where it was not, the start was written as it was)."""
    before = _mapping(_mapping(refinement.get("before")).get("mean"))
    after = _mapping(_mapping(refinement.get("after")).get("mean"))
    changes = [
        f"{label} {_number(before.get(key), digits)} → {_number(after.get(key), digits)}"
        for key, label, digits in REFINEMENT_MEANS
        if before.get(key) is not None or after.get(key) is not None
    ]
    if isinstance(refinement.get("iterations"), int):
        changes.append(f"{refinement['iterations']} iterations")
    if refinement.get("kept") is False:
        changes.append("not kept: the starting mesh as it was")
    return changes


def _stage_times(timings: dict[str, float]) -> str:
    if not timings:
        return ""
    cells = "".join(
        f"<span class='stage'><b>{escape(name.replace('_', ' '))}</b> {_number(seconds, 2)} s</span>"
        for name, seconds in timings.items()
    )
    return f"<div class='report-stages'>{cells}</div>"


def _views_table(views: list[Mapping]) -> str:
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


def summarize_report(report: Mapping) -> str:
    """One headline (model, wall time, triangles), the stage times, the refinement (if any), the per-view table
    and any warnings."""
    view = ReportView.of(report)
    facts = [f"<b>{escape(view.model)}</b>"]
    if view.wall_time_s is not None:
        facts.append(f"{_number(view.wall_time_s, 1)} s")
    if view.triangles is not None:
        facts.append(f"{_number(view.triangles, 0)} triangles")
    if view.vertices is not None:
        facts.append(f"{_number(view.vertices, 0)} vertices")
    if view.watertight:
        facts.append("watertight")
    if view.simplify_error_pct:
        facts.append(f"simplified within {_number(view.simplify_error_pct, 3)}% of its size")
    refinement = (f"<div class='report-refinement'><b>Refinement</b> {' · '.join(view.refinement)}</div>"
                  if view.refinement else "")
    items = "".join(f"<li>{escape(warning)}</li>" for warning in view.warnings)
    warnings = f"<ul class='report-warnings'>{items}</ul>" if items else ""
    return (
        "<div class='report'>"
        f"<div class='report-head'>{' · '.join(facts)}</div>"
        f"{_stage_times(view.timings)}{refinement}{_views_table(view.views)}{warnings}"
        "<div class='report-note'>IoU: overlap of the mesh's silhouette with each input's (1 is perfect); "
        "depth error: mean distance to the input depth, in world units.</div>"
        "</div>"
    )


def summarize_report_file(path: Path) -> str:
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return f"<div class='report'>The report could not be read ({escape(str(exc))}).</div>"
    return summarize_report(_mapping(report))
