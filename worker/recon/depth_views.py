"""One depth map and its silhouette as a signed-distance oracle for fusion (tsdf.py).

Per view, a voxel's signed distance is its distance in front of the depth surface
along the ray, scaled by the surface's cosine to the ray (a perpendicular-distance
estimate). Views are averaged with that cosine as weight. Behind its surface a
view knows less and less (the object may be thinner than the truncation there):
its weight falls linearly to nothing at the truncation, so the far side's views do
not fatten thin parts such as legs and handles. The silhouettes add a lower
bound: a voxel projecting outside a silhouette is at least that far from the object
(less one pixel of slack, so the true surface is never carved; half a pixel where
no smooth depth observes the voxel, so unobserved parts are not systematically
fat). Voxels nobody observes but every silhouette contains are inside (outside when
the input is a scanned surface, holes.py).

A view says nothing about a voxel more than its reach (the truncation; less for a
scanned surface) behind its depth along the ray (not only along the normal: behind a
grazing surface the object may be thin), where the depth counts with every region
narrower than WELL_PIXELS raised to its rim: depth seen through a gap (a lid's rim, a
spout's mouth) does not carve, and a voxel behind the gap's rim is left to the other
views, instead of a slot (or a cavity above whatever the gap shows) being cut into
the object.

The depth is bilinear only where the 2x2 texels around a voxel's projection form
one continuous surface; at depth edges and silhouette edges the nearest of them is
used, so a voxel is called free only if it is in front of all of them. All of this
is precomputed per 2x2 cell into a small table, so a voxel costs one gather per view;
the table covers only the silhouette's bounding box and a margin of CROP_MARGIN_PX,
beyond which a voxel is simply far outside the silhouette.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np
import torch
from numba import njit, prange
from scipy.ndimage import distance_transform_edt

from .devices import on_host
from .rig import Camera, packed_cameras, unproject_point, view_direction

MIN_COS = 0.05
MIN_FACING_COS = 0.25  # a view at more than about 75 degrees to a surface cannot tell whether it sees past it
SILHOUETTE_SLACK_PX = 1.0
UNOBSERVED_SLACK_PX = 0.5  # where no depth says anything, the silhouette's expected (not its safe) distance
WELL_PIXELS = 9  # depth seen through gaps narrower than this (pixels) does not carve (odd: a centred window)
NO_BOUND = -1e9
CROP_MARGIN_PX = 8  # > WELL_PIXELS // 2, so that openings inside the window see all they would in the image
MAX_DEPTH_STEP_VOXELS = 0.05  # coarser (8-bit) depth would print its steps into a surface fitted to it


def fits_depth(depth_step: float, voxel_size: float) -> bool:
    """Whether the depth maps are fine enough to fit a surface to (their quantisation well below a voxel)."""
    return depth_step <= MAX_DEPTH_STEP_VOXELS * voxel_size


def depth_normals(camera: Camera, depth: torch.Tensor, discontinuity: float, origin: tuple[int, int] = (0, 0)
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The depth map's world points and (unnormalised) surface normals per pixel, (H, W, 3) each, from (central)
    differences that do not cross a depth step over `discontinuity`; `depth` may be a window of the image whose
    first texel is (row, column) `origin`. Compiled, on the CPU; background pixels get the point on the camera
    plane and a zero normal."""
    depth_np = on_host(depth)
    points = np.empty((*depth_np.shape, 3), dtype=np.float32)
    normals = np.empty_like(points)
    _depth_normals(camera.packed, depth_np, discontinuity, origin[0], origin[1], points, normals)
    return torch.as_tensor(points, device=depth.device), torch.as_tensor(normals, device=depth.device)


