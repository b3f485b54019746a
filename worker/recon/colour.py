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

import math
from typing import Callable

import numpy as np
import torch
from numba import njit, prange
from scipy.sparse import coo_matrix, csr_matrix, diags
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from .devices import on_host
from .rig import Camera, packed_cameras, project_point, view_direction
from .surface import face_cross

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
    projection, those inside the mask whose depth is within `tolerance` of the depth the vertex's tangent plane
    has there give it colour. `on_view(views_done)` reports progress in views (fractional) between chunks of
    vertices. Compiled, a vertex at a time through all the views, on the CPU (as tensor operations: 6 times the
    time).
    """
    points, point_normals, colour_maps, depth_maps = (on_host(t) for t in (vertices, normals, colors, depths))
    usable = on_host(masks, bool) & (depth_maps > 0)
    packed = packed_cameras(cameras)
    linear = np.empty((len(points), 3), dtype=colour_maps.dtype)
    seen = np.empty(len(points), dtype=bool)
    for first in range(0, len(points), CHUNK_VERTICES):
        on_view(len(cameras) * first / len(points))
        chunk = slice(first, first + CHUNK_VERTICES)
        _seen_colours(points[chunk], point_normals[chunk], packed, colour_maps, usable, depth_maps, tolerance,
                      linear[chunk], seen[chunk])
    return torch.as_tensor(linear, device=vertices.device), torch.as_tensor(seen, device=vertices.device)


@njit("void(f4[:, ::1], f4[:, ::1], f8[:, ::1], f4[:, :, :, ::1], b1[:, :, ::1], f4[:, :, ::1], f8, f4[:, ::1],"
      " b1[::1])", cache=True, nogil=True, parallel=True)
def _seen_colours(points: np.ndarray, normals: np.ndarray, cameras: np.ndarray, colours: np.ndarray,
                  usable: np.ndarray, depths: np.ndarray, tolerance: float, linear: np.ndarray, seen: np.ndarray
                  ) -> None:
    """vertex_colours for points (N, 3), normals (N, 3), packed cameras (K, CAMERA_ROW), colours (K, H, W, 3),
    usable (K, H, W) and depths (K, H, W); writes linear (N, 3) and seen (N,).

    Of each view's 2x2 pixels, a pixel counts where its depth lies within `tolerance` of what the point's tangent
    plane would show at its centre: seen at a slant, neighbouring pixels show the same surface at quite other
    depths, and comparing them with the point's own depth would call the surface occluded."""
    height, width = depths.shape[1], depths.shape[2]
    for i in prange(len(points)):
        px, py, pz = points[i, 0], points[i, 1], points[i, 2]
        nx, ny, nz = normals[i, 0], normals[i, 1], normals[i, 2]
        red, green, blue, total = 0.0, 0.0, 0.0, 0.0
        for k in range(len(cameras)):
            camera = cameras[k]
            dx, dy, dz = view_direction(camera, px, py, pz)
            facing = -(nx * dx + ny * dy + nz * dz)
            if facing < MIN_FACING:
                continue
            u, v, _ = project_point(camera, px, py, pz)
            # The tangent plane in the camera frame (x right, y up, looking down -z): normal . point = offset.
            cnx = camera[5] * nx + camera[6] * ny + camera[7] * nz
            cny = camera[9] * nx + camera[10] * ny + camera[11] * nz
            cnz = camera[13] * nx + camera[14] * ny + camera[15] * nz
            offset = (cnx * (camera[5] * px + camera[6] * py + camera[7] * pz + camera[8])
                      + cny * (camera[9] * px + camera[10] * py + camera[11] * pz + camera[12])
                      + cnz * (camera[13] * px + camera[14] * py + camera[15] * pz + camera[16]))
            x0, y0 = math.floor(u - 0.5), math.floor(v - 0.5)
            tx, ty = u - 0.5 - x0, v - 0.5 - y0
            coverage, r_sum, g_sum, b_sum = 0.0, 0.0, 0.0, 0.0
            for corner in range(4):  # (x0, y0), (x0 + 1, y0), (x0, y0 + 1), (x0 + 1, y0 + 1)
                right, below = corner & 1, corner >> 1
                c, r = int(x0) + right, int(y0) + below
                if not (0 <= c < width and 0 <= r < height and usable[k, r, c]):
                    continue
                ray_x = (x0 + right + 0.5 - camera[3]) / camera[1]
                ray_y = (camera[4] - (y0 + below + 0.5)) / camera[2]
                slope = cnx * ray_x + cny * ray_y
                if camera[0] > 0.5:  # the pixel's ray is (x, y, -depth)...
                    expected = (slope - offset) / max(cnz, 1e-6)
                else:  # ...or depth * (x, y, -1)
                    expected = offset / min(slope - cnz, -1e-6)
                if abs(depths[k, r, c] - expected) > tolerance:
                    continue
                w = (tx if right else 1.0 - tx) * (ty if below else 1.0 - ty)
                coverage += w
                r_sum += colours[k, r, c, 0] * w
                g_sum += colours[k, r, c, 1] * w
                b_sum += colours[k, r, c, 2] * w
            if coverage < MIN_COVERAGE:
                continue
            view_weight = facing ** FACING_POWER
            w = view_weight / coverage
            red, green, blue, total = red + r_sum * w, green + g_sum * w, blue + b_sum * w, total + view_weight
        seen[i] = total > 0
        if total > 0:
            linear[i, 0], linear[i, 1], linear[i, 2] = red / total, green / total, blue / total
        else:
            linear[i, 0], linear[i, 1], linear[i, 2] = 0.0, 0.0, 0.0


