"""The `nvdiffrec` model: refine the fusion mesh and its texture by differentiable rendering until they match
the six inputs.

The fusion mesh (at a grid sized to the render resolution, triangles of about two
pixels) is the start, with fusion's UV atlas and a texture baked from the views
(or linear per-vertex colours when `texture_size` is 0). Vertex offsets and the
linear texture are optimised with Adam so that the rendered colour, silhouette
(antialiased, so that silhouettes move vertices) and depth match the inputs
area-averaged to the render resolution, with a Laplacian penalty on the offsets
that keeps the correction smooth and a normal-consistency penalty that flattens
the facet noise of marching cubes but levels off at creases (CREASE_DEGREES), so
that sharp edges stay sharp. Depth seen through a gap narrower than fusion's
well (a lid's rim) is no target: no surface can follow it there. The report
compares the starting and the refined mesh with the inputs: per-view silhouette
IoU, depth error and PSNR.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from . import ops
from .atlas import NO_ATLAS_WARNING, Atlas, build_atlas
from .bake import bake_texture
from .colour import fill_unseen, linear_to_srgb, linear_to_srgb8, srgb_to_linear, vertex_colours
from .devices import resolve_device
from .evaluate import view_scores
from .export import write_glb, write_textured_glb
from .inputs import ReconInputs
from .ops import pixel_world, scaled_camera
from .prelude import begin, fused_surface
from .regularise import Adam, adjacent_faces, normal_consistency, uniform_laplacian
from .report import ModelReport
from .rig import SLOT_NAMES, Camera
from .stages import Done, Progress, Stage, Stages
from .surface import is_watertight, vertex_normals
from .tsdf import opened_depth

CPU_MAX_ITERATIONS = 200
CPU_BUDGET_S = 105.0  # automatic iterations on a CPU: as many as fit in this time (a 512x512 job: ~2 min)
CUDA_ITERATIONS = 1000
CPU_RENDER_RESOLUTION = 512
CUDA_RENDER_RESOLUTION = 1024
MIN_RENDER_RESOLUTION = 16
CPU_VISIBILITY_REFRESH = 4  # reference backend: exact visibility every this many steps
GRID_PER_RENDER_PIXEL = 0.5  # fusion grid resolution per render pixel: triangles of about two pixels
MIN_GRID = 32
MAX_GRID = 512
POSITION_LR_PIXELS = 0.05  # Adam step on vertex offsets, in render pixels
COLOUR_LR = 0.01
WEIGHT_COLOUR = 1.0
WEIGHT_SILHOUETTE = 1.0
WEIGHT_DEPTH = 1.0
WEIGHT_LAPLACIAN = 2.0
WEIGHT_NORMAL = 32.0
DEPTH_HUBER_PIXELS = 1.0
DEPTH_SMOOTH_PIXELS = 0.5  # a render pixel's target depth is used only if its input pixels agree this well
WELL_TOLERANCE_PIXELS = 2.0  # input depth this far behind its opening (tsdf.opened_depth) is seen through a gap
COLOUR_TOLERANCE_PIXELS = 2.0
STAGES = (
    Stage("decode", "decoding inputs", 0.01),
    Stage("agree", "checking that the depth renders agree", 0.01),
    Stage("fuse", "fusing depth", 0.18),
    Stage("extract", "extracting surface", 0.01),
    Stage("snap", "fitting the surface to the depth maps", 0.01),
    Stage("colour", "colouring the starting mesh", 0.03),
    Stage("check_before", "checking the starting mesh", 0.05),
    Stage("targets", "preparing targets", 0.02),
    Stage("optimise", "refining mesh", 0.58),
    Stage("write", "writing mesh", 0.02),
    Stage("check_after", "checking against inputs", 0.08),
)


@dataclass
class _Target:
    """One view at the render resolution: premultiplied linear colour, soft silhouette, depth where smooth."""

    camera: Camera
    colour: torch.Tensor  # (H, W, 3)
    coverage: torch.Tensor  # (H, W) in [0, 1]
    depth: torch.Tensor  # (H, W), 0 where not used
    depth_valid: torch.Tensor  # (H, W) bool
    pixel_world: float  # world units per render pixel at the object


@dataclass
class _Appearance:
    """What colours the mesh: linear per-vertex colours, or a linear texture (T, T, 3) on an atlas whose faces
    match the mesh's one to one."""

    colours: torch.Tensor | None = None
    texture: torch.Tensor | None = None
    atlas: Atlas | None = None
    uv: torch.Tensor | None = None
    uv_faces: torch.Tensor | None = None

    @property
    def parameter(self) -> torch.Tensor:
        return self.colours if self.texture is None else self.texture

    def with_parameter(self, value: torch.Tensor) -> "_Appearance":
        if self.texture is None:
            return _Appearance(colours=value)
        return _Appearance(texture=value, atlas=self.atlas, uv=self.uv, uv_faces=self.uv_faces)

    def shade(self, ctx: ops.RenderContext, rast: ops.Rasterized, faces: torch.Tensor) -> torch.Tensor:
        """Linear colour (H, W, 3), 0 on the background."""
        if self.texture is None:
            return ops.interpolate(self.colours, rast, faces)
        colour = ops.texture(ctx, self.texture, ops.interpolate(self.uv, rast, self.uv_faces))
        return torch.where((rast.tri_id >= 0)[..., None], colour, 0.0)


