"""Fuse six depth maps and silhouettes into a truncated signed-distance grid (positive outside).

Each view is a signed-distance oracle (depth_views.py); views are averaged with
their weights, and the silhouettes bound the result from below. Voxels nobody
observes but every silhouette contains are inside.

Only blocks near the back-projected depth points (or whose corner signs differ on a
coarse pass) are evaluated at full resolution; the rest take the sign of their corners.

A broad opening that a view looks through into the object, or open panels that views
see from both sides (holes.py), say the input is a scanned surface, not a solid: then
nothing lies more than HOLLOW_REACH_VOXELS behind what a view sees, voxels nobody
observes are outside, and every depth point is put back as a thin shell wherever no
view sees the voxel in front of its depth: the object comes back as the surface the
views show, a thin closed shell, open where the scan is open. Smaller openings, and
any from depth too coarse to fit a shell to, are capped instead and the object fused
as a solid.

The average cancels a surface seen from both sides (a sheet of zero thickness is
outside for each of its views; so is a rod thinner than a voxel for the views
around it, and a wavy sheet that views see from either side is left in specks):
such depth points, those without an inside voxel next to them and those a view
facing the other way sees from behind (holes.two_sided), are found afterwards and
put back as thin closed shells (restore_lost_surfaces), unless some view sees
through them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from numba import njit, prange

from ..errors import ReconstructionFailed
from .depth_views import (MIN_FACING_COS, ViewStack, crop_window, depth_normals, evaluate_sdf, fits_depth,
                          prepare_views, seen_through)
from .devices import on_host
from .holes import HOLLOW_OPENING_SHARE, HOLLOW_PANEL_SHARE, capped, find_openings, two_sided
from .inputs import ReconInputs
from .ops import pixel_world
from .stages import Done

BLOCK = 4
MARGIN_VOXELS = 3
TRUNCATION_VOXELS = 3.0
BAND_VOXELS = 2.5
CHUNK_VOXELS = 1 << 18
SHELL_RADIUS_VOXELS = 0.9  # such points come back as a shell this far around them (> sqrt(3)/2: never a gap)
FREE_SHELL_RADIUS_VOXELS = 0.5  # across a scanned surface's shell where the views see free space (0.6: 0.4 dB worse)
SLAB_REACH_VOXELS = 0.7  # a scanned surface's slabs reach this far around their point, past the scan's rim too
SLAB_REACH_PIXELS = 1.2  # and at least this many pixels: depth points a pixel apart, or more at a slant
SHEET_INSIDE_VOXELS = 0.5  # a point seen from both sides with nothing this deep inside around it is a sheet
HOLLOW_REACH_VOXELS = 1.5  # a scanned surface's views speak this far behind it (1-2 measured Chamfer 0.15-0.19%)


@dataclass
class SdfGrid:
    """A dense signed-distance grid: voxel (i, j, k) sits at origin + (i, j, k) * voxel_size in world units."""

    values: torch.Tensor  # (X, Y, Z) float32, positive outside, clamped to +-truncation
    origin: np.ndarray
    voxel_size: float
    truncation: float
    restored: int = 0  # depth points whose surface the average lost, restored as thin shells (a sheet, a rod)
    openings: tuple[int, ...] = ()  # per view, the openings it looked through (holes.py)
    hollow: bool = False  # built as a scanned surface, a thin shell (else any openings were capped)


def _grid_geometry(points: torch.Tensor, resolution: int) -> tuple[np.ndarray, float, tuple[int, int, int]]:
    """Origin, voxel size and block-aligned shape (in blocks) of a grid over the points' bbox plus a margin."""
    lo = points.amin(dim=0).cpu().numpy().astype(np.float64)
    hi = points.amax(dim=0).cpu().numpy().astype(np.float64)
    extent = hi - lo
    voxel = max(float(extent.max()), 1e-6) / (resolution - 1 - 2 * MARGIN_VOXELS)
    cells = np.ceil(extent / voxel).astype(int) + 1 + 2 * MARGIN_VOXELS
    blocks = np.ceil(cells / BLOCK).astype(int)
    origin = (lo + hi) / 2 - (blocks * BLOCK - 1) * voxel / 2
    return origin, voxel, tuple(int(b) for b in blocks)


def _depth_points(cameras: list, depths: np.ndarray, device: torch.device) -> torch.Tensor:
    """The depth maps' world points (N, 3), unprojected around the depth only (depth_normals' points)."""
    points = [torch.zeros((0, 3), device=device)]
    for camera, depth in zip(cameras, depths):
        if depth.any():
            top, left, bottom, right = crop_window(depth > 0, depth)
            cut = torch.as_tensor(depth[top:bottom, left:right], device=device)
            points.append(depth_normals(camera, cut, 0.0, (top, left))[0][cut > 0])
    return torch.cat(points)


