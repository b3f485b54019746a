"""Write the result as a binary glTF: +Y up, the input's world frame and units, colours as glTF defines them.

Vertex colours (COLOR_0) are linear; a base-colour texture is sRGB, on a PBR
material that is fully rough and not metallic, so viewers show the views' colours.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh
from PIL import Image

from .atlas import Atlas

# glTF sampler: bilinear, trilinear between mipmaps, no wrapping across the atlas border.
LINEAR = 9729
LINEAR_MIPMAP_LINEAR = 9987
CLAMP_TO_EDGE = 33071
PNG_COMPRESS_LEVEL = 1  # a texture is written once per job: encoding 3x faster beats a 30% smaller file


def write_coloured_glb(path: Path, vertices: np.ndarray, faces: np.ndarray, normals: np.ndarray, atlas: Atlas | None,
                       colours: np.ndarray) -> None:
    """`write_textured_glb` where there is an atlas (`colours`: its sRGB texture (T, T, 3) uint8), else
    `write_glb` (`colours`: linear per vertex (V, 3))."""
    if atlas is None:
        write_glb(path, vertices, faces, normals, colours)
    else:
        write_textured_glb(path, vertices, normals, atlas, colours)


def write_glb(path: Path, vertices: np.ndarray, faces: np.ndarray, normals: np.ndarray, linear_rgb: np.ndarray) -> None:
    """Mesh with NORMAL and COLOR_0 (linear, as glTF defines it); no node transform, so vertices are world points."""
    rgba = np.empty((len(vertices), 4), dtype=np.uint8)
    rgba[:, :3] = np.round(np.clip(linear_rgb, 0.0, 1.0) * 255.0)
    rgba[:, 3] = 255
    mesh = trimesh.Trimesh(vertices, faces, vertex_normals=normals, vertex_colors=rgba, process=False)
    Path(path).write_bytes(mesh.export(file_type="glb", include_normals=True))


def write_textured_glb(path: Path, vertices: np.ndarray, normals: np.ndarray, atlas: Atlas,
                       srgb_texture: np.ndarray) -> None:
    """The mesh split along the atlas's seams, with NORMAL, TEXCOORD_0 and a PBR material whose baseColorTexture
    is the sRGB texture (H, W, 3) uint8; `vertices` and `normals` are per input vertex of the atlas.

    Atlas UVs are in image convention (row 0 at the top), which is glTF's; trimesh keeps OBJ's (v up) and flips
    on export, so it is handed 1 - v.
    """
    image = Image.fromarray(srgb_texture, "RGB")
    image.encoderinfo = {"compress_level": PNG_COMPRESS_LEVEL}  # Pillow's documented way to pass save() options
    material = trimesh.visual.material.PBRMaterial(
        name="baked", baseColorTexture=image, metallicFactor=0.0, roughnessFactor=1.0,
    )
    flipped = np.column_stack((atlas.uv[:, 0], 1.0 - atlas.uv[:, 1]))
    visual = trimesh.visual.TextureVisuals(uv=flipped, material=material)
    mesh = trimesh.Trimesh(vertices[atlas.source], atlas.faces, vertex_normals=normals[atlas.source], visual=visual,
                           process=False)
    data = trimesh.exchange.gltf.export_glb(mesh, include_normals=True, tree_postprocessor=_add_sampler)
    Path(path).write_bytes(data)


def _add_sampler(tree: dict) -> None:
    """trimesh writes textures without a sampler; give them an explicit one (filtering, clamped edges)."""
    tree["samplers"] = [{"magFilter": LINEAR, "minFilter": LINEAR_MIPMAP_LINEAR,
                         "wrapS": CLAMP_TO_EDGE, "wrapT": CLAMP_TO_EDGE}]
    for texture in tree.get("textures", []):
        texture["sampler"] = 0
