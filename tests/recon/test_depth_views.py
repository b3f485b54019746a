"""One view as fusion's signed-distance oracle: its points, normals and cosines, the opened depth that keeps gaps from
carving, and the per-cell table a voxel's lookup reads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import grey_opening

from worker.recon.depth_views import (MIN_COS, NO_BOUND, SILHOUETTE_SLACK_PX, WELL_PIXELS, _cell_table, depth_normals,
                                      opened_depth, surface_cosine, table_rows)
from worker.recon.rig import PERSPECTIVE, Camera, cube6_rig, look_at

FAR = 5.0


def tilted_plane(camera: Camera, slope: float) -> np.ndarray:
    """The depth map of a plane through the origin whose depth grows by `slope` per world unit to the right, cut
    short by a step up on the right and by background on the left."""
    columns = (np.arange(camera.width) + 0.5 - camera.cx) / camera.fx
    depth = np.tile((2.0 + slope * columns).astype(np.float32), (camera.height, 1))
    depth[:, 40:] -= 0.3  # a step: nearer, far past any discontinuity threshold below
    depth[:, :8] = 0.0
    return depth


def test_normals_follow_the_surface_without_crossing_a_depth_step_and_background_has_none():
    camera = cube6_rig(64).cameras[0]
    slope = 0.75
    depth = torch.as_tensor(tilted_plane(camera, slope))
    points, normals = depth_normals(camera, depth, 0.05)
    projected = camera.project(points)  # each point is its pixel's centre at its depth
    rows, cols = np.mgrid[0:64, 0:64] + 0.5
    assert np.allclose(projected[..., 0], cols, atol=1e-4) and np.allclose(projected[..., 1], rows, atol=1e-4)
    assert torch.allclose(projected[..., 2], depth, atol=1e-6)
    unit = normals / normals.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    cosine = surface_cosine(camera, depth, 0.05).numpy()
    expected = 1 / np.sqrt(1 + slope**2)
    assert np.allclose(cosine[:, 8:], expected, atol=1e-5)  # both sides of the step, its edges included
    assert (normals[:, :8] == 0).all() and (cosine[:, :8] == MIN_COS).all()
    assert torch.allclose(unit[:, 39], unit[:, 20], atol=1e-5) and torch.allclose(unit[:, 40], unit[:, 20], atol=1e-5)


def test_a_perspective_cameras_cosine_is_taken_along_each_pixels_ray():
    camera = Camera(PERSPECTIVE, look_at((0.0, 0.0, 3.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0)), 64, 64, 64.0, 64.0,
                    32.0, 32.0)
    depth = torch.full((64, 64), 3.0)  # the plane z = 0, facing the camera: the cosine is that of each ray
    cosine = surface_cosine(camera, depth, 0.05).numpy()
    u = (np.arange(64) + 0.5 - 32.0) / 64.0
    rays = np.stack(np.broadcast_arrays(u[None, :], -u[:, None], -1.0), axis=-1)
    expected = 1.0 / np.linalg.norm(rays, axis=-1)
    assert np.allclose(cosine, expected, atol=1e-5) and cosine.min() < 0.9


def test_a_gap_narrower_than_the_well_is_raised_to_its_rim_and_a_broad_one_is_not():
    depth = np.full((40, 60), 2.0, dtype=np.float32)
    depth[10:30, 5:5 + WELL_PIXELS - 2] = FAR  # narrow: the view sees through a slot
    depth[10:30, 30:30 + WELL_PIXELS + 4] = FAR  # broad: the view sees a far surface
    depth[:, 55:] = 0.0  # no depth: infinitely far
    opened = opened_depth(torch.as_tensor(depth)).numpy()
    assert (opened[10:30, 5:5 + WELL_PIXELS - 2] == 2.0).all()
    assert (opened[10:30, 30:30 + WELL_PIXELS + 4] == FAR).all()
    assert np.isinf(opened[:, 55:]).all()


@pytest.mark.parametrize("width", [1, 3, WELL_PIXELS])
def test_opening_is_the_grey_opening_of_the_far_depth_with_the_window_clipped_to_the_image(width):
    rng = np.random.default_rng(width)
    depth = (rng.random((33, 47)) * (rng.random((33, 47)) > 0.3)).astype(np.float32)
    far = np.where(depth > 0, depth, np.inf)
    expected = grey_opening(far, size=(width, width), mode="nearest")
    assert np.array_equal(opened_depth(torch.as_tensor(depth), width).numpy(), expected)


def cells_of(depth: np.ndarray, mask: np.ndarray, window: tuple[int, int, int, int], truncation: float = 0.1):
    camera = cube6_rig(64).cameras[0]
    top, left, bottom, right = window
    cut = torch.as_tensor(depth[top:bottom, left:right])
    table = np.empty((table_rows(window), 12), dtype=np.float32)
    _cell_table(camera, cut, mask[top:bottom, left:right], cut, truncation, window, table)
    height, width = bottom - top, right - left
    return table[:-2].reshape(height + 1, width + 1, 12), camera


def test_a_cells_depth_is_bilinear_on_one_surface_and_the_nearest_texels_across_a_step():
    depth = np.zeros((64, 64), dtype=np.float32)
    rows, cols = np.mgrid[0:64, 0:64]
    depth[16:48, 16:48] = (1.0 + 0.01 * rows + 0.02 * cols)[16:48, 16:48]
    depth[30:48, 40:48] += 0.5  # a step far over the truncation
    cells, _ = cells_of(depth, depth > 0, (8, 8, 56, 56))
    # Cell (i, j) of the window has the texels (i - 1, j - 1) to (i, j) of the window as corners.
    smooth = cells[20 - 8 + 1, 20 - 8 + 1]
    assert smooth[10] == 1.0
    a, b, c, d = smooth[:4]
    assert np.isclose(a, depth[20, 20]) and np.isclose(a + b, depth[20, 21]) and np.isclose(a + c, depth[21, 20])
    assert np.isclose(a + b + c + d, depth[21, 21])
    across = cells[35 - 8 + 1, 39 - 8 + 1]  # texels (35, 39)-(36, 40): the step between its columns
    assert across[10] == 0.0 and across[0] == depth[35, 39] and (across[1:4] == 0).all()
    empty = cells[2, 2]
    assert empty[0] == 0.0 and empty[4] == 0.0


def test_a_cells_silhouette_bound_is_the_distance_outside_less_the_slack_unless_it_reaches_past_the_image():
    depth = np.zeros((64, 64), dtype=np.float32)
    depth[20:40, 20:40] = 1.0
    cells, camera = cells_of(depth, depth > 0, (0, 8, 56, 56))
    pixel = 1.0 / max(camera.fx, camera.fy)
    inside = cells[30 + 1, 30 - 8 + 1]
    assert np.isclose(inside[5], -SILHOUETTE_SLACK_PX * pixel) and np.allclose(inside[6:9], 0.0)
    outside = cells[30 + 1, 10 - 8 + 1]  # texels (30..31, 10..11): 10 and 9 texels left of the silhouette
    assert np.isclose(outside[5], (10 - SILHOUETTE_SLACK_PX) * pixel)
    assert np.isclose(outside[5] + outside[6], (9 - SILHOUETTE_SLACK_PX) * pixel)
    assert cells[0, 20][5] == np.float32(NO_BOUND)  # the window's top is the image's: no texel above it
    assert cells[-1, 20][5] != np.float32(NO_BOUND)  # its bottom is not
