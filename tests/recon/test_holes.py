"""An object a view looks into through a broad opening (an open scan) comes back as the surface it is, not
carved through or capped; a small opening is capped; a cup, whose floor has thickness, keeps its hollow."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from scipy.ndimage import binary_fill_holes
from scipy.spatial import cKDTree
from skimage.measure import marching_cubes
from skimage.morphology import reconstruction

from worker.recon.evaluate import chamfer_distance
from worker.recon.fusion import reconstruct_fusion
from worker.recon.holes import _spill_levels, wells
from worker.recon.render_inputs import render_inputs
from worker.recon.raster import rasterize
from worker.recon.rig import ORTHO, SLOT_NAMES, Camera, look_at
from worker.recon.surface import extract_surface
from worker.recon.tsdf import fuse_depth

from . import scenes

BOTTOM = SLOT_NAMES.index("bottom")
TOP = SLOT_NAMES.index("top")
CUT = -0.25  # the open scan lacks every face below this height


def open_scan(cut: float = CUT) -> trimesh.Trimesh:
    """A sphere of radius 0.5 scanned without its base below `cut`: a shell of no thickness, open below."""
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.5)
    sphere.update_faces(sphere.triangles_center[:, 1] > cut)
    sphere.remove_unreferenced_vertices()
    return sphere


def capped_sphere_volume(radius: float, cut: float) -> float:
    """The solid sphere above the plane y = cut."""
    height = radius - cut
    return np.pi * height**2 * (3 * radius - height) / 3


def cup() -> trimesh.Trimesh:
    """A cup opening upwards: walls and a floor 0.15 thick around a hollow 0.7 wide and 0.6 deep."""
    axis = np.linspace(-1, 1, 97)
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    outer = np.maximum.reduce([np.abs(x) - 0.5, np.abs(y) - 0.4, np.abs(z) - 0.5])
    hollow = np.maximum.reduce([np.abs(x) - 0.35, np.abs(y - 0.3) - 0.55, np.abs(z) - 0.35])
    vertices, faces, _, _ = marching_cubes(np.maximum(outer, -hollow), 0.0, spacing=(2 / 96,) * 3)
    return trimesh.Trimesh(vertices - 1.0, faces, process=True)


def fused_mesh(mesh: trimesh.Trimesh, directory) -> tuple[trimesh.Trimesh, tuple[int, ...]]:
    render_inputs(mesh, directory, res=160, normalize=False)
    grid = fuse_depth(scenes.load(directory), 112, torch.device("cpu"))
    vertices, faces = extract_surface(grid)
    return trimesh.Trimesh(vertices, faces), grid.openings


def test_a_well_is_depth_that_every_way_out_meets_nearer_depth():
    depth = np.zeros((40, 40), np.float32)
    depth[5:35, 5:35] = 1.0  # a rim...
    depth[10:30, 10:30] = 3.0  # ...around a far floor
    depth[18:22, 30:33] = 3.0  # a slot from the floor into the rim, not through it
    assert wells(depth, 0.5)[10:30, 10:30].all() and wells(depth, 0.5).sum() == 20 * 20 + 4 * 3
    depth[18:22, 30:40] = 3.0  # now the floor reaches the background: a valley, no well
    assert not wells(depth, 0.5).any()
    shallow = np.where(depth == 3.0, 1.2, depth)
    assert not wells(shallow, 0.5).any()  # a floor within the tolerance of its rim is no well


@pytest.mark.parametrize("shape", [(40, 40), (1024, 1024)])  # the large map's wells come from 2-pixel cells
def test_a_floor_that_reaches_the_image_edge_is_no_well(shape):
    depth = np.zeros(shape, np.float32)
    bottom, right = shape
    depth[bottom - 36 : bottom - 6, right - 36 :] = 1.0  # a rim against the right edge...
    depth[bottom - 30 : bottom - 10, right - 30 : right - 10] = 4.0  # ...around a far floor
    assert wells(depth, 0.5)[bottom - 30 : bottom - 10, right - 30 : right - 10].all()
    depth[bottom - 22 : bottom - 18, right - 10 :] = 4.0  # the floor runs out of the image
    assert not wells(depth, 0.5).any()


def test_an_open_scan_comes_back_as_the_surface_it_is_a_thin_closed_shell_open_where_the_scan_is(tmp_path):
    scan = open_scan()
    mesh, openings = fused_mesh(scan, tmp_path)
    assert openings[BOTTOM] == 1 and sum(openings) == 1
    assert mesh.is_watertight
    assert mesh.area == pytest.approx(2 * scan.area, rel=0.1)  # both sides of the scanned surface
    assert chamfer_distance(mesh, scan, samples=20_000) < 0.01  # closed as a solid, 0.02: the cap is far from it
    points = mesh.sample(20_000)
    assert not ((points[:, 1] < CUT + 0.05) & (np.hypot(points[:, 0], points[:, 2]) < 0.3)).any()  # no cap


def test_the_report_says_once_which_views_look_through_an_opening_and_what_was_built(tmp_path):
    render_inputs(open_scan(), tmp_path, res=160, normalize=False)
    report = reconstruct_fusion(scenes.load(tmp_path), tmp_path / "model.glb", lambda f, s: None, grid_resolution=112)
    said = [warning for warning in report["warnings"] if "opening" in warning]
    assert said == ["the bottom view looks through an opening into the object (an open scan?): the object was built "
                    "as the surface the views show, a thin closed shell"]


def test_a_small_opening_is_closed_as_the_solid_it_was_cut_from(tmp_path):
    """An opening of a tenth of its view (a hole in a side, a spout) costs a cap less than the whole object as a
    shell whose inner side no view sees."""
    mesh, openings = fused_mesh(open_scan(cut=-0.47), tmp_path)
    assert openings[BOTTOM] == 1 and sum(openings) == 1
    assert mesh.is_watertight
    assert mesh.volume == pytest.approx(capped_sphere_volume(0.5, -0.47), rel=0.1)  # a shell is a few per cent


def test_a_cup_whose_floor_has_thickness_keeps_its_hollow(tmp_path):
    truth = cup()
    mesh, openings = fused_mesh(truth, tmp_path)
    assert sum(openings) == 0
    assert mesh.volume == pytest.approx(truth.volume, rel=0.1)
    assert mesh.volume < 0.7 * truth.convex_hull.volume  # filled, it would be all of it


def test_a_box_without_a_floor_comes_back_as_its_panels_not_carved_away(tmp_path):
    """From below the walls of a box without a floor leave no pixel, so there is no well to close: its panels,
    seen from inside by the bottom view and from outside by the others, come back as thin shells, the surface
    the views show (carved, the box was reduced to shreds)."""
    box = trimesh.creation.box((0.9, 0.5, 0.7))
    box.update_faces(box.face_normals[:, 1] > -0.5)
    mesh, openings = fused_mesh(box, tmp_path)
    assert sum(openings) == 0
    assert mesh.is_watertight
    assert mesh.area == pytest.approx(2 * box.area, rel=0.1)  # both sides of each panel
    assert chamfer_distance(mesh, box, samples=20_000) < 0.01


def test_the_report_says_when_a_sheet_seen_from_both_sides_made_the_object_a_thin_shell(tmp_path):
    sheet = trimesh.creation.box((1.0, 0.8, 0.1)).subdivide_to_size(0.1)
    sheet.update_faces(sheet.face_normals[:, 2] > 0.5)  # the top of a box: a square of no thickness
    sheet.apply_transform(trimesh.transformations.rotation_matrix(0.4, (1.0, 1.0, 0.0)))
    render_inputs(sheet, tmp_path, res=160, normalize=False)
    report = reconstruct_fusion(scenes.load(tmp_path), tmp_path / "model.glb", lambda f, s: None, grid_resolution=112)
    said = [warning for warning in report["warnings"] if "thin closed shell" in warning]
    assert said == ["views facing each other see the same surfaces from either side (open panels, or a sheet of no "
                    "thickness): the object was built as the surface the views show, a thin closed shell"]


def test_what_hides_inside_open_panels_comes_back_as_what_the_views_show_not_as_a_block(tmp_path):
    """A crate inside a box without a floor hides the space above it from every view. Closed as a solid, that space
    would be a block reaching up to the roof, its walls far from any surface of the object; open panels like these
    make the object a surface the views show, so only the crate's underside, seen from below, comes back."""
    box = trimesh.creation.box((0.9, 0.5, 0.7))
    box.update_faces(box.face_normals[:, 1] > -0.5)
    crate = trimesh.creation.box((0.2, 0.1, 0.2))
    crate.apply_translation((0.2, -0.15, 0.0))
    truth = trimesh.util.concatenate([box, crate])
    mesh, openings = fused_mesh(truth, tmp_path)
    assert sum(openings) == 0
    assert mesh.is_watertight
    distance, _ = cKDTree(truth.sample(200_000)).query(mesh.sample(20_000))
    assert distance.max() < 0.03  # closed as a solid, the block's walls stood 0.17 from the crate and the roof


