"""nvdiffrec's optimisation: the views as targets at the render resolution, what a mesh and its colours are
(vertex colours or a texture on an atlas), the per-view loss, and Adam steps judged on a view kept out of the loss.

The loss compares the rendered colour, silhouette (antialiased, so that silhouettes move vertices) and depth
with the inputs area-averaged to the render resolution; a Laplacian penalty on the offsets keeps the correction
smooth and a normal-consistency penalty flattens the facet noise of marching cubes but levels off at creases
(regularise.CREASE_DEGREES). Depth seen through a gap narrower than fusion's well (a lid's rim) is no target:
no surface can follow it there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from . import ops
from .atlas import Atlas
from .depth_views import opened_depth
from .inputs import ReconInputs
from .ops import pixel_world, scaled_camera
from .regularise import Adam, adjacent_faces, normal_consistency, uniform_laplacian
from .rig import SLOT_NAMES, Camera
from .stages import Done

CPU_VISIBILITY_REFRESH = 4  # reference backend: exact visibility every this many steps
POSITION_LR_PIXELS = 0.02  # Adam step on vertex offsets, in render pixels (0.05 and WEIGHT_NORMAL 32 moved
# the vertices of fine fusion meshes enough to mask the colours' gain on the held-out view: texture-0 +1.7% vs +21%)
COLOUR_LR = 0.002  # 0.01 moved every texel a full step at the first gradient: texture-0's held-out colour loss doubled
WEIGHT_COLOUR = 1.0
WEIGHT_SILHOUETTE = 1.0
WEIGHT_DEPTH = 1.0
WEIGHT_LAPLACIAN = 2.0
WEIGHT_NORMAL = 2.0
DEPTH_HUBER_PIXELS = 1.0
DEPTH_SMOOTH_PIXELS = 0.5  # a render pixel's target depth is used only if its input pixels agree this well
WELL_TOLERANCE_PIXELS = 2.0  # input depth this far behind its opening (depth_views.opened_depth) is seen through a gap
SIDE_SLOTS = ("front", "right", "back", "left")
MIN_VIEWS_TO_HOLD_OUT = 4  # with fewer views each is needed to fit; refinement is then not checked
HELD_OUT_CHECK_EVERY = 4  # iterations between scores of the held-out view
HELD_OUT_MIN_GAIN = 0.01  # a refined state is kept only if it lowers the held-out view's loss by this share


@dataclass
class Target:
    """One view at the render resolution: premultiplied linear colour, soft silhouette, depth where smooth."""

    slot: str
    camera: Camera
    colour: torch.Tensor  # (H, W, 3)
    coverage: torch.Tensor  # (H, W) in [0, 1]
    depth: torch.Tensor  # (H, W), 0 where not used
    depth_valid: torch.Tensor  # (H, W) bool
    pixel_world: float  # world units per render pixel at the object


@dataclass
class Appearance:
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

    def with_parameter(self, value: torch.Tensor) -> "Appearance":
        if self.texture is None:
            return Appearance(colours=value)
        return Appearance(texture=value, atlas=self.atlas, uv=self.uv, uv_faces=self.uv_faces)

    def shade(self, ctx: ops.RenderContext, rast: ops.Rasterized, faces: torch.Tensor) -> torch.Tensor:
        """Linear colour (H, W, 3), 0 on the background."""
        if self.texture is None:
            return ops.interpolate(self.colours, rast, faces)
        colour = ops.texture(ctx, self.texture, ops.interpolate(self.uv, rast, self.uv_faces))
        return torch.where((rast.tri_id >= 0)[..., None], colour, 0.0)


def targets_at(inputs: ReconInputs, size: int, vertices: torch.Tensor, on_view: Callable[[], None]) -> list[Target]:
    """The views with a silhouette, area-averaged to `size` pixels along the longer side.

    A render pixel's target depth is kept only where every input pixel under it has depth and they agree
    to within DEPTH_SMOOTH_PIXELS (no depth edge inside it).
    """
    device = vertices.device
    width, height = inputs.rig.width, inputs.rig.height
    scale = size / max(width, height)
    out_w, out_h = max(1, round(width * scale)), max(1, round(height * scale))
    targets = []
    for slot, camera, colour, mask, depth in zip(SLOT_NAMES, inputs.rig.cameras, inputs.colors, inputs.masks,
                                                 inputs.depths):
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
        targets.append(Target(slot, camera, view[:3].permute(1, 2, 0), view[3], torch.where(smooth, depth, 0.0), smooth,
                               world))
    return targets


def view_loss(ctx: ops.RenderContext, target: Target, vertices: torch.Tensor, faces: torch.Tensor,
               appearance: Appearance, topology: ops.Topology, visibility: torch.Tensor | None,
               on_chunk: Callable[[], None]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The view's image loss; its shape part (silhouette and depth: what the vertices alone change); and the
    tri_id map it rendered (for reuse as visibility)."""
    rast = ops.rasterize(ctx, target.camera, vertices, faces, visibility, on_chunk)
    covered = rast.tri_id >= 0
    colour_and_alpha = torch.cat((appearance.shade(ctx, rast, faces), covered[..., None].to(vertices.dtype)), dim=-1)
    shaded = ops.antialias(ctx, colour_and_alpha, rast, faces, topology)
    pixels = ((target.coverage > 0) | covered).sum().clamp_min(1)
    # Colour only where the view shows the object: where it shows background, the silhouette term moves the
    # surface, and a colour term would paint the texels there black.
    colour_loss = ((shaded[..., :3] - target.colour).abs() * (target.coverage > 0)[..., None]).sum() / pixels
    silhouette_loss = ((shaded[..., 3] - target.coverage) ** 2).sum() / pixels
    both = covered & target.depth_valid
    residual = (rast.depth - target.depth)[both] / target.pixel_world
    depth_loss = F.huber_loss(residual, torch.zeros_like(residual), delta=DEPTH_HUBER_PIXELS, reduction="sum") / pixels
    shape_loss = WEIGHT_SILHOUETTE * silhouette_loss + WEIGHT_DEPTH * depth_loss
    return WEIGHT_COLOUR * colour_loss + shape_loss, shape_loss, rast.tri_id


