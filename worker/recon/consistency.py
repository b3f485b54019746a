"""Find depth renders that contradict the others, so that one wrong view does not carve the object.

A view's depth says the space in front of it is empty, and so does its silhouette
for everything that projects outside it. Surface that another view sees there is
a contradiction between the two (each of them may be the wrong one);
a view that contradicts most of the views it can be compared with is the odd one
out. Its depth is left out (its silhouette stays), but only while such
views are a minority: when most depth renders disagree there is no majority to
trust, and the caller is told so instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import torch
from numba import njit
from scipy.ndimage import distance_transform_edt

from .depth_views import crop_window, surface_cosine
from .devices import on_host
from .inputs import ReconInputs
from .rig import SLOT_NAMES, Camera

SAMPLES_PER_VIEW = 20_000
TOLERANCE_PIXELS = 3.0  # a point is in a view's empty space only beyond this, 2 depth steps and 3 noise sigmas
TOLERANCE_DEPTH_STEPS = 2.0
TOLERANCE_SIGMAS = 3.0
NEIGHBOURHOOD = 3  # the nearest depth in this square of texels is compared, so depth edges do not count
MIN_JUDGED = 50  # fewer points than this landing on a view's depth: the pair is not compared
CONFLICT_SHARE = 0.05  # two views conflict when this share of either's points lies in the other's free space


@dataclass
class DepthAgreement:
    """`in_free_space[i, j]`: share of view j's depth points that view i shows as empty space (NaN where too few
    of them land on view i's depth); `left_out`: the views whose depth should not be used."""

    in_free_space: np.ndarray
    left_out: list[int]
    warnings: list[str]

    @property
    def left_out_slots(self) -> list[str]:
        """The slot names of `left_out`, as reports list them."""
        return [SLOT_NAMES[index] for index in self.left_out]


def _samples(camera: Camera, depth: torch.Tensor, origin: tuple[int, int]) -> torch.Tensor:
    """Up to SAMPLES_PER_VIEW world points of the depth map, evenly spread over its pixels; `depth` is a window of
    the image whose first texel is (row, column) `origin`."""
    rows, cols = torch.nonzero(depth > 0, as_tuple=True)
    pick = torch.linspace(0, rows.numel() - 1, min(rows.numel(), SAMPLES_PER_VIEW), device=depth.device).long()
    rows, cols = rows[pick], cols[pick]
    return camera.unproject((cols + origin[1]).to(depth.dtype) + 0.5, (rows + origin[0]).to(depth.dtype) + 0.5,
                            depth[rows, cols])


