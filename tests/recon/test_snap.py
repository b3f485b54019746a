"""Fitting marching cubes' surface to the depth maps: thin parts come to their true size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from scipy.ndimage import distance_transform_edt

from tests.support.inputs import rendered_inputs
from worker.recon.fusion import reconstruct_fusion
from worker.recon.rig import cube6_rig
from worker.recon.snap import (_cubic_depth, _nearest_in_silhouette, _within_half_pixel, _without_folds,
                               fit_to_silhouettes)

from . import scenes

AXIS = np.array([1.0, 0.6, 0.35]) / np.linalg.norm([1.0, 0.6, 0.35])


@pytest.fixture(scope="module")
def thin_rod(tmp_path_factory):
    """A slanted rod 1.9 voxels in radius at grid 128: marching cubes' slivers cover it."""
    rod = trimesh.creation.cylinder(0.02, 1.5, sections=64)
    rod.apply_transform(trimesh.geometry.align_vectors([0, 0, 1], AXIS))
    directory = rendered_inputs(tmp_path_factory.mktemp("rod"), rod, 256, normalize=False)
    out = tmp_path_factory.mktemp("out") / "model.glb"
    report = reconstruct_fusion(scenes.load(directory), out, lambda f, s: None, grid_resolution=128,
                                target_triangles=0, max_error_ppm=0, texture_size=0)
    return trimesh.load(out, force="mesh", process=False), report["grid"]["voxel_size"]


def test_a_rod_two_voxels_thick_comes_to_its_radius(thin_rod):
    mesh, voxel = thin_rod
    along = mesh.vertices @ AXIS
    side = np.abs(along) < 0.6  # away from the end caps
    radius = np.linalg.norm(mesh.vertices[side] - along[side, None] * AXIS, axis=1)
    off = (radius - 0.02) / voxel
    assert np.abs(off).mean() < 0.08  # before slivers moved as one and depth was read as a cubic: 0.13
    assert np.percentile(off, 90) < 0.1  # a tenth of the vertices stayed 0.37 voxel out: the rod looked fat


def test_the_faces_between_the_vertices_lie_on_the_rod_not_inside_it(thin_rod):
    mesh, voxel = thin_rod
    points, _ = trimesh.sample.sample_surface(mesh, 200_000, seed=0)
    along = points @ AXIS
    side = np.abs(along) < 0.6
    off = (np.linalg.norm(points[side] - along[side, None] * AXIS, axis=1) - 0.02) / voxel
    # With only the vertices fitted the faces cut chords: the rod came out 0.055 voxel thin (0.024 now; the depth
    # read between a thin part's texels is itself a little inside)
    assert -0.035 < off.mean() < 0.02


def test_a_sliver_moves_with_its_neighbours_instead_of_folding():
    # A sliver (0, 1, 2) whose corner 2 sits just off the edge 0-1: moving 2 alone by more than the sliver's
    # height flips it; moving all three together does not.
    vertices = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.5, 0.01, 0.0], [0.5, 1.0, 0.0]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3], [2, 1, 3]])
    step = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, -0.05, 0.0], [0.0, 0.0, 0.0]])
    kept = _without_folds(vertices, faces, step)
    assert kept[2, 1] < -0.01  # the corner moved at least part of the way (halving would have dropped it)
    corners = vertices + kept
    normal = torch.linalg.cross(corners[1] - corners[0], corners[2] - corners[0])
    assert normal[2] > 0  # the sliver still faces the way it did


