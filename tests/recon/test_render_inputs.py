"""render_inputs writes inputs that follow the contract: names, modes, bit depths, background, cameras."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from worker.recon.render_inputs import REFERENCE_EDGE, main, normalize_mesh, procedural_albedo, render_inputs
from worker.recon.rig import SLOT_NAMES, cube6_rig, parse_cameras_json

from . import scenes


@pytest.fixture(scope="module")
def box_16(tmp_path_factory):
    directory = tmp_path_factory.mktemp("box16")
    return directory, render_inputs(scenes.box(), directory, res=64, normalize=False)


def test_writes_the_twelve_inputs_cameras_and_reference(box_16):
    directory, paths = box_16
    names = {p.name for p in paths}
    for i, slot in enumerate(SLOT_NAMES):
        assert f"view_{i}_{slot}.png" in names and f"depth_{i}_{slot}.png" in names
    assert {"cameras.json", "reference.glb", "reference.ply"} <= names
    assert all(p.exists() for p in paths)


def test_views_are_rgba_with_coverage_alpha_and_black_background(box_16):
    directory, _ = box_16
    for i, slot in enumerate(SLOT_NAMES):
        view = Image.open(directory / f"view_{i}_{slot}.png")
        assert view.mode == "RGBA" and view.size == (64, 64)
        rgba = np.asarray(view)
        assert set(np.unique(rgba[..., 3])) == {0, 255}
        assert (rgba[rgba[..., 3] == 0][:, :3] == 0).all()


def test_depth_is_16_bit_zero_on_background_and_decodes_to_distance(box_16):
    directory, _ = box_16
    encoding = cube6_rig(64).depth
    for i, slot in enumerate(SLOT_NAMES):
        depth = Image.open(directory / f"depth_{i}_{slot}.png")
        assert depth.mode in ("I;16", "I")
        values = np.asarray(depth)
        alpha = np.asarray(Image.open(directory / f"view_{i}_{slot}.png"))[..., 3]
        np.testing.assert_array_equal(values > 0, alpha > 0)
    # The box is 1.2 x 0.8 x 1.0: its front face (z = 0.5) is 1.5 from the front camera's image plane.
    front = encoding.decode(np.asarray(Image.open(directory / "depth_0_front.png")), 16)
    assert front[32, 32] == pytest.approx(1.5, abs=3.0 / 65535)


def test_8_bit_depth(tmp_path):
    render_inputs(scenes.box(), tmp_path, res=32, depth_bits=8, normalize=False)
    depth = Image.open(tmp_path / "depth_2_back.png")
    assert depth.mode == "L"
    decoded = cube6_rig(32).depth.decode(np.asarray(depth), 8)
    assert decoded[16, 16] == pytest.approx(1.5, abs=0.5 * 3.0 / 255)


def test_cameras_json_is_the_ortho_equivalent_of_cube6(box_16):
    directory, _ = box_16
    data = json.loads((directory / "cameras.json").read_text())
    assert data["camera_model"] == "ORTHO"
    assert parse_cameras_json(data, 64, 64).cameras == cube6_rig(64).cameras


def test_normalize_fits_the_longest_side_into_plus_minus_0_8():
    mesh = trimesh.creation.box((4.0, 1.0, 2.0))
    mesh.apply_translation((10, -3, 2))
    bounds = normalize_mesh(mesh).bounds
    np.testing.assert_allclose(bounds, [[-0.8, -0.2, -0.4], [0.8, 0.2, 0.4]], atol=1e-9)


def test_reference_is_the_normalised_mesh(tmp_path):
    mesh = trimesh.creation.box((4.0, 1.0, 2.0))
    render_inputs(mesh, tmp_path, res=32)
    reference = trimesh.load(tmp_path / "reference.glb", force="mesh")
    np.testing.assert_allclose(reference.bounds, [[-0.8, -0.2, -0.4], [0.8, 0.2, 0.4]], atol=1e-6)


def test_untextured_meshes_get_a_smooth_saturated_position_dependent_albedo(box_16):
    colours = procedural_albedo(np.random.default_rng(0).uniform(-0.8, 0.8, (1000, 3)))
    assert colours.min() >= 0 and colours.max() <= 1
    saturation = (colours.max(axis=1) - colours.min(axis=1)) / colours.max(axis=1)
    assert saturation.mean() > 0.6
    assert colours.std(axis=0).min() > 0.15  # it varies across the object
    nearby = procedural_albedo(np.array([[0.3, 0.2, 0.1], [0.301, 0.2, 0.1]]))
    assert np.abs(nearby[0] - nearby[1]).max() < 0.02  # and varies smoothly
    directory, _ = box_16
    front = np.asarray(Image.open(directory / "view_0_front.png"))
    assert len(np.unique(front[front[..., 3] > 0][:, :3], axis=0)) > 50


def test_the_reference_carries_the_albedo_the_views_show_even_on_long_faces(box_16):
    """A box side is two triangles: its corner colours alone would blend across it where the views show the
    hues between, and every novel-view score against the reference would count that as the model's error."""
    directory, _ = box_16
    reference = trimesh.load(directory / "reference.glb", force="mesh", process=False)
    assert reference.edges_unique_length.max() <= REFERENCE_EDGE
    np.testing.assert_allclose(reference.visual.vertex_colors[:, :3] / 255.0, procedural_albedo(reference.vertices),
                               atol=1 / 255)


