"""UV atlas and texture baking: charts without flips or overlaps, texels coloured by the views that see them,
seams padded."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from scipy.ndimage import distance_transform_edt

from worker.recon import bake
from worker.recon.atlas import MERGE_MIN_FACING, build_atlas
from worker.recon.bake import bake_texture, texture_space_camera
from worker.recon.raster import rasterize
from worker.recon.surface import vertex_normals

from . import scenes

SIZE = 512

pytestmark = pytest.mark.usefixtures("one_thread")


def uv_triangles(atlas) -> np.ndarray:
    return atlas.uv[atlas.faces].astype(np.float64)  # (F, 3, 2)


def signed_uv_area(atlas) -> np.ndarray:
    """Twice the signed area of each UV triangle."""
    tri = uv_triangles(atlas)
    edge1, edge2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    return edge1[:, 0] * edge2[:, 1] - edge1[:, 1] * edge2[:, 0]


def fusion_like_sphere() -> trimesh.Trimesh:
    """A marching-cubes sphere: the kind of noisy triangulation fusion hands to the atlas."""
    x, y, z = np.mgrid[-1:1:80j, -1:1:80j, -1:1:80j]
    from skimage.measure import marching_cubes

    vertices, faces, _, _ = marching_cubes(np.sqrt(x**2 + y**2 + z**2) - 0.7, 0.0, spacing=(2 / 79,) * 3)
    return trimesh.Trimesh(vertices - 1.0, faces[:, ::-1], process=False)  # outward winding


def test_atlas_keeps_every_face_and_its_corners():
    mesh = fusion_like_sphere()
    atlas = build_atlas(mesh.vertices, mesh.faces, SIZE)
    np.testing.assert_array_equal(atlas.source[atlas.faces], mesh.faces)  # same faces, same order, same corners
    assert atlas.uv.min() >= 0 and atlas.uv.max() <= 1
    assert 0 < atlas.charts < len(mesh.faces) / 20
    assert atlas.utilization > 0.4


def test_charts_do_not_flip_or_overlap_and_stretch_is_bounded():
    mesh = fusion_like_sphere()
    atlas = build_atlas(mesh.vertices, mesh.faces, SIZE)
    # Marching cubes leaves slivers; xatlas gives the thinnest their own small charts and UVs.
    real = mesh.area_faces > 0.1 * np.median(mesh.area_faces)
    signed = signed_uv_area(atlas)[real]
    assert (signed > 0).all() or (signed < 0).all()  # one winding everywhere: no fold, no mirrored chart
    area_uv = np.abs(signed)
    ratio = area_uv / (2 * mesh.area_faces[real])
    assert ratio.min() >= MERGE_MIN_FACING * ratio.max() * 0.99  # one texel density, foreshortened at most so much
    # No overlaps: the texels covered by the union are as many as the triangles' areas add up to.
    size = 2048
    plane = np.column_stack((atlas.uv[:, 0], -atlas.uv[:, 1], -np.ones(len(atlas.uv))))
    raster = rasterize(texture_space_camera(size), torch.tensor(plane, dtype=torch.float32),
                       torch.tensor(atlas.faces))
    covered = (raster.tri_id >= 0).sum().item()
    assert abs(covered - area_uv.sum() / 2 * size * size) < 0.01 * covered


def test_baked_texels_take_the_colour_of_the_views_that_see_them_and_seams_are_padded(colour_cube_dir):
    inputs = scenes.load(colour_cube_dir)
    cube = scenes.colour_cube().subdivide().subdivide().subdivide()
    vertices = torch.tensor(cube.vertices, dtype=torch.float32)
    faces = torch.tensor(cube.faces)
    normals = vertex_normals(vertices, faces)
    atlas = build_atlas(cube.vertices, cube.faces, SIZE)
    grey = torch.full((len(vertices), 3), 0.5)
    srgb, filled = bake_texture(
        vertices, normals, atlas, SIZE, inputs.rig.cameras, torch.tensor(inputs.colors), torch.tensor(inputs.masks),
        torch.tensor(inputs.depths), 0.01, grey,
    )
    assert srgb.shape == (SIZE, SIZE, 3) and srgb.dtype == np.uint8 and filled < 0.01

    plane = np.column_stack((atlas.uv[:, 0], -atlas.uv[:, 1], -np.ones(len(atlas.uv))))
    raster = rasterize(texture_space_camera(SIZE), torch.tensor(plane, dtype=torch.float32), torch.tensor(atlas.faces))
    tri_id = raster.tri_id.numpy()
    covered = tri_id >= 0
    corners = cube.vertices[atlas.source[atlas.faces[tri_id[covered]]]]
    points = (corners * raster.bary.numpy()[covered][..., None]).sum(axis=1)  # each texel's surface point
    texels = srgb[covered].astype(float)
    for normal, colour in scenes.FACE_COLOURS.items():
        axis = int(np.flatnonzero(normal)[0])
        inner = (np.abs(points[:, axis] - 0.6 * normal[axis]) < 1e-4) & (
            np.delete(np.abs(points), axis, axis=1) < 0.55).all(axis=1)
        assert inner.sum() > 1000
        assert np.abs(texels[inner] - colour).max() <= 3, normal
    distance = distance_transform_edt(~covered)
    ring = (distance > 0) & (distance <= bake.PADDING_TEXELS)
    assert ring.any() and (srgb[ring].max(axis=1) > 0).all()  # every padding texel holds a chart's colour
    assert (srgb[distance > bake.PADDING_TEXELS + 1] == 0).all()


@pytest.mark.parametrize("reach", [1, 4])
def test_padding_copies_the_nearest_covered_texel_within_reach_and_nothing_else(reach):
    """Colours encode each covered texel's position, so every padded texel says where it copied from: a texel at
    the distance transform's distance, for exactly the empty texels that are within `reach`."""
    rng = np.random.default_rng(3)
    covered = rng.random((96, 96)) < 0.01
    covered[40:50, 10:30] = True
    image = np.zeros((96, 96, 3), dtype=np.uint8)
    rows, cols = np.nonzero(covered)
    image[rows, cols] = np.column_stack((rows, cols, np.full(len(rows), 255)))
    padded = image.copy()
    bake.pad_charts(padded, covered, reach)

    distance = distance_transform_edt(~covered)
    ring = (distance > 0) & (distance <= reach)
    assert ((padded[..., 2] == 255) == (covered | ring)).all()
    assert (padded[covered] == image[covered]).all()
    ring_rows, ring_cols = np.nonzero(ring)
    source = padded[ring].astype(float)
    assert np.allclose(np.hypot(source[:, 0] - ring_rows, source[:, 1] - ring_cols), distance[ring])


