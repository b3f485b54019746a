"""The ReconViaGen adapter, driven through a stand-in of the upstream `trellis` package (tests/recon/standin_trellis).

The stand-in returns a known mesh in a normalised frame, so calls, progress, cancellation and the alignment to
the inputs' world frame are checked for real. The real pipeline needs CUDA and its weights: tested under `gpu`.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial import cKDTree

from worker.config import settings
from worker.errors import JobCancelled, ReconstructionFailed
from worker.jobs import models
from worker.recon import reconviagen
from worker.recon.render_inputs import render_inputs

from . import scenes

STANDIN = Path(__file__).parent / "standin_trellis"
RES = 96


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def standin(monkeypatch):
    """Puts the stand-in `trellis` package on sys.path; forgets it (and the cached availability) afterwards."""
    monkeypatch.syspath_prepend(str(STANDIN))
    reconviagen.unavailable_reason.cache_clear()
    yield
    for name in [name for name in sys.modules if name == "trellis" or name.startswith("trellis.")]:
        del sys.modules[name]
    reconviagen.unavailable_reason.cache_clear()


def asymmetric_mesh() -> trimesh.Trimesh:
    """A box with a ball on one corner: no rotation of the cube group maps it onto itself."""
    ball = trimesh.creation.icosphere(subdivisions=3, radius=0.3)
    ball.apply_translation((0.4, 0.25, 0.2))
    return trimesh.util.concatenate([trimesh.creation.box((1.0, 0.6, 0.7)), ball])


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> tuple[Path, trimesh.Trimesh]:
    mesh = asymmetric_mesh()
    directory = tmp_path_factory.mktemp("asymmetric")
    render_inputs(mesh, directory, res=RES, normalize=False)
    return directory, mesh


def weights(directory: Path, mesh: trimesh.Trimesh, **config) -> Path:
    """A "weights" directory for the stand-in: pipeline.json and the mesh it returns."""
    directory.mkdir(parents=True, exist_ok=True)
    mesh.export(directory / "reference.ply")
    standin = {"mesh": "reference.ply", "scale": 0.55, "rotation_deg": [6.0, -9.0, 4.0], "shift": [0.03, -0.04, 0.02],
               "step_s": 0.002, **config}
    (directory / "pipeline.json").write_text(json.dumps({"name": reconviagen.PIPELINE_CLASS, "standin": standin}))
    return directory


def chamfer(a: trimesh.Trimesh, b: trimesh.Trimesh) -> float:
    points_a, _ = trimesh.sample.sample_surface(a, 20000, seed=0)
    points_b, _ = trimesh.sample.sample_surface(b, 20000, seed=1)
    return float((cKDTree(points_b).query(points_a)[0].mean() + cKDTree(points_a).query(points_b)[0].mean()) / 2)


class Recorder:
    """A progress callback that records (fraction, stage, time) and can cancel once a stage has been reached."""

    def __init__(self, cancel_in: str | None = None) -> None:
        self.calls: list[tuple[float, str, float]] = []
        self.cancel_in = cancel_in

    def __call__(self, fraction: float, stage: str) -> None:
        self.calls.append((fraction, stage, time.monotonic()))
        if self.cancel_in and stage == self.cancel_in and sum(s == stage for _, s, _ in self.calls) >= 3:
            raise JobCancelled()


def test_adapter_calls_upstream_and_aligns_its_mesh_to_the_inputs(standin, scene, tmp_path):
    directory, mesh = scene
    model = reconviagen.ReconViaGen(str(weights(tmp_path / "weights", mesh)), device="cpu")
    progress = Recorder()
    report = model(scenes.load(directory), tmp_path / "model.glb", progress, {"seed": 7, "texture_size": 512}, "cpu")

    pipeline = model.pipeline
    run = next(call["run"] for call in pipeline.calls if "run" in call)
    assert run["images"] == [("RGBA", (RES, RES))] * 6
    assert run["seed"] == 7 and run["preprocess_image"] is False and run["mode"] == "multidiffusion"
    assert run["formats"] == ["gaussian", "mesh"]
    assert run["sparse_structure_sampler_params"]["steps"] == reconviagen.SPARSE_STRUCTURE_PARAMS["steps"]
    assert run["slat_sampler_params"]["steps"] == reconviagen.SLAT_PARAMS["steps"]
    assert sum("preprocess_image" in call for call in pipeline.calls) == 6
    assert not pipeline.on_cuda
    postprocessing = sys.modules["trellis.utils.postprocessing_utils"]
    assert postprocessing.calls[-1] == {"simplify": 0.95, "texture_size": 512}

    out = trimesh.load(tmp_path / "model.glb", force="mesh", process=False)
    assert out.visual.kind == "texture" and out.visual.material.baseColorTexture.size == (512, 512)
    # The stand-in keeps the vertex order, so the alignment error is measured vertex by vertex (pixel: 2/96).
    assert np.abs(out.vertices - mesh.vertices).max() < 0.05 * 2 / RES
    assert chamfer(out, mesh) < 1.02 * chamfer(mesh, mesh)  # no worse than sampling noise
    assert report["alignment"]["scale"] == pytest.approx(1 / 0.55, rel=0.01)
    assert all(view["silhouette_iou"] > 0.97 for view in report["views"])
    assert all(view["depth_error"] < 0.01 for view in report["views"])
    assert report["warnings"] == []

    fractions = [fraction for fraction, _, _ in progress.calls]
    assert fractions == sorted(fractions) and fractions[0] == 0.0
    assert {"generating (ReconViaGen)", "aligning to the inputs"} <= {stage for _, stage, _ in progress.calls}


def test_a_contradicting_depth_render_is_named_and_the_mesh_stays_aligned(standin, scene, tmp_path):
    directory, mesh = scene
    inputs = scenes.load(directory)
    inputs.depths[0] = np.where(inputs.masks[0], inputs.depths[0] + 0.3, 0.0)  # the front depth alone is wrong
    model = reconviagen.ReconViaGen(str(weights(tmp_path / "weights", mesh)), device="cpu")
    report = model(inputs, tmp_path / "model.glb", Recorder(), {"seed": 7, "texture_size": 512}, "cpu")
    out = trimesh.load(tmp_path / "model.glb", force="mesh", process=False)
    assert report["depth_left_out"] == ["front"]
    assert any("front depth render contradicts" in warning for warning in report["warnings"])
    # Aligned to the five views that agree, within a quarter of a pixel.
    assert np.abs(out.vertices - mesh.vertices).max() < 0.25 * 2 / RES


def test_progress_keeps_flowing_while_upstream_runs(standin, scene, tmp_path):
    directory, mesh = scene
    model = reconviagen.ReconViaGen(str(weights(tmp_path / "weights", mesh, step_s=0.03)), device="cpu")
    progress = Recorder()
    model(scenes.load(directory), tmp_path / "model.glb", progress, {"seed": 1, "texture_size": 512}, "cpu")
    generating = [t for _, stage, t in progress.calls if stage == "generating (ReconViaGen)"]
    assert len(generating) >= 4  # 42 sampler steps of 30 ms: over a second without progress of its own


def test_cancel_stops_upstream_between_sampler_steps(standin, scene, tmp_path):
    directory, mesh = scene
    model = reconviagen.ReconViaGen(str(weights(tmp_path / "weights", mesh, step_s=0.05)), device="cpu")
    progress = Recorder(cancel_in="generating (ReconViaGen)")
    started = time.monotonic()
    with pytest.raises(JobCancelled):
        model(scenes.load(directory), tmp_path / "model.glb", progress, {"seed": 1, "texture_size": 512}, "cpu")
    assert time.monotonic() - started < 1.5
    assert not (tmp_path / "model.glb").exists()
    # The abandoned run lets go of the pipeline at its next step, well before its 42 steps are done.
    assert model.lock.acquire(timeout=1.0)
    model.lock.release()
    samplers = (model.pipeline.sparse_structure_sampler, model.pipeline.slat_sampler)
    assert sum(sampler.steps_done for sampler in samplers) < 30
    assert all("sample_once" not in vars(sampler) for sampler in samplers)  # the stop hook is removed again
    for thread in threading.enumerate():
        if thread.name == "reconviagen":
            thread.join(1.0)
            assert not thread.is_alive()


def test_upstream_failure_is_a_sentence(standin, scene, tmp_path):
    directory, mesh = scene
    model = reconviagen.ReconViaGen(str(weights(tmp_path / "weights", mesh, fail="CUDA out of memory")), device="cpu")
    with pytest.raises(ReconstructionFailed, match="ReconViaGen failed: RuntimeError: CUDA out of memory"):
        model(scenes.load(directory), tmp_path / "model.glb", Recorder(), {"seed": 1, "texture_size": 512}, "cpu")


def test_availability_reasons(monkeypatch, tmp_path):
    reconviagen.unavailable_reason.cache_clear()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert reconviagen.unavailable_reason("anything") == "needs a CUDA GPU"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    reconviagen.unavailable_reason.cache_clear()
    assert reconviagen.unavailable_reason("anything") == "the trellis package (ReconViaGen) is not installed"
    reconviagen.unavailable_reason.cache_clear()


def test_availability_with_the_package(standin, monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    missing = tmp_path / "nowhere"
    assert reconviagen.unavailable_reason(str(missing)).startswith(f"ReconViaGen weights not found at {missing}")
    present = weights(tmp_path / "weights", trimesh.creation.box())
    assert reconviagen.unavailable_reason(str(present)) is None
    assert reconviagen.weights_dir("Stable-X/not-a-cached-model") is None


def test_registry_lists_reconviagen_with_an_honest_reason():
    spec = models.MODELS["reconviagen"]
    assert spec.resolve_options({}) == {"seed": 1, "texture_size": 1024}
    reason = models.availability(settings)["reconviagen"]
    expected = reconviagen.unavailable_reason(settings.reconviagen_model)
    assert reason == expected and (torch.cuda.is_available() or reason == "needs a CUDA GPU")


@pytest.mark.gpu
def test_real_pipeline_reconstructs_an_aligned_mesh(scene, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    reason = reconviagen.unavailable_reason(settings.reconviagen_model)
    if reason:
        pytest.skip(reason)
    directory, mesh = scene
    model = reconviagen.ReconViaGen(settings.reconviagen_model, device="cuda")
    report = model(scenes.load(directory), tmp_path / "model.glb", Recorder(), {"seed": 1, "texture_size": 512}, "cuda")
    assert (tmp_path / "model.glb").exists()
    assert np.mean([view["silhouette_iou"] for view in report["views"]]) > 0.8
