"""Signed-distance grid -> a closed triangle mesh in the input's world frame, floaters removed."""

from __future__ import annotations

import numpy as np
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from skimage.measure import marching_cubes

from ..errors import ReconstructionFailed
from .tsdf import SdfGrid

MIN_COMPONENT_FRACTION = 0.01


def keep_large_components(vertices: np.ndarray, faces: np.ndarray, fraction: float = MIN_COMPONENT_FRACTION
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Drop connected components with fewer than `fraction` of the largest one's faces (floaters)."""
    count = len(vertices)
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]]])
    graph = coo_matrix((np.ones(len(edges), dtype=np.int8), (edges[:, 0], edges[:, 1])), shape=(count, count))
    _, labels = connected_components(graph, directed=False)
    face_labels = labels[faces[:, 0]]
    sizes = np.bincount(face_labels)
    keep_faces = sizes[face_labels] >= fraction * sizes.max()
    faces = faces[keep_faces]
    used = np.zeros(count, dtype=bool)
    used[faces] = True
    remap = np.cumsum(used) - 1
    return vertices[used], remap[faces]


def extract_surface(grid: SdfGrid) -> trimesh.Trimesh:
    """Marching cubes at level 0 (outward-facing triangles), then floater removal; vertex normals precomputed."""
    values = grid.values.cpu().numpy()
    # An exact zero makes coincident vertices (degenerate triangles); nudge it outward.
    values[values == 0] = 1e-7 * grid.voxel_size
    if values.min() >= 0 or values.max() <= 0:
        raise ReconstructionFailed(
            "The depth renders and silhouettes do not enclose any volume; check that every view shows the object "
            "and that its depth render matches it."
        )
    vertices, faces, _, _ = marching_cubes(
        values, level=0.0, spacing=(grid.voxel_size,) * 3, gradient_direction="ascent"
    )
    if len(faces) == 0:
        raise ReconstructionFailed("No surface was found in the fused depth; check the depth renders and masks.")
    vertices, faces = keep_large_components(vertices + grid.origin, faces)
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    _ = mesh.vertex_normals
    return mesh