def test_the_far_side_of_a_thin_part_takes_the_colours_seen_across_it_texel_by_texel(colour_cube_dir):
    """A plate just under the cube's +z face: the front view sees its top, no view its underside (the view from
    below sees the cube's far face). Within `across`, the underside takes the top's colour; beyond, the fallback."""
    inputs = scenes.load(colour_cube_dir)
    plate = trimesh.creation.box((1.0, 1.0, 0.004)).subdivide().subdivide()
    plate.apply_translation((0.0, 0.0, 0.598))
    vertices = torch.tensor(plate.vertices, dtype=torch.float32)
    faces = torch.tensor(plate.faces)
    atlas = build_atlas(plate.vertices, plate.faces, SIZE)
    green = torch.tensor([[0.0, 1.0, 0.0]]).expand(len(vertices), 3)
    plane = np.column_stack((atlas.uv[:, 0], -atlas.uv[:, 1], -np.ones(len(atlas.uv))))
    raster = rasterize(texture_space_camera(SIZE), torch.tensor(plane, dtype=torch.float32), torch.tensor(atlas.faces))
    covered = raster.tri_id.numpy() >= 0
    corners = plate.vertices[atlas.source[atlas.faces[raster.tri_id.numpy()[covered]]]]
    points = (corners * raster.bary.numpy()[covered][..., None]).sum(axis=1)
    underside = (points[:, 2] < 0.597) & (np.abs(points[:, :2]) < 0.45).all(axis=1)
    assert underside.sum() > 1000
    for across, colour in ((0.01, scenes.FACE_COLOURS[(0, 0, 1)]), (0.0, (0, 255, 0))):
        srgb, filled = bake_texture(
            vertices, vertex_normals(vertices, faces), atlas, SIZE, inputs.rig.cameras, torch.tensor(inputs.colors),
            torch.tensor(inputs.masks), torch.tensor(inputs.depths), 0.01, green, across=across,
        )
        assert np.abs(srgb[covered][underside].astype(float) - colour).max() <= 3, across
        assert filled == pytest.approx(0.5, abs=0.05)  # still counted as filled


def bake_seen_by_no_view(mesh: trimesh.Trimesh, inputs_dir) -> tuple:
    """(atlas, sRGB texture, filled share) of `mesh` baked with every silhouette empty and green as the fallback."""
    inputs = scenes.load(inputs_dir)
    vertices = torch.tensor(mesh.vertices, dtype=torch.float32)
    faces = torch.tensor(mesh.faces)
    atlas = build_atlas(mesh.vertices, mesh.faces, SIZE)
    fallback = torch.tensor([[0.0, 1.0, 0.0]]).expand(len(vertices), 3)
    no_views = torch.zeros(inputs.masks.shape, dtype=torch.bool)
    srgb, filled = bake_texture(
        vertices, vertex_normals(vertices, faces), atlas, SIZE, inputs.rig.cameras, torch.tensor(inputs.colors),
        no_views, torch.zeros(inputs.depths.shape), 0.01, fallback,
    )
    return atlas, srgb, filled


def test_texels_no_view_sees_take_the_fallback_colour(colour_cube_dir):
    atlas, srgb, filled = bake_seen_by_no_view(scenes.colour_cube().subdivide(), colour_cube_dir)
    assert filled == pytest.approx(1.0)
    plane = np.column_stack((atlas.uv[:, 0], -atlas.uv[:, 1], -np.ones(len(atlas.uv))))
    covered = rasterize(texture_space_camera(SIZE), torch.tensor(plane, dtype=torch.float32),
                        torch.tensor(atlas.faces)).tri_id.numpy() >= 0
    assert (srgb[covered] == (0, 255, 0)).all()


def test_slivers_that_hold_no_texel_centre_still_get_their_own_colour(colour_cube_dir):
    """A diagonal rod far thinner than a texel: its faces are slivers in the atlas that the rasterizer draws no
    texel of. The texture, read where each face lies, must show that face's colour, not empty black atlas."""
    rod = trimesh.creation.box((1.2, 1e-5, 1e-5), trimesh.transformations.rotation_matrix(0.7, (0, 0, 1)))
    atlas, srgb, _ = bake_seen_by_no_view(rod, colour_cube_dir)
    along = np.linspace(0.05, 0.9, 50)
    weights = np.stack((along, 0.95 - along, np.full_like(along, 0.05)), axis=1)  # points along each face
    points = np.einsum("sk,fkc->fsc", weights, atlas.uv[atlas.faces]).reshape(-1, 2) * SIZE
    texels = srgb[points[:, 1].astype(int), points[:, 0].astype(int)]
    assert (texels == (0, 255, 0)).all()
