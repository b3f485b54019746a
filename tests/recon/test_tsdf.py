"""Depth fusion: the grid holds signed distance (positive outside) to sub-voxel accuracy, truncated."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from worker.errors import ReconstructionFailed
from worker.recon import depth_views
from worker.recon.render_inputs import render_inputs
from worker.recon.surface import extract_surface
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
    return fuse(box_dir)


def fuse(directory, resolution: int = 128):
    return fuse_depth(scenes.load(directory), resolution, torch.device("cpu"))


def four_legs(radius: float) -> trimesh.Trimesh:
    """A table: a slab on four round legs, whose inner sides only grazing rays and the gaps between legs show."""
    legs = []
    for x in (-0.3, 0.3):
        for z in (-0.2, 0.2):
            leg = trimesh.creation.cylinder(radius=radius, height=0.8, sections=64)
            leg.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))
            leg.apply_translation((x, 0.0, z))
            legs.append(leg)
    top = trimesh.creation.box((0.8, 0.2, 0.6))
    top.apply_translation((0.0, 0.45, 0.0))
    return trimesh.util.concatenate(legs + [top])


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
        fuse_depth(inputs, 64, torch.device("cpu"))


def test_preparing_each_view_only_around_its_silhouette_changes_nothing(box_dir, box_grid, monkeypatch):
    monkeypatch.setattr(depth_views, "CROP_MARGIN_PX", 10_000)  # every window is the whole image
    whole = fuse(box_dir)
    assert torch.equal(whole.values, box_grid.values)


def test_thin_legs_keep_their_radius(tmp_path):
    radius = 0.02  # about 2.5 voxels: less than the truncation
    render_inputs(four_legs(radius), tmp_path, res=256, normalize=False)
    grid = fuse(tmp_path)
    vertices, _ = extract_surface(grid)
    middle = vertices[np.abs(vertices[:, 1]) < 0.25]
    from_axis = np.hypot(middle[:, 0] - np.sign(middle[:, 0]) * 0.3, middle[:, 2] - np.sign(middle[:, 2]) * 0.2)
    assert abs(from_axis.mean() - radius) < 0.1 * grid.voxel_size
