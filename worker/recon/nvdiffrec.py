"""The `nvdiffrec` model: refine the fusion mesh and its texture by differentiable rendering until they match
the six inputs, and keep the refinement only where it helps.

The fusion mesh (at a grid sized to the render resolution, triangles of about two
pixels) is the start, with fusion's UV atlas and a texture baked from the views
(or linear per-vertex colours when `texture_size` is 0). Vertex offsets and the
linear texture are optimised (refine.py) on all views but one; the view kept out
judges each state, and the best one is written: the start itself when no refined
state did better there. The report compares the start and the result with the
inputs (per-view silhouette IoU, depth error and PSNR) and says whether the
refinement was kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import ops
from .atlas import NO_ATLAS_WARNING, build_atlas
from .bake import bake_texture
from .colour import fill_unseen, linear_to_srgb, linear_to_srgb8, srgb_to_linear, vertex_colours
from .devices import resolve_device
from .evaluate import view_scores
from .export import write_glb, write_textured_glb
from .inputs import ReconInputs
from .ops import pixel_world
from .prelude import begin, fused_surface
from .refine import Appearance, optimise, targets_at
from .report import ModelReport
from .rig import SLOT_NAMES
from .stages import Progress, Stage, Stages
from .surface import is_watertight, vertex_normals

CPU_MAX_ITERATIONS = 200
CPU_BUDGET_S = 105.0  # automatic iterations on a CPU: as many as fit in this time (a 512x512 job: ~2 min)
CUDA_ITERATIONS = 1000
CPU_RENDER_RESOLUTION = 512
CUDA_RENDER_RESOLUTION = 1024
MIN_RENDER_RESOLUTION = 16
GRID_PER_RENDER_PIXEL = 0.5  # fusion grid resolution per render pixel: triangles of about two pixels
MIN_GRID = 32
MAX_GRID = 512
COLOUR_TOLERANCE_PIXELS = 2.0
STAGES = (
    Stage("decode", "decoding inputs", 0.01),
    Stage("agree", "checking that the depth renders agree", 0.01),
    Stage("fuse", "fusing depth", 0.18),
    Stage("extract", "extracting surface", 0.01),
    Stage("snap", "fitting the surface to the depth maps", 0.01),
    Stage("colour", "colouring the starting mesh", 0.03),
    Stage("check_before", "checking the starting mesh", 0.05),
    Stage("targets", "preparing targets", 0.02),
    Stage("optimise", "refining mesh", 0.58),
    Stage("write", "writing mesh", 0.02),
    Stage("check_after", "checking against inputs", 0.08),
)


def _initial_appearance(inputs: ReconInputs, vertices: torch.Tensor, faces: torch.Tensor, texture_size: int,
                        on_progress: Callable[[float], None]) -> tuple[Appearance, list[str]]:
    """Linear vertex colours projected from the full-resolution views (unseen vertices: nearest seen one) and,
    with a `texture_size`, fusion's atlas and a texture baked from the views; plus warnings."""
    device = vertices.device
    pixel = max(pixel_world(camera, vertices) for camera in inputs.rig.cameras)
    tolerance = max(COLOUR_TOLERANCE_PIXELS * pixel, inputs.rig.depth.step(inputs.depth_bits) or 0.0)
    views = (torch.as_tensor(inputs.colors, device=device), torch.as_tensor(inputs.masks, device=device),
             torch.as_tensor(inputs.depths, device=device))
    normals = vertex_normals(vertices, faces)
    linear, seen = vertex_colours(vertices, normals, inputs.rig.cameras, *views, tolerance,
                                  lambda views_done: on_progress(0.3 * views_done / len(SLOT_NAMES)))
    faces_np = faces.cpu().numpy()
    filled, _ = fill_unseen(vertices.cpu().numpy(), faces_np, linear.cpu().numpy(), seen.cpu().numpy())
    colours = torch.as_tensor(quantised(filled), device=device)
    if not texture_size:
        return Appearance(colours=colours), []
    atlas = build_atlas(vertices.cpu().numpy().astype(np.float64), faces_np, texture_size)
    if atlas is None:
        return Appearance(colours=colours), [NO_ATLAS_WARNING]
    on_progress(0.4)
    srgb, _ = bake_texture(vertices, normals, atlas, texture_size, inputs.rig.cameras, *views, tolerance, colours,
                           lambda views_done: on_progress(0.4 + 0.6 * views_done / len(SLOT_NAMES)))
    texture = torch.as_tensor(srgb_to_linear(srgb / 255.0), device=device)
    return Appearance(texture=texture, atlas=atlas, uv=torch.as_tensor(atlas.uv, device=device),
                       uv_faces=torch.as_tensor(atlas.faces, device=device)), []


