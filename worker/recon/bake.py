"""Bake a base-colour texture from the views into a mesh's UV atlas.

Every texel is a point on the surface: rasterizing the mesh in texture space (the
exact rasterizer, seen through an orthographic camera that looks at the UV plane)
gives each texel its triangle and barycentrics, hence its 3D point and smooth
normal. The texel then takes its colour like a vertex does (colour.vertex_colours):
from the views whose depth map agrees with its depth, weighted by how frontally
they see it, averaged in linear light. Texels no view sees take the mesh's
(gap-filled) vertex colours; seams are padded by copying the nearest texel into
the empty atlas space around every chart, so that bilinear filtering and mipmaps
do not pull in background.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

from .atlas import Atlas
from .colour import linear_to_srgb8, vertex_colours
from .raster import rasterize
from .rig import ORTHO, Camera

PADDING_TEXELS = 4


def texture_space_camera(size: int) -> Camera:
    """An orthographic camera whose image is the UV square: the point (u, -v, -1) lands on texel column u * size,
    row v * size (UVs in image convention, row 0 at the top)."""
    return Camera(ORTHO, np.eye(4), size, size, float(size), float(size), 0.0, 0.0)


def bake_texture(
    vertices: torch.Tensor,
    normals: torch.Tensor,
    atlas: Atlas,
    size: int,
    cameras: tuple[Camera, ...],
    colors: torch.Tensor,
    masks: torch.Tensor,
    depths: torch.Tensor,
    tolerance: float,
    fallback: torch.Tensor,
    on_view: Callable[[float], None] = lambda views_done: None,
) -> tuple[np.ndarray, float]:
    """The sRGB texture (size, size, 3) uint8 and the share of covered texels that some view saw.

    `vertices`, `normals` and `fallback` (linear colours for what no view sees) are per input vertex; the atlas
    maps its vertices onto them. colors, masks, depths and `tolerance` are as for colour.vertex_colours.
    """
    device = vertices.device
    source = torch.as_tensor(atlas.source, device=device)
    faces = torch.as_tensor(atlas.faces, device=device)
    uv = torch.as_tensor(atlas.uv, dtype=torch.float32, device=device)
    plane = torch.stack((uv[:, 0], -uv[:, 1], torch.full_like(uv[:, 0], -1.0)), dim=1)
    raster = rasterize(texture_space_camera(size), plane, faces)
    covered = raster.tri_id >= 0
    texel_faces = faces[raster.tri_id[covered]]  # (N, 3)
    weights = raster.bary[covered][..., None]
    points = (vertices[source[texel_faces]] * weights).sum(dim=1)
    texel_normals = torch.nn.functional.normalize((normals[source[texel_faces]] * weights).sum(dim=1), dim=1)
    linear, seen = vertex_colours(points, texel_normals, cameras, colors, masks, depths, tolerance, on_view)
    unseen = ~seen
    if unseen.any():
        linear[unseen] = (fallback[source[texel_faces[unseen]]] * weights[unseen]).sum(dim=1)

    image = np.zeros((size, size, 3), dtype=np.float32)
    covered_np = covered.cpu().numpy()
    image[covered_np] = linear.cpu().numpy()
    distance, (rows, cols) = distance_transform_edt(~covered_np, return_indices=True)
    pad = (distance > 0) & (distance <= PADDING_TEXELS)
    image[pad] = image[rows[pad], cols[pad]]
    return linear_to_srgb8(image), float(seen.float().mean().item()) if seen.numel() else 0.0

