"""The `reconviagen` model: an adapter around the upstream ReconViaGen pipeline (TRELLIS + VGGT).

Upstream, `trellis.pipelines.TrellisVGGTTo3DPipeline` turns the views into a
Gaussian and a mesh, and `trellis.utils.postprocessing_utils.to_glb` bakes them
into a textured mesh, in its own normalised frame. The adapter feeds it the
views, keeps progress flowing while it runs (it reports none itself) and stops it
between sampler steps when the job is cancelled, then lays the mesh onto the
inputs' world frame with the depth renders (align.py) so that every model's mesh
lines up with the views.

Availability (CUDA, the trellis package, weights on local disk) is decided once
per process. Nothing is ever downloaded: a Hugging Face model id is resolved in
the local cache only, and the pipeline is loaded from that local directory.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from functools import cache
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import trimesh
from PIL import Image

from ..errors import JobCancelled, ReconstructionFailed
from .align import align_points
from .colour import linear_to_srgb
from .evaluate import compare_with_inputs
from .inputs import ReconInputs
from .ops import pixel_world
from .prelude import begin
from .report import ModelReport
from .stages import Progress, Stage, Stages

PIPELINE_CLASS = "TrellisVGGTTo3DPipeline"
# The upstream demo's defaults (ReconViaGen app.py).
SPARSE_STRUCTURE_PARAMS = {"steps": 30, "cfg_strength": 7.5, "cfg_interval": [0.6, 1.0], "guidance_rescale": 0.7,
                           "rescale_t": 5.0}
SLAT_PARAMS = {"steps": 12, "cfg_strength": 7.5, "cfg_interval": [0.6, 1.0], "guidance_rescale": 0.5,
               "rescale_t": 3.0}
SIMPLIFY = 0.95
MODE = "multidiffusion"
SAMPLERS = ("sparse_structure_sampler", "slat_sampler")
POLL_S = 0.2  # with Stages' 0.25 s throttle: progress at most 0.4 s apart
ALIGN_POINTS = 40000
SURFACE_SAMPLES = 40000
MISALIGNED_PIXELS = 3.0  # warn when the aligned mesh is farther than this from the depth points on average


class _Stopped(Exception):
    """Raised inside the upstream sampler loop to abandon a cancelled run."""


def weights_dir(model: str) -> Path | None:
    """The local directory holding the pipeline's pipeline.json, for a path or an already cached model id."""
    path = Path(model).expanduser()
    if (path / "pipeline.json").is_file():
        return path
    try:
        from huggingface_hub import try_to_load_from_cache
        found = try_to_load_from_cache(model, "pipeline.json")
    except (ImportError, ValueError):  # no huggingface_hub, or not a valid model id
        return None
    return Path(found).parent if isinstance(found, str) else None


@cache
def unavailable_reason(model: str) -> str | None:
    """None when ReconViaGen can run here, else a plain reason; computed once per process, never downloads."""
    if not torch.cuda.is_available():
        return "needs a CUDA GPU"
    if importlib.util.find_spec("trellis") is None:
        return "the trellis package (ReconViaGen) is not installed"
    try:
        getattr(importlib.import_module("trellis.pipelines"), PIPELINE_CLASS)
    except (ImportError, AttributeError, OSError, RuntimeError) as exc:
        return f"the trellis package (ReconViaGen) could not be imported: {exc}"
    if weights_dir(model) is None:
        return (f"ReconViaGen weights not found at {model} (a local directory with pipeline.json, or that model "
                "id already in the local Hugging Face cache)")
    return None