def _targets(inputs: ReconInputs, size: int, vertices: torch.Tensor, on_view: Callable[[], None]) -> list[_Target]:
    """The views with a silhouette, area-averaged to `size` pixels along the longer side.

    A render pixel's target depth is kept only where every input pixel under it has depth and they agree
    to within DEPTH_SMOOTH_PIXELS (no depth edge inside it).
    """
    device = vertices.device
    width, height = inputs.rig.width, inputs.rig.height
    scale = size / max(width, height)
    out_w, out_h = max(1, round(width * scale)), max(1, round(height * scale))
    targets = []
    for camera, colour, mask, depth in zip(inputs.rig.cameras, inputs.colors, inputs.masks, inputs.depths):
        on_view()
        if not mask.any():
            continue
        mask_t = torch.as_tensor(mask, device=device).float()
        depth_t = torch.as_tensor(depth, device=device)
        well = depth_t > opened_depth(depth_t) + WELL_TOLERANCE_PIXELS * pixel_world(camera, vertices)
        usable = ((depth_t > 0) & ~well).float()
        depth_t = depth_t * usable
        stack = torch.cat((torch.as_tensor(colour, device=device).permute(2, 0, 1) * mask_t,
                           torch.stack((mask_t, usable, depth_t, depth_t**2))))
        view = F.interpolate(stack[None], size=(out_h, out_w), mode="area")[0]
        camera = scaled_camera(camera, out_w, out_h)
        world = pixel_world(camera, vertices)
        share, mean, mean_square = view[4].clamp_min(1e-6), view[5], view[6]
        depth = mean / share
        spread = (mean_square / share - depth**2).clamp_min(0).sqrt()
        smooth = (view[4] > 1 - 1e-4) & (spread < DEPTH_SMOOTH_PIXELS * world)
        targets.append(_Target(camera, view[:3].permute(1, 2, 0), view[3], torch.where(smooth, depth, 0.0), smooth,
                               world))
    return targets


