"""An exact, vectorised z-buffer rasterizer in PyTorch, in the spirit of nvdiffrast's rasterize/interpolate.

Each triangle is expanded into the pixels of its bounding box, an edge-function
test at pixel centres keeps the covered ones, and a scatter-min over an int64
key (quantised depth, then triangle id) resolves visibility. Edge functions of a
shared edge are evaluated from the same, canonically ordered endpoints in both
triangles, so they are exact negatives: a closed mesh renders without cracks.
Runs wherever the tensors live (CPU or CUDA).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .rig import Camera

TRI_BITS = 24
DEPTH_LEVELS = (1 << 38) - 1
NEAR_EPS = 1e-6
DEFAULT_MAX_PAIRS = 1 << 21


class Raster(NamedTuple):
    tri_id: torch.Tensor  # (H, W) int64, -1 where no triangle covers the pixel centre
    bary: torch.Tensor  # (H, W, 3) barycentrics of the visible triangle (perspective-correct), 0 on background
    depth: torch.Tensor  # (H, W) z-depth of the visible surface, 0 on background


def _edges(screen: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per triangle and edge k (opposite corner k): canonical origin (F,3,2), delta (F,3,2), inside-sign (F,3),
    and twice the unsigned area (F,)."""
    corners = screen[faces]  # (F, 3, 2)
    start = corners[:, [1, 2, 0]]
    end = corners[:, [2, 0, 1]]
    swap = (end[..., 0] < start[..., 0]) | ((end[..., 0] == start[..., 0]) & (end[..., 1] < start[..., 1]))
    origin = torch.where(swap[..., None], end, start)
    delta = torch.where(swap[..., None], start, end) - origin
    sign = torch.where(swap, -1.0, 1.0).to(screen.dtype)
    # Edge 0's function at corner 0 is twice the signed area.
    area2 = sign[:, 0] * (delta[:, 0, 0] * (corners[:, 0, 1] - origin[:, 0, 1]) - delta[:, 0, 1] * (corners[:, 0, 0] - origin[:, 0, 0]))
    orientation = torch.where(area2 < 0, -1.0, 1.0).to(screen.dtype)
    return origin, delta, sign * orientation[:, None], area2.abs()


