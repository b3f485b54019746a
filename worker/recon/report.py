"""The shape of what a model reports: one set of types that the models fill, the runner extends and the page
renders. The report is JSON on disk (`report.json`), so these are TypedDicts: the file and the type are one."""

from __future__ import annotations

from typing import NotRequired, TypedDict


class ViewCheck(TypedDict):
    """How the result agrees with one input view (evaluate.view_scores); None where there is nothing to compare."""

    slot: str
    silhouette_iou: float | None
    depth_error: float | None  # mean |z difference| in world units where both have depth
    psnr: NotRequired[float | None]  # dB over the union of the silhouettes, where the model judges colour


class MeshSummary(TypedDict):
    vertices: int
    triangles: int
    watertight: bool
    extracted_triangles: NotRequired[int]  # before simplification
    simplify_error_pct: NotRequired[float]  # largest simplification error, % of the bounding-box diagonal
    snapped_to_depth: NotRequired[float | None]  # share of vertices fitted to the depth maps


class TextureSummary(TypedDict):
    size: int
    charts: int
    atlas_utilization: NotRequired[float]


class ModelReport(TypedDict):
    """What every model returns. Model-specific sections are optional: `grid` (fusion), `refinement`
    (nvdiffrec), `alignment` and `seed` (reconviagen)."""

    model: str
    timings: dict[str, float]  # seconds per stage, and "total"
    mesh: MeshSummary
    texture: NotRequired[TextureSummary | None]  # None: vertex colours
    views: list[ViewCheck]
    depth_bits: int
    depth_left_out: list[str]  # slots whose depth contradicted the others
    colour_filled_share: NotRequired[float]  # of the surface, by area: what no view saw, coloured by filling
    warnings: list[str]
    grid: NotRequired[dict]
    refinement: NotRequired[dict]
    alignment: NotRequired[dict]
    seed: NotRequired[int]


class JobReport(ModelReport):
    """`report.json`: the model's report plus what the worker knows about the run."""

    job_id: str
    options: dict[str, int]  # as the model ran them (after any CPU ceiling)
    wall_time_s: float  # from the job's start to its report
