"""Fuse six depth maps and silhouettes into a truncated signed-distance grid (positive outside).

Per view, a voxel's signed distance is its distance in front of the depth surface
along the ray, scaled by the surface's cosine to the ray (a perpendicular-distance
estimate). Views are averaged with that cosine as weight. Behind its surface a
view knows less and less (the object may be thinner than the truncation there):
its weight falls linearly to nothing at the truncation, so the far side's views do
not fatten thin parts such as legs and handles. The silhouettes add a lower
bound: a voxel projecting outside a silhouette is at least that far from the object
(less one pixel of slack, so the true surface is never carved; half a pixel where
no smooth depth observes the voxel, so unobserved parts are not systematically
fat). Voxels nobody observes but every silhouette contains are inside.

A view says nothing about a voxel more than the truncation behind its depth along
the ray (not only along the normal: behind a grazing surface the object may be
thin), where the depth counts with every region narrower than WELL_PIXELS raised to
its rim: depth seen through a gap (a lid's rim, a spout's mouth) does not carve, and
a voxel behind the gap's rim is left to the other views, instead of a slot (or a
cavity above whatever the gap shows) being cut into the object.

The depth is bilinear only where the 2x2 texels around a voxel's projection form
one continuous surface; at depth edges and silhouette edges the nearest of them is
used, so a voxel is called free only if it is in front of all of them. All of this
is precomputed per 2x2 cell into a small table, so a voxel costs one gather per view;
the table covers only the silhouette's bounding box and a margin of CROP_MARGIN_PX,
beyond which a voxel is simply far outside the silhouette.

Only blocks near the back-projected depth points (or whose corner signs differ on a
coarse pass) are evaluated at full resolution; the rest take the sign of their corners.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

from ..errors import ReconstructionFailed
from .inputs import ReconInputs
from .rig import Camera
from .stages import Done

BLOCK = 4
MARGIN_VOXELS = 3
TRUNCATION_VOXELS = 3.0
BAND_VOXELS = 2.5
MIN_COS = 0.05
SILHOUETTE_SLACK_PX = 1.0
UNOBSERVED_SLACK_PX = 0.5  # where no depth says anything, the silhouette's expected (not its safe) distance
WELL_PIXELS = 9  # depth seen through gaps narrower than this (pixels) does not carve (odd: a centred window)
NO_BOUND = -1e9
CROP_MARGIN_PX = 8  # > WELL_PIXELS // 2, so that openings inside the window see all they would in the image
CHUNK_VOXELS = 1 << 18
SHELL_RADIUS_VOXELS = 0.9  # such points come back as a shell this far around them (> sqrt(3)/2: never a gap)
THIN_VOXELS = 1.5  # a part with no voxel this deep inside is thin: its two sides are close


@dataclass
class SdfGrid:
    """A dense signed-distance grid: voxel (i, j, k) sits at origin + (i, j, k) * voxel_size in world units."""

    values: torch.Tensor  # (X, Y, Z) float32, positive outside, clamped to +-truncation
    origin: np.ndarray
    voxel_size: float
    truncation: float
    restored: int = 0  # depth points whose surface the average lost, restored as thin shells (a sheet, a rod)

    def thin_at(self, points: torch.Tensor) -> torch.Tensor:
        """(N,) bool: where the object is under about THIN_VOXELS * 2 voxels thick around the world points (no
        voxel within two of them is THIN_VOXELS deep inside): a sheet, a restored shell, a fin."""
        origin = torch.as_tensor(self.origin, dtype=points.dtype, device=points.device)
        deepest = lowest_around(self.values, (points - origin) / self.voxel_size, 2)
        return deepest > -THIN_VOXELS * self.voxel_size


@dataclass
class _View:
    """One view, prepared for voxel lookups."""

    transform: torch.Tensor  # (3, 4) world -> (x, y, depth), x and y times depth for PERSPECTIVE; see _pixel_transform
    perspective: bool
    width: int
    height: int
    window: tuple[int, int, int, int]  # (top, left, bottom, right) texels of the image the table covers
    cells: torch.Tensor  # per-cell table of the window, see _cell_table, then the rows NO_DATA and FAR_OUTSIDE
    pixel: float  # world units per pixel (per unit of depth for PERSPECTIVE)

    @property
    def cells_per_row(self) -> int:
        return self.window[3] - self.window[1] + 1


def _shift(image: torch.Tensor, axis: int, offset: int) -> tuple[torch.Tensor, torch.Tensor]:
    """image[p + offset along axis] (edge-replicated) and whether that neighbour exists."""
    size = image.shape[axis]
    index = torch.arange(size, device=image.device) + offset
    exists = (index >= 0) & (index < size)
    shifted = image.index_select(axis, index.clamp(0, size - 1))
    shape = [1, 1]
    shape[axis] = size
    return shifted, exists.view(shape)


def surface_cosine(camera: Camera, depth: torch.Tensor, discontinuity: float, origin: tuple[int, int] = (0, 0)
                   ) -> torch.Tensor:
    """|cos| between the depth map's surface normal and the viewing ray per pixel, from (central) differences;
    `depth` may be a window of the image whose first texel is (row, column) `origin`."""
    points = camera.unproject_depth_map(depth, origin)
    valid = depth > 0
    tangents = []
    for axis in (1, 0):
        ahead, ahead_exists = _shift(depth, axis, 1)
        behind, behind_exists = _shift(depth, axis, -1)
        fwd = valid & ahead_exists & (ahead > 0) & ((ahead - depth).abs() < discontinuity)
        bwd = valid & behind_exists & (behind > 0) & ((behind - depth).abs() < discontinuity)
        tangent = (torch.where(fwd[..., None], _shift(points, axis, 1)[0], points)
                   - torch.where(bwd[..., None], _shift(points, axis, -1)[0], points))
        tangents.append(tangent)
    normal = torch.linalg.cross(tangents[0], tangents[1], dim=-1)
    length = normal.norm(dim=-1)
    cosine = (normal * camera.view_dirs(points)).sum(dim=-1).abs() / length.clamp_min(1e-20)
    return torch.where(valid & (length > 0), cosine, torch.full_like(cosine, MIN_COS)).clamp(MIN_COS, 1.0)


def _bilinear_coefficients(c00: torch.Tensor, c10: torch.Tensor, c01: torch.Tensor, c11: torch.Tensor) -> list:
    """f(tx, ty) over a cell = a + b tx + c ty + d tx ty, from its corner values."""
    return [c00, c10 - c00, c01 - c00, c00 - c10 - c01 + c11]


def opened_depth(depth: torch.Tensor, width: int = WELL_PIXELS) -> torch.Tensor:
    """The depth map with every far region narrower than `width` pixels raised to its rim (a morphological
    opening: min then max filter, each square filter as a row then a column pass), steps and broad regions
    unchanged; no depth counts as infinitely far."""
    far = torch.where(depth > 0, depth, torch.full_like(depth, torch.inf))[None, None]

    def square_max(image: torch.Tensor) -> torch.Tensor:
        rows = torch.nn.functional.max_pool2d(image, (1, width), stride=1, padding=(0, width // 2))
        return torch.nn.functional.max_pool2d(rows, (width, 1), stride=1, padding=(width // 2, 0))

    return square_max(-square_max(-far))[0, 0]


def _window(mask: np.ndarray, depth: np.ndarray) -> tuple[int, int, int, int]:
    """(top, left, bottom, right): the bounding box of the silhouette and the depth, plus CROP_MARGIN_PX."""
    seen = mask | (depth > 0)
    rows = np.flatnonzero(seen.any(axis=1))
    cols = np.flatnonzero(seen.any(axis=0))
    height, width = mask.shape
    return (max(int(rows[0]) - CROP_MARGIN_PX, 0), max(int(cols[0]) - CROP_MARGIN_PX, 0),
            min(int(rows[-1]) + 1 + CROP_MARGIN_PX, height), min(int(cols[-1]) + 1 + CROP_MARGIN_PX, width))


def _cell_table(camera: Camera, depth: torch.Tensor, mask: np.ndarray, truncation: float,
                window: tuple[int, int, int, int]) -> torch.Tensor:
    """Per 2x2 cell of the window (depth and mask are cut to it): depth coefficients (4), cosine weight (0 = no
    depth), silhouette-bound coefficients (4), the nearest opened depth of its texels (see opened_depth), and 1
    if its depth is bilinear (smooth); then the rows for no data and for far outside the silhouette."""
    device = depth.device
    top, left, bottom, right = window
    cosine = surface_cosine(camera, depth, truncation, (top, left))
    outside = torch.as_tensor(distance_transform_edt(~mask).astype(np.float32), device=device)
    pad = torch.nn.functional.pad
    depth_p = pad(depth, (1, 1, 1, 1))
    cos_p = pad(cosine, (1, 1, 1, 1))
    # The ring around the window is in the image unless the window touches the image's edge there.
    in_image = torch.zeros(depth_p.shape, dtype=torch.bool, device=device)
    in_image[int(top == 0) : depth_p.shape[0] - int(bottom == camera.height),
             int(left == 0) : depth_p.shape[1] - int(right == camera.width)] = True
    outside_p = pad(outside[None, None], (1, 1, 1, 1), mode="replicate")[0, 0]

    def corners(image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return image[:-1, :-1], image[:-1, 1:], image[1:, :-1], image[1:, 1:]

    d4 = torch.stack(corners(depth_p), dim=-1)
    valid4 = d4 > 0
    count = valid4.sum(dim=-1)
    nearest = torch.where(valid4, d4, torch.full_like(d4, torch.inf)).amin(dim=-1)
    farthest = torch.where(valid4, d4, torch.zeros_like(d4)).amax(dim=-1)
    smooth = (count == 4) & (farthest - nearest < truncation)
    coefficients = _bilinear_coefficients(*corners(depth_p))
    depth_coef = [torch.where(smooth, coefficients[0], torch.where(count > 0, nearest, 0.0))]
    depth_coef += [torch.where(smooth, c, 0.0) for c in coefficients[1:]]
    weight = (torch.stack(corners(cos_p), dim=-1) * valid4).sum(dim=-1) / count.clamp_min(1)

    px_to_world = 1.0 / max(camera.fx, camera.fy)
    whole = torch.stack(corners(in_image), dim=-1).all(dim=-1)
    bound = _bilinear_coefficients(*[(c - SILHOUETTE_SLACK_PX) * px_to_world for c in corners(outside_p)])
    bound = [torch.where(whole, bound[0], NO_BOUND)] + [torch.where(whole, c, 0.0) for c in bound[1:]]

    opened = torch.stack(corners(pad(opened_depth(depth), (1, 1, 1, 1), value=torch.inf)), dim=-1).amin(dim=-1)
    table = torch.stack(depth_coef + [weight] + bound + [opened, smooth.float()], dim=-1).reshape(-1, 11)
    far_outside = (CROP_MARGIN_PX - SILHOUETTE_SLACK_PX) * px_to_world
    extra = torch.tensor([[0.0] * 5 + [lower, 0.0, 0.0, 0.0, torch.inf, 0.0] for lower in (NO_BOUND, far_outside)],
                         device=device)
    return torch.cat((table, extra))


def _pixel_transform(camera: Camera) -> np.ndarray:
    """3x4 matrix from world points to cell coordinates (times depth for PERSPECTIVE) and depth."""
    # cell x = u - 0.5 + 1 (pad): texel j's centre sits at j + 1.
    shift_x, shift_y = camera.cx + 0.5, camera.cy + 0.5
    if camera.is_ortho:
        intrinsic = np.array([[camera.fx, 0, 0, shift_x], [0, -camera.fy, 0, shift_y], [0, 0, -1, 0]])
    else:
        intrinsic = np.array([[camera.fx, 0, -shift_x, 0], [0, -camera.fy, -shift_y, 0], [0, 0, -1, 0]])
    return intrinsic @ camera.world_to_cam


def _prepare_view(camera: Camera, depth: np.ndarray, mask: np.ndarray, truncation: float, device: torch.device) -> _View:
    window = _window(mask, depth)
    top, left, bottom, right = window
    depth_t = torch.as_tensor(depth[top:bottom, left:right], dtype=torch.float32, device=device)
    transform = torch.as_tensor(_pixel_transform(camera), dtype=torch.float32, device=device)
    table = _cell_table(camera, depth_t, mask[top:bottom, left:right], truncation, window)
    return _View(transform, not camera.is_ortho, camera.width, camera.height, window, table,
                 1.0 / max(camera.fx, camera.fy))


def _view_terms(view: _View, points: torch.Tensor, truncation: float
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One view's (signed distance * weight, weight, the weight of smooth-depth observations, silhouette lower
    bound, the bound with UNOBSERVED_SLACK_PX) at world points (N, 3)."""
    projected = torch.addmm(view.transform[:, 3], points, view.transform[:, :3].T)
    depth = projected[:, 2]
    xy = projected[:, :2]
    if view.perspective:
        xy = xy / depth.clamp_min(1e-9)[:, None]
    corner = torch.floor(xy)
    t = xy - corner
    tx, ty = t[:, 0], t[:, 1]
    cx, cy = corner[:, 0].long(), corner[:, 1].long()
    in_image = (cx >= 0) & (cx <= view.width) & (cy >= 0) & (cy <= view.height)
    if view.perspective:
        in_image &= depth > 0
    top, left, bottom, right = view.window
    row, column = cy - top, cx - left
    in_window = (row >= 0) & (row <= bottom - top) & (column >= 0) & (column <= right - left)
    no_data = view.cells.shape[0] - 2
    index = torch.where(in_window, row * view.cells_per_row + column, no_data + 1)
    index = torch.where(in_image, index, no_data)
    a, b, c, d, weight, e, f, g, h, opened, smooth = view.cells.index_select(0, index).unbind(dim=-1)
    surface = a + b * tx + (c + d * tx) * ty
    distance = (surface - depth) * weight
    # More than the truncation along the ray behind the opened depth (a gap's rim, or a surface seen at a grazing
    # angle) the view says nothing; closer behind its surface it says less and less.
    hidden = depth > opened + truncation
    weight = torch.where(hidden, 0.0, weight * (1.0 + distance / truncation).clamp(0.0, 1.0))
    bound = e + f * tx + (g + h * tx) * ty
    relief = (SILHOUETTE_SLACK_PX - UNOBSERVED_SLACK_PX) * view.pixel
    if view.perspective:
        bound = torch.where(depth > 0, bound * depth, NO_BOUND)
        relief = relief * depth
    return distance.clamp_max(truncation) * weight, weight, weight * smooth, bound, bound + relief


