"""Stand-in for trellis.utils.postprocessing_utils (see trellis/__init__.py)."""

from __future__ import annotations

import numpy as np
import trimesh
from PIL import Image

calls: list[dict] = []


def to_glb(gaussian, mesh, simplify: float = 0.95, texture_size: int = 1024, verbose: bool = True) -> trimesh.Trimesh:
    """Like upstream: back to Y-up, with a baked base-colour texture (here one colour) on a UV layout."""
    calls.append({"simplify": simplify, "texture_size": texture_size})
    vertices = mesh.vertices @ np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    image = Image.new("RGB", (texture_size, texture_size), gaussian.colour)
    uv = (vertices[:, :2] - vertices[:, :2].min(axis=0)) / np.ptp(vertices[:, :2], axis=0).max()
    material = trimesh.visual.material.PBRMaterial(baseColorTexture=image)
    visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    return trimesh.Trimesh(vertices, mesh.faces, visual=visual, process=False)