def _half_black_half_white_obj(folder: Path) -> Path:
    """A box written as OBJ + MTL + PNG whose texture is black where x < 0 and white where x > 0."""
    box = trimesh.creation.box(extents=(1.2, 1.2, 1.2))
    texture = np.zeros((8, 8, 3), np.uint8)
    texture[:, 4:] = 255
    uv = np.stack([(box.vertices[:, 0] > 0) * 0.75 + 0.125, np.full(len(box.vertices), 0.5)], axis=1)
    box.visual = trimesh.visual.TextureVisuals(uv=uv, image=Image.fromarray(texture))
    box.export(folder / "box.obj")
    return folder / "box.obj"


def test_textured_obj_takes_its_colours_from_the_texture(tmp_path):
    mesh = trimesh.load(_half_black_half_white_obj(tmp_path), force="mesh")
    render_inputs(mesh, tmp_path / "inputs", res=64, normalize=False)
    front = np.asarray(Image.open(tmp_path / "inputs" / "view_0_front.png"))
    covered = front[..., 3] > 0
    left, right = front[:, :28][covered[:, :28]], front[:, 36:][covered[:, 36:]]
    assert len(left) and len(right)
    assert left[:, :3].max() < 30  # -X is black
    assert right[:, :3].min() > 225  # +X is white


def test_command_line(tmp_path):
    mesh_path = tmp_path / "box.ply"
    scenes.box().export(mesh_path)
    rig_path = tmp_path / "rig.json"
    rig_path.write_text(json.dumps(scenes.perspective_cameras_json(48)))
    assert main([str(mesh_path), str(tmp_path / "out"), "--depth-bits", "8", "--rig", str(rig_path)]) == 0
    assert Image.open(tmp_path / "out" / "depth_0_front.png").mode == "L"
    assert Image.open(tmp_path / "out" / "view_0_front.png").size == (48, 48)
    written = json.loads((tmp_path / "out" / "cameras.json").read_text())
    assert parse_cameras_json(written, 48, 48).cameras == parse_cameras_json(json.loads(rig_path.read_text()), 48, 48).cameras
    bad = json.loads(rig_path.read_text())
    bad["frames"] = bad["frames"][:5]
    rig_path.write_text(json.dumps(bad))
    assert main([str(mesh_path), str(tmp_path / "bad"), "--rig", str(rig_path)]) == 2


def test_command_line_turns_the_mesh_about_up_before_rendering(tmp_path):
    mesh_path = tmp_path / "cube.ply"
    scenes.colour_cube().export(mesh_path)
    assert main([str(mesh_path), str(tmp_path / "out"), "--res", "32", "--turn", "180"]) == 0
    front = np.asarray(Image.open(tmp_path / "out" / "view_0_front.png"))
    assert tuple(front[16, 16, :3]) == scenes.FACE_COLOURS[(0, 0, -1)]  # the face that looked back now looks front