def vertex_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """The surface area each vertex stands for: a third of its faces' areas."""
    cross = face_cross(vertices, faces)
    face_area = 0.5 * np.sqrt(np.einsum("ij,ij->i", cross, cross))
    return np.bincount(faces.reshape(-1), np.repeat(face_area / 3, 3), minlength=len(vertices))


def unseen_share(vertices: np.ndarray, faces: np.ndarray, seen: np.ndarray) -> float:
    """The share of the surface (by area) whose vertices no view saw: what fill_unseen colours."""
    area = vertex_areas(vertices, faces)
    return float(area[~seen].sum() / max(area.sum(), 1e-30))


def far_sides(points: np.ndarray, seen: np.ndarray, across: float) -> tuple[np.ndarray, np.ndarray]:
    """The unseen `points` (N, 3) within `across` of a seen one, as indices, and the index of that seen one: the far
    side of a thin part (a wall of an open scan, a sheet's shell), which takes the colour seen right behind it."""
    unseen = np.flatnonzero(~seen)
    if len(unseen) == 0 or len(unseen) == len(points):
        return unseen[:0], unseen[:0]
    beside = np.empty(len(points), dtype=bool)
    _beside_unseen(np.ascontiguousarray(points, dtype=np.float64), seen, across, beside)
    seen_at = np.flatnonzero(beside)  # the seen points that can be within `across` of an unseen one
    tree = cKDTree(points[seen_at], balanced_tree=False, compact_nodes=False)  # builds in 60% of the time
    distance, nearest = tree.query(points[unseen], distance_upper_bound=across, workers=-1)
    near = np.isfinite(distance)
    return unseen[near], seen_at[nearest[near]]


BESIDE_CELLS = 256  # most cells per side of the grid that finds the seen points near unseen ones


@njit("void(f8[:, ::1], b1[::1], f8, b1[::1])", cache=True, nogil=True)
def _beside_unseen(points: np.ndarray, seen: np.ndarray, across: float, beside: np.ndarray) -> None:
    """beside (N,): the seen `points` (N, 3) in a grid cell next to (or in) an unseen point's, the cells at least
    `across` wide: every seen point within `across` of an unseen one, and few others where few are unseen (a sheet's
    rim), so that the tree is built over those alone (the sheets' 450k seen texels, for under 10k unseen). There
    is at least one point."""
    low, span = np.empty(3), np.empty(3)
    for k in range(3):
        low[k] = points[:, k].min()
        span[k] = points[:, k].max() - low[k]
    cell = max(across, span.max() / BESIDE_CELLS, 1e-30) * (1 + 1e-9)
    sides = np.empty(3, dtype=np.int64)
    for k in range(3):
        sides[k] = int(span[k] / cell) + 1
    marked = np.zeros((sides[0], sides[1], sides[2]), dtype=np.bool_)
    for n in range(len(points)):
        if not seen[n]:
            i, j, k = (int((points[n, 0] - low[0]) / cell), int((points[n, 1] - low[1]) / cell),
                       int((points[n, 2] - low[2]) / cell))
            marked[max(i - 1, 0):i + 2, max(j - 1, 0):j + 2, max(k - 1, 0):k + 2] = True
    for n in range(len(points)):
        beside[n] = seen[n] and marked[int((points[n, 0] - low[0]) / cell), int((points[n, 1] - low[1]) / cell),
                                       int((points[n, 2] - low[2]) / cell)]


def fill_unseen(vertices: np.ndarray, faces: np.ndarray, colours: np.ndarray, seen: np.ndarray, across: float = 0.0
                ) -> np.ndarray:
    """Colours with every unseen vertex filled (unseen_share says how much of the surface that is).

    An unseen vertex within `across` of a seen one in space is the far side of a thin part (a wall of an open
    scan, a sheet's shell) and takes that colour: along the mesh, that side is a rim away. Filling then follows the
    mesh: every other unseen vertex is the mean of its neighbours along the mesh's edges, the seen and far-side
    vertices held (a harmonic fill: the colours around a bore's rim blend smoothly into it, without the seams of
    copying each vertex's nearest seen one). A part of the mesh no view sees at all, not even at its border,
    takes the colour of the nearest seen vertex in space.
    """
    if seen.all() or not seen.any():
        return colours
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
        _, nearest = cKDTree(vertices[seen]).query(vertices[~reached], workers=-1)
        colours[~reached] = colours[seen][nearest]
    free = np.flatnonzero(reached & ~sources)
    if len(free):
        rows = adjacency[free]
        held = rows @ np.where(sources[:, None], colours, 0.0)  # what the held neighbours pull toward
        degree = np.asarray(rows.sum(axis=1)).ravel()
        colours[free] = _solved(diags(degree) - rows[:, free], held, colours[free].astype(np.float64))
    return colours


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
