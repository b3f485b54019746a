"""Write the result as a binary glTF: +Y up, the input's world frame and units, linear vertex colours."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh


def write_glb(path: Path, vertices: np.ndarray, faces: np.ndarray, normals: np.ndarray, linear_rgb: np.ndarray) -> None:
    """Mesh with NORMAL and COLOR_0 (linear, as glTF defines it); no node transform, so vertices are world points."""
    rgba = np.empty((len(vertices), 4), dtype=np.uint8)
    rgba[:, :3] = np.round(np.clip(linear_rgb, 0.0, 1.0) * 255.0)
    rgba[:, 3] = 255
    mesh = trimesh.Trimesh(vertices, faces, vertex_normals=normals, vertex_colors=rgba, process=False)
    Path(path).write_bytes(mesh.export(file_type="glb", include_normals=True))
