"""The shipped examples in examples/: what examples/make_examples.py builds and the page offers.

Rebuilding them here would be too slow; these check what the build promises instead: every folder has
the twelve inputs, a thumbnail and (for its own rig) cameras.json, everything comes from inside the
repository, and Spot faces the front camera.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.support.processes import REPO
from worker.recon.rig import PERSPECTIVE, SLOT_NAMES, parse_cameras_json

EXAMPLES = REPO / "examples"
CATALOGUE = json.loads((EXAMPLES / "catalogue.json").read_text())
SIZE = 256


def depth_bits(path) -> int:
    return {"L": 8, "I;16": 16, "I": 16}[Image.open(path).mode]


@pytest.mark.parametrize("entry", CATALOGUE, ids=[entry["name"] for entry in CATALOGUE])
def test_every_example_has_its_twelve_inputs_and_a_thumbnail(entry):
    folder = EXAMPLES / entry["name"]
    for index, slot in enumerate(SLOT_NAMES):
        view, depth = folder / f"view_{index}_{slot}.png", folder / f"depth_{index}_{slot}.png"
        assert Image.open(view).mode == "RGBA" and Image.open(view).size == (SIZE, SIZE)
        assert Image.open(depth).size == (SIZE, SIZE) and depth_bits(depth) == entry["depth_bits"]
    thumbnail = np.asarray(Image.open(folder / "thumbnail.png"))
    assert thumbnail.shape == (128, 128, 4) and (thumbnail[..., 3] > 0).mean() > 0.1


@pytest.mark.parametrize("entry", CATALOGUE, ids=[entry["name"] for entry in CATALOGUE])
def test_an_example_carries_cameras_json_exactly_when_its_rig_is_not_cube6(entry):
    cameras = EXAMPLES / entry["name"] / "cameras.json"
    if entry["rig"] == "cube6":
        assert not cameras.exists()
        return
    shipped = parse_cameras_json(json.loads(cameras.read_text()), SIZE, SIZE)
    source = parse_cameras_json(json.loads((EXAMPLES / entry["rig"]).read_text()), SIZE, SIZE)
    assert shipped.cameras == source.cameras and shipped.depth == source.depth


def test_the_catalogue_offers_a_textured_mesh_a_perspective_rig_and_8_bit_depth():
    assert 4 <= len(CATALOGUE) <= 6
    assert any((EXAMPLES / entry["mesh"]).with_suffix(".mtl").exists() for entry in CATALOGUE)
    rigs = [json.loads((EXAMPLES / entry["rig"]).read_text()) for entry in CATALOGUE if entry["rig"] != "cube6"]
    assert any(rig["camera_model"] == PERSPECTIVE for rig in rigs)
    assert any(entry["depth_bits"] == 8 for entry in CATALOGUE)


def test_every_source_is_inside_examples_with_its_licence_noted():
    notes = (EXAMPLES / "meshes" / "README.md").read_text()
    for entry in CATALOGUE:
        mesh = (EXAMPLES / entry["mesh"]).resolve()
        assert mesh.is_file() and mesh.is_relative_to(EXAMPLES)
        assert mesh.name in notes
    assert {path.name for path in (EXAMPLES / "meshes").glob("*.obj")} == {
        (EXAMPLES / entry["mesh"]).name for entry in CATALOGUE
    }


def test_spot_faces_the_front_camera():
    """Seen from the front, Spot's head is nearer the camera than its body; seen from behind it is farther."""
    depth = np.asarray(Image.open(EXAMPLES / "spot" / "depth_0_front.png")).astype(np.float64)
    rows = np.flatnonzero((depth > 0).any(axis=1))
    top, height = rows.min(), rows.max() - rows.min()
    head = depth[top: top + int(0.35 * height)]
    body = depth[top + int(0.5 * height): top + int(0.75 * height)]
    assert np.median(head[head > 0]) < 0.85 * np.median(body[body > 0])
