"""Colour spaces, and vertex colours taken from the views that actually see each vertex.

Views are sRGB, glTF vertex colours (COLOR_0) are linear: averaging happens in
linear light. A vertex takes colour only from the pixels around its projection
whose depth agrees with its tangent plane's there (so neither an occluder nor the
background bleeds in), from views that see it at least MIN_FACING frontally,
weighted by how frontally. A point seen only at a grazing angle or by a sliver of a pixel has no
trustworthy colour: it counts as unseen, and unseen vertices are filled across the
mesh (blended from the seen ones along its edges), so the inside of a bore or a
tunnel takes the colours of its own walls and rims, never those of a surface that
is near in space but far along the mesh (the outside of a thin wall).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from scipy.sparse import coo_matrix, csr_matrix, diags
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from .rig import Camera
from .sampling import neighbours_2x2

FACING_POWER = 4.0
MIN_FACING = 0.05  # cos 87 degrees: closer to grazing, a pixel spans too long a strip of the surface
MIN_COVERAGE = 0.25  # the agreeing pixels must hold at least this much of the bilinear weight
HARMONIC_ITERATIONS = 300  # conjugate-gradient steps of the fill, at most
HARMONIC_TOLERANCE = 1e-3
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
    """Linear RGB per vertex (V, 3) and whether any view saw it (V,); unseen vertices are black.

    colors (6, H, W, 3) linear, masks (6, H, W), depths (6, H, W); of the 2x2 pixels around a vertex's
    projection, those inside the mask whose depth is within `tolerance` of the vertex's depth give it colour.
    `on_view(views_done)` reports progress in views (fractional within a view) before each chunk of vertices.
    """
    total = torch.zeros(vertices.shape[0], 3, dtype=colors.dtype, device=vertices.device)
    weight = torch.zeros(vertices.shape[0], dtype=colors.dtype, device=vertices.device)
    for index, (camera, colour_map, mask, depth_map) in enumerate(zip(cameras, colors, masks, depths)):
        # Colour and depth share their 2x2 neighbourhoods: one lookup serves both.
        stacked = torch.cat((colour_map, depth_map[..., None]), dim=-1)
        usable = (mask & (depth_map > 0)).reshape(-1).to(colors.dtype)
        for first in range(0, vertices.shape[0], CHUNK_VERTICES):
            on_view(index + first / vertices.shape[0])
            points, point_normals = vertices[first : first + CHUNK_VERTICES], normals[first : first + CHUNK_VERTICES]
            facing = -(point_normals * camera.view_dirs(points)).sum(dim=-1)
            front = torch.nonzero(facing >= MIN_FACING).squeeze(1)
            uvd = camera.project(points[front])
            near = neighbours_2x2(stacked, uvd[:, 0], uvd[:, 1])
            expected = _tangent_plane_depths(camera, points[front], point_normals[front], uvd)
            weights = near.weights * usable[near.flat] * ((near.values[..., 3] - expected).abs() <= tolerance)
            coverage = weights.sum(dim=-1)
            colour = (near.values[..., :3] * weights[..., None]).sum(dim=-2) / coverage.clamp_min(MIN_COVERAGE)[:, None]
            w = torch.where(coverage >= MIN_COVERAGE, facing[front] ** FACING_POWER, 0.0)
            total.index_add_(0, front + first, colour * w[:, None])
            weight.index_add_(0, front + first, w)
    seen = weight > 0
    return torch.where(seen[:, None], total / weight.clamp_min(1e-12)[:, None], 0.0), seen


def _tangent_plane_depths(camera: Camera, points: torch.Tensor, normals: torch.Tensor, uvd: torch.Tensor
                          ) -> torch.Tensor:
    """(N, 4): the depth each of the 2x2 pixels around a point's projection would show if the surface were the
    point's tangent plane. Seen at a slant, neighbouring pixels show the same surface at quite other depths;
    comparing them with the point's own depth would call the surface occluded."""
    w2c = torch.as_tensor(camera.world_to_cam, dtype=points.dtype, device=points.device)
    n = normals @ w2c[:3, :3].T  # camera frame: x right, y up, looking down -z
    plane = (n * (points @ w2c[:3, :3].T + w2c[:3, 3])).sum(dim=-1, keepdim=True)
    x0 = torch.floor(uvd[:, 0:1] - 0.5) + 0.5
    y0 = torch.floor(uvd[:, 1:2] - 0.5) + 0.5
    x = (torch.cat((x0, x0 + 1, x0, x0 + 1), dim=1) - camera.cx) / camera.fx
    y = (camera.cy - torch.cat((y0, y0, y0 + 1, y0 + 1), dim=1)) / camera.fy
    slope = n[:, 0:1] * x + n[:, 1:2] * y
    if camera.is_ortho:  # the pixel's ray is (x, y, -depth)
        return (slope - plane) / n[:, 2:3].clamp_min(1e-6)
    return plane / (slope - n[:, 2:3]).clamp_max(-1e-6)  # ...or depth * (x, y, -1)