class ReconViaGen:
    """The upstream pipeline, loaded once per worker; one run at a time (it holds the GPU's memory)."""

    def __init__(self, model: str, device: str = "cuda") -> None:
        path = weights_dir(model)
        if path is None:
            raise ReconstructionFailed(f"ReconViaGen weights not found at {model}.")
        pipelines = importlib.import_module("trellis.pipelines")
        self.pipeline = getattr(pipelines, PIPELINE_CLASS).from_pretrained(str(path))
        if device.startswith("cuda"):
            self.pipeline.cuda()
        self.to_glb = importlib.import_module("trellis.utils.postprocessing_utils").to_glb
        self.lock = threading.Lock()

    def __call__(self, inputs: ReconInputs, glb: Path, progress: Progress, options: dict, device: str
                 ) -> ModelReport:
        return reconstruct_reconviagen(self, inputs, glb, progress, **options)


STAGES = (
    Stage("prepare", "preparing views", 0.04),
    Stage("agree", "checking that the depth renders agree", 0.01),
    Stage("generate", "generating (ReconViaGen)", 0.55),
    Stage("extract", "baking the textured mesh", 0.15),
    Stage("align", "aligning to the inputs", 0.10),
    Stage("write", "writing mesh", 0.03),
    Stage("check", "checking against inputs", 0.12),
)


def _views(inputs: ReconInputs) -> list[Image.Image]:
    """The views with a silhouette as sRGB RGBA images, alpha = silhouette."""
    images = []
    for colour, mask in zip(inputs.colors, inputs.masks):
        if mask.any():
            rgba = np.empty((*mask.shape, 4), dtype=np.uint8)
            rgba[..., :3] = np.round(linear_to_srgb(colour) * 255)
            rgba[..., 3] = np.where(mask, 255, 0)
            images.append(Image.fromarray(rgba, "RGBA"))
    return images


def _stoppable(pipeline: Any, stop: threading.Event) -> Callable[[], None]:
    """Make the pipeline's samplers raise _Stopped at their next step once `stop` is set; returns the undo."""
    undo = []
    for name in SAMPLERS:
        sampler = getattr(pipeline, name, None)
        step = getattr(sampler, "sample_once", None)
        if step is None:
            continue

        def checked(*args, _step=step, **kwargs):
            if stop.is_set():
                raise _Stopped
            return _step(*args, **kwargs)

        own = vars(sampler).get("sample_once")
        sampler.sample_once = checked
        undo.append((sampler, own))

    def restore() -> None:
        for sampler, own in undo:
            if own is None:
                del sampler.sample_once
            else:
                sampler.sample_once = own

    return restore


def _run_upstream(model: ReconViaGen, work: Callable[[], Any], stages: Stages, expected_s: float) -> Any:
    """Run `work` on a helper thread holding the model's lock, reporting progress every POLL_S meanwhile.

    On cancellation the run is told to stop at its next sampler step and JobCancelled propagates at once;
    the lock keeps the next job waiting until the abandoned run has let go of the GPU.
    """
    outcome: dict[str, Any] = {}
    stop = threading.Event()

    def target() -> None:
        with model.lock:
            if stop.is_set():
                return
            restore = _stoppable(model.pipeline, stop)
            try:
                outcome["value"] = work()
            except _Stopped:
                pass
            except Exception as exc:  # anything upstream raises becomes the job's failure sentence
                outcome["error"] = exc
            finally:
                restore()

    thread = threading.Thread(target=target, name="reconviagen", daemon=True)
    thread.start()
    waited = 0.0
    try:
        while thread.is_alive():
            thread.join(POLL_S)
            waited += POLL_S
            stages.within(min(waited / expected_s, 0.95))
    except JobCancelled:
        stop.set()
        raise
    if "error" in outcome:
        error = outcome["error"]
        raise ReconstructionFailed(f"ReconViaGen failed: {type(error).__name__}: {error}.") from error
    return outcome["value"]


def _as_mesh(result: Any) -> trimesh.Trimesh:
    mesh = result.to_geometry() if isinstance(result, trimesh.Scene) else result
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise ReconstructionFailed("ReconViaGen returned no mesh for these views.")
    return mesh