def _nearest_depth(depth: torch.Tensor, cosine: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each texel's nearest depth within NEIGHBOURHOOD (infinity where none has depth), and that depth's
    surface cosine."""
    far = torch.where(depth > 0, depth, torch.full_like(depth, torch.inf))
    negated, index = torch.nn.functional.max_pool2d(-far[None, None], NEIGHBOURHOOD, stride=1,
                                                    padding=NEIGHBOURHOOD // 2, return_indices=True)
    return -negated[0, 0], cosine.reshape(-1)[index[0, 0]]


def depth_noise(depth: torch.Tensor) -> float:
    """A robust estimate of the depth map's per-pixel noise (standard deviation, world units): the median
    deviation of each texel from the mean of its 3x3 neighbourhood, where all nine have depth."""
    valid = (depth > 0).float()[None, None]
    full = torch.nn.functional.avg_pool2d(valid, 3, stride=1, padding=1)[0, 0] > 1 - 1e-6
    mean = torch.nn.functional.avg_pool2d(depth[None, None], 3, stride=1, padding=1)[0, 0]
    deviation = (depth - mean)[full & (depth > 0)].abs()
    if deviation.numel() == 0:
        return 0.0
    return 1.4826 * deviation.median().item() / (8 / 9) ** 0.5  # MAD -> sigma; the mean shares 1/9 of the noise


@dataclass
class _View:
    """One view's maps, on the window of its image that holds its silhouette and depth (depth_views.crop_window):
    beyond it there is no depth, and every pixel is at least CROP_MARGIN_PX outside the silhouette."""

    camera: Camera
    window: tuple[int, int, int, int]  # (top, left, bottom, right)
    nearest: torch.Tensor  # see _nearest_depth
    cosine: torch.Tensor  # |cos| between the nearest depth's surface normal and the ray (depth_views.surface_cosine)
    outside: torch.Tensor  # per texel, its distance outside the silhouette in pixels (0 inside)
    noise: float
    points: torch.Tensor  # see _samples
    mask: np.ndarray  # the whole silhouette: distances outside it beyond the window, where they matter

    @cached_property
    def silhouette_box(self) -> np.ndarray:
        """(first row, last row, first column, last column) of the silhouette; all -1 where it is empty."""
        rows, cols = np.flatnonzero(self.mask.any(axis=1)), np.flatnonzero(self.mask.any(axis=0))
        return np.array((rows[0], rows[-1], cols[0], cols[-1]) if len(rows) else (-1,) * 4, dtype=np.int64)

    @cached_property
    def lookup(self) -> tuple:
        """What _count_empty takes of this view before the points: its camera (world_to_cam (3, 4) and fx, fy, cx,
        cy in float32, as the tensors' arithmetic took them, and an orthographic pixel from float64), its frame
        (width, height, window) and its maps. Built once: each view judges every other."""
        camera = self.camera
        projection = np.array((camera.fx, camera.fy, camera.cx, camera.cy, 1.0 / camera.fx), dtype=np.float32)
        return (camera.world_to_cam[:3].astype(np.float32), projection, camera.is_ortho,
                np.array((camera.width, camera.height, *self.window), dtype=np.int64), on_host(self.nearest),
                on_host(self.cosine), on_host(self.outside), self.silhouette_box)

    @cached_property
    def outside_whole(self) -> np.ndarray:
        """`outside` over the whole image: needed only where the window cannot tell."""
        return distance_transform_edt(~self.mask).astype(np.float32)


NOT_NEEDED = np.zeros((0, 0), dtype=np.float32)  # the whole image's distances, until a point needs them


def _share_in_empty_space(view: _View, points: torch.Tensor, tolerance: float) -> float:
    """Share of `points` that `view` shows as empty (in front of its depth, or outside its silhouette), of those
    it can judge (that land on its depth or outside its silhouette); NaN if it can judge too few. Compiled
    (_count_empty); the distances over the whole image are computed only if some point needs them."""
    counts = np.zeros(2, dtype=np.int64)
    args = (on_host(points), *view.lookup, tolerance)
    if not _count_empty(*args, NOT_NEEDED, counts):
        _count_empty(*args, view.outside_whole, counts)
    judged, empty = counts
    return float("nan") if judged < MIN_JUDGED else int(empty) / int(judged)


@njit(cache=True, nogil=True)
def outside_silhouette(row: int, col: int, window: np.ndarray, outside: np.ndarray, box: np.ndarray,
                       whole: np.ndarray, pixel: np.float32, margin: np.float32) -> tuple[bool, bool]:
    """Whether pixel (row, col) of the image lies more than `margin` (world units, `pixel` per pixel) outside the
    silhouette, and whether that took the distances over the whole image (`whole`) when they were not given (then
    the first answer means nothing). Within the `window` (top, left, bottom, right) its `outside` distances tell;
    beyond it, the distance to the silhouette's bounding `box` (first row, last row, first column, last column),
    or where that is too short to tell, `whole`'s, as everywhere when the silhouette is empty (`box` -1). In
    float32, the distances rounded from float64 as the distance transform's are."""
    top, left, bottom, right = window[0], window[1], window[2], window[3]
    if box[0] >= 0 and top <= row < bottom and left <= col < right:
        return outside[row - top, col - left] * pixel > margin, False
    if box[0] >= 0:
        gap_rows = max(box[0] - row, row - box[1], 0)
        gap_cols = max(box[2] - col, col - box[3], 0)
        if np.float32(math.sqrt(np.float64(gap_rows * gap_rows + gap_cols * gap_cols))) * pixel > margin:
            return True, False
    if whole.size == 0:
        return False, True
    return whole[row, col] * pixel > margin, False


@njit("b1(f4[:, ::1], f4[:, ::1], f4[::1], b1, i8[::1], f4[:, ::1], f4[:, ::1], f4[:, ::1], i8[::1], f8, f4[:, ::1], "
      "i8[::1])", cache=True, nogil=True)
def _count_empty(points: np.ndarray, world_to_cam: np.ndarray, projection: np.ndarray, ortho: bool,
                 frame: np.ndarray, nearest: np.ndarray, cosine: np.ndarray, outside: np.ndarray, box: np.ndarray,
                 tolerance: float, whole: np.ndarray, counts: np.ndarray) -> bool:
    """counts += (points judged, of those shown as empty), for points (N, 3) seen by the camera `world_to_cam`
    (3, 4) and `projection` (fx, fy, cx, cy, an orthographic pixel), on the view's `frame` (width, height, then its
    window) and maps (_View.lookup, outside_silhouette); False, with `counts` left as they were, where a point
    needed `whole` and it was not given. Projected in float32 as Camera.project computes (its matrix product exact
    on axis-aligned cameras), not in rig.project_point's float64, so the verdicts stay those of the tensor code."""
    fx, fy, cx, cy = projection[0], projection[1], projection[2], projection[3]
    width, height, window = frame[0], frame[1], frame[2:]
    top, left, bottom, right = window[0], window[1], window[2], window[3]
    low = np.float32(tolerance)
    judged, empty = 0, 0
    for n in range(len(points)):
        x, y, z = points[n, 0], points[n, 1], points[n, 2]
        m = world_to_cam
        cam_x = x * m[0, 0] + y * m[0, 1] + z * m[0, 2] + m[0, 3]
        cam_y = x * m[1, 0] + y * m[1, 1] + z * m[1, 2] + m[1, 3]
        depth = -(x * m[2, 0] + y * m[2, 1] + z * m[2, 2] + m[2, 3])
        if ortho:
            image_x, image_y = cam_x, cam_y
        else:
            safe = depth if abs(depth) > np.float32(1e-12) else np.float32(1e-12)
            image_x, image_y = cam_x / safe, cam_y / safe
        u, v = image_x * fx + cx, cy - image_y * fy
        col, row = int(math.floor(u)), int(math.floor(v))
        if not (0 <= col < width and 0 <= row < height):
            continue
        pixel = projection[4] if ortho else depth / fx
        margin = max(np.float32(TOLERANCE_PIXELS) * pixel, low)
        at_row, at_col = min(max(row - top, 0), bottom - top - 1), min(max(col - left, 0), right - left - 1)
        inside_window = top <= row < bottom and left <= col < right
        surface = nearest[at_row, at_col] if inside_window else np.float32(np.inf)
        is_outside, unsure = outside_silhouette(row, col, window, outside, box, whole, pixel, margin)
        if unsure:
            return False
        if not (math.isfinite(surface) or is_outside):
            continue
        judged += 1
        if is_outside or (surface - depth) * cosine[at_row, at_col] > margin:
            empty += 1
    counts[0] += judged
    counts[1] += empty
    return True


def check_depth_agreement(inputs: ReconInputs, device: torch.device) -> DepthAgreement:
    """Compare every pair of views with depth, and name the odd ones out (see the module's docstring)."""
    step = inputs.rig.depth.step(inputs.depth_bits) or 0.0
    views: dict[int, _View] = {}
    for index, (camera, mask, depth) in enumerate(zip(inputs.rig.cameras, inputs.masks, inputs.depths)):
        if (depth > 0).any():
            top, left, bottom, right = window = crop_window(mask, depth)
            cut = torch.as_tensor(depth[top:bottom, left:right], device=device)
            outside = torch.as_tensor(distance_transform_edt(~mask[top:bottom, left:right]), dtype=cut.dtype,
                                      device=device)
            noise = depth_noise(cut)
            cosine = surface_cosine(camera, cut, max(TOLERANCE_PIXELS / camera.fx, TOLERANCE_SIGMAS * noise),
                                    (top, left))
            views[index] = _View(camera, window, *_nearest_depth(cut, cosine), outside, noise,
                                 _samples(camera, cut, (top, left)), mask)
    count = len(SLOT_NAMES)
    in_free_space = np.full((count, count), np.nan)
    for i, view in views.items():
        for j, other in views.items():
            if i != j:
                tolerance = max(TOLERANCE_DEPTH_STEPS * step, TOLERANCE_SIGMAS * math.hypot(view.noise, other.noise))
                in_free_space[i, j] = _share_in_empty_space(view, other.points, tolerance)
    with_depth = list(views)
    worst = np.fmax(in_free_space, in_free_space.T)
    compared = ~np.isnan(worst)
    conflicts = compared & (worst > CONFLICT_SHARE)
    odd = [i for i in with_depth if compared[i].sum() >= 2 and 2 * conflicts[i].sum() > compared[i].sum()]
    if not odd:
        return DepthAgreement(in_free_space, [], [])
    if 2 * len(odd) >= len(with_depth):
        return DepthAgreement(in_free_space, [], [
            f"the depth renders contradict each other ({len(odd)} of {len(with_depth)} disagree with most of the "
            "others), so the mesh is a compromise: check that each depth render belongs to its view and follows "
            "the input format (distance from the camera plane, 0 for background)"
        ])
    warnings = [
        f"the {SLOT_NAMES[i]} depth render contradicts {int(conflicts[i].sum())} of the {int(compared[i].sum())} "
        f"views it overlaps (up to {100 * np.nanmax(worst[i]):.0f}% of the surface seen by one lies in the other's "
        f"empty space); it was left out, and of the {SLOT_NAMES[i]} view only its silhouette was used"
        for i in odd
    ]
    return DepthAgreement(in_free_space, odd, warnings)


def agreeing_inputs(inputs: ReconInputs, device: torch.device) -> tuple[ReconInputs, DepthAgreement]:
    """The inputs with the depth of the odd views out removed (their silhouettes kept), and the check's result."""
    agreement = check_depth_agreement(inputs, device)
    if not agreement.left_out:
        return inputs, agreement
    depths = inputs.depths.copy()
    depths[agreement.left_out] = 0.0
    return replace(inputs, depths=depths), agreement