def evaluate_sdf(views: list[_View], points: torch.Tensor, truncation: float) -> torch.Tensor:
    """The fused, truncated signed distance at world points (N, 3).

    Where a smooth stretch of some depth map observes a point, the silhouettes bound it with their safe slack
    (they must not carve a surface the depth places exactly); elsewhere (unobserved, or only by the nearest depth
    of a cell at a depth or silhouette edge, which reaches half a pixel past the silhouette) with their expected
    one: half a pixel tighter, so such parts are not systematically fatter than the truth."""
    total = torch.zeros(points.shape[0], dtype=points.dtype, device=points.device)
    weight = torch.zeros_like(total)
    bound = torch.full_like(total, NO_BOUND)
    relaxed = torch.full_like(total, NO_BOUND)
    smooth = torch.zeros_like(total)
    for view in views:
        weighted, w, s, b, r = _view_terms(view, points, truncation)
        total += weighted
        weight += w
        smooth += s
        bound = torch.maximum(bound, b)
        relaxed = torch.maximum(relaxed, r)
    fused = torch.where(weight > 0, total / weight.clamp_min(1e-12), -truncation)
    return torch.maximum(fused, torch.where(smooth > 0, bound, relaxed)).clamp(-truncation, truncation)


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


def _depth_points(inputs: ReconInputs, device: torch.device) -> torch.Tensor:
    points = []
    for camera, depth in zip(inputs.rig.cameras, inputs.depths):
        depth_t = torch.as_tensor(depth, device=device)
        points.append(camera.unproject_depth_map(depth_t)[depth_t > 0])
    return torch.cat(points)


