"""The camera rig: the cube6 table, the pixel and depth conventions, the depth encoding, cameras.json."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.errors import FileValidationError
from worker.recon.rig import (
    SLOT_NAMES,
    Camera,
    DepthEncoding,
    cube6_rig,
    parse_cameras_json,
    rig_to_cameras_json,
)

from .scenes import CUBE6_TABLE, perspective_cameras_json


def project(camera: Camera, point) -> np.ndarray:
    return camera.project(torch.tensor(np.array([point], dtype=float)))[0].numpy()


def test_slot_names_follow_the_contract():
    assert SLOT_NAMES == ("front", "right", "back", "left", "top", "bottom")


@pytest.mark.parametrize("slot", SLOT_NAMES)
def test_cube6_cameras_match_the_table(slot):
    position, toward, up, right = (np.array(v, dtype=float) for v in CUBE6_TABLE[slot])
    camera = cube6_rig(64).cameras[SLOT_NAMES.index(slot)]
    assert camera.is_ortho
    np.testing.assert_allclose(camera.position, position)
    np.testing.assert_allclose(camera.forward, toward)
    centre = project(camera, (0, 0, 0))
    np.testing.assert_allclose(centre, (32, 32, 2))
    u, v, _ = project(camera, 0.5 * right)
    assert u > 32 and v == pytest.approx(32)  # image right
    u, v, _ = project(camera, 0.5 * up)
    assert v < 32 and u == pytest.approx(32)  # image up: rows count downward


def test_front_camera_sees_plus_x_on_the_right_and_top_camera_has_minus_z_up():
    front, top = cube6_rig(64).cameras[0], cube6_rig(64).cameras[4]
    assert project(front, (0.5, 0, 0))[0] > 32
    assert project(top, (0, 0, -0.5))[1] < 32


def test_cube6_image_spans_minus_one_to_one_with_pixel_centres_at_half_integers():
    camera = cube6_rig(4).cameras[0]  # front: image x = world x, image y = world y
    # pixel (row 0, column 0) is centred at x = -1 + 1/4, y = 1 - 1/4
    point = camera.unproject(torch.tensor(0.5), torch.tensor(0.5), torch.tensor(2.0)).numpy()
    np.testing.assert_allclose(point, (-0.75, 0.75, 0.0))
    np.testing.assert_allclose(project(camera, (1, -1, 0))[:2], (4, 4))


def test_depth_is_the_distance_from_the_image_plane():
    rig = cube6_rig(64)
    assert project(rig.cameras[0], (0.3, -0.2, 1.0))[2] == pytest.approx(1.0)  # front camera at z = 2
    assert project(rig.cameras[4], (0.3, -1.0, 0.5))[2] == pytest.approx(3.0)  # top camera at y = 2


def perspective_camera() -> Camera:
    return parse_cameras_json(perspective_cameras_json(64), 64, 64).cameras[1]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1, 1), min_size=3, max_size=3), st.sampled_from(["ortho", "perspective"]))
def test_unproject_inverts_project(point, model):
    camera = cube6_rig(64).cameras[2] if model == "ortho" else perspective_camera()
    uvd = camera.project(torch.tensor([point], dtype=torch.float64))[0]
    back = camera.unproject(uvd[0], uvd[1], uvd[2])
    np.testing.assert_allclose(back.numpy(), point, atol=1e-9)


def test_perspective_depth_is_z_depth_not_ray_length():
    camera = perspective_camera()  # the right camera, at x = 3.5 looking along -X
    assert project(camera, (0.0, 0.9, -0.9))[2] == pytest.approx(3.5)


def test_view_dirs_point_from_the_camera_to_the_point():
    camera = perspective_camera()
    direction = camera.view_dirs(torch.tensor([[0.0, 3.5, 0.0]], dtype=torch.float64))[0].numpy()
    np.testing.assert_allclose(direction, np.array([-3.5, 3.5, 0]) / np.hypot(3.5, 3.5))
    ortho = cube6_rig(8).cameras[4].view_dirs(torch.zeros(2, 3, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(ortho, [[0, -1, 0]] * 2)


@pytest.mark.parametrize("bits", [8, 16])
def test_depth_encoding_round_trip_background_and_clamping(bits):
    encoding = cube6_rig(8).depth
    vmax = 2**bits - 1
    depth = np.array([0.0, 0.5, 3.5, 1.7, 0.1, 9.0])
    values = encoding.encode(depth, bits)
    assert values.dtype == (np.uint16 if bits == 16 else np.uint8)
    assert values[0] == 0  # background
    assert values[1] == 1  # a surface at `near` must not read as background
    assert values[2] == vmax and values[5] == vmax and values[4] == 1  # clamped into [near, far]
    decoded = encoding.decode(values, bits)
    assert decoded[0] == 0
    assert abs(decoded[3] - 1.7) <= 0.5 * 3.0 / vmax + 1e-6
    assert decoded[2] == pytest.approx(3.5)


def test_depth_unit_scale_factor_encoding():
    encoding = DepthEncoding(unit_scale=0.001)
    np.testing.assert_allclose(encoding.decode(np.array([0, 1500]), 16), [0.0, 1.5])
    np.testing.assert_array_equal(encoding.encode(np.array([0.0, 1.5, 0.0001]), 16), [0, 1500, 1])


def test_cube6_cameras_json_parses_back_to_the_same_rig():
    rig = cube6_rig(128)
    data = json.loads(json.dumps(rig_to_cameras_json(rig)))
    assert data["camera_model"] == "ORTHO" and data["ortho_scale"] == 1.0
    parsed = parse_cameras_json(data, 128, 128)
    assert parsed.cameras == rig.cameras
    assert parsed.depth == rig.depth


def test_the_contracts_perspective_example_parses():
    rig = parse_cameras_json(perspective_cameras_json(512), 512, 512)
    assert [c.model for c in rig.cameras] == ["PERSPECTIVE"] * 6
    assert rig.depth == DepthEncoding(near=0.5, far=6.0)
    corner = project(rig.cameras[0], (1, 1, 1))  # it sees all of [-1, 1]^3
    assert 0 < corner[0] < 512 and 0 < corner[1] < 512


def test_a_frame_may_override_an_intrinsic():
    data = perspective_cameras_json(64)
    data["frames"][3]["fl_x"] = 80.0
    rig = parse_cameras_json(data, 64, 64)
    assert rig.cameras[3].fx == 80.0 and rig.cameras[2].fx != 80.0


def _set(path: list, value):
    def mutate(data: dict) -> None:
        target = data
        for key in path[:-1]:
            target = target[key]
        if value is DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return mutate


DELETE = object()
SCALED = (np.diag([2.0, 2.0, 2.0, 1.0])).tolist()
MIRRORED = (np.diag([-1.0, 1.0, 1.0, 1.0])).tolist()

BAD_KEYS = {
    "frames missing": (_set(["frames"], DELETE), "cameras.frames"),
    "five frames": (lambda d: d["frames"].pop(), "cameras.frames"),
    "frames not a list": (_set(["frames"], {}), "cameras.frames"),
    "frame not an object": (_set(["frames", 2], [1, 2]), "cameras.frames[2]"),
    "matrix missing": (_set(["frames", 2, "transform_matrix"], DELETE), "cameras.frames[2].transform_matrix"),
    "matrix 3x4": (_set(["frames", 2, "transform_matrix"], [[1, 0, 0, 0]] * 3), "cameras.frames[2].transform_matrix"),
    "matrix with text": (lambda d: d["frames"][1]["transform_matrix"][0].__setitem__(3, "x"),
                         "cameras.frames[1].transform_matrix"),
    "matrix non-finite": (lambda d: d["frames"][4]["transform_matrix"][1].__setitem__(3, float("nan")),
                          "cameras.frames[4].transform_matrix"),
    "matrix scaled": (_set(["frames", 0, "transform_matrix"], SCALED), "cameras.frames[0].transform_matrix"),
    "matrix mirrored": (_set(["frames", 5, "transform_matrix"], MIRRORED), "cameras.frames[5].transform_matrix"),
    "matrix bottom row": (lambda d: d["frames"][3]["transform_matrix"][3].__setitem__(0, 1.0),
                          "cameras.frames[3].transform_matrix"),
    "unknown model": (_set(["camera_model"], "FISHEYE"), "cameras.camera_model"),
    "model missing": (_set(["camera_model"], DELETE), "cameras.camera_model"),
    "width differs": (_set(["w"], 256), "cameras.w"),
    "height missing": (_set(["h"], DELETE), "cameras.h"),
    "focal negative": (_set(["fl_x"], -5.0), "cameras.fl_x"),
    "focal text": (_set(["fl_y"], "549"), "cameras.fl_y"),
    "focal infinite": (_set(["fl_y"], float("inf")), "cameras.fl_y"),
    "cx missing": (_set(["cx"], DELETE), "cameras.cx"),
    "frame override bad": (_set(["frames", 3, "fl_x"], 0), "cameras.frames[3].fl_x"),
    "frame width differs": (_set(["frames", 1, "w"], 100), "cameras.frames[1].w"),
    "distortion": (_set(["k1"], 0.1), "cameras.k1"),
    "far before near": (_set(["depth_far"], 0.4), "cameras.depth_far"),
    "near missing": (_set(["depth_near"], DELETE), "cameras.depth_near"),
    "near negative": (_set(["depth_near"], -1), "cameras.depth_near"),
    "two encodings": (_set(["depth_unit_scale_factor"], 0.001), "cameras.depth_unit_scale_factor"),
}


@pytest.mark.parametrize("case", BAD_KEYS)
def test_cameras_json_errors_name_the_key(case):
    mutate, field = BAD_KEYS[case]
    data = copy.deepcopy(perspective_cameras_json(512))
    mutate(data)
    with pytest.raises(FileValidationError) as error:
        parse_cameras_json(data, 512, 512)
    assert error.value.field == field
    assert error.value.message


def test_cameras_json_must_be_an_object():
    with pytest.raises(FileValidationError) as error:
        parse_cameras_json([1, 2], 512, 512)
    assert error.value.field == "cameras"


def test_ortho_needs_its_scale():
    data = rig_to_cameras_json(cube6_rig(64))
    del data["ortho_scale"]
    with pytest.raises(FileValidationError) as error:
        parse_cameras_json(data, 64, 64)
    assert error.value.field == "cameras.ortho_scale"


def test_a_slightly_imprecise_rotation_is_accepted():
    data = perspective_cameras_json(64)
    data["frames"][0]["transform_matrix"] = np.round(np.array(data["frames"][0]["transform_matrix"]), 5).tolist()
    parse_cameras_json(data, 64, 64)
