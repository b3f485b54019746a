"""Colour spaces, and vertex colours taken from the views that actually see each vertex.

Views are sRGB, glTF vertex colours (COLOR_0) are linear: averaging happens in
linear light. A vertex takes colour only from views whose depth map agrees with
its depth (it is not occluded there), weighted by how frontally the view sees it.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from scipy.spatial import cKDTree

from .rig import Camera
from .sampling import neighbours_2x2

FACING_POWER = 4.0
CHUNK_VERTICES = 1 << 18


def srgb_to_linear(srgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] -> linear RGB in [0, 1] (IEC 61966-2-1)."""
    srgb = np.asarray(srgb, dtype=np.float32)
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """Linear RGB in [0, 1] -> sRGB in [0, 1]."""
    linear = np.clip(np.asarray(linear, dtype=np.float32), 0.0, 1.0)
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055).astype(np.float32)


def linear_to_srgb8(linear: np.ndarray) -> np.ndarray:
    """Linear RGB in [0, 1] -> 8-bit sRGB, as textures are stored."""
    return np.round(linear_to_srgb(linear) * 255.0).astype(np.uint8)


def vertex_colours(
    vertices: torch.Tensor,
    normals: torch.Tensor,
    cameras: tuple[Camera, ...],
    colors: torch.Tensor,
    masks: torch.Tensor,
    depths: torch.Tensor,
    tolerance: float,
    on_view: Callable[[float], None] = lambda views_done: None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Linear RGB per vertex (V, 3) and whether any view saw it (V,).

    colors (6, H, W, 3) linear, masks (6, H, W), depths (6, H, W); a view sees a vertex when its
    depth map, sampled there, is within `tolerance` of the vertex's depth. `on_view(views_done)` reports
    progress in views (fractional within a view) before each chunk of vertices.
    """
    total = torch.zeros(vertices.shape[0], 3, dtype=colors.dtype, device=vertices.device)
    weight = torch.zeros(vertices.shape[0], dtype=colors.dtype, device=vertices.device)
    for index, (camera, colour_map, mask, depth_map) in enumerate(zip(cameras, colors, masks, depths)):
        # Colour and depth share their 2x2 neighbourhoods: one lookup serves both.
        stacked = torch.cat((colour_map, depth_map[..., None]), dim=-1)
        has_depth = (depth_map > 0).reshape(-1).to(colors.dtype)
        in_mask = mask.reshape(-1).to(colors.dtype)
        for first in range(0, vertices.shape[0], CHUNK_VERTICES):
            on_view(index + first / vertices.shape[0])
            points = vertices[first : first + CHUNK_VERTICES]
            facing = -(normals[first : first + CHUNK_VERTICES] * camera.view_dirs(points)).sum(dim=-1)
            front = torch.nonzero(facing > 0).squeeze(1)  # a view never sees a point from behind
            uvd = camera.project(points[front])
            near = neighbours_2x2(stacked, uvd[:, 0], uvd[:, 1])
            depth_weights = near.weights * has_depth[near.flat]
            colour_weights = near.weights * in_mask[near.flat]
            coverage = depth_weights.sum(dim=-1)
            colour_coverage = colour_weights.sum(dim=-1)
            surface = (near.values[..., 3] * depth_weights).sum(dim=-1) / coverage.clamp_min(1e-12)
            colour = ((near.values[..., :3] * colour_weights[..., None]).sum(dim=-2)
                      / colour_coverage.clamp_min(1e-12)[:, None])
            seen = (coverage > 0) & (colour_coverage > 0) & ((surface - uvd[:, 2]).abs() <= tolerance)
            w = torch.where(seen, facing[front] ** FACING_POWER * coverage, 0.0)
            total.index_add_(0, front + first, colour * w[:, None])
            weight.index_add_(0, front + first, w)
    seen = weight > 0
    return total / weight.clamp_min(1e-12)[:, None], seen


def fill_unseen(vertices: np.ndarray, colours: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Give every vertex no view saw the colour of the nearest vertex that one did."""
    if seen.all() or not seen.any():
        return colours
    _, nearest = cKDTree(vertices[seen]).query(vertices[~seen])
    colours = colours.copy()
    colours[~seen] = colours[seen][nearest]
    return colours
