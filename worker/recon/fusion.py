"""The `fusion` model: depth agreement check -> depth fusion -> marching cubes -> simplification -> texture (or
vertex colours) from the views -> GLB + report.

Seconds on a CPU, same code on CUDA: the device is chosen once and every torch
stage follows the tensors. Marching cubes, simplification, atlas packing and the
compiled (Numba) loops over points (fusion's lookups, the fit to the depth maps,
the colours, the rasterizer's pairs) run on the CPU either way. Stages that do not need each other overlap
(devices.alongside): the colours of what no view sees are filled on the fitted mesh while it is simplified,
the atlas is packed while the vertex colours are taken, the result is checked against the inputs while its
texture is baked.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from scipy.spatial import cKDTree

from ..errors import ReconstructionFailed
from .atlas import NO_ATLAS_WARNING, Atlas, build_atlas
from .bake import bake_texture
from .colour import fill_unseen, unseen_share, vertex_colours
from .devices import alongside
from .evaluate import compare_with_inputs
from .export import write_coloured_glb
from .inputs import ReconInputs
from .prelude import FittedSurface, FusedSurface, Prelude, begin, fitted_surface, simplified_surface
from .report import ModelReport, TextureSummary, ViewCheck
from .rig import SLOT_NAMES
from .stages import Progress, Stage, Stages
from .surface import is_watertight, vertex_normals

GRID_RESOLUTION = 224
TARGET_TRIANGLES = 500_000
MAX_ERROR_PPM = 25
TEXTURE_SIZE = 1024
UNSEEN_WARNING_SHARE = 0.05
Fill = Callable[[np.ndarray], np.ndarray]  # points (N, 3) -> linear colours (N, 3)
# Beyond this many faces the fill waits until simplification is done and some vertex needs it: at grid 512 (1.5M
# faces) the two together took 300 MB more at their peak (1,777 against 1,476 MB) and no less time.
FILL_BESIDE_MAX_FACES = 1_000_000
FILL_ACROSS_VOXELS = 1.0  # an unseen vertex this close to a seen one is the far side of a thin part
MIN_MEAN_SILHOUETTE_IOU = 0.5  # below this the inputs contradict each other: no mesh is better than this one
STAGES = (  # weights: the stages' mean shares of the run on the 18 tuning objects at 512x512, 2 cores
    Stage("decode", "decoding inputs", 0.01),
    Stage("agree", "checking that the depth renders agree", 0.07),
    Stage("fuse", "fusing depth", 0.28),
    Stage("extract", "extracting surface", 0.06),
    Stage("snap", "fitting the surface to the depth maps and silhouettes", 0.15),
    Stage("simplify", "simplifying", 0.16),
    Stage("colour", "colouring", 0.02),
    Stage("atlas", "building UV atlas", 0.03),  # packed while the colours are taken: what is left to wait for
    Stage("bake", "baking texture", 0.19),
    Stage("write", "writing mesh", 0.02),
    Stage("check", "checking against inputs", 0.01),  # done while the texture was baked
)


@dataclass
class SurfaceColours:
    """How the fused surface is coloured, as fusion writes it."""

    colours: np.ndarray  # (V, 3) linear, every vertex (unseen ones filled)
    atlas: Atlas | None
    texture: np.ndarray | None  # (T, T, 3) sRGB uint8 on `atlas`
    summary: TextureSummary | None
    warnings: list[str]
    filled_share: float  # of the surface, by area: what no view saw, coloured by filling

    @property
    def stored(self) -> np.ndarray:
        """What the GLB stores: the texture where there is an atlas, else the vertex colours."""
        return self.colours if self.atlas is None else self.texture


def _require_agreement(views: list[ViewCheck], masks: np.ndarray) -> None:
    """Fail when the result hardly overlaps the silhouettes it was made from: the inputs contradict each other,
    and a mesh that matches none of them would only mislead (the runner discards what was written). Views
    without a silhouette (a sheet seen edge-on) were left out, so they do not count."""
    overlaps = [view["silhouette_iou"] for view, mask in zip(views, masks)
                if mask.any() and view["silhouette_iou"] is not None]
    mean = float(np.mean(overlaps)) if overlaps else 0.0
    if mean < MIN_MEAN_SILHOUETTE_IOU:
        raise ReconstructionFailed(
            f"The views do not describe one object: the reconstruction overlaps their silhouettes by only "
            f"{100 * mean:.0f}% on average; check that each depth render belongs to its view and follows the input "
            "format (distance from the camera plane, 0 for background), and that a cameras.json matches how the "
            "views were taken."
        )


def reconstruct_fusion(
    inputs: ReconInputs,
    glb: Path,
    progress: Progress,
    *,
    grid_resolution: int = GRID_RESOLUTION,
    target_triangles: int = TARGET_TRIANGLES,
    max_error_ppm: int = MAX_ERROR_PPM,
    texture_size: int = TEXTURE_SIZE,
    device: str | torch.device | None = None,
) -> ModelReport:
    """Write the mesh to `glb` and return the report; `progress(fraction, stage)` may raise JobCancelled.

    Simplification goes down to `target_triangles` (0 = no count), then on while a collapse moves the surface
    by at most `max_error_ppm` millionths of the bounding-box diagonal (0 = no bound; simplify.Simplified says
    how it is measured); both 0 keep every triangle of marching cubes. `texture_size` 0 writes vertex colours
    instead of a baked texture.
    """
    stages = Stages(progress, STAGES)
    stages.start("decode")
    start = begin(inputs, device, stages)
    surface, fill = _fused(start, stages, grid_resolution, target_triangles, max_error_ppm)
    masks, depths = (torch.as_tensor(maps, device=start.device) for maps in (start.given.masks, start.given.depths))
    check = alongside(lambda: compare_with_inputs(start.given.rig, surface.vertices, surface.faces, masks, depths))
    appearance = _colour(start, surface, texture_size, stages, fill)
    stages.start("write")
    write_coloured(glb, surface, appearance)
    stages.start("check")
    views = check()
    _require_agreement(views, start.given.masks)
    faces_np = surface.faces.cpu().numpy()
    return {
        "model": "fusion",
        "timings": stages.finish(),
        "mesh": {"vertices": len(surface.vertices), "triangles": len(faces_np), "watertight": is_watertight(faces_np),
                 "extracted_triangles": surface.extracted_triangles,
                 "simplify_error_pct": round(100 * surface.simplify_error, 4),
                 "snapped_to_depth": None if surface.snapped is None else round(surface.snapped, 4)},
        "texture": appearance.summary,
        "views": views,
        "depth_bits": inputs.depth_bits,
        "grid": {"resolution": grid_resolution, "voxel_size": round(surface.grid.voxel_size, 6)},
        "depth_left_out": start.depth_left_out,
        "colour_filled_share": round(appearance.filled_share, 4),
        "warnings": start.warnings + appearance.warnings,
    }


def fused_and_coloured(start: Prelude, stages: Stages, grid_resolution: int = GRID_RESOLUTION,
                       target_triangles: int = TARGET_TRIANGLES, max_error_ppm: int = MAX_ERROR_PPM,
                       texture_size: int = TEXTURE_SIZE) -> tuple[FusedSurface, SurfaceColours]:
    """Fusion's mesh and its colours, before they are written: what nvdiffrec starts from, so that with the same
    options a refinement it does not keep leaves exactly fusion's result. Runs the stages from `fuse` to `bake`."""
    surface, fill = _fused(start, stages, grid_resolution, target_triangles, max_error_ppm)
    return surface, _colour(start, surface, texture_size, stages, fill)