@pytest.fixture(scope="module")
def open_scan_result(tmp_path_factory):
    directory = tmp_path_factory.mktemp("scan")
    render_inputs(open_scan(), directory, res=160, normalize=False)
    report = reconstruct_fusion(scenes.load(directory), directory / "model.glb", lambda f, s: None,
                                grid_resolution=112, texture_size=0)
    return trimesh.load(directory / "model.glb", force="mesh", process=False), report["grid"]["voxel_size"]


def test_an_open_scans_shell_has_no_pinholes(open_scan_result):
    """Where the views' rays graze the inside of the wall, its shell was thinner than a voxel: marching cubes left
    pinholes, dots of background in the wall of every view."""
    mesh, _ = open_scan_result
    vertices = torch.as_tensor(mesh.vertices, dtype=torch.float32)
    faces = torch.as_tensor(mesh.faces, dtype=torch.int64)
    for x, z in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
        position = 3.0 * np.array([x, 0.5, z]) / np.linalg.norm([x, 0.5, z])
        camera = Camera(ORTHO, look_at(tuple(position), tuple(-position), (0, 1, 0)), 256, 256, 200, 200, 128, 128)
        drawn = rasterize(camera, vertices, faces).tri_id.numpy() >= 0
        assert (binary_fill_holes(drawn) == drawn).all()


def test_an_open_scans_unseen_side_lies_on_the_side_the_views_see(open_scan_result):
    mesh, voxel = open_scan_result
    off = np.abs(np.linalg.norm(mesh.sample(20_000), axis=1) - 0.5)
    assert np.median(off) < 0.1 * voxel  # the shell's inner side stayed most of a voxel inside: 0.4
    assert np.percentile(off, 90) < 0.2 * voxel  # a tenth of it stayed 0.3 voxel inside, a step short of the side


@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (7, 5), (64, 48)])
def test_the_spill_level_is_the_reconstruction_of_the_border_under_the_depth(shape):
    """The level water poured in from outside stands at: scikit-image's reconstruction by dilation (8-connected)
    of the grid's border values under the grid, with ties as depth maps have them (flat floors, background)."""
    rng = np.random.default_rng(sum(shape))
    for levels in (rng.random(shape), np.round(4 * rng.random(shape)).astype(np.float32)):
        seed = np.full_like(levels, levels.min())
        seed[[0, -1], :] = levels[[0, -1], :]
        seed[:, [0, -1]] = levels[:, [0, -1]]
        np.testing.assert_array_equal(_spill_levels(levels), reconstruction(seed, levels, method="dilation"))