@dataclass
class HeldOut:
    """How refinement did on the view kept out of its loss: the judge of whether it helps where the loss is blind.

    When vertices move, the shape is judged on its own: vertices that lowered the whole loss but not the view's
    silhouette and depth terms moved where the inputs say nothing (measured: such moves cost novel views up to
    1 dB on finely textured objects), so they are undone and only the colours are kept."""

    slot: str
    start_loss: float
    start_shape_loss: float
    best_loss: float
    best_shape_loss: float
    best_iteration: int  # 0: no refined state beat the start, which is kept

    @property
    def kept(self) -> bool:
        return self.best_iteration > 0

    @property
    def shape_kept(self) -> bool:
        return self.kept and self.best_shape_loss < self.start_shape_loss * (1 - HELD_OUT_MIN_GAIN)

    def summary(self) -> dict:
        return {"slot": self.slot, "loss_start": round(self.start_loss, 6), "loss_best": round(self.best_loss, 6),
                "shape_loss_start": round(self.start_shape_loss, 6),
                "shape_loss_best": round(self.best_shape_loss, 6), "best_iteration": self.best_iteration,
                "shape_kept": self.shape_kept}


def held_out_view(targets: list[Target]) -> int | None:
    """The view the optimiser does not see: the side view with the largest silhouette (side views look most like
    the views people turn the mesh to); None with fewer than MIN_VIEWS_TO_HOLD_OUT views, which all count."""
    sides = [index for index, target in enumerate(targets) if target.slot in SIDE_SLOTS]
    if len(targets) < MIN_VIEWS_TO_HOLD_OUT or not sides:
        return None
    return max(sides, key=lambda index: targets[index].coverage.sum().item())