def _view_loss(ctx: ops.RenderContext, target: _Target, vertices: torch.Tensor, faces: torch.Tensor,
               appearance: _Appearance, topology: ops.Topology, visibility: torch.Tensor | None,
               on_chunk: Callable[[], None]) -> tuple[torch.Tensor, torch.Tensor]:
    """The view's image loss, and the tri_id map it rendered (for reuse as visibility)."""
    rast = ops.rasterize(ctx, target.camera, vertices, faces, visibility, on_chunk)
    covered = rast.tri_id >= 0
    colour_and_alpha = torch.cat((appearance.shade(ctx, rast, faces), covered[..., None].to(vertices.dtype)), dim=-1)
    shaded = ops.antialias(ctx, colour_and_alpha, rast, faces, topology)
    pixels = ((target.coverage > 0) | covered).sum().clamp_min(1)
    colour_loss = (shaded[..., :3] - target.colour).abs().sum() / pixels
    silhouette_loss = ((shaded[..., 3] - target.coverage) ** 2).sum() / pixels
    both = covered & target.depth_valid
    residual = (rast.depth - target.depth)[both] / target.pixel_world
    depth_loss = F.huber_loss(residual, torch.zeros_like(residual), delta=DEPTH_HUBER_PIXELS, reduction="sum") / pixels
    loss = WEIGHT_COLOUR * colour_loss + WEIGHT_SILHOUETTE * silhouette_loss + WEIGHT_DEPTH * depth_loss
    return loss, rast.tri_id


def _optimise(ctx: ops.RenderContext, targets: list[_Target], vertices: torch.Tensor, faces: torch.Tensor,
              appearance: _Appearance, iterations: int, budget_s: float | None, on_progress: Done
              ) -> tuple[torch.Tensor, _Appearance, list[float]]:
    """Adam on vertex offsets and the colours (texture or per vertex), each iteration one step on the loss of all
    views, for `iterations` iterations or until `budget_s` seconds have passed; returns the refined vertices,
    appearance and the losses."""
    offsets = torch.zeros_like(vertices, requires_grad=True)
    colours = appearance.parameter.clone().requires_grad_(True)
    appearance = appearance.with_parameter(colours)
    unit = min(target.pixel_world for target in targets)
    optimiser = Adam([(offsets, POSITION_LR_PIXELS * unit), (colours, COLOUR_LR)])
    topology = ctx.topology(faces)
    pairs = adjacent_faces(faces)
    refresh = CPU_VISIBILITY_REFRESH if ctx.backend == ops.REFERENCE else 1
    visibility: list[torch.Tensor | None] = [None] * len(targets)
    losses = []
    began = time.perf_counter()

    def tick(views_done: float) -> None:
        done = views_done / len(targets) / iterations
        if budget_s is not None:
            done = max(done, (time.perf_counter() - began) / budget_s)
        on_progress(done)

    for iteration in range(iterations):
        if budget_s is not None and time.perf_counter() - began > budget_s:
            break
        smoothness = uniform_laplacian(offsets, faces) / unit
        regulariser = (WEIGHT_LAPLACIAN * (smoothness**2).sum(dim=1).mean()
                       + WEIGHT_NORMAL * normal_consistency(vertices + offsets, faces, pairs))
        regulariser.backward()
        total = regulariser.item()
        for index, target in enumerate(targets):
            views_done = iteration * len(targets) + index
            cached = visibility[index] if iteration % refresh else None
            loss, visibility[index] = _view_loss(ctx, target, vertices + offsets, faces, appearance, topology,
                                                 cached, lambda: tick(views_done))
            tick(views_done + 0.5)
            loss.backward()
            total += loss.item() / len(targets)
            tick(views_done + 1)
        optimiser.step()
        with torch.no_grad():
            colours.clamp_(0.0, 1.0)
        losses.append(total)
    return (vertices + offsets).detach(), appearance.with_parameter(colours.detach()), losses


