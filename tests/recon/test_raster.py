"""The rasterizer against analytic cases: coverage, area, depth, occlusion, no cracks, interpolation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from worker.recon.raster import interpolate, rasterize
from worker.recon.rig import Camera, cube6_rig, look_at

FRONT = cube6_rig(32).cameras[0]  # ortho, image x = world x, image y = world y, depth = 2 - z


def pixel_centres(size: int) -> tuple[np.ndarray, np.ndarray]:
    """World x, y of the front camera's pixel centres, as (H, W) grids."""
    coords = -1 + (2 * np.arange(size) + 1) / size
    return np.meshgrid(coords, coords[::-1] * 1.0, indexing="xy")


def tensors(vertices, faces) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(vertices, dtype=torch.float32), torch.tensor(faces, dtype=torch.int64)


def test_single_triangle_covers_exactly_the_pixel_centres_inside_it():
    a, b, c = np.array([-0.71, -0.53]), np.array([0.62, -0.33]), np.array([-0.18, 0.77])
    vertices, faces = tensors([[*a, 0.5], [*b, 0.5], [*c, 0.5]], [[0, 1, 2]])
    raster = rasterize(FRONT, vertices, faces)
    x, y = pixel_centres(32)

    def side(p, q):  # > 0 left of p->q (the triangle is counter-clockwise)
        return (q[0] - p[0]) * (y - p[1]) - (q[1] - p[1]) * (x - p[0])

    inside = (side(a, b) > 0) & (side(b, c) > 0) & (side(c, a) > 0)
    np.testing.assert_array_equal(raster.tri_id.numpy() == 0, inside)
    np.testing.assert_allclose(raster.depth.numpy()[inside], 1.5, rtol=1e-6)
    assert (raster.depth.numpy()[~inside] == 0).all()
    np.testing.assert_allclose(raster.bary.numpy()[inside].sum(axis=-1), 1.0, atol=1e-6)


def test_winding_does_not_matter():
    vertices, faces = tensors([[-0.5, -0.5, 0], [0.5, -0.5, 0], [0, 0.5, 0]], [[0, 2, 1]])
    assert (rasterize(FRONT, vertices, faces).tri_id == 0).sum() > 0


def test_unit_square_area_in_pixels():
    # A 1 x 1 square (two triangles) seen by a 64 x 64 image spanning 2 x 2: 32 x 32 pixel centres.
    camera = cube6_rig(64).cameras[0]
    vertices, faces = tensors([[-0.49, -0.49, 0], [0.51, -0.49, 0], [0.51, 0.51, 0], [-0.49, 0.51, 0]],
                              [[0, 1, 2], [0, 2, 3]])
    assert (rasterize(camera, vertices, faces).tri_id >= 0).sum().item() == 32 * 32


def test_a_closed_mesh_renders_without_cracks():
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.8)
    camera = cube6_rig(128).cameras[1]
    raster = rasterize(camera, *tensors(sphere.vertices, sphere.faces))
    u, v = np.meshgrid(np.arange(128) + 0.5, np.arange(128) + 0.5)
    well_inside = (u - 64) ** 2 + (v - 64) ** 2 < (0.75 * 64) ** 2
    assert (raster.tri_id.numpy()[well_inside] >= 0).all()


@pytest.mark.parametrize("order", [[0, 1], [1, 0]])
def test_the_nearest_triangle_wins_whatever_the_order(order):
    near = [[-0.5, -0.5, 0.5], [0.5, -0.5, 0.5], [0, 0.5, 0.5]]
    far = [[-0.6, -0.6, -0.5], [0.6, -0.6, -0.5], [0, 0.6, -0.5]]
    triangles = [near, far]
    vertices = np.array([triangles[i] for i in order]).reshape(-1, 3)
    raster = rasterize(FRONT, *tensors(vertices, [[0, 1, 2], [3, 4, 5]]))
    centre = raster.tri_id[16, 16].item()
    assert centre == order.index(0)
    assert raster.depth[16, 16].item() == pytest.approx(1.5)


def test_perspective_depth_and_perspective_correct_barycentrics():
    camera = Camera("PERSPECTIVE", look_at((0, 0, 3), (0, 0, -1), (0, 1, 0)), 64, 64, 60.0, 60.0, 32.0, 32.0)
    # A tilted quad: interpolated world positions must land on the rays through the pixel centres.
    vertices = np.array([[-1, -1, -0.5], [1, -1, 0.5], [1, 1, 0.5], [-1, 1, -0.5]], dtype=float)
    v_t, f_t = tensors(vertices, [[0, 1, 2], [0, 2, 3]])
    raster = rasterize(camera, v_t, f_t)
    hit = raster.tri_id >= 0
    points = interpolate(v_t, raster.tri_id, raster.bary, f_t)
    rows, cols = torch.meshgrid(torch.arange(64) + 0.5, torch.arange(64) + 0.5, indexing="ij")
    on_rays = camera.unproject(cols, rows, raster.depth)
    torch.testing.assert_close(points[hit], on_rays[hit], atol=1e-4, rtol=0)
    torch.testing.assert_close(raster.depth[hit], 3 - points[hit][:, 2], atol=1e-4, rtol=0)


def test_triangles_behind_a_perspective_camera_are_skipped():
    camera = Camera("PERSPECTIVE", look_at((0, 0, 3), (0, 0, -1), (0, 1, 0)), 16, 16, 8.0, 8.0, 8.0, 8.0)
    vertices, faces = tensors([[-1, -1, 4], [1, -1, 4], [0, 1, 4]], [[0, 1, 2]])
    assert (rasterize(camera, vertices, faces).tri_id < 0).all()


def test_interpolate_per_vertex_and_per_corner():
    vertices, faces = tensors([[-0.9, -0.9, 0], [0.9, -0.9, 0], [0, 0.9, 0]], [[0, 1, 2]])
    raster = rasterize(FRONT, vertices, faces)
    hit = raster.tri_id >= 0
    per_vertex = interpolate(vertices[:, :2], raster.tri_id, raster.bary, faces)
    per_corner = interpolate(vertices[faces][..., :2], raster.tri_id, raster.bary)
    x, y = pixel_centres(32)
    expected = torch.tensor(np.stack([x, y], axis=-1), dtype=torch.float32)
    torch.testing.assert_close(per_vertex[hit], expected[hit], atol=1e-5, rtol=0)
    torch.testing.assert_close(per_corner, per_vertex)
    assert (per_vertex[~hit] == 0).all()


def test_a_dense_mesh_covers_its_exact_area():
    sphere = trimesh.creation.icosphere(subdivisions=7, radius=0.7)  # 327k triangles
    vertices, faces = tensors(sphere.vertices, sphere.faces)
    raster = rasterize(cube6_rig(512).cameras[0], vertices, faces)
    assert (raster.tri_id >= 0).sum().item() == pytest.approx(np.pi * 0.7**2 * 256**2, rel=0.01)
