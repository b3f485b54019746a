"""The fusion model end to end: shape accuracy, colours, report, progress, cancellation and failures."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pygltflib
import pytest
import torch
import trimesh
from PIL import Image

from worker.errors import JobCancelled, ReconstructionFailed
from worker.recon import fusion, stages, tsdf
from worker.recon.colour import srgb_to_linear
from worker.recon.evaluate import chamfer_distance
from worker.recon.fusion import reconstruct_fusion
from worker.recon.rig import SLOT_NAMES

from . import scenes

ROOT = Path(__file__).resolve().parents[2]

STAGES = ["decoding inputs", "checking that the depth renders agree", "fusing depth", "extracting surface",
          "fitting the surface to the depth maps and silhouettes", "simplifying", "colouring", "building UV atlas",
          "baking texture", "writing mesh", "checking against inputs"]
VERTEX_COLOUR_STAGES = [stage for stage in STAGES if stage not in ("building UV atlas", "baking texture")]


def relative_chamfer(result, reference: trimesh.Trimesh) -> float:
    diagonal = np.linalg.norm(reference.bounds[1] - reference.bounds[0])
    return chamfer_distance(result.mesh, reference, samples=50_000) / diagonal


def test_sphere_is_accurate_and_watertight(sphere_dir, reconstruct):
    result = reconstruct(sphere_dir)
    assert relative_chamfer(result, scenes.sphere()) < 0.01
    radius = np.linalg.norm(result.mesh.vertices, axis=1)
    assert np.abs(radius - 0.7).mean() < 0.002  # a tenth of a voxel at grid 128 on a 1.4 sphere: 0.0011
    assert result.report["mesh"]["watertight"] and result.mesh.is_watertight
    assert result.mesh.volume > 0  # outward-facing triangles


def test_box_is_accurate_and_keeps_its_extent(box_dir, reconstruct):
    result = reconstruct(box_dir)
    assert relative_chamfer(result, scenes.box()) < 0.01
    np.testing.assert_allclose(result.mesh.bounds, scenes.box().bounds, atol=0.01)
    assert result.report["mesh"]["watertight"]


def test_perspective_rig_reconstructs_a_sphere(sphere_perspective_dir, reconstruct):
    result = reconstruct(sphere_perspective_dir)
    assert relative_chamfer(result, scenes.sphere()) < 0.01
    assert min(view["silhouette_iou"] for view in result.report["views"]) > 0.97


def test_8_bit_depth_still_works_and_says_it_is_coarse(sphere_8bit_dir, reconstruct):
    result = reconstruct(sphere_8bit_dir)
    assert relative_chamfer(result, scenes.sphere()) < 0.01
    assert result.report["depth_bits"] == 8
    assert any("8-bit" in warning for warning in result.report["warnings"])


def face_interior(points: np.ndarray, normal: tuple) -> np.ndarray:
    """Points on the colour cube's face with this normal, away from its edges."""
    axis = int(np.flatnonzero(normal)[0])
    on_face = np.abs(points[:, axis] - 0.6 * normal[axis]) < 0.01
    away_from_edges = (np.delete(np.abs(points), axis, axis=1) < 0.55).all(axis=1)
    return on_face & away_from_edges


def test_each_face_of_a_colour_cube_comes_back_in_its_vertex_colour(colour_cube_dir, reconstruct):
    result = reconstruct(colour_cube_dir, texture_size=0)
    vertices = result.mesh.vertices
    colours = result.mesh.visual.vertex_colors[:, :3].astype(float)  # COLOR_0: linear, 8-bit
    for normal, srgb in scenes.FACE_COLOURS.items():
        chosen = face_interior(vertices, normal)
        assert chosen.sum() > 100
        expected = srgb_to_linear(np.array(srgb) / 255.0) * 255.0
        assert np.abs(colours[chosen] - expected).max() <= 3, normal


def test_each_face_of_a_colour_cube_comes_back_in_its_texture_colour(colour_cube_dir, reconstruct):
    result = reconstruct(colour_cube_dir)
    mesh = trimesh.load(result.out_dir / "model.glb", force="mesh", process=False)  # seams split: one UV per vertex
    texture = np.asarray(mesh.visual.material.baseColorTexture.convert("RGB")).astype(float)  # sRGB
    height, width = texture.shape[:2]
    uv = mesh.visual.uv[mesh.faces].mean(axis=1)  # triangle centres; trimesh's v points up
    colours = texture[((1 - uv[:, 1]) * height).astype(int), (uv[:, 0] * width).astype(int)]
    centres = mesh.triangles_center
    for normal, srgb in scenes.FACE_COLOURS.items():
        chosen = face_interior(centres, normal)
        assert chosen.sum() > 100
        assert np.abs(colours[chosen] - srgb).max() <= 3, normal


