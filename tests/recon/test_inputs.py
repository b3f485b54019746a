"""load_inputs: colour space, silhouettes (alpha or depth), depth decoding, and sentences instead of tracebacks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from worker.errors import ReconstructionFailed
from worker.recon.colour import linear_to_srgb, srgb_to_linear
from worker.recon.inputs import load_inputs
from worker.recon.rig import cube6_rig, rig_to_cameras_json

from .scenes import input_paths

SIZE = 16


def write_inputs(directory, *, alpha: bool = True, depth_mode: str = "I;16", size: int = SIZE):
    """A disc on every view: colour sRGB (200, 100, 50), depth value 30000 inside, alpha 255 inside."""
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size / 2 + 0.5) ** 2 + (xx - size / 2 + 0.5) ** 2 < (size / 3) ** 2
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[disc] = (200, 100, 50, 255)
    views, depths = input_paths(directory)
    for view, depth in zip(views, depths):
        Image.fromarray(rgba if alpha else np.ascontiguousarray(rgba[..., :3])).save(view)
        if depth_mode == "I;16":
            Image.fromarray(np.where(disc, 30000, 0).astype(np.uint16)).save(depth)
        elif depth_mode == "L":
            Image.fromarray(np.where(disc, 100, 0).astype(np.uint8)).save(depth)
        else:  # RGB with three equal channels
            grey = np.where(disc, 100, 0).astype(np.uint8)
            Image.fromarray(np.stack([grey] * 3, axis=-1)).save(depth)
    return views, depths, disc


def test_colours_are_linear_and_masks_come_from_alpha(tmp_path):
    views, depths, disc = write_inputs(tmp_path)
    inputs = load_inputs(views, depths, None)
    assert inputs.colors.shape == (6, SIZE, SIZE, 3) and inputs.colors.dtype == np.float32
    np.testing.assert_allclose(inputs.colors[0][disc][0], srgb_to_linear(np.array([200, 100, 50]) / 255), rtol=1e-6)
    assert inputs.colors[0][disc][0][0] == pytest.approx(0.578, abs=1e-3)
    np.testing.assert_array_equal(inputs.masks[3], disc)
    assert inputs.depth_bits == 16
    np.testing.assert_allclose(inputs.depths[0][disc], 0.5 + 30000 / 65535 * 3.0, rtol=1e-6)
    assert (inputs.depths[0][~disc] == 0).all()
    assert inputs.rig.cameras == cube6_rig(SIZE).cameras


def test_without_alpha_the_mask_is_where_depth_is_non_zero(tmp_path):
    views, depths, disc = write_inputs(tmp_path, alpha=False, depth_mode="L")
    inputs = load_inputs(views, depths, None)
    np.testing.assert_array_equal(inputs.masks[0], disc)
    assert inputs.depth_bits == 8


def test_an_all_opaque_alpha_channel_is_ignored(tmp_path):
    views, depths, disc = write_inputs(tmp_path)
    opaque = np.asarray(Image.open(views[2])).copy()
    opaque[..., 3] = 255
    Image.fromarray(opaque).save(views[2])
    np.testing.assert_array_equal(load_inputs(views, depths, None).masks[2], disc)


def test_depth_outside_the_silhouette_is_dropped_and_a_silhouette_pixel_may_lack_depth(tmp_path):
    views, depths, disc = write_inputs(tmp_path)
    values = np.asarray(Image.open(depths[0])).astype(np.uint16)
    values[0, 0] = 5000  # outside the disc
    values[SIZE // 2, SIZE // 2] = 0  # inside the disc
    Image.fromarray(values).save(depths[0])
    inputs = load_inputs(views, depths, None)
    assert inputs.depths[0][0, 0] == 0
    assert inputs.masks[0][SIZE // 2, SIZE // 2] and inputs.depths[0][SIZE // 2, SIZE // 2] == 0


def test_rgb_depth_with_equal_channels_is_read_as_grey(tmp_path):
    views, depths, disc = write_inputs(tmp_path, depth_mode="RGB")
    inputs = load_inputs(views, depths, None)
    np.testing.assert_allclose(inputs.depths[1][disc], 0.5 + 100 / 255 * 3.0, rtol=1e-6)


def test_cameras_json_gives_the_rig(tmp_path):
    views, depths, _ = write_inputs(tmp_path)
    cameras = json.loads(json.dumps(rig_to_cameras_json(cube6_rig(SIZE))))
    cameras["depth_far"] = 5.0
    assert load_inputs(views, depths, cameras).rig.depth.far == 5.0


def test_problems_become_sentences(tmp_path):
    views, depths, _ = write_inputs(tmp_path)
    with pytest.raises(ReconstructionFailed, match="cameras.frames"):
        load_inputs(views, depths, {"camera_model": "ORTHO", "frames": []})
    with pytest.raises(ReconstructionFailed, match="exactly 6"):
        load_inputs(views[:5], depths, None)
    Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8) + np.arange(3, dtype=np.uint8)).save(depths[4])
    with pytest.raises(ReconstructionFailed, match="top depth render"):
        load_inputs(views, depths, None)
    write_inputs(tmp_path, size=SIZE * 2)
    Image.fromarray(np.zeros((SIZE, SIZE, 4), np.uint8)).save(views[5])
    with pytest.raises(ReconstructionFailed, match="bottom"):
        load_inputs(views, depths, None)
    views[0].write_bytes(b"not a png")
    with pytest.raises(ReconstructionFailed, match="front view"):
        load_inputs(views, depths, None)


def test_srgb_round_trip():
    values = np.linspace(0, 1, 101)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(values)), values, atol=1e-5)