def _band_blocks(points: torch.Tensor, origin: torch.Tensor, voxel: float, blocks: tuple[int, int, int],
                 on_pass: Callable[[float], None]) -> torch.Tensor:
    """(blocks) bool: blocks within BAND_VOXELS of a depth point (the corners of a box around each point)."""
    active = torch.zeros(blocks, dtype=torch.bool, device=points.device)
    limit = torch.tensor(blocks, device=points.device) - 1
    grid_points = (points - origin) / voxel
    offsets = torch.cartesian_prod(*[torch.tensor([-BAND_VOXELS, BAND_VOXELS], device=points.device)] * 3)
    for number, offset in enumerate(offsets):
        index = torch.minimum(torch.floor((grid_points + offset) / BLOCK).long().clamp_min(0), limit)
        active[index[:, 0], index[:, 1], index[:, 2]] = True
        on_pass((number + 1) / len(offsets))
    return active


def _evaluate_chunked(views: list[_View], points: torch.Tensor, truncation: float,
                      on_chunk: Callable[[float], None]) -> torch.Tensor:
    """evaluate_sdf in chunks of CHUNK_VOXELS points, calling `on_chunk(done)` after each."""
    out = torch.empty(points.shape[0], dtype=points.dtype, device=points.device)
    for first in range(0, points.shape[0], CHUNK_VOXELS):
        out[first : first + CHUNK_VOXELS] = evaluate_sdf(views, points[first : first + CHUNK_VOXELS], truncation)
        on_chunk(min(1.0, (first + CHUNK_VOXELS) / points.shape[0]))
    return out