def _fused(start: Prelude, stages: Stages, grid_resolution: int, target_triangles: int, max_error_ppm: int
           ) -> tuple[FusedSurface, Callable[[], Fill]]:
    """The simplified surface, and what gives the colours of what no view sees (`_unseen_fill`): computed on the
    fitted mesh while it is simplified, up to FILL_BESIDE_MAX_FACES."""
    fitted = fitted_surface(start, grid_resolution, stages)
    fill = functools.cache(lambda: _unseen_fill(start, fitted))  # computed where some vertex needs it
    if len(fitted.faces) <= FILL_BESIDE_MAX_FACES:
        fill = alongside(fill)
    return simplified_surface(fitted, start.device, stages, target_triangles, max_error_ppm / 1e6), fill


def write_coloured(glb: Path, surface: FusedSurface, appearance: SurfaceColours) -> None:
    """The GLB: textured where there is an atlas, else with vertex colours."""
    write_coloured_glb(glb, surface.vertices.cpu().numpy().astype(np.float64), surface.faces.cpu().numpy(),
                       surface.normals.cpu().numpy(), appearance.atlas, appearance.stored)


def _colour(start: Prelude, surface: FusedSurface, texture_size: int, stages: Stages, fill: Callable[[], Fill]
            ) -> SurfaceColours:
    """Runs the `colour`, `atlas` and `bake` stages: vertex colours from the views, and with a `texture_size` a
    texture baked on a UV atlas, packed while the colours are computed."""
    inputs, device = start.inputs, start.device
    vertices_np, faces_np = surface.vertices.cpu().numpy().astype(np.float64), surface.faces.cpu().numpy()
    packed = alongside(lambda: build_atlas(vertices_np, faces_np, texture_size)) if texture_size else None
    colors = torch.as_tensor(inputs.colors, device=device)
    masks = torch.as_tensor(inputs.masks, device=device)
    depths = torch.as_tensor(inputs.depths, device=device)
    cameras = inputs.rig.cameras
    stages.start("colour")
    linear, seen = vertex_colours(surface.vertices, surface.normals, cameras, colors, masks, depths,
                                  surface.tolerance, on_view=stages.views(len(SLOT_NAMES)))
    linear, seen = linear.cpu().numpy(), seen.cpu().numpy()
    filled_share = unseen_share(vertices_np, faces_np, seen)
    unseen_colours = None
    if seen.any() and not seen.all():
        unseen_colours = fill()
        linear[~seen] = unseen_colours(vertices_np[~seen])
    warnings, atlas, texture, summary = [], None, None, None
    if packed is not None:
        stages.start("atlas")
        atlas = packed()
        if atlas is None:
            warnings.append(NO_ATLAS_WARNING)
    if atlas is not None:
        stages.start("bake")
        texture, filled_share = bake_texture(
            surface.vertices, surface.normals, atlas, texture_size, cameras, colors, masks, depths,
            surface.tolerance, torch.as_tensor(linear, device=device), stages.views(len(SLOT_NAMES)),
            FILL_ACROSS_VOXELS * surface.grid.voxel_size, unseen_colours,
        )
        summary = {"size": texture_size, "charts": atlas.charts, "atlas_utilization": round(atlas.utilization, 3)}
    if filled_share > UNSEEN_WARNING_SHARE:
        warnings.append(f"{100 * filled_share:.0f}% of the surface is seen by no view; it took the colour of "
                        "the nearest seen part")
    return SurfaceColours(linear, atlas, texture, summary, warnings, filled_share)


