"""Pictures of the fit, drawn by the worker right after the model: a comparison sheet and a turntable.

A report's IoU and depth error say how well a mesh fits; these pictures say where it does not.

The comparison sheet (comparison.png, opaque, white background) has one column per slot, in slot order
(front, right, back, left, top, bottom), its name above it, and three rows named in the left margin:
1. "input": the input view in sRGB, black outside its silhouette, resized (bilinear) to the tile;
2. "result": the mesh rendered from that slot's camera with its texture or vertex colours, unlit, black around it;
3. "depth error": |rendered z-depth - input z-depth| where both exist, on a fixed colour scale from 0 (dark blue)
   through cyan, green and yellow to ERROR_SCALE_PCT % of the object's size (red; larger errors stay red).
   Silhouettes that disagree are marked: magenta where the mesh covers a pixel outside the input's silhouette
   ("extra"), grey where the input's silhouette has no mesh ("missing"), dark grey where both cover a pixel
   the input gives no depth for, black where neither covers it.
The object's size is the diagonal of the bounding box of the inputs' depth points (world units).
Under the rows, the legend: the colour bar with its ticks in % of that size and in world units, and the two
silhouette swatches. A tile is the input image scaled to fit TILE x TILE pixels (never enlarged): (tile_w, tile_h).
The sheet is MARGIN + 6 * (tile_w + GAP) + GAP pixels wide and HEADER + 3 * (tile_h + GAP) + LEGEND tall.

The turntable (turntable.webp, animated, transparent background) is TURNTABLE_FRAMES orthographic renders of
TURNTABLE_SIZE pixels around the vertical (+Y) axis, 45 degrees apart, starting from the front, looking down
by TURNTABLE_ELEVATION_DEG, lightly shaded so that the shape reads.

Every render goes through raster.py's `rasterize` and `interpolate`, as the evaluation and the benchmarks do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import trimesh
from PIL import Image, ImageDraw, ImageFont

from .colour import linear_to_srgb
from .inputs import ReconInputs
from .ops import scaled_camera
from .raster import interpolate, rasterize
from .rig import ORTHO, SLOT_NAMES, Camera, look_at
from .sampling import sample_masked
from .stages import Done

TILE = 256
GAP = 8
MARGIN = 128
HEADER = 64  # the slot names sit at its foot: a page may lay its own label and buttons over the top
LEGEND = 84
LABEL_PX = 20
LEGEND_PX = 15
ROW_NAMES = ("input", "result", "depth error")
ERROR_SCALE_PCT = 2.0
ERROR_TICKS_PCT = (0.0, 0.5, 1.0, 1.5, 2.0)
# The depth-error colour scale: (fraction of ERROR_SCALE_PCT, sRGB) stops, linear in between.
ERROR_STOPS = ((0.0, (20, 40, 150)), (0.25, (30, 150, 230)), (0.5, (80, 200, 90)), (0.75, (250, 200, 40)),
               (1.0, (210, 30, 30)))
EXTRA = (230, 0, 230)
MISSING = (128, 128, 128)
NO_DEPTH = (56, 56, 56)
PAPER = (255, 255, 255)
INK = (30, 30, 30)
UNCOLOURED = (0.7, 0.7, 0.7)  # sRGB of a mesh without colours
TEXTURE_MAX = 1024  # a 256-pixel tile needs no finer texture; a 4096 one as floats would take 200 MB
TURNTABLE_FRAMES = 8
TURNTABLE_SIZE = 256
TURNTABLE_ELEVATION_DEG = 20.0
TURNTABLE_FRAME_MS = 400
TURNTABLE_QUALITY = 80
AMBIENT = 0.45  # turntable shading: AMBIENT + (1 - AMBIENT) * |cos| between the normal and the view


@dataclass
class Coloured:
    """A mesh as the renderer needs it: sRGB vertex colours, or UVs (v up, as trimesh keeps them) and a texture."""

    vertices: torch.Tensor  # (V, 3) float32
    faces: torch.Tensor  # (F, 3) int64
    vertex_srgb: torch.Tensor | None = None  # (V, 3) in [0, 1]
    uv: torch.Tensor | None = None  # (V, 2)
    texture: torch.Tensor | None = None  # (H, W, 3) sRGB in [0, 1]


def load_result(glb: Path) -> Coloured:
    """The GLB a model wrote: its base-colour texture (sRGB), or its COLOR_0 (linear, as glTF defines it)."""
    mesh = trimesh.load(glb, force="mesh", process=False)
    coloured = Coloured(torch.as_tensor(np.asarray(mesh.vertices), dtype=torch.float32),
                        torch.as_tensor(np.asarray(mesh.faces), dtype=torch.int64))
    visual = mesh.visual
    image = getattr(getattr(visual, "material", None), "baseColorTexture", None)
    if visual.kind == "texture" and image is not None and getattr(visual, "uv", None) is not None:
        coloured.uv = torch.as_tensor(np.asarray(visual.uv), dtype=torch.float32)
        image = image.convert("RGB")
        if max(image.size) > TEXTURE_MAX:
            image.thumbnail((TEXTURE_MAX, TEXTURE_MAX), Image.Resampling.BOX)
        coloured.texture = torch.as_tensor(np.asarray(image, dtype=np.float32) / 255.0)
    elif visual.kind == "vertex":
        linear = np.asarray(visual.vertex_colors[:, :3], dtype=np.float32) / 255.0
        coloured.vertex_srgb = torch.as_tensor(linear_to_srgb(linear))
    return coloured


def surface_colour(mesh: Coloured, tri_id: torch.Tensor, bary: torch.Tensor) -> torch.Tensor:
    """sRGB colour (H, W, 3) in [0, 1] of the visible surface, 0 on background."""
    covered = tri_id >= 0
    if mesh.texture is not None:
        uv = interpolate(mesh.uv, tri_id, bary, mesh.faces)
        height, width = mesh.texture.shape[:2]
        u = (uv[..., 0] % 1.0) * width
        v = (1.0 - uv[..., 1] % 1.0) * height
        everywhere = torch.ones((height, width), dtype=torch.bool)
        colour = sample_masked(mesh.texture, everywhere, u.reshape(-1), v.reshape(-1))[0].view(*tri_id.shape, 3)
    elif mesh.vertex_srgb is not None:
        colour = interpolate(mesh.vertex_srgb, tri_id, bary, mesh.faces)
    else:
        colour = torch.tensor(UNCOLOURED).expand(*tri_id.shape, 3)
    return torch.where(covered[..., None], colour.clamp(0, 1), 0.0)


def tile_size(width: int, height: int) -> tuple[int, int]:
    """An input image's size scaled to fit TILE x TILE, never enlarged."""
    scale = min(1.0, TILE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def sheet_size(width: int, height: int) -> tuple[int, int]:
    """The comparison sheet's (width, height) for inputs of width x height (see the module's docstring)."""
    tile_w, tile_h = tile_size(width, height)
    return MARGIN + 6 * (tile_w + GAP) + GAP, HEADER + 3 * (tile_h + GAP) + LEGEND


def object_size(inputs: ReconInputs) -> float:
    """The diagonal of the bounding box of every input depth point (world units); 1 without any depth."""
    points = [camera.unproject_depth_map(torch.as_tensor(depth))[torch.as_tensor(depth) > 0]
              for camera, depth in zip(inputs.rig.cameras, inputs.depths)]
    points = torch.cat(points)
    if not len(points):
        return 1.0
    return float((points.amax(dim=0) - points.amin(dim=0)).norm()) or 1.0


def error_colours(fraction: np.ndarray) -> np.ndarray:
    """Fractions of the scale's top (any shape, clipped to [0, 1]) -> uint8 sRGB on the depth-error scale."""
    stops = np.array([stop for stop, _ in ERROR_STOPS])
    colours = np.array([colour for _, colour in ERROR_STOPS], dtype=np.float64)
    clipped = np.clip(fraction, 0.0, 1.0)
    channels = [np.interp(clipped, stops, colours[:, channel]) for channel in range(3)]
    return np.round(np.stack(channels, axis=-1)).astype(np.uint8)


def error_tile(rendered: np.ndarray, rendered_depth: np.ndarray, mask: np.ndarray, depth: np.ndarray,
               scale_top: float) -> np.ndarray:
    """The depth-error heat map (H, W, 3) uint8 of one view, coloured as the module's docstring says."""
    tile = np.zeros((*mask.shape, 3), dtype=np.uint8)
    both = rendered & mask
    tile[both] = NO_DEPTH
    measured = both & (depth > 0)
    tile[measured] = error_colours(np.abs(rendered_depth - depth)[measured] / scale_top)
    tile[rendered & ~mask] = EXTRA
    tile[mask & ~rendered] = MISSING
    return tile


def _to_tile(image: np.ndarray, size: tuple[int, int], resample: Image.Resampling) -> Image.Image:
    picture = Image.fromarray(image)
    return picture if picture.size == size else picture.resize(size, resample)


def slot_tiles(inputs: ReconInputs, mesh: Coloured, index: int, size: tuple[int, int], scale_top: float
               ) -> tuple[Image.Image, Image.Image, Image.Image]:
    """One column of the sheet: the input view, the result from the slot's camera, the depth-error heat map."""
    srgb = np.where(inputs.masks[index][..., None], linear_to_srgb(inputs.colors[index]), 0.0)
    view = _to_tile(np.round(srgb * 255).astype(np.uint8), size, Image.Resampling.BILINEAR)
    camera = scaled_camera(inputs.rig.cameras[index], *size)
    raster = rasterize(camera, mesh.vertices, mesh.faces)
    colour = surface_colour(mesh, raster.tri_id, raster.bary).numpy()
    result = Image.fromarray(np.round(colour * 255).astype(np.uint8))
    mask = np.asarray(_to_tile(inputs.masks[index].astype(np.uint8), size, Image.Resampling.NEAREST)) > 0
    depth = np.asarray(_to_tile(inputs.depths[index], size, Image.Resampling.NEAREST))
    rendered = (raster.tri_id >= 0).numpy()
    heat = error_tile(rendered, raster.depth.numpy(), mask, depth, scale_top)
    return view, result, Image.fromarray(heat)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _legend(draw: ImageDraw.ImageDraw, left: int, top: int, width: int, size: float) -> None:
    """The colour bar with ticks in % of the object's size and world units, then the silhouette swatches."""
    bar_w, bar_h = min(560, width // 2), 16
    ramp = error_colours(np.linspace(0.0, 1.0, bar_w))
    for x, colour in enumerate(ramp):
        draw.line([(left + x, top + 22), (left + x, top + 22 + bar_h)], fill=tuple(int(c) for c in colour))
    font = _font(LEGEND_PX)
    draw.text((left, top), f"depth error, % of the object's size ({size:.3g} units)", fill=INK, font=font)
    for tick in ERROR_TICKS_PCT:
        x = left + round(tick / ERROR_SCALE_PCT * (bar_w - 1))
        draw.line([(x, top + 22 + bar_h), (x, top + 27 + bar_h)], fill=INK)
        label = f"{tick:g}%" + ("+" if tick == ERROR_SCALE_PCT else "")
        draw.text((x, top + 29 + bar_h), f"{label} ({tick / 100 * size:.2g})", fill=INK, font=font, anchor="ma")
    x = left + bar_w + 40
    for colour, text in ((EXTRA, "extra: mesh outside the input's silhouette"),
                         (MISSING, "missing: no mesh inside the silhouette")):
        draw.rectangle([(x, top + 22), (x + bar_h, top + 22 + bar_h)], fill=colour)
        draw.text((x + bar_h + 6, top + 22), text, fill=INK, font=font)
        x += bar_h + 6 + round(draw.textlength(text, font=font)) + 24


def draw_comparison(inputs: ReconInputs, mesh: Coloured, path: Path, on_progress: Done = lambda done: None) -> None:
    """Write the comparison sheet (layout in the module's docstring) as a PNG at `path`."""
    size = tile_size(inputs.rig.width, inputs.rig.height)
    width, height = sheet_size(inputs.rig.width, inputs.rig.height)
    sheet = Image.new("RGB", (width, height), PAPER)
    draw = ImageDraw.Draw(sheet)
    object_diagonal = object_size(inputs)
    scale_top = ERROR_SCALE_PCT / 100 * object_diagonal
    font = _font(LABEL_PX)
    for row, name in enumerate(ROW_NAMES):
        top = HEADER + row * (size[1] + GAP) + GAP
        draw.text((GAP, top + size[1] // 2), name, fill=INK, font=font, anchor="lm")
    for index, slot in enumerate(SLOT_NAMES):
        on_progress(index / len(SLOT_NAMES))
        left = MARGIN + GAP + index * (size[0] + GAP)
        draw.text((left + size[0] // 2, HEADER - GAP), slot, fill=INK, font=font, anchor="md")
        for row, tile in enumerate(slot_tiles(inputs, mesh, index, size, scale_top)):
            sheet.paste(tile, (left, HEADER + row * (size[1] + GAP) + GAP))
    _legend(draw, MARGIN + GAP, HEADER + 3 * (size[1] + GAP) + GAP, width - MARGIN - 2 * GAP, object_diagonal)
    sheet.save(path, optimize=False)


def turntable_cameras(vertices: torch.Tensor) -> list[Camera]:
    """Orthographic cameras around the mesh's bounding-box centre, each frame holding the whole mesh."""
    if not len(vertices):
        vertices = torch.zeros((1, 3))
    centre = ((vertices.amin(dim=0) + vertices.amax(dim=0)) / 2).double().numpy()
    radius = max(float((vertices - torch.as_tensor(centre, dtype=torch.float32)).norm(dim=1).max()), 1e-6)
    focal = TURNTABLE_SIZE / (2 * 1.08 * radius)
    elevation = math.radians(TURNTABLE_ELEVATION_DEG)
    cameras = []
    for frame in range(TURNTABLE_FRAMES):
        azimuth = 2 * math.pi * frame / TURNTABLE_FRAMES
        outward = np.array([math.sin(azimuth) * math.cos(elevation), math.sin(elevation),
                            math.cos(azimuth) * math.cos(elevation)])
        matrix = look_at(tuple(centre + 3 * radius * outward), tuple(-outward), (0, 1, 0))
        cameras.append(Camera(ORTHO, matrix, TURNTABLE_SIZE, TURNTABLE_SIZE, focal, focal,
                              TURNTABLE_SIZE / 2, TURNTABLE_SIZE / 2))
    return cameras


def turntable_frames(mesh: Coloured, on_progress: Done = lambda done: None) -> list[Image.Image]:
    """The turntable's frames: RGBA, transparent around the mesh."""
    corners = mesh.vertices[mesh.faces]
    normals = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals = normals / normals.norm(dim=1, keepdim=True).clamp_min(1e-12)
    frames = []
    for index, camera in enumerate(turntable_cameras(mesh.vertices)):
        on_progress(index / TURNTABLE_FRAMES)
        raster = rasterize(camera, mesh.vertices, mesh.faces)
        facing = (normals[raster.tri_id.clamp_min(0)] @ torch.as_tensor(camera.forward, dtype=torch.float32)).abs()
        shaded = surface_colour(mesh, raster.tri_id, raster.bary) * (AMBIENT + (1 - AMBIENT) * facing[..., None])
        rgba = np.zeros((camera.height, camera.width, 4), dtype=np.uint8)
        rgba[..., :3] = np.round(shaded.clamp(0, 1).numpy() * 255)
        rgba[..., 3] = np.where((raster.tri_id >= 0).numpy(), 255, 0)
        frames.append(Image.fromarray(rgba, "RGBA"))
    return frames


def draw_turntable(mesh: Coloured, path: Path, on_progress: Done = lambda done: None) -> None:
    """Write the turntable as an animated WebP at `path`, looping for ever."""
    frames = turntable_frames(mesh, on_progress)
    frames[0].save(path, format="WEBP", save_all=True, append_images=frames[1:], duration=TURNTABLE_FRAME_MS,
                   loop=0, quality=TURNTABLE_QUALITY)


def draw_previews(inputs: ReconInputs, glb: Path, comparison: Path, turntable: Path,
                  on_progress: Done = lambda done: None) -> None:
    """The comparison sheet and the turntable of the GLB a model wrote for these inputs."""
    mesh = load_result(glb)
    draw_comparison(inputs, mesh, comparison, lambda done: on_progress(done * 0.5))
    draw_turntable(mesh, turntable, lambda done: on_progress(0.5 + done * 0.5))
