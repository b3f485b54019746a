"""How well a mesh agrees with the inputs: rasterize it into every input camera, compare silhouettes and depth."""

from __future__ import annotations

import math

import numpy as np
import torch
import trimesh
from scipy.spatial import cKDTree

from .raster import rasterize
from .report import ViewCheck
from .rig import SLOT_NAMES, Rig
from .stages import Done


def view_scores(slot: str, rendered: torch.Tensor, rendered_depth: torch.Tensor, mask: torch.Tensor,
                depth: torch.Tensor, colour: np.ndarray | None = None, expected: np.ndarray | None = None
                ) -> ViewCheck:
    """One view's agreement, the definitions every report uses (None where there is nothing to compare):

    - `silhouette_iou` of the rendered (H, W) bool and the input mask;
    - `depth_error`, the mean |rendered - input| z-depth (world units) where both have depth;
    - with `colour` and `expected` ((H, W, 3) sRGB in [0, 1], background black in both), `psnr` in dB over
      the union of the two silhouettes.
    """
    union = rendered | mask
    iou = (rendered & mask).sum().item() / union.sum().item() if union.any() else None
    both = rendered & (depth > 0)
    error = (rendered_depth - depth).abs()[both].mean().item() if both.any() else None
    scores = {
        "slot": slot,
        "silhouette_iou": None if iou is None else round(iou, 4),
        "depth_error": None if error is None else round(error, 6),
    }
    if colour is not None:
        psnr = None
        if union.any():
            mse = float(((colour - expected) ** 2)[union.cpu().numpy()].mean())
            psnr = round(10 * math.log10(1.0 / max(mse, 1e-10)), 3)
        scores["psnr"] = psnr
    return scores


def compare_with_inputs(
    rig: Rig,
    vertices: torch.Tensor,
    faces: torch.Tensor,
    masks: torch.Tensor,
    depths: torch.Tensor,
    on_progress: Done = lambda done: None,
) -> list[ViewCheck]:
    """Per view: `view_scores` without colour, from raster.py's exact z-buffer; `on_progress(done)` is called
    before each view and while a view is rasterized, so progress keeps coming on big meshes."""
    report = []
    for index, (slot, camera) in enumerate(zip(SLOT_NAMES, rig.cameras)):
        on_progress(index / len(rig.cameras))
        raster = rasterize(camera, vertices, faces, on_chunk=lambda: on_progress(index / len(rig.cameras)))
        report.append(view_scores(slot, raster.tri_id >= 0, raster.depth, masks[index], depths[index]))
    return report


def chamfer_distance(a: trimesh.Trimesh, b: trimesh.Trimesh, samples: int = 100_000, seed: int = 0) -> float:
    """Symmetric mean nearest-neighbour distance between points sampled uniformly on two surfaces."""
    points_a, _ = trimesh.sample.sample_surface(a, samples, seed=seed)
    points_b, _ = trimesh.sample.sample_surface(b, samples, seed=seed + 1)
    return point_chamfer(points_a, points_b)


def point_chamfer(points_a: np.ndarray, points_b: np.ndarray) -> float:
    """Symmetric mean nearest-neighbour distance between two point sets (N, 3) and (M, 3)."""
    a_to_b = cKDTree(points_b).query(points_a)[0]
    b_to_a = cKDTree(points_a).query(points_b)[0]
    return float((a_to_b.mean() + b_to_a.mean()) / 2)