@njit("void(f8[::1], f4[:, ::1], f8, i8, i8, f4[:, :, ::1], f4[:, :, ::1])", cache=True, nogil=True, parallel=True)
def _depth_normals(camera: np.ndarray, depth: np.ndarray, discontinuity: float, top: int, left: int,
                   points: np.ndarray, normals: np.ndarray) -> None:
    """A texel's neighbour counts when it exists, both have depth and they differ by less than `discontinuity`
    (in float32, as the depth is); the tangent along each axis runs between the neighbours that count (the texel
    itself standing in for one that does not), and the normal is their cross product."""
    height, width = depth.shape
    limit = np.float32(discontinuity)
    for row in prange(height):
        for col in range(width):
            points[row, col, 0], points[row, col, 1], points[row, col, 2] = unproject_point(
                camera, col + left + 0.5, row + top + 0.5, depth[row, col])
    for parallel_row in prange(height):
        row = np.int64(parallel_row)  # prange's index is unsigned: unified with the signed ones below, a float
        tangent = np.empty((2, 3))
        for col in range(width):
            here = depth[row, col]
            for axis in range(2):  # along the row (u), then down the column (v)
                step_row, step_col = axis, 1 - axis
                ahead_row, ahead_col, behind_row, behind_col = row, col, row, col
                if here > 0:
                    near_row, near_col = row + step_row, col + step_col
                    if near_row < height and near_col < width and depth[near_row, near_col] > 0 and \
                            abs(depth[near_row, near_col] - here) < limit:
                        ahead_row, ahead_col = near_row, near_col
                    near_row, near_col = row - step_row, col - step_col
                    if near_row >= 0 and near_col >= 0 and depth[near_row, near_col] > 0 and \
                            abs(depth[near_row, near_col] - here) < limit:
                        behind_row, behind_col = near_row, near_col
                for k in range(3):
                    tangent[axis, k] = np.float64(points[ahead_row, ahead_col, k]) - points[behind_row, behind_col, k]
            normals[row, col, 0] = tangent[0, 1] * tangent[1, 2] - tangent[0, 2] * tangent[1, 1]
            normals[row, col, 1] = tangent[0, 2] * tangent[1, 0] - tangent[0, 0] * tangent[1, 2]
            normals[row, col, 2] = tangent[0, 0] * tangent[1, 1] - tangent[0, 1] * tangent[1, 0]


def surface_cosine(camera: Camera, depth: torch.Tensor, discontinuity: float, origin: tuple[int, int] = (0, 0)
                   ) -> torch.Tensor:
    """|cos| between the depth map's surface normal and the viewing ray per pixel (see depth_normals), MIN_COS where
    there is no normal, at least MIN_COS everywhere."""
    points, normals = depth_normals(camera, depth, discontinuity, origin)
    cosine = np.empty(depth.shape, dtype=np.float32)
    _cosines(camera.packed, on_host(points), on_host(normals), cosine)
    return torch.as_tensor(cosine, device=depth.device)


@njit(cache=True, nogil=True)
def _norm32(x: np.float32, y: np.float32, z: np.float32) -> np.float32:
    """|(x, y, z)| as torch computes it in float32: squares accumulated by fused multiply-adds."""
    square = np.float32(np.float64(x) * x)
    square = np.float32(np.float64(y) * y + square)
    return np.float32(math.sqrt(np.float32(np.float64(z) * z + square)))


@njit("void(f8[::1], f4[:, :, ::1], f4[:, :, ::1], f4[:, ::1])", cache=True, nogil=True, parallel=True)
def _cosines(camera: np.ndarray, points: np.ndarray, normals: np.ndarray, cosine: np.ndarray) -> None:
    """In float32 arithmetic as the tensor version this replaced, so that fusion's weights did not change."""
    height, width = cosine.shape
    low, high = np.float32(MIN_COS), np.float32(1.0)
    for row in prange(height):
        for col in range(width):
            nx, ny, nz = normals[row, col, 0], normals[row, col, 1], normals[row, col, 2]
            length = _norm32(nx, ny, nz)
            value = low
            if length > 0:
                if camera[0] > 0.5:  # orthographic: the camera's forward direction
                    dx, dy, dz = np.float32(camera[29]), np.float32(camera[30]), np.float32(camera[31])
                else:
                    dx = points[row, col, 0] - np.float32(camera[32])
                    dy = points[row, col, 1] - np.float32(camera[33])
                    dz = points[row, col, 2] - np.float32(camera[34])
                    distance = max(_norm32(dx, dy, dz), np.float32(1e-12))
                    dx, dy, dz = dx / distance, dy / distance, dz / distance
                dot = nx * dx + ny * dy + nz * dz
                value = min(max(abs(dot) / length, low), high)
            cosine[row, col] = value


