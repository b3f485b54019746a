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
from scipy.ndimage import distance_transform_edt

from .depth_views import crop_window, surface_cosine
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
    def silhouette_box(self) -> tuple[int, int, int, int] | None:
        """(first row, last row, first column, last column) of the silhouette; None where it is empty."""
        rows, cols = np.flatnonzero(self.mask.any(axis=1)), np.flatnonzero(self.mask.any(axis=0))
        return (int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])) if len(rows) else None

    @cached_property
    def outside_whole(self) -> torch.Tensor:
        """`outside` over the whole image: needed only where the window cannot tell."""
        return torch.as_tensor(distance_transform_edt(~self.mask).astype(np.float32), device=self.outside.device)

    def outside_at(self, row: torch.Tensor, col: torch.Tensor, at_row: torch.Tensor, at_col: torch.Tensor,
                   within: torch.Tensor, pixel: torch.Tensor, margin: torch.Tensor) -> torch.Tensor:
        """Whether pixels (row, col) of the image, at (at_row, at_col) of the window where `within` it, lie more
        than `margin` (world units, `pixel` per pixel) outside the silhouette. Beyond the window the distance to
        the silhouette's bounding box decides, and where that is too short to, the exact distance over the image."""
        box = self.silhouette_box
        if box is None:
            return self.outside_whole[row, col] * pixel > margin
        first_row, last_row, first_col, last_col = box
        gap_rows = torch.clamp_min(torch.maximum(first_row - row, row - last_row), 0)
        gap_cols = torch.clamp_min(torch.maximum(first_col - col, col - last_col), 0)
        # rounded as the distance transform's are (float64, then float32), so a bound that is the distance equals it
        at_least = torch.hypot(gap_rows.double(), gap_cols.double()).to(self.outside.dtype)
        distance = torch.where(within, self.outside[at_row, at_col], at_least)
        unsure = ~within & (at_least * pixel <= margin)
        if unsure.any():
            distance[unsure] = self.outside_whole[row[unsure], col[unsure]]
        return distance * pixel > margin


def _share_in_empty_space(view: _View, points: torch.Tensor, tolerance: float) -> float:
    """Share of `points` that `view` shows as empty (in front of its depth, or outside its silhouette), of those
    it can judge (that land on its depth or outside its silhouette); NaN if it can judge too few."""
    camera = view.camera
    u, v, depth = camera.project(points).unbind(dim=-1)
    col, row = u.floor().long(), v.floor().long()
    inside = (col >= 0) & (col < camera.width) & (row >= 0) & (row < camera.height)
    col, row, depth = col[inside], row[inside], depth[inside]
    pixel = torch.full_like(depth, 1.0 / camera.fx) if camera.is_ortho else depth / camera.fx
    margin = torch.clamp_min(TOLERANCE_PIXELS * pixel, tolerance)
    top, left, bottom, right = view.window
    within = (row >= top) & (row < bottom) & (col >= left) & (col < right)
    at_row, at_col = (row - top).clamp(0, bottom - top - 1), (col - left).clamp(0, right - left - 1)
    surface = torch.where(within, view.nearest[at_row, at_col], torch.inf)
    outside = view.outside_at(row, col, at_row, at_col, within, pixel, margin)
    judged = torch.isfinite(surface) | outside
    if judged.sum().item() < MIN_JUDGED:
        return float("nan")
    in_front = (surface - depth) * view.cosine[at_row, at_col] > margin  # distance along the normal, as in tsdf
    return ((in_front | outside) & judged).sum().item() / judged.sum().item()


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