def test_a_vertex_outside_a_silhouette_comes_onto_its_edge_and_one_inside_stays():
    front = cube6_rig(16).cameras[0]  # 16 pixels across [-1, 1]: a pixel is 0.125 wide
    mask = torch.zeros(1, 16, 16, dtype=torch.bool)
    mask[0, 4:12, 4:12] = True  # columns and rows 4-11: the silhouette's right edge is at u = 12
    u = torch.tensor([8.3, 12.6, 15.5, 12.3, 12.8], dtype=torch.float64)
    v = torch.tensor([8.6, 7.2, 7.2, 7.2, 7.2], dtype=torch.float64)
    depth = torch.tensor([1.9, 2.1, 2.0, 2.0, 2.0], dtype=torch.float64)
    vertices = front.unproject(u, v, depth)
    onto_edge = torch.tensor([True, True, True, False, False])
    fitted = fit_to_silhouettes(vertices, torch.zeros(0, 3, dtype=torch.int64), (front,), mask, onto_edge, reach=0.25)
    moved = front.project(fitted)
    assert torch.equal(fitted[0], vertices[0])  # inside: left alone
    np.testing.assert_allclose(moved[1].numpy(), [12.6 - 0.95 * 0.61, 7.2, 2.1], atol=1e-9)  # to the edge, at its depth
    assert torch.equal(fitted[2], vertices[2])  # 3.5 pixels out is beyond reach: not this surface's outline
    # The others only come back to half a pixel past the edge, where an outline may still lie.
    assert torch.equal(fitted[3], vertices[3])
    np.testing.assert_allclose(moved[4].numpy(), [12.8 - 0.95 * 0.3, 7.2, 2.0], atol=1e-9)


def test_a_vertex_in_the_inner_corner_of_a_silhouette_stays_within_half_a_pixel_of_it():
    """The distance is to the nearest point of all the silhouette's pixels around the vertex (a rounded edge seen
    edge-on lies off a staircase of them): once measured from the pixel with the nearest centre alone, a block's
    rounded edges were pulled in by up to half a pixel (-2.5 dB)."""
    front = cube6_rig(16).cameras[0]
    mask = torch.zeros(1, 16, 16, dtype=torch.bool)
    mask[0, 4:12, 4:8] = True
    mask[0, 4:8, 8:12] = True  # an L: its inner corner at (u, v) = (8, 8)
    vertices = front.unproject(torch.tensor([8.45]), torch.tensor([8.6]), torch.tensor([2.0]))
    fitted = fit_to_silhouettes(vertices, torch.zeros(0, 3, dtype=torch.int64), (front,), mask,
                                torch.tensor([False]), reach=0.25)
    assert torch.equal(fitted, vertices)  # 0.45 pixel from the left arm: within half a pixel


def test_the_vertices_left_where_they_are_are_those_the_full_search_would_not_move():
    """The quick test (the pixel and its neighbours on the side of the nearer halves) against the 7x7 search with
    every pixel's square grown by half a pixel: a point it finds there stays put."""
    generator = torch.Generator().manual_seed(0)
    mask = torch.rand(24, 24, generator=generator) < 0.3
    uv = torch.rand(5000, 2, generator=generator, dtype=torch.float64) * 24
    u, v, found = _nearest_in_silhouette(uv, mask, torch.full((5000,), 0.5, dtype=torch.float64))
    stays = found & (u == uv[:, 0]) & (v == uv[:, 1])
    assert 0 < int(stays.sum()) < 5000
    assert torch.equal(_within_half_pixel(uv, mask), stays)


@pytest.fixture(scope="module")
def thin_plate(tmp_path_factory):
    """A plate a tenth of a voxel thick at grid 128, facing the front view: fusion puts it back as a shell."""
    plate = trimesh.creation.box((1.2, 0.8, 0.001))
    plate.apply_transform(trimesh.transformations.rotation_matrix(0.3, [0, 0, 1]))
    directory = rendered_inputs(tmp_path_factory.mktemp("plate"), plate, 256, normalize=False)
    out = tmp_path_factory.mktemp("out") / "model.glb"
    reconstruct_fusion(scenes.load(directory), out, lambda f, s: None, grid_resolution=128, target_triangles=0,
                       max_error_ppm=0, texture_size=0)
    return trimesh.load(out, force="mesh", process=False), scenes.load(directory)


