"""The `nvdiffrec` model: refine the fusion mesh and its texture by differentiable rendering until they match
the six inputs, and keep the refinement only where it helps.

The start is exactly fusion's result with the same options: its simplified mesh, its
UV atlas and the texture it bakes from the views (or its vertex colours when
`texture_size` is 0). The linear texture (and, with `refine_shape`, vertex offsets)
is optimised (refine.py) on all views but one; the view kept out judges each state,
and the best one is written: fusion's result itself, byte for byte, when no refined
state did better there, and fusion's vertices with the refined colours when moved
vertices did not improve that view's silhouette and depth. The shape is left alone
by default: on the held-out corpus, moves the held-out view confirmed still cost
novel views up to 0.6 dB on thin rods and sheets (bench/quality.py); a coarse start
(a low `grid_resolution`) is what they fix. The report compares the start and the result with the inputs
(per-view silhouette IoU, depth error and PSNR) and says whether the refinement
was kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import fusion, ops
from .colour import linear_to_srgb, linear_to_srgb8, srgb_to_linear
from .devices import resolve_device
from .evaluate import view_scores
from .export import write_coloured_glb
from .fusion import SurfaceColours
from .inputs import ReconInputs
from .prelude import begin
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
# A refinement the held-out view accepts is still not kept if, over all views, it loses more than this:
MAX_SILHOUETTE_IOU_LOSS = 0.001
MAX_DEPTH_ERROR_GROWTH = 0.02  # a share of the start's mean depth error
MAX_PSNR_LOSS_DB = 0.02
# Where no view could be held out, the views fitted are the only evidence: their PSNR must rise by this much. On a
# sheet four views see edge-on (alligator) a refinement that lowered its loss lowered their PSNR by 0.02 dB.
MIN_UNCHECKED_PSNR_GAIN_DB = 0.1
STAGES = (
    Stage("decode", "decoding inputs", 0.01),
    Stage("agree", "checking that the depth renders agree", 0.01),
    Stage("fuse", "fusing depth", 0.03),
    Stage("extract", "extracting surface", 0.01),
    Stage("snap", "fitting the surface to the depth maps and silhouettes", 0.02),
    Stage("simplify", "simplifying", 0.02),
    Stage("colour", "colouring the starting mesh", 0.01),
    Stage("atlas", "building UV atlas", 0.01),
    Stage("bake", "baking texture", 0.01),
    Stage("check_before", "checking the starting mesh", 0.05),
    Stage("targets", "preparing targets", 0.02),
    Stage("optimise", "refining mesh", 0.58),
    Stage("check_after", "checking against inputs", 0.08),
    Stage("write", "writing mesh", 0.02),
)


def _appearance(coloured: SurfaceColours, device: torch.device) -> Appearance:
    """Fusion's colours as the optimiser's linear parameters: its texture on its atlas, or its vertex colours as
    8-bit values, so that the start is judged as fusion wrote it."""
    if coloured.atlas is None:
        return Appearance(colours=torch.as_tensor(quantised(coloured.colours), device=device))
    atlas = coloured.atlas
    return Appearance(texture=torch.as_tensor(srgb_to_linear(coloured.texture / 255.0), device=device), atlas=atlas,
                      uv=torch.as_tensor(atlas.uv, device=device), uv_faces=torch.as_tensor(atlas.faces, device=device))


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


def agrees_less(before: dict, after: dict, checked: bool = True) -> str | None:
    """How the refined mesh agrees less with the six inputs than its start, judged on the means over all views
    (`_summary`); None when it agrees as well. The held-out view weighs one loss that mixes colour, silhouette
    and depth; this makes sure that no one of them got worse on the views as a whole. Not `checked` by a held-out
    view, the PSNR must also rise by MIN_UNCHECKED_PSNR_GAIN_DB."""
    psnr_floor = MIN_UNCHECKED_PSNR_GAIN_DB if not checked else -MAX_PSNR_LOSS_DB
    worse = []
    for key, name, form, unit, got_worse in (
        ("silhouette_iou", "silhouette IoU", ".4f", "", lambda old, new: new < old - MAX_SILHOUETTE_IOU_LOSS),
        ("depth_error", "depth error", ".5f", "", lambda old, new: new > old * (1 + MAX_DEPTH_ERROR_GROWTH)),
        ("psnr", "PSNR", ".2f", " dB", lambda old, new: new < old + psnr_floor),
    ):
        old, new = before.get(key), after.get(key)
        if old is not None and new is not None and got_worse(old, new):
            worse.append(f"{name} {old:{form}} -> {new:{form}}{unit}")
    return ", ".join(worse) or None


def _as_written(appearance: Appearance) -> tuple[Appearance, np.ndarray]:
    """The appearance as the GLB stores it (8 bits per channel), so the metrics judge the file; and what is
    stored: linear vertex colours (V, 3) or the sRGB texture (T, T, 3) uint8."""
    device = appearance.parameter.device
    if appearance.texture is None:
        linear = quantised(appearance.colours.cpu().numpy())
        return Appearance(colours=torch.as_tensor(linear, device=device)), linear
    srgb = linear_to_srgb8(appearance.texture.cpu().numpy())
    return appearance.with_parameter(torch.as_tensor(srgb_to_linear(srgb / 255.0), device=device)), srgb


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
    grid_resolution: int = fusion.GRID_RESOLUTION,
    target_triangles: int = fusion.TARGET_TRIANGLES,
    max_error_ppm: int = fusion.MAX_ERROR_PPM,
    texture_size: int = fusion.TEXTURE_SIZE,
    refine_shape: int = 0,
    device: str | torch.device | None = None,
    backend: str = "auto",
    cpu_budget_s: float = CPU_BUDGET_S,
) -> ModelReport:
    """Write the refined mesh to `glb` and return the report; `progress(fraction, stage)` may raise JobCancelled.

    The start is fusion's result with the same `grid_resolution`, `target_triangles`, `max_error_ppm` and
    `texture_size` (0: vertex colours are refined and written instead of a texture); where refinement is not
    kept, that result is what is written. `refine_shape` 1 moves the vertices too."""
    stages = Stages(progress, STAGES)
    stages.start("decode")
    device = torch.device(device if device is not None else resolve_device())
    input_size = max(inputs.rig.width, inputs.rig.height)
    asked_iterations = iterations
    iterations, budget_s, size = resolve_settings(iterations, render_resolution, device, input_size, cpu_budget_s)
    start = begin(inputs, device, stages)
    ctx = ops.RenderContext(device, backend)
    warnings = start.warnings
    if ctx.fallback_reason:
        warnings.append(f"rendered with the reference backend: {ctx.fallback_reason}")
    surface, coloured = fusion.fused_and_coloured(start, stages, grid_resolution, target_triangles, max_error_ppm,
                                                  texture_size)
    warnings += coloured.warnings
    vertices, faces = surface.vertices, surface.faces
    appearance = _appearance(coloured, device)
    stages.start("check_before")
    before = view_metrics(ctx, start.given, vertices, faces, appearance, stages.within)
    stages.start("targets")
    targets = targets_at(start.inputs, size, vertices, lambda: stages.within(0.0))
    stages.start("optimise")
    refined, appearance, losses, held_out = optimise(ctx, targets, vertices, faces, appearance, iterations,
                                                      budget_s, stages.within, bool(refine_shape))
    if budget_s is not None and len(losses) < iterations and asked_iterations:
        warnings.append(f"refinement stopped after {len(losses)} of the {asked_iterations} iterations asked for: "
                        f"on a CPU it may take at most {budget_s:.0f} s")
    kept, after = held_out is None or held_out.kept, before
    if not kept:
        warnings.append(f"refinement did not improve the {held_out.slot} view, which was kept out of it to check "
                        "it, so the starting mesh (fusion's) was kept")
    else:
        if refine_shape and held_out is not None and not held_out.shape_kept:
            warnings.append(f"moving the vertices did not improve the silhouette and depth of the {held_out.slot} "
                            "view, which was kept out of refinement to check it, so only the colours were refined")
        stages.start("check_after")
        written, stored = _as_written(appearance)
        after = view_metrics(ctx, start.given, refined, faces, written, stages.within)
        worse = agrees_less(_summary(before), _summary(after), checked=held_out is not None)
        if worse:
            kept, after = False, before
            warnings.append(f"refinement made the views agree less with the mesh ({worse}), so the starting mesh "
                            "(fusion's) was kept" if held_out is not None else
                            f"no view could be kept out of refinement to check it, and the views it was fitted to "
                            f"did not gain {MIN_UNCHECKED_PSNR_GAIN_DB} dB PSNR ({worse}), so the starting mesh "
                            "(fusion's) was kept")
    stages.start("write")
    if kept:
        normals = vertex_normals(refined, faces).cpu().numpy()
        write_coloured_glb(glb, refined.cpu().numpy(), faces.cpu().numpy(), normals, written.atlas, stored)
    else:
        fusion.write_coloured(glb, surface, coloured)
    faces_np = faces.cpu().numpy()
    return {
        "model": "nvdiffrec",
        "timings": stages.finish(),
        "mesh": {"vertices": len(vertices), "triangles": len(faces_np), "watertight": is_watertight(faces_np)},
        "texture": coloured.summary,
        "views": after,
        "depth_bits": inputs.depth_bits,
        "depth_left_out": start.depth_left_out,
        "colour_filled_share": round(coloured.filled_share, 4),
        "refinement": {
            "backend": ctx.backend,
            "iterations": len(losses),
            "refine_shape": bool(refine_shape),
            "kept": kept,
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