@dataclass
class _Points:
    """The depth maps' world points, their unit surface normals and what sheets and grazing views tell of them."""

    at: torch.Tensor  # (N, 3)
    normals: torch.Tensor  # (N, 3), from differences that do not cross a depth step over the truncation
    facing: torch.Tensor  # (N,) bool: their own view faces them (not grazing, where a point may be half a pixel off)
    sheet: torch.Tensor  # (N,) bool: facing, and a view facing the other way sees them from behind (holes.two_sided)


def _oriented_points(cameras: list, depths: list[np.ndarray], two_sides: list[np.ndarray], truncation: float,
                     device: torch.device, on_view: Done) -> _Points:
    """The points of `depths`, with what `two_sides` (holes.two_sided of `depths`) says of them."""
    parts: list[list[torch.Tensor]] = [[], [], [], []]
    for index, (camera, depth, two_side) in enumerate(zip(cameras, depths, two_sides)):
        if depth.any():
            top, left, bottom, right = crop_window(depth > 0, depth)  # with a margin no difference crosses
            depth_t = torch.as_tensor(depth[top:bottom, left:right], device=device)
            at, normal = depth_normals(camera, depth_t, truncation, (top, left))
            at, normal = at[depth_t > 0], normal[depth_t > 0]
            normal = normal / normal.norm(dim=-1, keepdim=True).clamp_min(1e-20)
            facing = (normal * camera.view_dirs(at)).sum(dim=-1).abs() >= MIN_FACING_COS
            sheet = facing & torch.as_tensor(two_side, device=device)
            for part, value in zip(parts, (at, normal, facing, sheet)):
                part.append(value)
        on_view((index + 1) / len(depths))
    return _Points(*(torch.cat(part) for part in parts))


def _band_blocks(points: torch.Tensor, origin: torch.Tensor, voxel: float, blocks: tuple[int, int, int],
                 on_pass: Callable[[float], None]) -> torch.Tensor:
    """(blocks) bool: blocks within BAND_VOXELS of a depth point (the corners of a box around each point)."""
    active = np.zeros(blocks, dtype=np.bool_)
    _mark_band(on_host((points - origin) / voxel), np.asarray(blocks, dtype=np.int64), active)
    on_pass(1.0)
    return torch.as_tensor(active, device=points.device)


@njit(cache=True, nogil=True)
def _block_of(coordinate: float, size: float, count: int) -> int:
    return min(max(int(math.floor(coordinate / size)), 0), count - 1)


@njit("void(f4[:, ::1], i8[::1], b1[:, :, ::1])", cache=True, nogil=True)
def _mark_band(grid_points: np.ndarray, blocks: np.ndarray, active: np.ndarray) -> None:
    """Marks the block of each corner of the box BAND_VOXELS around each point (N, 3) in voxel coordinates, in
    float32 as the points are."""
    reach, size = np.float32(BAND_VOXELS), np.float32(BLOCK)
    for n in range(len(grid_points)):
        x, y, z = grid_points[n, 0], grid_points[n, 1], grid_points[n, 2]
        for i in (_block_of(x - reach, size, blocks[0]), _block_of(x + reach, size, blocks[0])):
            for j in (_block_of(y - reach, size, blocks[1]), _block_of(y + reach, size, blocks[1])):
                for k in (_block_of(z - reach, size, blocks[2]), _block_of(z + reach, size, blocks[2])):
                    active[i, j, k] = True


def _evaluate_chunked(views: ViewStack, points: torch.Tensor, truncation: float, hollow: bool,
                      on_chunk: Callable[[float], None]) -> torch.Tensor:
    """evaluate_sdf in chunks of CHUNK_VOXELS points, calling `on_chunk(done)` after each."""
    out = torch.empty(points.shape[0], dtype=points.dtype, device=points.device)
    for first in range(0, points.shape[0], CHUNK_VOXELS):
        chunk = points[first : first + CHUNK_VOXELS]
        out[first : first + CHUNK_VOXELS] = evaluate_sdf(views, chunk, truncation, hollow).sdf
        on_chunk(min(1.0, (first + CHUNK_VOXELS) / points.shape[0]))
    return out