def pixels_outside(uv: np.ndarray, mask: np.ndarray, fine: int = 8) -> np.ndarray:
    """(N,) how far each image point lies outside the union of the mask's pixel squares, in pixels, to 1/`fine`: the
    distance transform of the mask drawn `fine` times finer."""
    finer = np.repeat(np.repeat(mask, fine, axis=0), fine, axis=1)
    distance = distance_transform_edt(~finer) / fine
    cells = np.clip(np.floor(uv * fine).astype(int), 0, np.array(finer.shape[::-1]) - 1)
    return distance[cells[:, 1], cells[:, 0]]


def test_a_shell_put_back_around_depth_points_ends_at_the_silhouette_not_a_voxel_past_it(thin_plate):
    mesh, inputs = thin_plate
    uv = inputs.rig.cameras[0].project(torch.as_tensor(mesh.vertices))[:, :2].numpy()
    outside = pixels_outside(uv, inputs.masks[0])  # every vertex is on the rim: the plate is thinner than a voxel
    # Where no outline can be: more than half a pixel past the silhouette's pixels. The shell's radius (0.9 voxel,
    # 1.3 pixels here) once took 76 vertices there, up to 0.9 pixel; none stay, or a few held back where their faces
    # would turn edge-on (snap._without_folds). Within that half pixel, where the outline may be, lie 30 of the
    # 16,240 vertices (up to 0.375 pixel past), since the rim reaches the outline (tsdf.restore_lost_surfaces).
    assert (outside > 0.5).sum() <= 5
    assert (outside > 0).mean() < 0.005
    assert mesh.is_watertight


def _bowl(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """A depth that curves like a rod's side: quadratic in the pixel coordinates."""
    return 5.0 + 0.02 * (u - 8.0) ** 2 + 0.01 * (u - 8.0) * (v - 6.0) - 0.015 * (v - 6.0) ** 2


def _read_at(depth_map: np.ndarray, u: float, v: float, reach: float = 1.0) -> tuple[float, float]:
    """The cubic depth at (u, v), and the bilinear one it starts from."""
    x0, y0 = np.floor(u - 0.5), np.floor(v - 0.5)
    tx, ty = u - 0.5 - x0, v - 0.5 - y0
    r, c = int(y0), int(x0)
    block = depth_map[r : r + 2, c : c + 2]
    bilinear = float(block[0, 0] * (1 - tx) * (1 - ty) + block[0, 1] * tx * (1 - ty) + block[1, 0] * (1 - tx) * ty
                     + block[1, 1] * tx * ty)
    return _cubic_depth(depth_map, x0, y0, tx, ty, bilinear, reach), bilinear


def test_depth_is_read_as_a_cubic_that_follows_a_curved_surface_where_bilinear_cuts_its_chord():
    centres = np.arange(16) + 0.5
    depth_map = _bowl(*np.meshgrid(centres, centres))
    points = np.random.default_rng(0).uniform(2, 14, size=(200, 2))
    read = np.array([_read_at(depth_map, u, v) for u, v in points])
    np.testing.assert_allclose(read[:, 0], _bowl(points[:, 0], points[:, 1]), atol=1e-9)  # exact on quadratics
    assert np.abs(read[:, 1] - _bowl(points[:, 0], points[:, 1])).max() > 1e-3


def test_the_cubic_gives_way_to_bilinear_at_a_depth_edge_or_a_missing_texel():
    centres = np.arange(16) + 0.5
    depth_map = _bowl(*np.meshgrid(centres, centres))
    cubic, bilinear = _read_at(depth_map, 8.3, 6.6, reach=1e-9)  # the cubic strays further than reach
    assert cubic == bilinear
    depth_map[5, 9] = 0.0  # a background texel among the 4x4 around (8.3, 6.6)
    cubic, bilinear = _read_at(depth_map, 8.3, 6.6)
    assert cubic == bilinear