def test_texture_is_a_valid_gltf_pbr_material(box_dir, reconstruct):
    result = reconstruct(box_dir)
    gltf = pygltflib.GLTF2().load(str(result.out_dir / "model.glb"))
    primitive = gltf.meshes[0].primitives[0]
    assert primitive.attributes.TEXCOORD_0 is not None and primitive.attributes.NORMAL is not None
    assert primitive.attributes.COLOR_0 is None
    material = gltf.materials[primitive.material]
    assert material.pbrMetallicRoughness.metallicFactor == 0 and material.pbrMetallicRoughness.roughnessFactor == 1
    texture = gltf.textures[material.pbrMetallicRoughness.baseColorTexture.index]
    sampler = gltf.samplers[texture.sampler]
    assert sampler.wrapS == sampler.wrapT == pygltflib.CLAMP_TO_EDGE and sampler.magFilter == pygltflib.LINEAR
    image = gltf.images[texture.source]
    view = gltf.bufferViews[image.bufferView]
    png = gltf.binary_blob()[view.byteOffset or 0 : (view.byteOffset or 0) + view.byteLength]
    decoded = Image.open(io.BytesIO(png))
    assert image.mimeType == "image/png" and decoded.size == (1024, 1024) and decoded.mode == "RGB"
    assert result.report["texture"]["size"] == 1024 and result.report["texture"]["charts"] > 0


def test_simplification_keeps_the_mesh_closed_and_accurate(sphere_dir, reconstruct):
    result = reconstruct(sphere_dir, target_triangles=20_000, max_error_ppm=0)
    assert result.report["mesh"]["triangles"] <= 20_000 < result.report["mesh"]["extracted_triangles"]
    assert result.report["mesh"]["watertight"] and result.mesh.is_watertight and result.mesh.volume > 0
    assert relative_chamfer(result, scenes.sphere()) < 0.01
    assert np.abs(np.linalg.norm(result.mesh.vertices, axis=1) - 0.7).mean() < 0.002
    assert "simplify" in result.report["timings"]


def test_by_default_a_sphere_is_simplified_to_the_tolerance_and_the_report_gives_the_error(sphere_dir, reconstruct):
    mesh = reconstruct(sphere_dir).report["mesh"]
    assert mesh["triangles"] < mesh["extracted_triangles"] / 3  # a smooth shape needs fewer
    assert 0 < mesh["simplify_error_pct"] <= 0.0025  # the default tolerance, 25 millionths of the diagonal
    assert relative_chamfer(reconstruct(sphere_dir), scenes.sphere()) < 0.01


def test_a_triangle_budget_caps_below_what_the_tolerance_keeps(sphere_dir, reconstruct):
    capped = reconstruct(sphere_dir, target_triangles=500).report["mesh"]
    assert capped["triangles"] <= 500 < reconstruct(sphere_dir).report["mesh"]["triangles"]
    assert capped["watertight"]


def test_report_describes_mesh_views_and_timings(sphere_dir, reconstruct):
    report = reconstruct(sphere_dir).report
    assert report["model"] == "fusion" and report["depth_bits"] == 16 and report["warnings"] == []
    assert set(report["timings"]) >= {"fuse", "extract", "colour", "write", "check", "total"}
    assert [view["slot"] for view in report["views"]] == list(SLOT_NAMES)
    for view in report["views"]:
        assert view["silhouette_iou"] > 0.98
        assert view["depth_error"] < 0.005
    assert report["mesh"]["triangles"] == len(reconstruct(sphere_dir).mesh.faces)


def test_progress_names_every_stage_in_order(sphere_dir, reconstruct):
    calls = reconstruct(sphere_dir).progress
    fractions = [fraction for fraction, _, _ in calls]
    assert fractions == sorted(fractions) and 0 <= fractions[0] and fractions[-1] <= 1
    stages = [stage for _, stage, _ in calls]
    assert [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s] == STAGES


def test_without_a_texture_the_atlas_and_bake_stages_are_skipped(sphere_dir, reconstruct):
    stages = [stage for _, stage, _ in reconstruct(sphere_dir, texture_size=0).progress]
    assert [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s] == VERTEX_COLOUR_STAGES


