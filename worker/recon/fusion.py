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
from .surface import extract_surface
from .tsdf import fuse_depth

COLOUR_TOLERANCE_VOXELS = 1.5

Progress = Callable[[float, str], None]


class _Stages:
    """Reports each stage start to `progress` and times it."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.timings: dict[str, float] = {}
        self._name: str | None = None
        self._start = time.perf_counter()

    def start(self, name: str, fraction: float, text: str) -> None:
        self._close()
        self._name, self._start = name, time.perf_counter()
        self.progress(fraction, text)

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
    stages.start("decode", 0.0, "decoding inputs")
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

    stages.start("fuse", 0.05, "fusing depth")
    grid = fuse_depth(inputs, grid_resolution, progress, (0.05, 0.55), device)

    stages.start("extract", 0.55, "extracting surface")
    mesh = extract_surface(grid)
    vertices = torch.as_tensor(mesh.vertices, dtype=torch.float32, device=device)
    faces = torch.as_tensor(mesh.faces, dtype=torch.int64, device=device)
    if inputs.depth_bits == 8:
        size = float(np.ptp(mesh.vertices, axis=0).max())
        warnings.insert(0, (
            f"depth renders are 8-bit: each depth step is {step:.4f} world units (about {100 * step / size:.1f}% of "
            "the object's size), so fine detail is lost; 16-bit depth PNGs give a more accurate mesh"
        ))

    stages.start("colour", 0.7, "colouring")
    normals = torch.as_tensor(mesh.vertex_normals, dtype=torch.float32, device=device)
    tolerance = max(COLOUR_TOLERANCE_VOXELS * grid.voxel_size, step)
    linear, seen = vertex_colours(vertices, normals, inputs.rig.cameras, colors, masks, depths, tolerance)
    linear = fill_unseen(mesh.vertices, linear.cpu().numpy(), seen.cpu().numpy())

    stages.start("write", 0.8, "writing mesh")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_glb(out_dir / "model.glb", mesh.vertices, mesh.faces, mesh.vertex_normals, linear)

    stages.start("check", 0.85, "checking against inputs")
    views = compare_with_inputs(
        inputs.rig, vertices, faces, masks, depths,
        on_view=lambda index: progress(0.85 + 0.15 * index / len(SLOT_NAMES), "checking against inputs"),
    )
    return {
        "model": "fusion",
        "timings": stages.finish(),
        "mesh": {"vertices": len(mesh.vertices), "triangles": len(mesh.faces), "watertight": bool(mesh.is_watertight)},
        "views": views,
        "depth_bits": inputs.depth_bits,
        "grid": {"resolution": grid_resolution, "voxel_size": round(grid.voxel_size, 6)},
        "warnings": warnings,
    }
