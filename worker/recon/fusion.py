"""The `fusion` model: depth agreement check -> depth fusion -> marching cubes -> simplification -> texture (or
vertex colours) from the views -> GLB + report.

Seconds on a CPU, same code on CUDA: the device is chosen once and every torch
stage follows the tensors (marching cubes, simplification and atlas packing run
on the CPU either way).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import ReconstructionFailed
from .atlas import NO_ATLAS_WARNING, build_atlas
from .bake import bake_texture
from .colour import fill_unseen, vertex_colours
from .consistency import agreeing_inputs
from .devices import resolve_device
from .evaluate import compare_with_inputs
from .export import write_glb, write_textured_glb
from .inputs import ReconInputs
from .rig import SLOT_NAMES
from .simplify import simplify
from .snap import fit_to_depth, fits_depth
from .stages import Progress, Stages
from .surface import extract_surface, is_watertight, vertex_normals
from .tsdf import fuse_depth

COLOUR_TOLERANCE_VOXELS = 1.5
UNSEEN_WARNING_SHARE = 0.05
MIN_MEAN_SILHOUETTE_IOU = 0.5  # below this the inputs contradict each other: no mesh is better than this one


def _require_agreement(views: list[dict], glb: Path) -> None:
    """Fail (and take back the mesh) when the result hardly overlaps the silhouettes: the inputs contradict
    each other, and a mesh that matches none of them would only mislead."""
    overlaps = [view["silhouette_iou"] for view in views if view["silhouette_iou"] is not None]
    mean = float(np.mean(overlaps)) if overlaps else 0.0
    if mean < MIN_MEAN_SILHOUETTE_IOU:
        glb.unlink(missing_ok=True)
        raise ReconstructionFailed(
            f"The views do not describe one object: the reconstruction overlaps their silhouettes by only "
            f"{100 * mean:.0f}% on average; check that each depth render belongs to its view and follows the input "
            "format (distance from the camera plane, 0 for background), and that a cameras.json matches how the "
            "views were taken."
        )


def reconstruct_fusion(
    inputs: ReconInputs,
    out_dir: Path,
    progress: Progress,
    *,
    grid_resolution: int = 224,
    target_triangles: int = 200_000,
    texture_size: int = 1024,
    device: str | torch.device | None = None,
) -> dict:
    """Write out_dir/model.glb and return the report; `progress(fraction, stage)` may raise JobCancelled.

    `target_triangles` 0 keeps every triangle of marching cubes; `texture_size` 0 writes vertex colours
    instead of a baked texture.
    """
    stages = Stages(progress)
    stages.start("decode", 0.0, "decoding inputs")
    device = torch.device(device) if device is not None else torch.device(resolve_device())
    if not inputs.masks.any():
        raise ReconstructionFailed(
            "Every silhouette is empty, so there is no object to reconstruct: give the views an alpha channel "
            "that covers the object, or depth renders that are non-zero on it."
        )
    warnings = [
        f"the {slot} view shows no object (empty silhouette); it was left out"
        for slot, mask in zip(SLOT_NAMES, inputs.masks) if not mask.any()
    ]
    stages.start("agree", 0.02, "checking that the depth renders agree")
    given_depths = torch.as_tensor(inputs.depths, device=device)
    inputs, agreement = agreeing_inputs(inputs, device)
    warnings += agreement.warnings
    step = inputs.rig.depth.step(inputs.depth_bits)
    colors = torch.as_tensor(inputs.colors, device=device)
    masks = torch.as_tensor(inputs.masks, device=device)
    depths = torch.as_tensor(inputs.depths, device=device)

    stages.start("fuse", 0.05, "fusing depth")
    grid = fuse_depth(inputs, grid_resolution, progress, (0.05, 0.4), device)

    stages.start("extract", 0.4, "extracting surface", until=0.5)
    vertices_np, faces_np = extract_surface(grid, stages.within)
    extracted = len(faces_np)
    stages.start("simplify", 0.5, "simplifying", until=0.58)
    if target_triangles:
        vertices_np, faces_np = simplify(vertices_np, faces_np, target_triangles, stages.within)
    vertices = torch.as_tensor(vertices_np, dtype=torch.float32, device=device)
    faces = torch.as_tensor(faces_np, dtype=torch.int64, device=device)
    normals = vertex_normals(vertices, faces)
    snapped = None
    tolerance = max(COLOUR_TOLERANCE_VOXELS * grid.voxel_size, step)
    if fits_depth(step, grid.voxel_size):
        stages.start("snap", 0.58, "fitting the surface to the depth maps", until=0.6)
        vertices, normals, snapped = fit_to_depth(vertices, faces, inputs.rig.cameras, depths, tolerance,
                                                  grid.voxel_size, stages.within)
        vertices_np = vertices.cpu().numpy().astype(np.float64)
    if inputs.depth_bits == 8:
        size = float(np.ptp(vertices_np, axis=0).max())
        warnings.insert(0, (
            f"depth renders are 8-bit: each depth step is {step:.4f} world units (about {100 * step / size:.1f}% of "
            "the object's size), so fine detail is lost; 16-bit depth PNGs give a more accurate mesh"
        ))

    stages.start("colour", 0.6, "colouring", until=0.68)
    linear, seen = vertex_colours(
        vertices, normals, inputs.rig.cameras, colors, masks, depths, tolerance,
        on_view=lambda views_done: stages.within(views_done / len(SLOT_NAMES)),
    )
    seen_share = float(seen.float().mean().item())
    linear = fill_unseen(vertices_np, linear.cpu().numpy(), seen.cpu().numpy())
    texture_report = None
    atlas = None
    if texture_size:
        stages.start("atlas", 0.68, "building UV atlas")
        atlas = build_atlas(vertices_np, faces_np, texture_size)
        if atlas is None:
            warnings.append(NO_ATLAS_WARNING)
    if atlas is not None:
        stages.start("bake", 0.75, "baking texture", until=0.85)
        texture, seen_share = bake_texture(
            vertices, normals, atlas, texture_size, inputs.rig.cameras, colors, masks, depths, tolerance,
            torch.as_tensor(linear, device=device), lambda views_done: stages.within(views_done / len(SLOT_NAMES)),
        )
        texture_report = {"size": texture_size, "charts": atlas.charts,
                          "atlas_utilization": round(atlas.utilization, 3)}
    if seen_share < 1.0 - UNSEEN_WARNING_SHARE:
        warnings.append(f"{100 * (1 - seen_share):.0f}% of the surface is seen by no view; it took the colour of "
                        "the nearest seen part")

    stages.start("write", 0.85, "writing mesh")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    normals_np = normals.cpu().numpy()
    if atlas is not None:
        write_textured_glb(out_dir / "model.glb", vertices_np, normals_np, atlas, texture)
    else:
        write_glb(out_dir / "model.glb", vertices_np, faces_np, normals_np, linear)

    stages.start("check", 0.9, "checking against inputs", until=1.0)
    views = compare_with_inputs(
        inputs.rig, vertices, faces, masks, given_depths,
        on_view=lambda views_done: stages.within(views_done / len(SLOT_NAMES)),
    )
    _require_agreement(views, out_dir / "model.glb")
    mesh_report = {"vertices": len(vertices_np), "triangles": len(faces_np), "watertight": is_watertight(faces_np),
                   "extracted_triangles": extracted,
                   "snapped_to_depth": None if snapped is None else round(snapped, 4)}
    return {
        "model": "fusion",
        "timings": stages.finish(),
        "mesh": mesh_report,
        "texture": texture_report,
        "views": views,
        "depth_bits": inputs.depth_bits,
        "grid": {"resolution": grid_resolution, "voxel_size": round(grid.voxel_size, 6)},
        "depth_left_out": agreement.left_out_slots,
        "warnings": warnings,
    }