def _per_block(grid: torch.Tensor) -> torch.Tensor:
    """(bx, by, bz, BLOCK, BLOCK, BLOCK) view of a grid of whole blocks: writes to a block land in `grid`."""
    x, y, z = (n // BLOCK for n in grid.shape)
    return grid.view(x, BLOCK, y, BLOCK, z, BLOCK).permute(0, 2, 4, 1, 3, 5)


def fuse_depth(
    inputs: ReconInputs, grid_resolution: int, device: torch.device, on_progress: Done = lambda done: None
) -> SdfGrid:
    """Build the signed-distance grid; `on_progress(done)` reports the share done (0..1) after every chunk."""

    def report(done: float, share: tuple[float, float]) -> None:
        """`done` of the part of the work that is `share` of this stage."""
        on_progress(share[0] + (share[1] - share[0]) * done)

    points = _depth_points(inputs.rig.cameras, inputs.depths, device)
    if points.shape[0] == 0:
        raise ReconstructionFailed(
            "The depth renders have no depth inside the silhouettes, so there is no surface to fuse; "
            "check that depth is non-zero where the object is."
        )
    origin, voxel, blocks = _grid_geometry(points, grid_resolution)
    step = inputs.rig.depth.step(inputs.depth_bits)
    truncation = max(TRUNCATION_VOXELS * voxel, 2.0 * step)
    openings = find_openings(inputs, truncation, lambda done: report(done, (0.0, 0.03)))
    cameras = inputs.rig.cameras
    two_sides = two_sided(cameras, inputs.depths, truncation)
    panels = max(float(two_side.mean()) if two_side.size else 0.0 for two_side in two_sides)
    looks_in = max(openings.shares) >= HOLLOW_OPENING_SHARE
    hollow = (looks_in or panels >= HOLLOW_PANEL_SHARE) and fits_depth(step, voxel)
    # With the caps, if any (surfaces too: the band of evaluated blocks must follow them).
    depths = inputs.depths
    if not hollow and any(openings.counts):
        depths = capped(inputs.depths, openings, truncation)
        two_sides = two_sided(cameras, depths, truncation)
    oriented = _oriented_points(cameras, depths, two_sides, truncation, device, lambda done: report(done, (0.03, 0.07)))
    reach = HOLLOW_REACH_VOXELS * voxel if hollow else truncation
    views = prepare_views(cameras, depths, inputs.masks, truncation, inputs.depths, reach,
                          lambda done: report(done, (0.07, 0.1)))
    origin_t = torch.as_tensor(origin, dtype=torch.float32, device=device)
    active = _band_blocks(oriented.at, origin_t, voxel, blocks, lambda done: report(done, (0.1, 0.15)))

    # Coarse pass on the block corners: the sign of every block that is not evaluated voxel by voxel.
    lattice = torch.meshgrid(*[torch.arange(n + 1, device=device) for n in blocks], indexing="ij")
    corner_points = origin_t + (torch.stack(lattice, dim=-1).reshape(-1, 3) * BLOCK - 0.5).float() * voxel
    corner_sdf = _evaluate_chunked(views, corner_points, truncation, hollow, lambda done: report(done, (0.15, 0.2)))
    inside = (corner_sdf < 0).float().view(*(n + 1 for n in blocks))
    bx, by, bz = blocks
    inside_share = sum(
        inside[i : i + bx, j : j + by, k : k + bz] for i in (0, 1) for j in (0, 1) for k in (0, 1)
    ) / 8.0
    active |= (inside_share > 0) & (inside_share < 1)
    dense = torch.empty(bx * BLOCK, by * BLOCK, bz * BLOCK, device=device)
    values = _per_block(dense)
    values[:] = torch.where(inside_share >= 0.5, -truncation, truncation)[..., None, None, None]
    # evaluate_sdf's Fused.within, where free space for open panels' shells needs it (see `free` below)
    within = torch.zeros(dense.shape, dtype=torch.bool, device=device) if hollow and not looks_in else None

    local = torch.stack(torch.meshgrid(*[torch.arange(BLOCK, device=device)] * 3, indexing="ij"), dim=-1).reshape(-1, 3)
    block_ids = torch.nonzero(active)
    per_chunk = max(1, CHUNK_VOXELS // BLOCK**3)
    for first in range(0, block_ids.shape[0], per_chunk):
        chunk = block_ids[first : first + per_chunk]
        voxels = (chunk[:, None, :] * BLOCK + local[None]).reshape(-1, 3)
        fused = evaluate_sdf(views, origin_t + voxels.float() * voxel, truncation, hollow)
        values[chunk[:, 0], chunk[:, 1], chunk[:, 2]] = fused.sdf.view(-1, BLOCK, BLOCK, BLOCK)
        if within is not None:
            _per_block(within)[chunk[:, 0], chunk[:, 1], chunk[:, 2]] = fused.within.view(-1, BLOCK, BLOCK, BLOCK)
        report((first + chunk.shape[0]) / block_ids.shape[0], (0.2, 1.0))

    # A scanned surface's shells stay out of what the views see in front of it (its silhouettes are exact). Open
    # panels are also seen edge-on by views that look past them (a car body's walls from below): there only what no
    # view has within its surface is free, or such a panel's shell would be thinned to nothing. Views that look in
    # through an opening graze its rim, which that would thicken (0.5 dB on open-scan-1).
    free, slab_reach = None, SLAB_REACH_VOXELS
    if hollow:
        free = (dense > 0) & (dense < truncation)
        if within is not None:
            free &= ~within
        pixel = max(pixel_world(camera, points) for camera in inputs.rig.cameras)
        slab_reach = max(SLAB_REACH_VOXELS, SLAB_REACH_PIXELS * pixel / voxel)
    restored = restore_lost_surfaces(dense, origin_t, voxel, oriented, views, truncation, max(voxel, 2.0 * step),
                                     free, slab_reach, looks_in)
    dense[[0, -1]] = truncation
    dense[:, [0, -1]] = truncation
    dense[:, :, [0, -1]] = truncation
    return SdfGrid(dense, origin, voxel, truncation, restored, openings.counts, hollow)


def restore_lost_surfaces(dense: torch.Tensor, origin: torch.Tensor, voxel: float, points: _Points,
                          views: ViewStack, truncation: float, tolerance: float,
                          free: torch.Tensor | None = None, slab_reach: float = SLAB_REACH_VOXELS,
                          looks_in: bool = False) -> int:
    """Put back, as thin closed shells, surfaces that the views' average cancelled: a sheet of zero thickness is
    outside for the view on each side of it, a rod thinner than a voxel for the views around it.

    A depth point with no inside voxel among the 27 around it is such a surface (a fused surface passes within a
    voxel of every point it explains), and so is a point of a sheet with nothing SHEET_INSIDE_VOXELS deep there
    (the views on its two sides leave specks of it), unless some view sees through it: it lies outside that
    view's silhouette, or more than `tolerance` in front of that view's depth (inputs that contradict each other
    are not made into shells). The grid is lowered to the distance from each such point less
    SHELL_RADIUS_VOXELS. With `free` (the grid's shape, bool), the input is a scanned surface: every point is
    put back as a slab along its tangent plane, `slab_reach` voxels around it, and only a sheet's shell reaches
    whole into the voxels `free` says the views see in front of their depth: the others are FREE_SHELL_RADIUS_VOXELS
    thin there, their slabs as wide as elsewhere (shrunk all round, a sheet's rim fell a pixel inside its outline:
    the alligator's front view missed 1,026 of its 14,384 pixels, and then 195). Where the views `looks_in` through
    an opening, they graze its rim, and the slabs shrink all round (wide, open scans lost 0.6 and 0.7 dB).
    Returns how many points."""
    coordinates = (points.at - origin) / voxel
    if free is None:
        lowest = lowest_around(dense, coordinates, 1)
        lost = (lowest > 0) | (points.sheet & (lowest > -SHEET_INSIDE_VOXELS * voxel))
    else:
        lost = torch.ones_like(points.sheet)
    candidates = lost.clone()
    lost[candidates] = ~seen_through(views, points.at[candidates], points.normals[candidates],
                                     points.facing[candidates], truncation, tolerance)
    if not lost.any():
        return 0
    hollow = free is not None
    grid = on_host(dense)  # the grid itself where it lives on the CPU
    _put_back(grid, on_host(coordinates[lost]), on_host(points.normals[lost]), on_host(points.sheet[lost], bool),
              on_host(points.facing[lost] & hollow, bool), on_host(free, bool) if hollow else np.zeros((0, 0, 0), bool),
              looks_in, slab_reach, voxel)
    if dense.device.type != "cpu":
        dense.copy_(torch.as_tensor(grid, device=dense.device))
    return int(lost.sum())


def lowest_around(grid: torch.Tensor, coordinates: torch.Tensor, reach: int) -> torch.Tensor:
    """(N,) the lowest grid value in the cube of (2 reach + 1)^3 voxels around each voxel coordinate (N, 3)."""
    lowest = np.empty(coordinates.shape[0], dtype=np.float32)
    _lowest(on_host(grid), on_host(coordinates), reach, lowest)
    return torch.as_tensor(lowest, device=grid.device)


@njit("void(f4[:, :, ::1], f4[:, ::1], i8, f4[::1])", cache=True, nogil=True, parallel=True)
def _lowest(grid: np.ndarray, coordinates: np.ndarray, reach: int, lowest: np.ndarray) -> None:
    size_x, size_y, size_z = grid.shape
    for n in prange(len(coordinates)):
        cx, cy, cz = int(np.rint(coordinates[n, 0])), int(np.rint(coordinates[n, 1])), int(np.rint(coordinates[n, 2]))
        least = np.inf
        for i in range(cx - reach, cx + reach + 1):
            x = min(max(i, 0), size_x - 1)
            for j in range(cy - reach, cy + reach + 1):
                y = min(max(j, 0), size_y - 1)
                for k in range(cz - reach, cz + reach + 1):
                    least = min(least, grid[x, y, min(max(k, 0), size_z - 1)])
        lowest[n] = least


@njit(cache=True, nogil=True)
def _lower(grid: np.ndarray, x: int, y: int, z: int, value: float) -> None:
    grid[x, y, z] = min(grid[x, y, z], value)


@njit("void(f4[:, :, ::1], f4[:, ::1], f4[:, ::1], b1[::1], b1[::1], b1[:, :, ::1], b1, f8, f8)", cache=True,
      nogil=True)
def _put_back(grid: np.ndarray, centres: np.ndarray, normals: np.ndarray, sheet: np.ndarray, slab: np.ndarray,
              free: np.ndarray, looks_in: bool, slab_reach: float, voxel: float) -> None:
    """restore_lost_surfaces' shells, lowered into the grid (X, Y, Z) in one pass, in world units: around each
    point at voxel coordinates `centres` (N, 3) a ball (its 8 voxels, the distance less SHELL_RADIUS_VOXELS) and,
    where `slab` (N,), a slab along its tangent plane (unit `normals` (N, 3)) `slab_reach` voxels around it. Where
    `free` (the grid's shape; empty: nowhere) a `sheet` point's ball is whole, the other balls are thinner by
    SHELL_RADIUS_VOXELS - FREE_SHELL_RADIUS_VOXELS, and so are the slabs where the views `looks_in`, else they are
    FREE_SHELL_RADIUS_VOXELS thick. Voxels past the grid's edge count at its edge, at their distance from there.
    Slabs, because balls around depth points a voxel or more apart (a surface seen at a slant) leave voxels
    touching only at their corners, which marching cubes opens into pinholes, while a slab 2 x SHELL_RADIUS_VOXELS
    thick holds a face-connected layer of voxels at any slant (digital planes: thickness |nx| + |ny| + |nz|)."""
    thinner = SHELL_RADIUS_VOXELS - FREE_SHELL_RADIUS_VOXELS
    size_x, size_y, size_z = grid.shape
    anywhere_free = free.size > 0
    extent = math.ceil(slab_reach)
    for n in range(len(centres)):
        cx, cy, cz = centres[n, 0], centres[n, 1], centres[n, 2]
        bx, by, bz = int(math.floor(cx)), int(math.floor(cy)), int(math.floor(cz))
        low, high = (-extent, extent) if slab[n] else (0, 1)
        for i in range(bx + low, bx + high + 1):
            x = min(max(i, 0), size_x - 1)
            for j in range(by + low, by + high + 1):
                y = min(max(j, 0), size_y - 1)
                for k in range(bz + low, bz + high + 1):
                    z = min(max(k, 0), size_z - 1)
                    ox, oy, oz = x - cx, y - cy, z - cz
                    length = math.sqrt(ox * ox + oy * oy + oz * oz)
                    is_free = anywhere_free and free[x, y, z]
                    if 0 <= i - bx <= 1 and 0 <= j - by <= 1 and 0 <= k - bz <= 1:  # the ball's 8 voxels
                        ball = length - SHELL_RADIUS_VOXELS
                        _lower(grid, x, y, z, (ball + thinner if is_free and not sheet[n] else ball) * voxel)
                    if slab[n]:
                        across = abs(ox * normals[n, 0] + oy * normals[n, 1] + oz * normals[n, 2])
                        if is_free and not looks_in:
                            value = max(across - FREE_SHELL_RADIUS_VOXELS, length - slab_reach)
                        else:
                            value = max(across - SHELL_RADIUS_VOXELS, length - slab_reach)
                            value += thinner if is_free else 0.0
                        _lower(grid, x, y, z, value * voxel)