def _unseen_fill(start: Prelude, fitted: FittedSurface) -> Fill:
    """Colours (N, 3) linear for points (N, 3) no view sees: those of the nearest vertex of the mesh before
    simplification, filled across it (colour.fill_unseen). Filled at its density, not the simplified mesh's,
    whose few vertices on an unseen wall, and their long triangles, made the colours there the simplifier's guess
    (bore-0: 3 dB of novel-view PSNR between two simplifiers of the same error, and a dent in stripes)."""
    inputs, device = start.inputs, start.device
    vertices = torch.as_tensor(fitted.vertices, dtype=torch.float32, device=device)
    normals = vertex_normals(vertices, torch.as_tensor(fitted.faces, device=device))
    linear, seen = vertex_colours(vertices, normals, inputs.rig.cameras, torch.as_tensor(inputs.colors, device=device),
                                  torch.as_tensor(inputs.masks, device=device),
                                  torch.as_tensor(inputs.depths, device=device), fitted.tolerance)
    filled = fill_unseen(fitted.vertices, fitted.faces, linear.cpu().numpy(), seen.cpu().numpy(),
                         FILL_ACROSS_VOXELS * fitted.grid.voxel_size)
    tree = cKDTree(fitted.vertices, balanced_tree=False, compact_nodes=False)
    return lambda points: filled[tree.query(points, workers=-1)[1]]
