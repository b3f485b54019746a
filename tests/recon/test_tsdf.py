"""Depth fusion: the grid holds signed distance (positive outside) to sub-voxel accuracy, truncated."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worker.errors import ReconstructionFailed
from worker.recon.tsdf import fuse_depth

from . import scenes

HALF = np.array([0.6, 0.4, 0.5])  # the test box is 1.2 x 0.8 x 1.0, centred


def box_distance(points: np.ndarray) -> np.ndarray:
    """Exact signed distance to the box, positive outside."""
    q = np.abs(points) - HALF
    outside = np.linalg.norm(np.maximum(q, 0), axis=-1)
    return outside + np.minimum(q.max(axis=-1), 0)


@pytest.fixture(scope="module")
def box_grid(box_dir):
    return fuse_depth(scenes.load(box_dir), 128, lambda f, s: None, (0.0, 1.0), torch.device("cpu"))


def voxel_centres(grid) -> np.ndarray:
    shape = grid.values.shape
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    return grid.origin + index * grid.voxel_size


def test_grid_covers_the_object_with_a_margin(box_grid):
    lo = box_grid.origin
    hi = box_grid.origin + (np.array(box_grid.values.shape) - 1) * box_grid.voxel_size
    assert (lo < -HALF - box_grid.voxel_size).all() and (hi > HALF + box_grid.voxel_size).all()
    assert max(box_grid.values.shape) <= 128 + 4  # grid_resolution along the longest side (block aligned)


def test_values_near_the_surface_are_signed_distances(box_grid):
    points = voxel_centres(box_grid)
    truth = box_distance(points)
    values = box_grid.values.numpy()
    near_faces = (np.abs(truth) < 1.5 * box_grid.voxel_size) & ((np.abs(points) < HALF - 0.05).sum(axis=-1) == 2)
    assert near_faces.sum() > 1000
    error = np.abs(values[near_faces] - truth[near_faces])
    assert error.mean() < 0.1 * box_grid.voxel_size
    assert error.max() < 0.5 * box_grid.voxel_size


def test_sign_is_right_everywhere_and_values_are_truncated(box_grid):
    truth = box_distance(voxel_centres(box_grid))
    values = box_grid.values.numpy()
    clear = np.abs(truth) > box_grid.voxel_size
    assert (np.sign(values[clear]) == np.sign(truth[clear])).all()
    assert np.abs(values).max() <= box_grid.truncation + 1e-6


def test_no_depth_at_all_fails_with_a_sentence(box_dir):
    inputs = scenes.load(box_dir)
    inputs.depths[:] = 0
    with pytest.raises(ReconstructionFailed, match="no depth"):
        fuse_depth(inputs, 64, lambda f, s: None, (0.0, 1.0), torch.device("cpu"))