def _depth_points(inputs: ReconInputs) -> np.ndarray:
    points = []
    for camera, depth in zip(inputs.rig.cameras, inputs.depths):
        depth_t = torch.as_tensor(depth)
        points.append(camera.unproject_depth_map(depth_t)[depth_t > 0].numpy())
    return np.concatenate(points).astype(np.float64)


def reconstruct_reconviagen(
    model: ReconViaGen,
    inputs: ReconInputs,
    glb: Path,
    progress: Progress,
    *,
    seed: int = 1,
    texture_size: int = 1024,
) -> ModelReport:
    """Write upstream's textured mesh, aligned to the inputs, to `glb` and return the report."""
    stages = Stages(progress, STAGES)
    stages.start("prepare")
    start = begin(inputs, "cpu", stages)
    images = _views(inputs)
    targets = _depth_points(start.inputs)
    if len(targets) == 0:
        raise ReconstructionFailed(
            "The depth renders have no depth inside the silhouettes, so ReconViaGen's mesh cannot be placed in "
            "the inputs' frame; check that depth is non-zero where the object is."
        )
    pipeline = model.pipeline
    if hasattr(pipeline, "preprocess_image"):
        images = [pipeline.preprocess_image(image) for image in images]

    stages.start("generate")
    result = _run_upstream(model, lambda: pipeline.run(
        image=images, seed=seed, formats=["gaussian", "mesh"], preprocess_image=False,
        sparse_structure_sampler_params=dict(SPARSE_STRUCTURE_PARAMS), slat_sampler_params=dict(SLAT_PARAMS),
        mode=MODE,
    ), stages, expected_s=60.0)
    outputs = result[0] if isinstance(result, tuple) else result

    stages.start("extract")
    baked = _run_upstream(model, lambda: model.to_glb(
        outputs["gaussian"][0], outputs["mesh"][0], simplify=SIMPLIFY, texture_size=texture_size,
    ), stages, expected_s=30.0)
    mesh = _as_mesh(baked)

    stages.start("align")
    rng = np.random.default_rng(seed)
    if len(targets) > ALIGN_POINTS:
        targets = targets[rng.choice(len(targets), ALIGN_POINTS, replace=False)]
    surface, _ = trimesh.sample.sample_surface(mesh, SURFACE_SAMPLES, seed=seed)
    alignment = align_points(np.asarray(surface), targets, seed=seed, on_step=lambda: stages.within(0.5))
    mesh.apply_transform(alignment.matrix)

    stages.start("write")
    glb.write_bytes(mesh.export(file_type="glb"))

    stages.start("check")
    views = compare_with_inputs(
        inputs.rig, torch.as_tensor(mesh.vertices, dtype=torch.float32), torch.as_tensor(mesh.faces),
        torch.as_tensor(inputs.masks), torch.as_tensor(inputs.depths),
        on_progress=stages.within,
    )
    pixel = max(pixel_world(camera, torch.as_tensor(targets)) for camera in inputs.rig.cameras)
    warnings = start.warnings
    if alignment.mean_distance > MISALIGNED_PIXELS * pixel:
        warnings.append(
            f"the generated mesh disagrees with the depth renders: after alignment the depth points lie "
            f"{alignment.mean_distance:.4f} world units from it on average (about "
            f"{alignment.mean_distance / pixel:.1f} pixels)"
        )
    return {
        "model": "reconviagen",
        "timings": stages.finish(),
        "mesh": {"vertices": len(mesh.vertices), "triangles": len(mesh.faces), "watertight": bool(mesh.is_watertight)},
        "views": views,
        "depth_bits": inputs.depth_bits,
        "depth_left_out": start.depth_left_out,
        "alignment": {
            "matrix": np.round(alignment.matrix, 6).tolist(),
            "scale": round(alignment.scale, 6),
            "rms": round(alignment.rms, 6),
            "mean_distance": round(alignment.mean_distance, 6),
        },
        "seed": seed,
        "warnings": warnings,
    }