def optimise(ctx: ops.RenderContext, targets: list[Target], vertices: torch.Tensor, faces: torch.Tensor,
              appearance: Appearance, iterations: int, budget_s: float | None, on_progress: Done,
              move_vertices: bool = False) -> tuple[torch.Tensor, Appearance, list[float], HeldOut | None]:
    """Adam on the colours (texture or per vertex), and on vertex offsets when `move_vertices`, each iteration one
    step on the loss of all views but one, for `iterations` iterations or until `budget_s` seconds have passed.

    The view held out (`held_out_view`) is scored every HELD_OUT_CHECK_EVERY iterations, and the state that
    scored best is returned: the start itself when no refined state beat it by HELD_OUT_MIN_GAIN, so
    refinement that fits the inputs but drifts where they say nothing is not kept; with the start's vertices
    when that state did not also lower the view's shape terms by that share (HeldOut). With the vertices fixed the
    view is judged on its colour term alone, the only one that can change. Returns the vertices, the appearance,
    the losses and the held-out record (None when every view was needed)."""
    offsets = torch.zeros_like(vertices, requires_grad=move_vertices)
    colours = appearance.parameter.clone().requires_grad_(True)
    appearance = appearance.with_parameter(colours)
    unit = min(target.pixel_world for target in targets)
    optimiser = Adam([(colours, COLOUR_LR)] + ([(offsets, POSITION_LR_PIXELS * unit)] if move_vertices else []))
    topology = ctx.topology(faces)
    pairs = adjacent_faces(faces) if move_vertices else None
    refresh = CPU_VISIBILITY_REFRESH if ctx.backend == ops.REFERENCE else 1
    hold = held_out_view(targets)
    training = [index for index in range(len(targets)) if index != hold]
    visibility: list[torch.Tensor | None] = [None] * len(targets)
    losses = []
    began = time.perf_counter()

    def tick(views_done: float) -> None:
        done = views_done / len(training) / iterations
        if budget_s is not None:
            done = max(done, (time.perf_counter() - began) / budget_s)
        on_progress(done)

    def held_out_loss() -> tuple[float, float]:
        with torch.no_grad():
            loss, shape, _ = view_loss(ctx, targets[hold], vertices + offsets, faces, appearance, topology, None,
                                       lambda: None)
        return (loss if move_vertices else loss - shape).item(), shape.item()

    record = None
    if hold is not None:
        start_loss, start_shape = held_out_loss()
        record = HeldOut(targets[hold].slot, start_loss, start_shape, start_loss, start_shape, 0)
    best = (offsets.detach().clone(), colours.detach().clone())
    for iteration in range(iterations):
        if budget_s is not None and time.perf_counter() - began > budget_s:
            break
        total = 0.0
        if move_vertices:
            smoothness = uniform_laplacian(offsets, faces) / unit
            regulariser = (WEIGHT_LAPLACIAN * (smoothness**2).sum(dim=1).mean()
                           + WEIGHT_NORMAL * normal_consistency(vertices + offsets, faces, pairs))
            regulariser.backward()
            total = regulariser.item()
        for step, index in enumerate(training):
            views_done = iteration * len(training) + step
            cached = visibility[index] if iteration % refresh else None
            loss, _, visibility[index] = view_loss(ctx, targets[index], vertices + offsets, faces, appearance, topology,
                                                 cached, lambda: tick(views_done))
            tick(views_done + 0.5)
            loss.backward()
            total += loss.item() / len(training)
            tick(views_done + 1)
        optimiser.step()
        with torch.no_grad():
            colours.clamp_(0.0, 1.0)
        losses.append(total)
        last = iteration + 1 == iterations or (budget_s is not None and time.perf_counter() - began > budget_s)
        if record is not None and (len(losses) % HELD_OUT_CHECK_EVERY == 0 or last):
            score, shape = held_out_loss()
            if score < record.best_loss and score < record.start_loss * (1 - HELD_OUT_MIN_GAIN):
                record.best_loss, record.best_shape_loss, record.best_iteration = score, shape, len(losses)
                best = (offsets.detach().clone(), colours.detach().clone())
    if record is None:
        best = (offsets.detach(), colours.detach())
    elif not record.shape_kept:
        best = (torch.zeros_like(vertices), best[1])
    return vertices + best[0], appearance.with_parameter(best[1]), losses, record
