"""docs/INPUT_FORMAT.md says what the code does: the cube6 table, pixel centres, depth range, masks and limits."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from worker.jobs.uploads import MAX_JSON_NESTING
from worker.recon.inputs import ALPHA_THRESHOLD
from worker.recon.rig import CUBE6_FAR, CUBE6_NEAR, SLOT_NAMES, DepthEncoding, cube6_rig

DOC = (Path(__file__).resolve().parents[2] / "docs" / "INPUT_FORMAT.md").read_text()
AXES = {"X": (1, 0, 0), "Y": (0, 1, 0), "Z": (0, 0, 1)}
ROW = re.compile(r"^\| (\d) \| (\w+) \| \(([^)]*)\) \| (\S+) \| (\S+) \| (\S+) \|$", re.M)


def axis(text: str) -> np.ndarray:
    """'−Z' or '+Y' as a unit vector."""
    sign = -1 if text[0] in "−-" else 1
    return sign * np.array(AXES[text[1]], dtype=float)


def cube6_table() -> list[tuple]:
    return ROW.findall(DOC)


def test_the_cube6_table_lists_the_six_slots_in_order():
    assert [(int(slot), name) for slot, name, *_ in cube6_table()] == list(enumerate(SLOT_NAMES))


@pytest.mark.parametrize("row", cube6_table(), ids=lambda row: row[1])
def test_each_cube6_camera_sits_and_looks_as_the_table_says(row):
    slot, _, position, looking, up, right = row
    camera = cube6_rig(8).cameras[int(slot)]
    position = np.array([float(value.replace("−", "-")) for value in position.split(",")])
    np.testing.assert_allclose(camera.position, position, atol=1e-9)
    np.testing.assert_allclose(camera.forward, axis(looking), atol=1e-9)
    np.testing.assert_allclose(camera.cam_to_world[:3, 1], axis(up), atol=1e-9)
    np.testing.assert_allclose(camera.cam_to_world[:3, 0], axis(right), atol=1e-9)


def test_pixel_centres_of_cube6_are_where_the_formula_puts_them():
    width = 4
    front = cube6_rig(width).cameras[0]  # image right is +X, image up is +Y
    rows, cols = torch.meshgrid(torch.arange(width), torch.arange(width), indexing="ij")
    points = front.unproject(cols + 0.5, rows + 0.5, torch.ones(width, width, dtype=torch.float64))
    np.testing.assert_allclose(points[..., 0], -1 + (2 * cols + 1) / width)
    np.testing.assert_allclose(points[..., 1], 1 - (2 * rows + 1) / width)


def test_the_depth_encoding_and_its_range_are_the_documented_ones():
    assert f"near = {CUBE6_NEAR}, far = {CUBE6_FAR}" in DOC
    assert "depth = near + (*v* / vmax) × (far − near)" in DOC
    encoding = DepthEncoding(near=CUBE6_NEAR, far=CUBE6_FAR)
    np.testing.assert_allclose(encoding.decode(np.array([0, 1, 255]), 8), [0, CUBE6_NEAR + 3 / 255, CUBE6_FAR])
    np.testing.assert_allclose(encoding.decode(np.array([65535]), 16), [CUBE6_FAR])
    assert encoding.encode(np.array([CUBE6_NEAR]), 16)[0] == 1  # a surface at near is not background


def test_the_mask_threshold_and_the_json_nesting_limit_are_the_documented_ones():
    assert f"alpha ≥ {ALPHA_THRESHOLD}" in DOC
    assert f"nested deeper than {MAX_JSON_NESTING} levels" in DOC