def _initial_appearance(inputs: ReconInputs, vertices: torch.Tensor, faces: torch.Tensor, texture_size: int,
                        on_progress: Callable[[float], None]) -> tuple[_Appearance, list[str]]:
    """Linear vertex colours projected from the full-resolution views (unseen vertices: nearest seen one) and,
    with a `texture_size`, fusion's atlas and a texture baked from the views; plus warnings."""
    device = vertices.device
    pixel = max(pixel_world(camera, vertices) for camera in inputs.rig.cameras)
    tolerance = max(COLOUR_TOLERANCE_PIXELS * pixel, inputs.rig.depth.step(inputs.depth_bits) or 0.0)
    views = (torch.as_tensor(inputs.colors, device=device), torch.as_tensor(inputs.masks, device=device),
             torch.as_tensor(inputs.depths, device=device))
    normals = vertex_normals(vertices, faces)
    linear, seen = vertex_colours(vertices, normals, inputs.rig.cameras, *views, tolerance,
                                  lambda views_done: on_progress(0.3 * views_done / len(SLOT_NAMES)))
    filled = fill_unseen(vertices.cpu().numpy(), linear.cpu().numpy(), seen.cpu().numpy())
    colours = torch.as_tensor(quantised(filled), device=device)
    if not texture_size:
        return _Appearance(colours=colours), []
    faces_np = faces.cpu().numpy()
    atlas = build_atlas(vertices.cpu().numpy().astype(np.float64), faces_np, texture_size)
    if atlas is None:
        return _Appearance(colours=colours), [NO_ATLAS_WARNING]
    on_progress(0.4)
    srgb, _ = bake_texture(vertices, normals, atlas, texture_size, inputs.rig.cameras, *views, tolerance, colours,
                           lambda views_done: on_progress(0.4 + 0.6 * views_done / len(SLOT_NAMES)))
    texture = torch.as_tensor(srgb_to_linear(srgb / 255.0), device=device)
    return _Appearance(texture=texture, atlas=atlas, uv=torch.as_tensor(atlas.uv, device=device),
                       uv_faces=torch.as_tensor(atlas.faces, device=device)), []


