"""The result GLB in the formats other tools read: OBJ (zipped with its material and texture), PLY, STL, USDZ.

Every format is made from the GLB as written, so all of them carry the same
vertices, triangles and bounds. Formats without textures get the colour people
see: PLY's vertex colours are sRGB, sampled from the texture at each vertex when
the GLB is textured, converted from glTF's linear COLOR_0 otherwise.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import trimesh

from .colour import linear_to_srgb8
from .export_usdz import write_usdz

FORMATS = ("glb", "obj", "ply", "stl", "usdz")
OBJ_NAME = "model.obj"
MTL_NAME = "model.mtl"
TEXTURE_NAME = "texture.png"
# Diffuse only (illum 1: no specular), like the GLB's fully rough, non-metallic material; no Ka, which some
# importers read as metalness.
MTL_TEXT = f"newmtl baked\nKd 1 1 1\nillum 1\nmap_Kd {TEXTURE_NAME}\n"
ZIP_LEVEL = 1  # made once per job on request: 3x faster than the default level for a 10% larger zip


def load_result(glb: Path) -> trimesh.Trimesh:
    """The GLB as one mesh in world space, its vertices, normals and UVs as stored.

    The engine writes one mesh with no node transform, which is taken as it is (trimesh's own flattening
    recomputes the stored normals); a GLB of several placed meshes is flattened into one."""
    loaded = trimesh.load(Path(glb), file_type="glb", process=False)
    if isinstance(loaded, trimesh.Scene):
        placed = []
        for node in loaded.graph.nodes_geometry:
            transform, name = loaded.graph[node]
            mesh = loaded.geometry[name]
            placed.append(mesh if np.allclose(transform, np.eye(4)) else mesh.copy().apply_transform(transform))
        loaded = placed[0] if len(placed) == 1 else trimesh.util.concatenate(placed)
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise ValueError(f"{glb} holds no triangle mesh")
    return loaded


def is_textured(mesh: trimesh.Trimesh) -> bool:
    visual = mesh.visual
    return (visual.kind == "texture" and visual.uv is not None
            and getattr(visual.material, "baseColorTexture", None) is not None)


def srgb_vertex_colours(mesh: trimesh.Trimesh) -> np.ndarray:
    """(V, 4) uint8 sRGB colours: the texture sampled at each vertex's UV, or COLOR_0 (linear) converted."""
    if is_textured(mesh):
        return np.asarray(mesh.visual.to_color().vertex_colors, dtype=np.uint8)
    rgba = np.asarray(mesh.visual.vertex_colors, dtype=np.uint8).copy()
    rgba[:, :3] = linear_to_srgb8(rgba[:, :3] / 255.0)
    return rgba


def _plain(mesh: trimesh.Trimesh, colours: np.ndarray | None = None) -> trimesh.Trimesh:
    return trimesh.Trimesh(mesh.vertices, mesh.faces, vertex_normals=mesh.vertex_normals, vertex_colors=colours,
                           process=False)


def write_obj_zip(mesh: trimesh.Trimesh, out: Path) -> None:
    """A zip of model.obj, model.mtl and the texture PNG; untextured, model.obj alone with sRGB vertex colours."""
    textured = is_textured(mesh)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=ZIP_LEVEL) as archive:
        archive.writestr(OBJ_NAME, _obj_text(mesh, textured))
        if textured:
            archive.writestr(MTL_NAME, MTL_TEXT)
            image = io.BytesIO()
            mesh.visual.material.baseColorTexture.convert("RGB").save(image, "PNG", compress_level=1)
            archive.writestr(TEXTURE_NAME, image.getvalue(), zipfile.ZIP_STORED)


def _lines(template: str, values: np.ndarray) -> str:
    """`template` filled with each row of `values`, in one C-level format: 3x faster than trimesh's OBJ writer."""
    return (template * len(values)) % tuple(values.ravel().tolist())


def _obj_text(mesh: trimesh.Trimesh, textured: bool) -> str:
    """Vertices (with sRGB colours when untextured), UVs (v up, as OBJ and trimesh keep them), normals, triangles
    whose corners use the same index for all three."""
    corners = np.repeat(mesh.faces + 1, 3 if textured else 2, axis=1)
    if textured:
        parts = ["mtllib " + MTL_NAME + "\nusemtl baked\n", _lines("v %.8f %.8f %.8f\n", mesh.vertices),
                 _lines("vt %.8f %.8f\n", mesh.visual.uv), _lines("vn %.8f %.8f %.8f\n", mesh.vertex_normals),
                 _lines("f %d/%d/%d %d/%d/%d %d/%d/%d\n", corners)]
    else:
        rgb = srgb_vertex_colours(mesh)[:, :3] / 255.0
        parts = [_lines("v %.8f %.8f %.8f %.4f %.4f %.4f\n", np.column_stack((mesh.vertices, rgb))),
                 _lines("vn %.8f %.8f %.8f\n", mesh.vertex_normals), _lines("f %d//%d %d//%d %d//%d\n", corners)]
    return "".join(parts)


def write_ply(mesh: trimesh.Trimesh, out: Path) -> None:
    """Binary PLY with normals and sRGB vertex colours."""
    Path(out).write_bytes(_plain(mesh, srgb_vertex_colours(mesh)).export(file_type="ply", encoding="binary"))


def write_stl(mesh: trimesh.Trimesh, out: Path) -> None:
    """Binary STL: the triangles only."""
    Path(out).write_bytes(_plain(mesh).export(file_type="stl"))


WRITERS: dict[str, Callable[[trimesh.Trimesh, Path], None]] = {
    "obj": write_obj_zip, "ply": write_ply, "stl": write_stl, "usdz": write_usdz,
}


def write_export(glb: Path, fmt: str, out: Path) -> None:
    """Write the GLB at `glb` as `fmt` (one of FORMATS but glb) to `out`."""
    WRITERS[fmt](load_result(glb), out)