def fuse_depth(
    inputs: ReconInputs, grid_resolution: int, device: torch.device, on_progress: Done = lambda done: None
) -> SdfGrid:
    """Build the signed-distance grid; `on_progress(done)` reports the share done (0..1) after every chunk."""

    def report(done: float, share: tuple[float, float]) -> None:
        """`done` of the part of the work that is `share` of this stage."""
        on_progress(share[0] + (share[1] - share[0]) * done)

    points = _depth_points(inputs, device)
    if points.shape[0] == 0:
        raise ReconstructionFailed(
            "The depth renders have no depth inside the silhouettes, so there is no surface to fuse; "
            "check that depth is non-zero where the object is."
        )
    origin, voxel, blocks = _grid_geometry(points, grid_resolution)
    step = inputs.rig.depth.step(inputs.depth_bits)
    truncation = max(TRUNCATION_VOXELS * voxel, 2.0 * step)
    views = []
    for index, (camera, depth, mask) in enumerate(zip(inputs.rig.cameras, inputs.depths, inputs.masks)):
        if mask.any():
            views.append(_prepare_view(camera, depth, mask, truncation, device))
        report((index + 1) / len(inputs.depths), (0.0, 0.1))
    origin_t = torch.as_tensor(origin, dtype=torch.float32, device=device)
    active = _band_blocks(points, origin_t, voxel, blocks, lambda done: report(done, (0.1, 0.15)))

    # Coarse pass on the block corners: the sign of every block that is not evaluated voxel by voxel.
    lattice = torch.meshgrid(*[torch.arange(n + 1, device=device) for n in blocks], indexing="ij")
    corner_points = origin_t + (torch.stack(lattice, dim=-1).reshape(-1, 3) * BLOCK - 0.5).float() * voxel
    corner_sdf = _evaluate_chunked(views, corner_points, truncation, lambda done: report(done, (0.15, 0.2)))
    inside = (corner_sdf < 0).float().view(*(n + 1 for n in blocks))
    bx, by, bz = blocks
    inside_share = sum(
        inside[i : i + bx, j : j + by, k : k + bz] for i in (0, 1) for j in (0, 1) for k in (0, 1)
    ) / 8.0
    active |= (inside_share > 0) & (inside_share < 1)
    dense = torch.empty(bx * BLOCK, by * BLOCK, bz * BLOCK, device=device)
    values = dense.view(bx, BLOCK, by, BLOCK, bz, BLOCK).permute(0, 2, 4, 1, 3, 5)  # per-block view of `dense`
    values[:] = torch.where(inside_share >= 0.5, -truncation, truncation)[..., None, None, None]

    local = torch.stack(torch.meshgrid(*[torch.arange(BLOCK, device=device)] * 3, indexing="ij"), dim=-1).reshape(-1, 3)
    block_ids = torch.nonzero(active)
    per_chunk = max(1, CHUNK_VOXELS // BLOCK**3)
    for first in range(0, block_ids.shape[0], per_chunk):
        chunk = block_ids[first : first + per_chunk]
        voxels = (chunk[:, None, :] * BLOCK + local[None]).reshape(-1, 3)
        sdf = evaluate_sdf(views, origin_t + voxels.float() * voxel, truncation)
        values[chunk[:, 0], chunk[:, 1], chunk[:, 2]] = sdf.view(-1, BLOCK, BLOCK, BLOCK)
        report((first + chunk.shape[0]) / block_ids.shape[0], (0.2, 1.0))

    restored = restore_lost_surfaces(dense, origin_t, voxel, points, views, truncation, max(voxel, 2.0 * step))
    dense[[0, -1]] = truncation
    dense[:, [0, -1]] = truncation
    dense[:, :, [0, -1]] = truncation
    return SdfGrid(dense, origin, voxel, truncation, restored)


def restore_lost_surfaces(dense: torch.Tensor, origin: torch.Tensor, voxel: float, points: torch.Tensor,
                          views: list[_View], truncation: float, tolerance: float) -> int:
    """Put back, as thin closed shells, surfaces that the views' average cancelled: a sheet of zero thickness is
    outside for the view on each side of it, a rod thinner than a voxel for the views around it.

    A depth point with no inside voxel among the 27 around it is such a surface (a fused surface passes within a
    voxel of every point it explains), unless some view sees through it: it lies outside that view's silhouette,
    or more than `tolerance` in front of that view's depth (inputs that contradict each other are not made
    into shells). The grid is lowered to the distance from each such point less SHELL_RADIUS_VOXELS. Returns how
    many points."""
    coordinates = (points - origin) / voxel
    limit = torch.tensor(dense.shape, device=dense.device) - 1
    lost = lowest_around(dense, coordinates, 1) > 0
    lost[lost.clone()] = ~_seen_through(views, points[lost], truncation, tolerance)
    lost_at = coordinates[lost]
    if lost_at.shape[0] == 0:
        return 0
    shell = torch.full((dense.numel(),), torch.inf, dtype=dense.dtype, device=dense.device)
    base = torch.floor(lost_at).long()
    strides = torch.tensor([dense.shape[1] * dense.shape[2], dense.shape[2], 1], device=dense.device)
    for corner in torch.cartesian_prod(*[torch.tensor([0, 1], device=dense.device)] * 3):
        index = (base + corner).clamp(torch.zeros_like(limit), limit)
        distance = ((index - lost_at).norm(dim=1) - SHELL_RADIUS_VOXELS) * voxel
        shell.scatter_reduce_(0, (index * strides).sum(dim=1), distance.to(dense.dtype), reduce="amin")
    flat = dense.view(-1)
    torch.minimum(flat, shell, out=flat)
    return int(lost_at.shape[0])


def lowest_around(grid: torch.Tensor, coordinates: torch.Tensor, reach: int) -> torch.Tensor:
    """(N,) the lowest grid value in the cube of (2 reach + 1)^3 voxels around each voxel coordinate (N, 3)."""
    limit = torch.tensor(grid.shape, device=grid.device) - 1
    centre = torch.round(coordinates).long()
    lowest = torch.full((coordinates.shape[0],), torch.inf, dtype=grid.dtype, device=grid.device)
    steps = torch.arange(-reach, reach + 1, device=grid.device)
    for offset in torch.cartesian_prod(steps, steps, steps):
        index = (centre + offset).clamp(torch.zeros_like(limit), limit)
        torch.minimum(lowest, grid[index[:, 0], index[:, 1], index[:, 2]], out=lowest)
    return lowest


def _seen_through(views: list[_View], points: torch.Tensor, truncation: float, tolerance: float) -> torch.Tensor:
    """(N,) bool: some view has the point in its free space (outside its silhouette, or in front of its depth)."""
    free = torch.zeros(points.shape[0], dtype=torch.bool, device=points.device)
    for view in views:
        weighted, weight, _, bound, _ = _view_terms(view, points, truncation)
        in_front = (weight > 0) & (weighted > tolerance * weight)
        free |= in_front | (bound > tolerance)
    return free