def test_fusion_reports_progress_while_it_works(sphere_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(stages, "TICK_INTERVAL_S", 0.0)
    monkeypatch.setattr(tsdf, "CHUNK_VOXELS", 1 << 12)
    calls = []
    reconstruct_fusion(scenes.load(sphere_dir), tmp_path / "model.glb", lambda f, s: calls.append((f, s)), grid_resolution=64)
    fusing = [fraction for fraction, stage in calls if stage == "fusing depth"]
    assert len(fusing) > 5 and fusing == sorted(fusing)


def test_glb_is_in_the_input_frame_with_normals_and_linear_colours(box_dir, reconstruct):
    result = reconstruct(box_dir, texture_size=0)
    gltf = pygltflib.GLTF2().load(str(result.out_dir / "model.glb"))
    for node in gltf.nodes:
        assert node.matrix is None or np.allclose(node.matrix, np.eye(4).ravel())
        assert node.rotation is None and node.translation is None and node.scale is None
    attributes = gltf.meshes[0].primitives[0].attributes
    assert attributes.NORMAL is not None and attributes.COLOR_0 is not None
    # The box is 1.2 x 0.8 x 1.0: no axis swap, no recentring.
    np.testing.assert_allclose(result.mesh.extents, (1.2, 0.8, 1.0), atol=0.01)


def test_without_an_atlas_the_mesh_falls_back_to_vertex_colours_and_says_so(box_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(fusion, "build_atlas", lambda vertices, faces, size: None)
    report = reconstruct_fusion(scenes.load(box_dir), tmp_path / "model.glb", lambda f, s: None, grid_resolution=64)
    assert report["texture"] is None and any("vertex colours" in warning for warning in report["warnings"])
    attributes = pygltflib.GLTF2().load(str(tmp_path / "model.glb")).meshes[0].primitives[0].attributes
    assert attributes.COLOR_0 is not None and attributes.TEXCOORD_0 is None


def test_fitting_to_16_bit_depth_brings_the_surface_closer(sphere_dir, reconstruct):
    fitted = reconstruct(sphere_dir, target_triangles=20_000, max_error_ppm=0)  # fine enough to measure the fit
    assert fitted.report["mesh"]["snapped_to_depth"] > 0.9  # share of vertices some view could place
    radius = np.linalg.norm(fitted.mesh.vertices, axis=1)
    assert np.abs(radius - 0.7).mean() < 0.0005  # a fiftieth of a voxel at grid 128


@pytest.mark.parametrize("stage", ["extracting surface", "colouring", "baking texture"])
def test_cancellation_propagates_and_writes_no_mesh(sphere_dir, tmp_path, stage):
    """Also while the fill, the atlas and the check run beside the job's thread."""
    def progress(fraction: float, text: str) -> None:
        if text == stage:
            raise JobCancelled()

    with pytest.raises(JobCancelled):
        reconstruct_fusion(scenes.load(sphere_dir), tmp_path / "model.glb", progress, grid_resolution=128)
    assert not (tmp_path / "model.glb").exists()


def test_no_silhouette_is_a_sentence_not_a_traceback(sphere_dir, tmp_path):
    inputs = scenes.load(sphere_dir)
    inputs.masks[:] = False
    inputs.depths[:] = 0
    with pytest.raises(ReconstructionFailed, match="silhouette"):
        reconstruct_fusion(inputs, tmp_path / "model.glb", lambda f, s: None, grid_resolution=128)


def test_no_depth_is_a_sentence_not_a_traceback(sphere_dir, tmp_path):
    inputs = scenes.load(sphere_dir)
    inputs.depths[:] = 0
    with pytest.raises(ReconstructionFailed, match="depth"):
        reconstruct_fusion(inputs, tmp_path / "model.glb", lambda f, s: None, grid_resolution=128)


def test_stages_that_overlap_write_what_they_write_one_after_another(bored_block_dir, tmp_path, monkeypatch):
    """The unseen walls' fill, the atlas and the check run beside other stages where Numba's loops may run from
    two threads; in its own pool they cannot, and run in turn, and so does the fill of a large mesh: the file
    must be the same to the byte."""
    script = ("import sys; from pathlib import Path; from worker.recon.fusion import reconstruct_fusion; "
              "from tests.recon.scenes import load; "
              "reconstruct_fusion(load(Path(sys.argv[1])), Path(sys.argv[2]), lambda f, s: None, grid_resolution=96)")
    reconstruct_fusion(scenes.load(bored_block_dir), tmp_path / "beside.glb", lambda f, s: None, grid_resolution=96)
    done = subprocess.run([sys.executable, "-c", script, str(bored_block_dir), str(tmp_path / "in_turn.glb")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NUMBA_THREADING_LAYER": "workqueue"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "beside.glb").read_bytes() == (tmp_path / "in_turn.glb").read_bytes()
    monkeypatch.setattr(fusion, "FILL_BESIDE_MAX_FACES", 0)
    reconstruct_fusion(scenes.load(bored_block_dir), tmp_path / "large.glb", lambda f, s: None, grid_resolution=96)
    assert (tmp_path / "large.glb").read_bytes() == (tmp_path / "beside.glb").read_bytes()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_gives_the_same_mesh(sphere_dir, reconstruct, tmp_path):
    reconstruct_fusion(scenes.load(sphere_dir), tmp_path / "model.glb", lambda f, s: None, grid_resolution=128, device="cuda")
    on_gpu = trimesh.load(tmp_path / "model.glb", force="mesh")
    assert chamfer_distance(on_gpu, reconstruct(sphere_dir).mesh, samples=20_000) < 1e-3
