"""How well a mesh agrees with the inputs: rasterize it into every input camera, compare silhouettes and depth."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import trimesh
from scipy.spatial import cKDTree

from .raster import rasterize
from .rig import SLOT_NAMES, Rig

CHUNK_TRIANGLES = 1 << 18


def compare_with_inputs(
    rig: Rig,
    vertices: torch.Tensor,
    faces: torch.Tensor,
    masks: torch.Tensor,
    depths: torch.Tensor,
    on_view: Callable[[float], None] = lambda views_done: None,
) -> list[dict]:
    """Per view: silhouette IoU, and mean |depth difference| in world units where both have depth.

    The mesh is rasterized in chunks of triangles (nearest wins), calling `on_view(views_done)` before
    each, so progress keeps coming on big meshes. A view with nothing to compare reports None.
    """
    report = []
    chunks = range(0, faces.shape[0], CHUNK_TRIANGLES)
    for index, (slot, camera) in enumerate(zip(SLOT_NAMES, rig.cameras)):
        nearest = torch.full((camera.height, camera.width), torch.inf, device=vertices.device)
        for number, first in enumerate(chunks):
            on_view(index + number / len(chunks))
            raster = rasterize(camera, vertices, faces[first : first + CHUNK_TRIANGLES])
            nearest = torch.minimum(nearest, torch.where(raster.tri_id >= 0, raster.depth, torch.inf))
        rendered = torch.isfinite(nearest)
        union = (rendered | masks[index]).sum().item()
        iou = (rendered & masks[index]).sum().item() / union if union else None
        both = rendered & (depths[index] > 0)
        error = (nearest - depths[index]).abs()[both].mean().item() if both.any() else None
        report.append({
            "slot": slot,
            "silhouette_iou": None if iou is None else round(iou, 4),
            "depth_error": None if error is None else round(error, 6),
        })
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