def quantised(linear: np.ndarray) -> np.ndarray:
    """Linear colours as the GLB stores them (8 bits per channel), so the metrics judge what is written."""
    return (np.round(np.clip(linear, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def view_metrics(ctx: ops.RenderContext, inputs: ReconInputs, vertices: torch.Tensor, faces: torch.Tensor,
                 appearance: Appearance, on_progress: Callable[[float], None] = lambda done: None) -> list[dict]:
    """Per view at input resolution: evaluate.view_scores with colour, rendered by this model's own backend.

    `on_progress(share done)` is called as the views are rendered.
    """
    report = []
    for index, (slot, camera) in enumerate(zip(SLOT_NAMES, inputs.rig.cameras)):
        on_progress(index / len(SLOT_NAMES))
        with torch.no_grad():
            rast = ops.rasterize(ctx, camera, vertices, faces, on_chunk=lambda: on_progress(index / len(SLOT_NAMES)))
            colour = appearance.shade(ctx, rast, faces)
        expected = linear_to_srgb(inputs.colors[index] * inputs.masks[index][..., None])
        report.append(view_scores(slot, rast.tri_id >= 0, rast.depth,
                                  torch.as_tensor(inputs.masks[index], device=vertices.device),
                                  torch.as_tensor(inputs.depths[index], device=vertices.device),
                                  linear_to_srgb(colour.cpu().numpy()), expected))
    return report


def _summary(views: list[dict]) -> dict:
    """Means over the views that had something to compare."""
    summary = {}
    for key in ("silhouette_iou", "depth_error", "psnr"):
        values = [view[key] for view in views if view[key] is not None]
        summary[key] = round(float(np.mean(values)), 6) if values else None
    return summary


def _write(glb: Path, vertices: torch.Tensor, faces: torch.Tensor, appearance: Appearance) -> Appearance:
    """Write the GLB; returns the appearance as written (8 bits per channel), so the metrics judge the file."""
    vertices_np = vertices.cpu().numpy()
    normals = vertex_normals(vertices, faces).cpu().numpy()
    device = vertices.device
    if appearance.texture is None:
        linear = quantised(appearance.colours.cpu().numpy())
        write_glb(glb, vertices_np, faces.cpu().numpy(), normals, linear)
        return Appearance(colours=torch.as_tensor(linear, device=device))
    srgb = linear_to_srgb8(appearance.texture.cpu().numpy())
    write_textured_glb(glb, vertices_np, normals, appearance.atlas, srgb)
    return appearance.with_parameter(torch.as_tensor(srgb_to_linear(srgb / 255.0), device=device))


def resolve_settings(iterations: int, render_resolution: int, device: torch.device, input_size: int,
                     cpu_budget_s: float = CPU_BUDGET_S) -> tuple[int, float | None, int]:
    """(iterations, time budget in seconds or None, render resolution) for option values where 0 = automatic.

    Automatic on a CPU: as many iterations as fit in `cpu_budget_s`, so a job's length does not depend on the
    machine; on CUDA a fixed, quality-oriented count. On a CPU the budget bounds an explicit count too: a public
    server's only worker is not lent for longer. The render resolution never exceeds the inputs'.
    """
    cuda = device.type == "cuda"
    budget = None if cuda else cpu_budget_s
    if not iterations:
        iterations = CUDA_ITERATIONS if cuda else CPU_MAX_ITERATIONS
    size = render_resolution or (CUDA_RENDER_RESOLUTION if cuda else CPU_RENDER_RESOLUTION)
    return iterations, budget, max(MIN_RENDER_RESOLUTION, min(size, input_size))


def reconstruct_nvdiffrec(
    inputs: ReconInputs,
    glb: Path,
    progress: Progress,
    *,
    iterations: int = 0,
    render_resolution: int = 0,
    texture_size: int = 1024,
    device: str | torch.device | None = None,
    backend: str = "auto",
    cpu_budget_s: float = CPU_BUDGET_S,
) -> ModelReport:
    """Write the refined mesh to `glb` and return the report; `progress(fraction, stage)` may raise JobCancelled.

    `texture_size` 0 refines and writes vertex colours instead of a texture."""
    stages = Stages(progress, STAGES)
    stages.start("decode")
    device = torch.device(device if device is not None else resolve_device())
    input_size = max(inputs.rig.width, inputs.rig.height)
    asked_iterations = iterations
    iterations, budget_s, size = resolve_settings(iterations, render_resolution, device, input_size, cpu_budget_s)
    grid_resolution = int(min(MAX_GRID, max(MIN_GRID, round(GRID_PER_RENDER_PIXEL * size))))
    start = begin(inputs, device, stages)
    ctx = ops.RenderContext(device, backend)
    warnings = start.warnings
    if ctx.fallback_reason:
        warnings.append(f"rendered with the reference backend: {ctx.fallback_reason}")
    surface = fused_surface(start, grid_resolution, stages)
    vertices, faces = surface.vertices, surface.faces

    stages.start("colour")
    appearance, notes = _initial_appearance(start.inputs, vertices, faces, texture_size, stages.within)
    warnings += notes
    stages.start("check_before")
    before = view_metrics(ctx, start.given, vertices, faces, appearance, stages.within)
    stages.start("targets")
    targets = targets_at(start.inputs, size, vertices, lambda: stages.within(0.0))
    stages.start("optimise")
    refined, appearance, losses, held_out = optimise(ctx, targets, vertices, faces, appearance, iterations,
                                                      budget_s, stages.within)
    if held_out is not None and not held_out.kept:
        warnings.append(f"refinement did not improve the {held_out.slot} view, which was kept out of it to check "
                        "it, so the starting mesh (fusion's) was kept")
    if budget_s is not None and len(losses) < iterations and asked_iterations:
        warnings.append(f"refinement stopped after {len(losses)} of the {asked_iterations} iterations asked for: "
                        f"on a CPU it may take at most {budget_s:.0f} s")
    stages.start("write")
    written = _write(glb, refined, faces, appearance)
    stages.start("check_after")
    after = view_metrics(ctx, start.given, refined, faces, written, stages.within)
    faces_np = faces.cpu().numpy()
    return {
        "model": "nvdiffrec",
        "timings": stages.finish(),
        "mesh": {"vertices": len(vertices), "triangles": len(faces_np), "watertight": is_watertight(faces_np)},
        "texture": None if appearance.atlas is None else {"size": texture_size, "charts": appearance.atlas.charts},
        "views": after,
        "depth_bits": inputs.depth_bits,
        "depth_left_out": start.depth_left_out,
        "refinement": {
            "backend": ctx.backend,
            "iterations": len(losses),
            "kept": held_out is None or held_out.kept,
            "held_out": None if held_out is None else held_out.summary(),
            "time_budget_s": budget_s,
            "render_resolution": size,
            "grid_resolution": grid_resolution,
            "loss": {"first": round(losses[0], 6), "last": round(losses[-1], 6)} if losses else None,
            "before": {"views": before, "mean": _summary(before)},
            "after": {"views": after, "mean": _summary(after)},
        },
        "warnings": warnings,
    }
