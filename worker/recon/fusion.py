"""The `fusion` model: depth fusion -> marching cubes -> vertex colours from the views -> GLB + report.

Seconds on a CPU, same code on CUDA: the device is chosen once and every stage
follows the tensors.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import ReconstructionFailed
from .colour import fill_unseen, vertex_colours
from .evaluate import compare_with_inputs
from .export import write_glb
from .inputs import ReconInputs
from .rig import SLOT_NAMES
from .surface import extract_surface, is_watertight, vertex_normals
from .tsdf import fuse_depth

COLOUR_TOLERANCE_VOXELS = 1.5
TICK_INTERVAL_S = 0.25
UNSEEN_WARNING_SHARE = 0.05

Progress = Callable[[float, str], None]


class _Stages:
    """Reports each stage start to `progress`, times it, and passes on progress within it (throttled)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.timings: dict[str, float] = {}
        self._name: str | None = None
        self._text = ""
        self._span = (0.0, 0.0)
        self._start = self._last = time.perf_counter()

    def start(self, name: str, span: tuple[float, float], text: str) -> None:
        """Stage `name` owns the part `span` of the progress bar and shows `text`."""
        self._close()
        self._name, self._span, self._text = name, span, text
        self._start = self._last = time.perf_counter()
        self.progress(span[0], text)

    def tick(self, done: float) -> None:
        """`done` (0..1) of the current stage; reported at most every TICK_INTERVAL_S."""
        now = time.perf_counter()
        if now - self._last >= TICK_INTERVAL_S:
            self._last = now
            self.progress(self._span[0] + (self._span[1] - self._span[0]) * min(done, 1.0), self._text)

    def _close(self) -> None:
        if self._name is not None:
            self.timings[self._name] = round(time.perf_counter() - self._start, 3)

    def finish(self) -> dict[str, float]:
        self._close()
        self._name = None
        self.timings["total"] = round(sum(self.timings.values()), 3)
        return self.timings


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def reconstruct_fusion(
    inputs: ReconInputs,
    out_dir: Path,
    progress: Progress,
    *,
    grid_resolution: int = 256,
    device: str | torch.device | None = None,
) -> dict:
    """Write out_dir/model.glb and return the report; `progress(fraction, stage)` may raise JobCancelled."""
    stages = _Stages(progress)
    stages.start("decode", (0.0, 0.05), "decoding inputs")
    device = torch.device(device) if device is not None else _default_device()
    if not inputs.masks.any():
        raise ReconstructionFailed(
            "Every silhouette is empty, so there is no object to reconstruct: give the views an alpha channel "
            "that covers the object, or depth renders that are non-zero on it."
        )
    warnings = [
        f"the {slot} view shows no object (empty silhouette); it was left out"
        for slot, mask in zip(SLOT_NAMES, inputs.masks) if not mask.any()
    ]
    step = inputs.rig.depth.step(inputs.depth_bits)
    colors = torch.as_tensor(inputs.colors, device=device)
    masks = torch.as_tensor(inputs.masks, device=device)
    depths = torch.as_tensor(inputs.depths, device=device)

    stages.start("fuse", (0.05, 0.55), "fusing depth")
    grid = fuse_depth(inputs, grid_resolution, progress, (0.05, 0.55), device)

    stages.start("extract", (0.55, 0.7), "extracting surface")
    vertices_np, faces_np = extract_surface(grid, stages.tick)
    vertices = torch.as_tensor(vertices_np, dtype=torch.float32, device=device)
    faces = torch.as_tensor(faces_np, dtype=torch.int64, device=device)
    normals = vertex_normals(vertices, faces)
    if inputs.depth_bits == 8:
        size = float(np.ptp(vertices_np, axis=0).max())
        warnings.insert(0, (
            f"depth renders are 8-bit: each depth step is {step:.4f} world units (about {100 * step / size:.1f}% of "
            "the object's size), so fine detail is lost; 16-bit depth PNGs give a more accurate mesh"
        ))

    stages.start("colour", (0.7, 0.8), "colouring")
    tolerance = max(COLOUR_TOLERANCE_VOXELS * grid.voxel_size, step)
    linear, seen = vertex_colours(
        vertices, normals, inputs.rig.cameras, colors, masks, depths, tolerance,
        on_view=lambda views_done: stages.tick(views_done / len(SLOT_NAMES)),
    )
    seen = seen.cpu().numpy()
    linear = fill_unseen(vertices_np, linear.cpu().numpy(), seen)
    if seen.mean() < 1.0 - UNSEEN_WARNING_SHARE:
        warnings.append(
            f"{100 * (1 - seen.mean()):.0f}% of the surface is seen by no view; it took the colour of the nearest seen part"
        )

    stages.start("write", (0.8, 0.85), "writing mesh")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_glb(out_dir / "model.glb", vertices_np, faces_np, normals.cpu().numpy(), linear)

    stages.start("check", (0.85, 1.0), "checking against inputs")
    views = compare_with_inputs(
        inputs.rig, vertices, faces, masks, depths,
        on_view=lambda views_done: stages.tick(views_done / len(SLOT_NAMES)),
    )
    mesh_report = {"vertices": len(vertices_np), "triangles": len(faces_np), "watertight": is_watertight(faces_np)}
    return {
        "model": "fusion",
        "timings": stages.finish(),
        "mesh": mesh_report,
        "views": views,
        "depth_bits": inputs.depth_bits,
        "grid": {"resolution": grid_resolution, "voxel_size": round(grid.voxel_size, 6)},
        "warnings": warnings,
    }