def quantised(linear: np.ndarray) -> np.ndarray:
    """Linear colours as the GLB stores them (8 bits per channel), so the metrics judge what is written."""
    return (np.round(np.clip(linear, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def view_metrics(ctx: ops.RenderContext, inputs: ReconInputs, vertices: torch.Tensor, faces: torch.Tensor,
                 appearance: _Appearance, on_progress: Callable[[float], None] = lambda done: None) -> list[dict]:
    """Per view at input resolution: evaluate.view_scores with colour, rendered by this model's own backend.

    `on_progress(share done)` is called as the views are rendered.
    """
    report = []
    for index, (slot, camera) in enumerate(zip(SLOT_NAMES, inputs.rig.cameras)):
        on_progress(index / len(SLOT_NAMES))
        with torch.no_grad():
            rast = ops.rasterize(ctx, camera, vertices, faces, on_chunk=lambda: on_progress(index / len(SLOT_NAMES)))
            colour = appearance.shade(ctx, rast, faces)
        expected = linear_to_srgb(inputs.colors[index] * inputs.masks[index][..., None])
        report.append(view_scores(slot, rast.tri_id >= 0, rast.depth,
                                  torch.as_tensor(inputs.masks[index], device=vertices.device),
                                  torch.as_tensor(inputs.depths[index], device=vertices.device),
                                  linear_to_srgb(colour.cpu().numpy()), expected))
    return report


def _summary(views: list[dict]) -> dict:
    """Means over the views that had something to compare."""
    summary = {}
    for key in ("silhouette_iou", "depth_error", "psnr"):
        values = [view[key] for view in views if view[key] is not None]
        summary[key] = round(float(np.mean(values)), 6) if values else None
    return summary


def _write(glb: Path, vertices: torch.Tensor, faces: torch.Tensor, appearance: _Appearance) -> _Appearance:
    """Write the GLB; returns the appearance as written (8 bits per channel), so the metrics judge the file."""
    vertices_np = vertices.cpu().numpy()
    normals = vertex_normals(vertices, faces).cpu().numpy()
    device = vertices.device
    if appearance.texture is None:
        linear = quantised(appearance.colours.cpu().numpy())
        write_glb(glb, vertices_np, faces.cpu().numpy(), normals, linear)
        return _Appearance(colours=torch.as_tensor(linear, device=device))
    srgb = linear_to_srgb8(appearance.texture.cpu().numpy())
    write_textured_glb(glb, vertices_np, normals, appearance.atlas, srgb)
    return appearance.with_parameter(torch.as_tensor(srgb_to_linear(srgb / 255.0), device=device))


def resolve_settings(iterations: int, render_resolution: int, device: torch.device, input_size: int,
                     cpu_budget_s: float = CPU_BUDGET_S) -> tuple[int, float | None, int]:
    """(iterations, time budget in seconds or None, render resolution) for option values where 0 = automatic.

    Automatic on a CPU: as many iterations as fit in `cpu_budget_s`, so a job's length does not depend on the
    machine; on CUDA a fixed, quality-oriented count. On a CPU the budget bounds an explicit count too: a public
    server's only worker is not lent for longer. The render resolution never exceeds the inputs'.
    """
    cuda = device.type == "cuda"
    budget = None if cuda else cpu_budget_s
    if not iterations:
        iterations = CUDA_ITERATIONS if cuda else CPU_MAX_ITERATIONS
    size = render_resolution or (CUDA_RENDER_RESOLUTION if cuda else CPU_RENDER_RESOLUTION)
    return iterations, budget, max(MIN_RENDER_RESOLUTION, min(size, input_size))


def reconstruct_nvdiffrec(
    inputs: ReconInputs,
    glb: Path,
    progress: Progress,
    *,
    iterations: int = 0,
    render_resolution: int = 0,
    texture_size: int = 1024,
    device: str | torch.device | None = None,
    backend: str = "auto",
    cpu_budget_s: float = CPU_BUDGET_S,
) -> ModelReport:
    """Write the refined mesh to `glb` and return the report; `progress(fraction, stage)` may raise JobCancelled.

    `texture_size` 0 refines and writes vertex colours instead of a texture."""
    stages = Stages(progress, STAGES)
    stages.start("decode")
    device = torch.device(device if device is not None else resolve_device())
    input_size = max(inputs.rig.width, inputs.rig.height)
    asked_iterations = iterations
    iterations, budget_s, size = resolve_settings(iterations, render_resolution, device, input_size, cpu_budget_s)
    grid_resolution = int(min(MAX_GRID, max(MIN_GRID, round(GRID_PER_RENDER_PIXEL * size))))
    start = begin(inputs, device, stages)
    ctx = ops.RenderContext(device, backend)
    warnings = start.warnings
    if ctx.fallback_reason:
        warnings.append(f"rendered with the reference backend: {ctx.fallback_reason}")
    surface = fused_surface(start, grid_resolution, stages)
    vertices, faces = surface.vertices, surface.faces

    stages.start("colour")
    appearance, notes = _initial_appearance(start.inputs, vertices, faces, texture_size, stages.within)
    warnings += notes
    stages.start("check_before")
    before = view_metrics(ctx, start.given, vertices, faces, appearance, stages.within)
    stages.start("targets")
    targets = _targets(start.inputs, size, vertices, lambda: stages.within(0.0))
    stages.start("optimise")
    refined, appearance, losses = _optimise(ctx, targets, vertices, faces, appearance, iterations, budget_s,
                                            stages.within)
    if budget_s is not None and len(losses) < iterations and asked_iterations:
        warnings.append(f"refinement stopped after {len(losses)} of the {asked_iterations} iterations asked for: "
                        f"on a CPU it may take at most {budget_s:.0f} s")
    stages.start("write")
    written = _write(glb, refined, faces, appearance)
    stages.start("check_after")
    after = view_metrics(ctx, start.given, refined, faces, written, stages.within)
    faces_np = faces.cpu().numpy()
    return {
        "model": "nvdiffrec",
        "timings": stages.finish(),
        "mesh": {"vertices": len(vertices), "triangles": len(faces_np), "watertight": is_watertight(faces_np)},
        "texture": None if appearance.atlas is None else {"size": texture_size, "charts": appearance.atlas.charts},
        "views": after,
        "depth_bits": inputs.depth_bits,
        "depth_left_out": start.depth_left_out,
        "refinement": {
            "backend": ctx.backend,
            "iterations": len(losses),
            "time_budget_s": budget_s,
            "render_resolution": size,
            "grid_resolution": grid_resolution,
            "loss": {"first": round(losses[0], 6), "last": round(losses[-1], 6)} if losses else None,
            "before": {"views": before, "mean": _summary(before)},
            "after": {"views": after, "mean": _summary(after)},
        },
        "warnings": warnings,
    }