def _edge_values(origin: torch.Tensor, delta: torch.Tensor, sign: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(N, 3) edge functions at points (u, v) (N,), >= 0 inside, for per-point edge data (N, 3, 2)/(N, 3)."""
    return sign * (delta[..., 0] * (v[:, None] - origin[..., 1]) - delta[..., 1] * (u[:, None] - origin[..., 0]))


def rasterize(camera: Camera, vertices: torch.Tensor, faces: torch.Tensor, *, max_pairs: int = DEFAULT_MAX_PAIRS) -> Raster:
    """Render the nearest triangle at every pixel centre of `camera` (no culling: both sides are visible).

    Triangles with a corner behind a PERSPECTIVE camera's image plane are skipped (no clipping).
    """
    if faces.shape[0] >= 1 << TRI_BITS:
        raise ValueError(f"rasterize handles at most {1 << TRI_BITS} triangles")
    device = vertices.device
    height, width = camera.height, camera.width
    faces = faces.long()
    projected = camera.project(vertices.float())
    screen, z = projected[:, :2].contiguous(), projected[:, 2]
    origin, delta, sign, area2 = _edges(screen, faces)
    corners, corner_z = screen[faces], z[faces]

    lo, hi = corners.amin(dim=1), corners.amax(dim=1)
    col0 = torch.ceil(lo[:, 0] - 0.5).clamp_min(0).long()
    col1 = torch.floor(hi[:, 0] - 0.5).clamp_max(width - 1).long()
    row0 = torch.ceil(lo[:, 1] - 0.5).clamp_min(0).long()
    row1 = torch.floor(hi[:, 1] - 0.5).clamp_max(height - 1).long()
    usable = (col1 >= col0) & (row1 >= row0) & (area2 > 0)
    if not camera.is_ortho:
        usable &= (corner_z > NEAR_EPS).all(dim=1)
    candidates = torch.nonzero(usable).squeeze(1)

    zbuffer = torch.full((height * width,), torch.iinfo(torch.int64).max, dtype=torch.int64, device=device)
    if candidates.numel():
        z_lo = corner_z[candidates].min().item()
        z_scale = DEPTH_LEVELS / max(corner_z[candidates].max().item() - z_lo, 1e-12)
        box_w = col1 - col0 + 1
        counts = box_w * (row1 - row0 + 1)
        ends = torch.cumsum(counts[candidates], 0)
        first = 0
        while first < candidates.numel():
            done = ends[first - 1].item() if first else 0
            last = max(int(torch.searchsorted(ends, done + max_pairs, right=True).item()), first + 1)
            tris = candidates[first:last]
            chunk_counts = counts[tris]
            owner = torch.repeat_interleave(torch.arange(tris.numel(), device=device), chunk_counts)
            offsets = torch.cumsum(chunk_counts, 0) - chunk_counts
            local = torch.arange(owner.numel(), device=device) - offsets[owner]
            tri = tris[owner]
            col = col0[tri] + local % box_w[tri]
            row = row0[tri] + local // box_w[tri]
            u, v = col.to(screen.dtype) + 0.5, row.to(screen.dtype) + 0.5
            edge = _edge_values(origin[tri], delta[tri], sign[tri], u, v)
            inside = (edge >= 0).all(dim=1)
            tri, col, row, edge = tri[inside], col[inside], row[inside], edge[inside]
            depth = _depth(edge / area2[tri, None], corner_z[tri], camera.is_ortho)
            quantised = ((depth - z_lo) * z_scale).clamp(0, DEPTH_LEVELS).long()
            zbuffer.scatter_reduce_(0, row * width + col, (quantised << TRI_BITS) | tri, reduce="amin")
            first = last

    covered = zbuffer != torch.iinfo(torch.int64).max
    tri_id = torch.where(covered, zbuffer & ((1 << TRI_BITS) - 1), torch.full_like(zbuffer, -1))
    bary = torch.zeros(height * width, 3, dtype=screen.dtype, device=device)
    depth = torch.zeros(height * width, dtype=screen.dtype, device=device)
    pixels = torch.nonzero(covered).squeeze(1)
    if pixels.numel():
        tri = tri_id[pixels]
        u = (pixels % width).to(screen.dtype) + 0.5
        v = (pixels // width).to(screen.dtype) + 0.5
        screen_bary = (_edge_values(origin[tri], delta[tri], sign[tri], u, v) / area2[tri, None]).clamp_min(0)
        screen_bary = screen_bary / screen_bary.sum(dim=1, keepdim=True).clamp_min(1e-12)
        depth[pixels] = _depth(screen_bary, corner_z[tri], camera.is_ortho)
        if camera.is_ortho:
            bary[pixels] = screen_bary
        else:
            bary[pixels] = screen_bary / corner_z[tri] * depth[pixels, None]
    return Raster(tri_id.view(height, width), bary.view(height, width, 3), depth.view(height, width))


def _depth(screen_bary: torch.Tensor, corner_z: torch.Tensor, ortho: bool) -> torch.Tensor:
    """Depth at screen-space barycentrics: linear for ORTHO, 1/z linear for PERSPECTIVE."""
    if ortho:
        return (screen_bary * corner_z).sum(dim=1)
    return 1.0 / (screen_bary / corner_z).sum(dim=1).clamp_min(1e-12)


def interpolate(attr: torch.Tensor, tri_id: torch.Tensor, bary: torch.Tensor, faces: torch.Tensor | None = None) -> torch.Tensor:
    """Attributes at each pixel: `attr` per vertex (V, C) with `faces`, or per face corner (F, 3, C) without.

    Background pixels (tri_id < 0) get 0.
    """
    hit = tri_id >= 0
    safe = tri_id.clamp_min(0)
    corner = attr[faces.long()[safe]] if faces is not None else attr[safe]  # (H, W, 3, C)
    values = (bary[..., None].to(corner.dtype) * corner).sum(dim=-2)
    return torch.where(hit[..., None], values, torch.zeros_like(values))
