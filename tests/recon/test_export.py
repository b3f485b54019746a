"""write_glb: what is written is what reloads, in the same frame, with normals and linear COLOR_0."""

from __future__ import annotations

import numpy as np
import pygltflib
import torch
import trimesh

from worker.recon.export import write_glb
from worker.recon.surface import vertex_normals


def test_vertices_faces_normals_and_colours_reload_unchanged(tmp_path):
    mesh = trimesh.creation.icosphere(subdivisions=2)
    mesh.apply_translation((0.3, -0.2, 0.1))  # off-centre: nothing may recentre it
    normals = vertex_normals(torch.tensor(mesh.vertices), torch.tensor(mesh.faces)).numpy()
    linear = np.random.default_rng(0).uniform(0, 1, (len(mesh.vertices), 3))
    write_glb(tmp_path / "m.glb", mesh.vertices, mesh.faces, normals, linear)

    loaded = trimesh.load(tmp_path / "m.glb", force="mesh", process=False)
    np.testing.assert_allclose(loaded.vertices, mesh.vertices.astype(np.float32), rtol=0, atol=1e-7)
    np.testing.assert_array_equal(loaded.faces, mesh.faces)
    np.testing.assert_array_equal(loaded.visual.vertex_colors[:, :3], np.round(linear * 255))

    gltf = pygltflib.GLTF2().load(str(tmp_path / "m.glb"))
    attributes = gltf.meshes[0].primitives[0].attributes
    assert attributes.NORMAL is not None and attributes.COLOR_0 is not None
    assert all(node.matrix is None and node.rotation is None and node.translation is None for node in gltf.nodes)