def opened_depth(depth: torch.Tensor, width: int = WELL_PIXELS) -> torch.Tensor:
    """The depth map with every far region narrower than `width` pixels raised to its rim (a morphological
    opening: min then max filter over a square clipped to the image, each as a row then a column pass), steps and
    broad regions unchanged; no depth counts as infinitely far. Compiled, on the CPU."""
    far = np.where(on_host(depth) > 0, on_host(depth), np.float32(np.inf)).astype(np.float32)
    scratch = np.empty_like(far)
    for _ in range(2):  # negated, the maximum filter is the minimum filter; negated back, the maximum filter
        far = -far
        _running_max(far, scratch, width // 2, 1)
        _running_max(scratch, far, width // 2, 0)
    return torch.as_tensor(far, device=depth.device)


@njit("void(f4[:, ::1], f4[:, ::1], i8, i8)", cache=True, nogil=True, parallel=True)
def _running_max(image: np.ndarray, out: np.ndarray, reach: int, axis: int) -> None:
    """out = the maximum of `image` within `reach` texels along `axis` (0: rows, 1: columns), clipped to the image."""
    height, width = image.shape
    for row in prange(height):
        for col in range(width):
            best = -np.inf
            if axis == 1:
                for k in range(max(col - reach, 0), min(col + reach + 1, width)):
                    best = max(best, image[row, k])
            else:
                for k in range(max(row - reach, 0), min(row + reach + 1, height)):
                    best = max(best, image[k, col])
            out[row, col] = best


def crop_window(mask: np.ndarray, depth: np.ndarray) -> tuple[int, int, int, int]:
    """(top, left, bottom, right): the bounding box of the silhouette and the depth, plus CROP_MARGIN_PX."""
    seen = mask | (depth > 0)
    rows = np.flatnonzero(seen.any(axis=1))
    cols = np.flatnonzero(seen.any(axis=0))
    height, width = mask.shape
    return (max(int(rows[0]) - CROP_MARGIN_PX, 0), max(int(cols[0]) - CROP_MARGIN_PX, 0),
            min(int(rows[-1]) + 1 + CROP_MARGIN_PX, height), min(int(cols[-1]) + 1 + CROP_MARGIN_PX, width))


def _cell_table(camera: Camera, depth: torch.Tensor, mask: np.ndarray, uncapped: torch.Tensor, truncation: float,
                window: tuple[int, int, int, int], table: np.ndarray) -> None:
    """Per 2x2 cell of the window (depth, mask and uncapped are cut to it; cells are centred on the window's texel
    corners, the outer ones half outside it): depth coefficients (4), cosine weight (0 = no depth),
    silhouette-bound coefficients (4), the nearest opened depth of its texels (see opened_depth), 1 if its depth
    is bilinear (smooth), and where all its texels are a cap's (holes.py) the nearest depth seen through the
    opening (0 elsewhere); then the rows for no data and for far outside the silhouette: `table`, (cells + 2, 12)
    float32 (table_rows)."""
    top, left, bottom, right = window
    height, width = depth.shape
    pixel = 1.0 / max(camera.fx, camera.fy)
    # The ring around the window is in the image unless the window touches the image's edge there.
    in_image = np.array((top > 0, left > 0, bottom < camera.height, right < camera.width))
    _cells(on_host(depth), on_host(surface_cosine(camera, depth, truncation, (top, left))),
           distance_transform_edt(~mask).astype(np.float32), on_host(opened_depth(depth)), on_host(uncapped), in_image,
           truncation, pixel, table)
    far_outside = (CROP_MARGIN_PX - SILHOUETTE_SLACK_PX) * pixel
    table[-2:] = [[0.0] * 5 + [lower, 0.0, 0.0, 0.0, np.inf, 0.0, 0.0] for lower in (NO_BOUND, far_outside)]


def table_rows(window: tuple[int, int, int, int]) -> int:
    """The rows of a window's cell table: a cell per texel corner, and the rows for no data and far outside."""
    top, left, bottom, right = window
    return (bottom - top + 1) * (right - left + 1) + 2


@njit(cache=True, nogil=True)
def _corner(image: np.ndarray, row: int, col: int, outside: float) -> float:
    """image[row, col], or `outside` past its edge."""
    height, width = image.shape
    return image[row, col] if 0 <= row < height and 0 <= col < width else outside


@njit("void(f4[:, ::1], f4[:, ::1], f4[:, ::1], f4[:, ::1], f4[:, ::1], b1[::1], f8, f8, f4[:, ::1])", cache=True,
      nogil=True, parallel=True)
def _cells(depth: np.ndarray, cosine: np.ndarray, outside: np.ndarray, opened: np.ndarray, uncapped: np.ndarray,
           in_image: np.ndarray, truncation: float, pixel: float, table: np.ndarray) -> None:
    """_cell_table's rows, in float32 arithmetic. Cell (i, j) has the texels (i - 1 + a, j - 1 + b), a, b in 0, 1,
    as corners; its bilinear coefficients give f(tx, ty) = c0 + c1 tx + c2 ty + c3 tx ty from its corner values.
    `in_image` says, for the top, left, bottom and right ring around the window, whether it is in the image (a
    silhouette bound needs all four corners there; the distance outside it is the nearest texel's)."""
    height, width = depth.shape
    limit, slack, scale = np.float32(truncation), np.float32(SILHOUETTE_SLACK_PX), np.float32(pixel)
    zero = np.float32(0.0)
    for i in prange(height + 1):
        d = np.empty(4, dtype=np.float32)
        bound = np.empty(4, dtype=np.float32)
        for j in range(width + 1):
            count, nearest, farthest, cosines = 0, np.float32(np.inf), zero, zero
            all_capped, behind, lowest_opened, whole = True, np.float32(np.inf), np.float32(np.inf), True
            for k in range(4):
                row, col = i - 1 + k // 2, j - 1 + k % 2
                d[k] = _corner(depth, row, col, zero)
                if d[k] > 0:
                    count += 1
                    nearest, farthest = min(nearest, d[k]), max(farthest, d[k])
                    cosines += _corner(cosine, row, col, zero)
                clamped_row, clamped_col = min(max(row, 0), height - 1), min(max(col, 0), width - 1)
                bound[k] = (outside[clamped_row, clamped_col] - slack) * scale
                whole = whole and (row >= 0 or in_image[0]) and (col >= 0 or in_image[1]) and \
                    (row < height or in_image[2]) and (col < width or in_image[3])
                lowest_opened = min(lowest_opened, _corner(opened, row, col, np.float32(np.inf)))
                through = _corner(uncapped, row, col, zero)
                all_capped = all_capped and through > d[k]
                behind = min(behind, through)
            smooth = count == 4 and farthest - nearest < limit
            cell = table[i * (width + 1) + j]
            if smooth:
                cell[0], cell[1], cell[2], cell[3] = d[0], d[1] - d[0], d[2] - d[0], d[0] - d[1] - d[2] + d[3]
            else:
                cell[0], cell[1], cell[2], cell[3] = nearest if count > 0 else zero, zero, zero, zero
            cell[4] = cosines / np.float32(max(count, 1))
            if whole:
                cell[5], cell[6] = bound[0], bound[1] - bound[0]
                cell[7], cell[8] = bound[2] - bound[0], bound[0] - bound[1] - bound[2] + bound[3]
            else:
                cell[5], cell[6], cell[7], cell[8] = np.float32(NO_BOUND), zero, zero, zero
            cell[9] = lowest_opened
            cell[10] = np.float32(1.0) if smooth else zero
            cell[11] = behind if all_capped else zero


def _pixel_transform(camera: Camera) -> np.ndarray:
    """3x4 matrix from world points to cell coordinates (times depth for PERSPECTIVE) and depth."""
    # cell x = u - 0.5 + 1 (pad): texel j's centre sits at j + 1.
    shift_x, shift_y = camera.cx + 0.5, camera.cy + 0.5
    if camera.is_ortho:
        intrinsic = np.array([[camera.fx, 0, 0, shift_x], [0, -camera.fy, 0, shift_y], [0, 0, -1, 0]])
    else:
        intrinsic = np.array([[camera.fx, 0, -shift_x, 0], [0, -camera.fy, -shift_y, 0], [0, 0, -1, 0]])
    return intrinsic @ camera.world_to_cam


class ViewStack(NamedTuple):
    """The views prepared for the compiled lookups: a row of numbers per view (VIEW_ROW), their cell tables end to
    end, and their cameras (rig.packed_cameras)."""

    rows: np.ndarray  # (K, VIEW_ROW) float64
    cells: np.ndarray  # (total cells, 12) float32
    cameras: np.ndarray  # (K, CAMERA_ROW) float64


VIEW_ROW = 23  # transform (12; see _pixel_transform), perspective, width, height, window (top, left, bottom,
# right), reach, pixel (world units per pixel, per unit of depth for PERSPECTIVE), first cell, cells (the table's rows)


def prepare_views(cameras: tuple[Camera, ...], depths: list[np.ndarray], masks: np.ndarray, truncation: float,
                  uncapped: list[np.ndarray] | None = None, reach: float | None = None,
                  on_view: Callable[[float], None] = lambda done: None) -> ViewStack:
    """The views with a silhouette, each tabled around it (crop_window), into one array: no copy of the tables.

    `uncapped` is the depth before holes.py capped its openings: what lies between a cap and the depth seen
    through its opening is inside. `reach` (world units, the truncation unless given) is how far behind its depth
    a view says anything: a scanned surface (holes.py) has nothing behind it but its own thin shell.
    `on_view(share done)` is called after each view."""
    kept = [index for index, mask in enumerate(masks) if mask.any()]
    windows = [crop_window(masks[index], depths[index]) for index in kept]
    firsts = np.cumsum([0] + [table_rows(window) for window in windows])
    cells = np.empty((firsts[-1], 12), dtype=np.float32)
    rows = np.empty((len(kept), VIEW_ROW))
    for n, (index, window) in enumerate(zip(kept, windows)):
        camera = cameras[index]
        top, left, bottom, right = window
        depth = torch.as_tensor(depths[index][top:bottom, left:right], dtype=torch.float32)
        through = depth if uncapped is None else torch.as_tensor(uncapped[index][top:bottom, left:right],
                                                                 dtype=torch.float32)
        _cell_table(camera, depth, masks[index][top:bottom, left:right], through, truncation, window,
                    cells[firsts[n]:firsts[n + 1]])
        transform = _pixel_transform(camera).astype(np.float32)  # float32, as the points it maps are
        rows[n] = [*transform.ravel(), float(not camera.is_ortho), camera.width, camera.height, *window,
                   truncation if reach is None else reach, 1.0 / max(camera.fx, camera.fy), firsts[n],
                   firsts[n + 1] - firsts[n]]
        on_view((n + 1) / len(kept))
    return ViewStack(rows, cells, packed_cameras(tuple(cameras[index] for index in kept)))


@njit(cache=True, nogil=True)
def _view_terms(row: np.ndarray, cells: np.ndarray, x: float, y: float, z: float, truncation: float
                ) -> tuple[float, float, float, float, float, float]:
    """What one view (a ViewStack row) says about a world point: its signed distance times its weight, the weight,
    the weight of smooth-depth observations, the silhouette's lower bound, that bound with UNOBSERVED_SLACK_PX, and
    the upper bound between a cap and what its opening shows (holes.py; else +inf)."""
    cell_x = row[0] * x + row[1] * y + row[2] * z + row[3]
    cell_y = row[4] * x + row[5] * y + row[6] * z + row[7]
    depth = row[8] * x + row[9] * y + row[10] * z + row[11]
    perspective = row[12] > 0.5
    if perspective:
        cell_x, cell_y = cell_x / max(depth, 1e-9), cell_y / max(depth, 1e-9)
    corner_x, corner_y = math.floor(cell_x), math.floor(cell_y)
    tx, ty = cell_x - corner_x, cell_y - corner_y
    top, left, bottom, right = row[15], row[16], row[17], row[18]
    first, count = int(row[21]), int(row[22])
    no_data = count - 2
    if corner_x < 0 or corner_x > row[13] or corner_y < 0 or corner_y > row[14] or (perspective and not depth > 0):
        index = no_data
    elif 0 <= corner_y - top <= bottom - top and 0 <= corner_x - left <= right - left:
        index = int(corner_y - top) * int(right - left + 1) + int(corner_x - left)
    else:
        index = no_data + 1
    cell = cells[first + index]
    reach = row[19]
    surface = cell[0] + cell[1] * tx + (cell[2] + cell[3] * tx) * ty
    distance = (surface - depth) * cell[4]
    # More than its reach along the ray behind the opened depth (a gap's rim, or a surface seen at a grazing
    # angle) the view says nothing; closer behind its surface it says less and less.
    weight = 0.0 if depth > cell[9] + reach else cell[4] * min(max(1.0 + distance / reach, 0.0), 1.0)
    bound = cell[5] + cell[6] * tx + (cell[7] + cell[8] * tx) * ty
    relief = (SILHOUETTE_SLACK_PX - UNOBSERVED_SLACK_PX) * row[20]
    if perspective:
        bound = bound * depth if depth > 0 else NO_BOUND
        relief *= depth
    ceiling = surface - depth if depth > surface and depth < cell[11] else np.inf
    return min(distance, truncation) * weight, weight, weight * cell[10], bound, bound + relief, ceiling


class Fused(NamedTuple):
    """What the views say together about world points (N,)."""

    sdf: torch.Tensor  # the fused, truncated signed distance
    within: torch.Tensor  # bool: some view has the point behind its depth and none has it within the truncation in
    # front of its own: inside a surface, whatever views that see past it (a wall edge-on) say


def evaluate_sdf(views: ViewStack, points: torch.Tensor, truncation: float, hollow: bool = False) -> Fused:
    """The fused, truncated signed distance at world points (N, 3); a point no view observes is inside, or outside
    when the object is `hollow` (a scanned surface, holes.py).

    Where a smooth stretch of some depth map observes a point, the silhouettes bound it with their safe slack
    (they must not carve a surface the depth places exactly); elsewhere (unobserved, or only by the nearest depth
    of a cell at a depth or silhouette edge, which reaches half a pixel past the silhouette) with their expected
    one: half a pixel tighter, so such parts are not systematically fatter than the truth. Compiled, a point at a
    time through all the views, on the CPU."""
    at = on_host(points)
    sdf = np.empty(len(at), dtype=np.float32)
    within = np.empty(len(at), dtype=bool)
    _fused(views.rows, views.cells, at, truncation, hollow, sdf, within)
    return Fused(torch.as_tensor(sdf, device=points.device), torch.as_tensor(within, device=points.device))


@njit("void(f8[:, ::1], f4[:, ::1], f4[:, ::1], f8, b1, f4[::1], b1[::1])", cache=True, nogil=True,
      parallel=True)
def _fused(rows: np.ndarray, cells: np.ndarray, points: np.ndarray, truncation: float, hollow: bool, sdf: np.ndarray,
           within: np.ndarray) -> None:
    unobserved = truncation if hollow else -truncation
    for i in prange(len(points)):
        x, y, z = points[i, 0], points[i, 1], points[i, 2]
        total, weight, smooth, bound, relaxed, ceiling = 0.0, 0.0, 0.0, NO_BOUND, NO_BOUND, np.inf
        behind, in_front = False, False
        for k in range(len(rows)):
            weighted, w, s, b, r, c = _view_terms(rows[k], cells, x, y, z, truncation)
            behind = behind or weighted < 0
            in_front = in_front or (0 <= weighted < truncation * w)
            total, weight, smooth = total + weighted, weight + w, smooth + s
            bound, relaxed, ceiling = max(bound, b), max(relaxed, r), min(ceiling, c)
        fused = min(total / weight if weight > 0 else unobserved, ceiling)
        sdf[i] = min(max(max(fused, bound if smooth > 0 else relaxed), -truncation), truncation)
        within[i] = behind and not in_front


def seen_through(views: ViewStack, points: torch.Tensor, normals: torch.Tensor, facing: torch.Tensor,
                 truncation: float, tolerance: float) -> torch.Tensor:
    """(N,) bool: some view has the point in its free space (outside its silhouette, or in front of its depth),
    not counting views that see the point's surface (unit `normals`, (N, 3), where `facing` (N,) says they are
    known) at a grazing angle: for them a sheet of no thickness falls between pixel centres, which see past it."""
    free = np.empty(points.shape[0], dtype=bool)
    _free(views.rows, views.cells, views.cameras, on_host(points), on_host(normals), on_host(facing, bool), truncation,
          tolerance, free)
    return torch.as_tensor(free, device=points.device)


@njit("void(f8[:, ::1], f4[:, ::1], f8[:, ::1], f4[:, ::1], f4[:, ::1], b1[::1], f8, f8, b1[::1])", cache=True,
      nogil=True, parallel=True)
def _free(rows: np.ndarray, cells: np.ndarray, cameras: np.ndarray, points: np.ndarray, normals: np.ndarray,
          facing: np.ndarray, truncation: float, tolerance: float, free: np.ndarray) -> None:
    for i in prange(len(points)):
        x, y, z = points[i, 0], points[i, 1], points[i, 2]
        free[i] = False
        for k in range(len(rows)):
            weighted, weight, _, bound, _, _ = _view_terms(rows[k], cells, x, y, z, truncation)
            if facing[i]:
                dx, dy, dz = view_direction(cameras[k], x, y, z)
                if abs(normals[i, 0] * dx + normals[i, 1] * dy + normals[i, 2] * dz) < MIN_FACING_COS:
                    continue  # grazing
            if (weight > 0 and weighted > tolerance * weight) or bound > tolerance:
                free[i] = True
                break
