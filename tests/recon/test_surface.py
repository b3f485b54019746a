"""Surface extraction: slabbed marching cubes equals one call, outward triangles, floaters dropped, closedness,
connected components."""

from __future__ import annotations

import numpy as np
import torch
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from skimage.measure import marching_cubes

from worker.recon import surface
from worker.recon.tsdf import SdfGrid


def sphere_grid(radius: float = 20.0, size: int = 64, centre: float = 32.0) -> np.ndarray:
    x, y, z = np.mgrid[:size, :size, :size].astype(np.float32)
    return np.clip(np.sqrt((x - centre) ** 2 + (y - centre) ** 2 + (z - centre) ** 2) - radius, -3, 3)


def test_slabs_give_the_same_mesh_as_one_call(monkeypatch):
    values = sphere_grid() + np.float32(0.3) * np.sin(np.mgrid[:64, :64, :64][0] / 3.0).astype(np.float32)
    monkeypatch.setattr(surface, "SLAB_VOXELS", 64 * 64 * 5)
    calls = []
    vertices, faces = surface.marching_cubes_slabs(values, calls.append)
    whole_vertices, whole_faces, _, _ = marching_cubes(values, level=0.0)
    assert len(calls) > 5 and calls[-1] == 1.0
    assert len(faces) == len(whole_faces) and len(vertices) == len(whole_vertices)
    np.testing.assert_allclose(np.sort(vertices, axis=0), np.sort(whole_vertices, axis=0), atol=1e-5)
    assert surface.is_watertight(faces)


def test_extract_surface_is_in_world_units_and_faces_outward():
    grid = SdfGrid(torch.tensor(sphere_grid()), origin=np.array([-1.0, 2.0, 0.5]), voxel_size=0.1, truncation=0.3)
    vertices, faces = surface.extract_surface(grid)
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    np.testing.assert_allclose(mesh.centroid, [-1.0 + 3.2, 2.0 + 3.2, 0.5 + 3.2], atol=1e-3)
    assert abs(np.linalg.norm(vertices - mesh.centroid, axis=1).mean() - 2.0) < 0.01
    assert mesh.volume > 0


def test_floaters_are_dropped():
    big = trimesh.creation.icosphere(subdivisions=4)
    speck = trimesh.creation.icosphere(subdivisions=0, radius=0.01)  # 20 faces: under 1% of the big one's
    speck.apply_translation((3, 0, 0))
    both = trimesh.util.concatenate([big, speck])
    vertices, faces = surface.keep_large_components(both.vertices, both.faces)
    assert len(faces) == len(big.faces) and len(vertices) == len(big.vertices)


def test_watertight_means_closed_and_consistently_oriented():
    sphere = trimesh.creation.icosphere(subdivisions=2)
    assert surface.is_watertight(sphere.faces)
    assert not surface.is_watertight(sphere.faces[1:])  # a hole
    flipped = sphere.faces.copy()
    flipped[0] = flipped[0][::-1]
    assert not surface.is_watertight(flipped)
    assert not surface.is_watertight(np.concatenate([sphere.faces, sphere.faces]))  # four faces per edge
    pinched = sphere.faces.copy()
    pinched[0, 1] = pinched[0, 0]
    assert not surface.is_watertight(pinched)  # a face with a repeated corner
    assert not surface.is_watertight(np.concatenate([sphere.faces, sphere.faces[:1, ::-1]]))  # three on an edge


def test_vertex_normals_point_outward_on_a_sphere():
    sphere = trimesh.creation.icosphere(subdivisions=3)
    normals = surface.vertex_normals(torch.tensor(sphere.vertices), torch.tensor(sphere.faces)).numpy()
    np.testing.assert_allclose((normals * sphere.vertices).sum(axis=1), 1.0, atol=2e-3)


def test_components_are_numbered_as_scipy_numbers_them():
    rng = np.random.default_rng(0)
    pairs = rng.integers(0, 5000, size=(4000, 2))
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(5000, 5000))
    count, expected = connected_components(graph, directed=False)
    labels = surface.components(pairs, 5000)
    assert labels.max() + 1 == count > 1000
    np.testing.assert_array_equal(labels, expected)
