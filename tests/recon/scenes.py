"""Test scenes with known answers: meshes, the contract's perspective rig, and reading rendered inputs back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import trimesh

from worker.recon.inputs import ReconInputs, load_inputs
from worker.recon.rig import SLOT_NAMES, look_at

# The table of INPUT_FORMAT.md: slot -> (camera position, looks toward, image up, image right).
CUBE6_TABLE = {
    "front": ((0, 0, 2), (0, 0, -1), (0, 1, 0), (1, 0, 0)),
    "right": ((2, 0, 0), (-1, 0, 0), (0, 1, 0), (0, 0, -1)),
    "back": ((0, 0, -2), (0, 0, 1), (0, 1, 0), (-1, 0, 0)),
    "left": ((-2, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1)),
    "top": ((0, 2, 0), (0, -1, 0), (0, 0, -1), (1, 0, 0)),
    "bottom": ((0, -2, 0), (0, 1, 0), (0, 0, 1), (1, 0, 0)),
}

FACE_COLOURS = {  # outward normal -> sRGB colour of that face of the colour cube
    (1, 0, 0): (230, 30, 30), (-1, 0, 0): (30, 200, 40), (0, 1, 0): (40, 60, 230),
    (0, -1, 0): (240, 220, 30), (0, 0, 1): (220, 40, 220), (0, 0, -1): (30, 220, 220),
}


def perspective_cameras_json(size: int = 512) -> dict:
    """The contract's example: 50-degree pinhole cameras at distance 3.5 on the axes, cube6 orientations."""
    focal = size / 2 / np.tan(np.radians(25))
    frames = [
        {"transform_matrix": look_at(tuple(3.5 * np.array(position) / 2), toward, up).tolist()}
        for position, toward, up, _ in CUBE6_TABLE.values()
    ]
    return {"camera_model": "PERSPECTIVE", "w": size, "h": size, "fl_x": focal, "fl_y": focal,
            "cx": size / 2, "cy": size / 2, "depth_near": 0.5, "depth_far": 6.0, "frames": frames}


def sphere() -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=5, radius=0.7)


def box() -> trimesh.Trimesh:
    return trimesh.creation.box((1.2, 0.8, 1.0))


def colour_cube() -> trimesh.Trimesh:
    cube = trimesh.creation.box((1.2, 1.2, 1.2))
    colours = [FACE_COLOURS[tuple(np.round(n).astype(int))] + (255,) for n in cube.face_normals]
    cube.visual = trimesh.visual.ColorVisuals(cube, face_colors=np.array(colours, dtype=np.uint8))
    return cube


def input_paths(directory: Path) -> tuple[list[Path], list[Path]]:
    views = [directory / f"view_{i}_{slot}.png" for i, slot in enumerate(SLOT_NAMES)]
    depths = [directory / f"depth_{i}_{slot}.png" for i, slot in enumerate(SLOT_NAMES)]
    return views, depths


def load(directory: Path) -> ReconInputs:
    """Inputs written by render_inputs; cube6 (no cameras.json) unless the rig was a perspective one."""
    cameras = json.loads((directory / "cameras.json").read_text())
    return load_inputs(*input_paths(directory), None if cameras["camera_model"] == "ORTHO" else cameras)


def bored_block() -> trimesh.Trimesh:
    """A block with a round through-bore along z: no view sees the bore's walls but at a grazing angle."""
    from skimage.measure import marching_cubes

    axis = np.linspace(-1, 1, 97)
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    block = np.maximum.reduce([np.abs(x) - 0.7, np.abs(y) - 0.5, np.abs(z) - 0.5])
    sdf = np.maximum(block, 0.2 - np.hypot(x - 0.1, y))
    vertices, faces, _, _ = marching_cubes(sdf, 0.0, spacing=(2 / 96,) * 3)
    return trimesh.Trimesh(vertices - 1.0, faces, process=True)  # skimage winds outward for an SDF
