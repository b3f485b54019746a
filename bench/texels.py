"""Black texels: the colour failure a person sees as dark blotches when turning a mesh.

A texel is black when it lies inside the atlas's charts (the rasterised UV triangles
of the result) and its sRGB luminance is below BLACK_LUMINANCE, while the ground
truth at the texel's surface point (the nearest reference vertex's colour) is not
dark (luminance at least TRUTH_LUMINANCE): so a genuinely black object scores zero.
"""

from __future__ import annotations

import numpy as np
import torch
import trimesh
from scipy.spatial import cKDTree

from worker.recon.bake import texture_space_camera
from worker.recon.raster import rasterize

BLACK_LUMINANCE = 0.05
TRUTH_LUMINANCE = 0.15
LUMINANCE = np.array([0.2126, 0.7152, 0.0722])


def black_texels(result: trimesh.Trimesh, reference_points: np.ndarray, reference_srgb: np.ndarray) -> int | None:
    """How many texels inside the result's charts are black where the reference is not; None without a texture."""
    visual = result.visual
    if visual.kind != "texture" or getattr(visual.material, "baseColorTexture", None) is None:
        return None
    texture = np.asarray(visual.material.baseColorTexture.convert("RGB"), dtype=np.float32) / 255.0
    size = texture.shape[0]
    uv = np.asarray(visual.uv, dtype=np.float32)  # trimesh convention: v up
    plane = torch.as_tensor(np.column_stack((uv[:, 0], uv[:, 1] - 1.0, -np.ones(len(uv)))), dtype=torch.float32)
    faces = torch.as_tensor(np.asarray(result.faces), dtype=torch.int64)
    raster = rasterize(texture_space_camera(size), plane, faces)
    inside = (raster.tri_id >= 0).numpy()
    corners = np.asarray(result.vertices)[np.asarray(result.faces)[raster.tri_id.numpy()[inside]]]
    points = (corners * raster.bary.numpy()[inside][..., None]).sum(axis=1)
    _, nearest = cKDTree(reference_points).query(points)
    truth = reference_srgb[nearest] @ LUMINANCE
    return int(((texture[inside] @ LUMINANCE < BLACK_LUMINANCE) & (truth >= TRUTH_LUMINANCE)).sum())
