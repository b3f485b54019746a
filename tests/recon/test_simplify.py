"""Decimation: reaches the triangle budget or stops at an error bound, stays closed, oriented and manifold, keeps
the shape and its genus."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh
from skimage.measure import marching_cubes

from worker.recon.simplify import simplify
from worker.recon.surface import is_watertight

ROOT = Path(__file__).resolve().parents[2]


def euler_characteristic(vertices: np.ndarray, faces: np.ndarray) -> int:
    edges = np.unique(np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1), axis=0)
    return len(np.unique(faces)) - len(edges) + len(faces)


def vertex_manifold(faces: np.ndarray) -> bool:
    """Around every vertex the faces form one fan: the corners of a vertex, linked across shared edges, are one
    connected cycle (a pinch would leave two)."""
    mesh = trimesh.Trimesh(np.zeros((faces.max() + 1, 3)), faces, process=False)
    for vertex, around in enumerate(mesh.vertex_faces):
        around = around[around >= 0]
        if len(around) == 0:
            continue
        ring = faces[around]
        # each face contributes the edge opposite to the vertex; one fan = those edges form one cycle
        opposite = [tuple(f[f != vertex]) for f in ring]
        graph = trimesh.graph.nx.Graph(opposite)
        if not trimesh.graph.nx.is_connected(graph) or any(d != 2 for _, d in graph.degree()):
            return False
    return True


def noisy_sphere(subdivisions: int = 5, seed: int = 0) -> trimesh.Trimesh:
    sphere = trimesh.creation.icosphere(subdivisions=subdivisions, radius=1.0)
    noise = np.random.default_rng(seed).normal(0, 0.002, len(sphere.vertices))
    sphere.vertices *= (1 + noise)[:, None]
    return sphere


def test_reaches_the_budget_and_stays_a_closed_manifold_sphere():
    sphere = noisy_sphere()
    calls = []
    vertices, faces, _ = simplify(sphere.vertices, sphere.faces, 2000, on_progress=calls.append)
    assert 1900 <= len(faces) <= 2000
    assert is_watertight(faces) and vertex_manifold(faces)
    assert euler_characteristic(vertices, faces) == 2
    assert np.abs(np.linalg.norm(vertices, axis=1) - 1).max() < 0.02
    result = trimesh.Trimesh(vertices, faces, process=False)
    assert abs(result.volume / sphere.volume - 1) < 0.01
    assert calls and calls[-1] == 1.0 and calls == sorted(calls)


def test_a_torus_keeps_its_hole():
    torus = trimesh.creation.torus(major_radius=1.0, minor_radius=0.3, major_sections=128, minor_sections=64)
    vertices, faces, _ = simplify(torus.vertices, torus.faces, 1500)
    assert len(faces) <= 1500 and is_watertight(faces) and vertex_manifold(faces)
    assert euler_characteristic(vertices, faces) == 0


def test_every_component_survives_and_a_small_one_stays_closed():
    big = noisy_sphere(4)
    small = trimesh.creation.box((0.1, 0.1, 0.1))
    small.apply_translation((3, 0, 0))
    both = trimesh.util.concatenate([big, small])
    vertices, faces, _ = simplify(both.vertices, both.faces, 500)
    assert is_watertight(faces) and vertex_manifold(faces)
    assert euler_characteristic(vertices, faces) == 4  # two spheres
    assert (vertices[:, 0] > 2.9).sum() >= 4  # the box is still there, at least a tetrahedron


def test_an_impossible_budget_stops_at_the_smallest_valid_mesh():
    vertices, faces, _ = simplify(trimesh.creation.box().vertices, trimesh.creation.box().faces, 1)
    assert len(faces) >= 4 and is_watertight(faces) and euler_characteristic(vertices, faces) == 2


def test_a_mesh_under_budget_is_returned_as_it_is():
    sphere = noisy_sphere(2)
    vertices, faces, _ = simplify(sphere.vertices, sphere.faces, 10_000)
    assert vertices is sphere.vertices and faces is sphere.faces


def test_an_empty_mesh_is_returned_as_it_is():
    """Nothing to collapse: the mesh comes back as given, not as an error about the extent of no vertices."""
    vertices, faces = np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    result = simplify(vertices, faces, 0, 0.01)
    assert result.vertices is vertices and result.faces is faces and result.error == 0.0


def test_an_open_mesh_is_refused():
    sphere = noisy_sphere(3)
    with pytest.raises(ValueError, match="closed"):
        simplify(sphere.vertices, sphere.faces[1:], 100)


def test_flat_regions_keep_their_outline():
    box = trimesh.creation.box((2, 1, 1)).subdivide().subdivide().subdivide()
    vertices, faces, _ = simplify(box.vertices, box.faces, 100)
    assert is_watertight(faces)
    np.testing.assert_allclose(trimesh.Trimesh(vertices, faces).bounds, box.bounds, atol=1e-6)
    # A count target goes on past the collapses that cost nothing: the last few land a hair off a face (3e-5 of the
    # volume here).
    assert abs(trimesh.Trimesh(vertices, faces).volume - 2.0) < 1e-4


def bumpy_sphere(subdivisions: int = 5) -> trimesh.Trimesh:
    """A unit sphere with 24 bumps around its equator, 5% high: detail an error bound must keep."""
    sphere = trimesh.creation.icosphere(subdivisions=subdivisions, radius=1.0)
    longitude = np.arctan2(sphere.vertices[:, 1], sphere.vertices[:, 0])
    sphere.vertices *= (1 + 0.05 * np.sin(24 * longitude) * (1 - sphere.vertices[:, 2] ** 2))[:, None]
    return sphere


def test_an_error_bound_gives_a_smooth_shape_few_triangles_and_a_detailed_one_many():
    smooth, bumpy = trimesh.creation.icosphere(subdivisions=5), bumpy_sphere()
    bound = 0.002
    smooth_faces = simplify(smooth.vertices, smooth.faces, max_error=bound).faces
    bumpy_faces = simplify(bumpy.vertices, bumpy.faces, max_error=bound).faces
    assert is_watertight(smooth_faces) and is_watertight(bumpy_faces)
    assert len(smooth_faces) < len(smooth.faces) / 10
    assert len(bumpy_faces) > 4 * len(smooth_faces)


def test_the_error_reached_stays_within_the_bound_and_is_the_distance_moved():
    sphere = trimesh.creation.icosphere(subdivisions=5)
    bound = 0.002
    result = simplify(sphere.vertices, sphere.faces, max_error=bound)
    assert 0 < result.error <= bound
    moved = np.abs(np.linalg.norm(result.vertices, axis=1) - 1)  # distance from the unit sphere
    assert np.sqrt(np.mean(moved ** 2)) <= bound  # the bound is a root mean square...
    assert moved.max() <= 2 * bound  # ...that no vertex exceeds by much
    assert moved.max() > bound / 2  # it went as far as the bound allowed, not needlessly short of it


def test_a_triangle_budget_caps_what_the_error_bound_would_keep():
    bumpy = bumpy_sphere()
    bounded = simplify(bumpy.vertices, bumpy.faces, max_error=0.002)
    capped = simplify(bumpy.vertices, bumpy.faces, 1000, max_error=0.002)
    assert len(capped.faces) <= 1000 < len(bounded.faces)
    assert is_watertight(capped.faces)
    generous = simplify(bumpy.vertices, bumpy.faces, 10 * len(bumpy.faces), max_error=0.002)
    assert len(generous.faces) == len(bounded.faces)  # a budget above the mesh leaves the bound to decide


def test_with_neither_budget_nor_bound_nothing_collapses():
    sphere = noisy_sphere(3)
    result = simplify(sphere.vertices, sphere.faces)
    assert result.faces is sphere.faces and result.error == 0.0


def marching_cubes_box(resolution: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """A rounded box as marching cubes meshes it: its flat faces are exactly flat, so most edges price exactly 0."""
    axis = np.linspace(-1, 1, resolution)
    offset = np.abs(np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1)) - [0.7, 0.5, 0.6]
    sdf = np.linalg.norm(np.maximum(offset, 0), axis=-1) + np.minimum(offset.max(axis=-1), 0) - 0.05
    vertices, faces, _, _ = marching_cubes(sdf, 0.0)
    return vertices.astype(np.float64), faces[:, ::-1].copy()


def test_exactly_flat_faces_simplify_as_far_as_noisy_ones():
    vertices, faces = marching_cubes_box()
    noise = 1e-9 * np.random.default_rng(0).standard_normal(vertices.shape)
    exact = simplify(vertices, faces, max_error=0.01).faces
    noisy = simplify(vertices + noise, faces, max_error=0.01).faces
    assert is_watertight(exact) and is_watertight(noisy)
    assert len(exact) < len(faces) / 4 and len(noisy) < len(faces) / 4  # ties in index order stalled at 3052, 5086
    assert abs(len(exact) - len(noisy)) < 0.1 * len(exact)


def test_the_mesh_is_the_same_whatever_the_number_of_threads():
    """Within a bound, parts of the mesh are swept at once; how many threads run them must not show."""
    script = """
import hashlib, sys
import numpy as np
from skimage.measure import marching_cubes
from worker.recon.simplify import simplify
grid = np.mgrid[-1:1:96j, -1:1:96j, -1:1:96j]
field = np.sqrt((grid ** 2).sum(axis=0)) - 0.7 - 0.05 * np.sin(9 * grid[0]) * np.cos(7 * grid[1])
vertices, faces, _, _ = marching_cubes(field, 0.0)
simplified = simplify(vertices, faces[:, ::-1].copy(), 0, 0.01)
print(len(simplified.faces), hashlib.sha256(simplified.vertices.tobytes() + simplified.faces.tobytes()).hexdigest())
"""
    outputs = [subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "NUMBA_NUM_THREADS": threads}) for threads in ("1", "3")]
    assert [done.returncode for done in outputs] == [0, 0], outputs[0].stderr[-2000:] + outputs[1].stderr[-2000:]
    one, three = (done.stdout.split() for done in outputs)
    assert one == three and 0 < int(one[0]) < 20_000