def vertex_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """The surface area each vertex stands for: a third of its faces' areas."""
    corners = vertices[faces]
    face_area = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
    return np.bincount(faces.reshape(-1), np.repeat(face_area / 3, 3), minlength=len(vertices))


def far_sides(points: np.ndarray, seen: np.ndarray, across: float) -> tuple[np.ndarray, np.ndarray]:
    """The unseen `points` (N, 3) within `across` of a seen one, as indices, and the index of that seen one: the far
    side of a thin part (a wall of an open scan, a sheet's shell), which takes the colour seen right behind it."""
    unseen, seen_at = np.flatnonzero(~seen), np.flatnonzero(seen)
    distance, nearest = cKDTree(points[seen_at]).query(points[unseen], distance_upper_bound=across)
    near = np.isfinite(distance)
    return unseen[near], seen_at[nearest[near]]


def fill_unseen(vertices: np.ndarray, faces: np.ndarray, colours: np.ndarray, seen: np.ndarray, across: float = 0.0
                ) -> tuple[np.ndarray, float]:
    """Colours with every unseen vertex filled, and the share of the surface (by area) that was filled.

    An unseen vertex within `across` of a seen one in space is the far side of a thin part (a wall of an open
    scan, a sheet's shell) and takes that colour: along the mesh, that side is a rim away. Filling then follows the
    mesh: every other unseen vertex is the mean of its neighbours along the mesh's edges, the seen and far-side
    vertices held (a harmonic fill: the colours around a bore's rim blend smoothly into it, without the seams of
    copying each vertex's nearest seen one). A part of the mesh no view sees at all, not even at its border,
    takes the colour of the nearest seen vertex in space.
    """
    area = vertex_areas(vertices, faces)
    share = float(area[~seen].sum() / max(area.sum(), 1e-30))
    if seen.all() or not seen.any():
        return colours, share
    colours = colours.copy()
    sources = seen.copy()
    if across > 0:
        far, behind = far_sides(vertices, seen, across)
        colours[far] = colours[behind]
        sources[far] = True
    count = len(vertices)
    around = np.concatenate((faces, faces[:, [1, 2, 0]]), axis=1).T.reshape(2, 3, -1)
    adjacency = coo_matrix((np.ones(around[0].size), (around[0].ravel(), around[1].ravel())), shape=(count, count))
    adjacency = (adjacency + adjacency.T).tocsr()
    adjacency.data[:] = 1.0  # each edge once, either way, whether the mesh is closed or not
    _, _, source = dijkstra(adjacency, indices=np.flatnonzero(sources), unweighted=True, min_only=True,
                            return_predecessors=True)
    reached = source >= 0
    colours[reached] = colours[source[reached]]  # where the harmonic fill starts from: the fewest edges away
    if not reached.all():
        _, nearest = cKDTree(vertices[seen]).query(vertices[~reached])
        colours[~reached] = colours[seen][nearest]
    free = np.flatnonzero(reached & ~sources)
    if len(free):
        rows = adjacency[free]
        held = rows @ np.where(sources[:, None], colours, 0.0)  # what the held neighbours pull toward
        degree = np.asarray(rows.sum(axis=1)).ravel()
        colours[free] = _solved(diags(degree) - rows[:, free], held, colours[free].astype(np.float64))
    return colours, share


def _solved(system: csr_matrix, right: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Conjugate gradients for a symmetric positive definite `system` (N, N) and each column of `right` (N, C) at
    once, from `start`, until each residual falls below HARMONIC_TOLERANCE of its right side or after
    HARMONIC_ITERATIONS (a fill needs no more digits than a colour has)."""
    solution = start.copy()
    residual = right - system @ solution
    direction = residual.copy()
    power = np.einsum("nc,nc->c", residual, residual)
    goal = (HARMONIC_TOLERANCE ** 2) * np.maximum(np.einsum("nc,nc->c", right, right), 1e-30)
    for _ in range(HARMONIC_ITERATIONS):
        if (power <= goal).all():
            break
        pushed = system @ direction
        step = power / np.maximum(np.einsum("nc,nc->c", direction, pushed), 1e-30)
        solution += step * direction
        residual -= step * pushed
        new_power = np.einsum("nc,nc->c", residual, residual)
        direction = residual + (new_power / np.maximum(power, 1e-30)) * direction
        power = new_power
    return solution
