"""How well a mesh agrees with the inputs: rasterize it into every input camera, compare silhouettes and depth."""

from __future__ import annotations

from typing import Callable

import torch

from .raster import rasterize
from .rig import SLOT_NAMES, Rig


def compare_with_inputs(
    rig: Rig,
    vertices: torch.Tensor,
    faces: torch.Tensor,
    masks: torch.Tensor,
    depths: torch.Tensor,
    on_view: Callable[[int], None] = lambda index: None,
) -> list[dict]:
    """Per view: silhouette IoU, and mean |depth difference| in world units where both have depth.

    `on_view(i)` is called before view i (progress reporting); a view with nothing to compare reports None.
    """
    report = []
    for index, (slot, camera) in enumerate(zip(SLOT_NAMES, rig.cameras)):
        on_view(index)
        raster = rasterize(camera, vertices, faces)
        rendered = raster.tri_id >= 0
        union = (rendered | masks[index]).sum().item()
        iou = (rendered & masks[index]).sum().item() / union if union else None
        both = rendered & (depths[index] > 0)
        error = (raster.depth - depths[index]).abs()[both].mean().item() if both.any() else None
        report.append({
            "slot": slot,
            "silhouette_iou": None if iou is None else round(iou, 4),
            "depth_error": None if error is None else round(error, 6),
        })
    return report
