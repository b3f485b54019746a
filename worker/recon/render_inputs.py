"""Render a mesh into a job's 12 inputs (6 views + 6 depth renders + cameras.json), for tests and benchmarks.

    python -m worker.recon.render_inputs MESH OUTDIR [--res 512] [--depth-bits 16|8]
                                               [--rig cube6|path/to/cameras.json] [--no-normalize]
                                               [--turn DEGREES]

Views carry the object's plain (unlit) base colour: its texture, its vertex or face
colours, or else a smooth, saturated procedural albedo that depends on position,
so that colour transfer can be measured. The normalised mesh is written next to
the inputs as reference.glb / reference.ply for evaluation.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import trimesh
from PIL import Image

from ..errors import FileValidationError
from .raster import interpolate, rasterize
from .rig import SLOT_NAMES, Rig, cube6_rig, parse_cameras_json, rig_to_cameras_json
from .sampling import sample_masked

NORMALIZED_SIZE = 1.6
REFERENCE_EDGE = 0.02  # the procedural albedo changes little over this (its hue turns about twice across the cube)
REFERENCE_SPLITS = 7  # halvings enough to bring an edge of the whole normalised size under REFERENCE_EDGE


def normalize_mesh(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """A copy centred on its bbox and scaled so the longest bbox side is 1.6 (it fits [-0.8, 0.8]^3)."""
    mesh = mesh.copy()
    lo, hi = mesh.bounds
    mesh.apply_translation(-(lo + hi) / 2)
    mesh.apply_scale(NORMALIZED_SIZE / float((hi - lo).max()))
    return mesh


def procedural_albedo(points: np.ndarray) -> np.ndarray:
    """A smooth, saturated sRGB colour (N, 3) in [0, 1] for world points (N, 3).

    The hue runs about two turns of the colour wheel across the normalised cube, along a slanted direction
    with a gentle wave, so every side of an object gets different colours.
    """
    points = np.asarray(points, dtype=np.float64)
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    hue = (0.55 * x + 0.35 * y - 0.45 * z + 0.1 * np.sin(5.0 * x + 3.0 * z)) % 1.0
    saturation = 0.75
    value = 0.8 + 0.15 * np.cos(2.5 * y)
    sector = np.floor(hue * 6.0)
    frac = hue * 6.0 - sector
    p = value * (1 - saturation)
    q = value * (1 - saturation * frac)
    t = value * (1 - saturation * (1 - frac))
    table = np.stack([
        np.stack(rgb, axis=-1)
        for rgb in ((value, t, p), (q, value, p), (p, value, t), (p, q, value), (t, p, value), (value, p, q))
    ])
    return table[sector.astype(int) % 6, np.arange(len(hue))].astype(np.float32)


def _texture_image(mesh: trimesh.Trimesh) -> np.ndarray | None:
    visual = mesh.visual
    if visual.kind != "texture" or getattr(visual, "uv", None) is None:
        return None
    material = visual.material
    image = getattr(material, "image", None) or getattr(material, "baseColorTexture", None)
    return None if image is None else np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def _shade(mesh: trimesh.Trimesh, texture: np.ndarray | None, faces: torch.Tensor, tri_id: torch.Tensor,
           bary: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """sRGB base colour (H, W, 3) in [0, 1] of the visible surface."""
    if texture is not None:
        uv = interpolate(torch.as_tensor(mesh.visual.uv, dtype=torch.float32), tri_id, bary, faces)
        height, width = texture.shape[:2]
        u = (uv[..., 0] % 1.0) * width
        v = (1.0 - uv[..., 1] % 1.0) * height
        image = torch.as_tensor(texture)
        colour, _ = sample_masked(image, torch.ones(image.shape[:2], dtype=torch.bool), u.reshape(-1), v.reshape(-1))
        return colour.view(*tri_id.shape, 3)
    if mesh.visual.kind == "vertex":
        colours = torch.as_tensor(mesh.visual.vertex_colors[:, :3] / 255.0, dtype=torch.float32)
        return interpolate(colours, tri_id, bary, faces)
    if mesh.visual.kind == "face":
        colours = torch.as_tensor(mesh.visual.face_colors[:, :3] / 255.0, dtype=torch.float32)
        return colours[tri_id.clamp_min(0)]
    flat = procedural_albedo(points.reshape(-1, 3).numpy())
    return torch.as_tensor(flat).view(*tri_id.shape, 3)


def _reference(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """The mesh as evaluated: procedural colours baked into vertex colours when it has none of its own.

    The views evaluate the albedo at every pixel, vertex colours only at the corners: a long face (a rod, the
    side of a box) would blend its ends' colours where the views show the hues between them, so the faces are
    split to REFERENCE_EDGE first."""
    if mesh.visual.kind is None:
        reference = mesh.subdivide_to_size(REFERENCE_EDGE, max_iter=REFERENCE_SPLITS)
        reference.merge_vertices()
        srgb = procedural_albedo(reference.vertices)
        reference.visual = trimesh.visual.ColorVisuals(reference, vertex_colors=np.round(srgb * 255).astype(np.uint8))
        return reference
    return mesh


def render_inputs(mesh: trimesh.Trimesh, out_dir: Path, res: int = 512, depth_bits: int = 16,
                  rig: Rig | None = None, normalize: bool = True, on_chunk: Callable[[], None] = lambda: None
                  ) -> list[Path]:
    """Write view_i_<slot>.png, depth_i_<slot>.png, cameras.json and reference.glb/.ply; return their paths.

    `rig` defaults to cube6 at `res` x `res`; a given rig brings its own image size and depth encoding.
    `on_chunk` is called while rasterizing (raster.rasterize) and may raise to abandon the work.
    """
    if depth_bits not in (8, 16):
        raise ValueError(f"depth_bits must be 8 or 16, got {depth_bits}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rig = rig or cube6_rig(res)
    if normalize:
        mesh = normalize_mesh(mesh)
    vertices = torch.as_tensor(mesh.vertices, dtype=torch.float32)
    faces = torch.as_tensor(mesh.faces, dtype=torch.int64)
    texture = _texture_image(mesh)
    paths = []
    for index, (slot, camera) in enumerate(zip(SLOT_NAMES, rig.cameras)):
        raster = rasterize(camera, vertices, faces, on_chunk=on_chunk)
        covered = (raster.tri_id >= 0).numpy()
        points = interpolate(vertices, raster.tri_id, raster.bary, faces)
        colour = _shade(mesh, texture, faces, raster.tri_id, raster.bary, points).clamp(0, 1).numpy()
        rgba = np.zeros((camera.height, camera.width, 4), dtype=np.uint8)
        rgba[..., :3] = np.where(covered[..., None], np.round(colour * 255), 0)
        rgba[..., 3] = np.where(covered, 255, 0)
        depth = rig.depth.encode(np.where(covered, raster.depth.numpy(), 0.0), depth_bits)
        view_path = out_dir / f"view_{index}_{slot}.png"
        depth_path = out_dir / f"depth_{index}_{slot}.png"
        Image.fromarray(rgba).save(view_path)
        Image.fromarray(depth).save(depth_path)
        paths += [view_path, depth_path]
    cameras_path = out_dir / "cameras.json"
    cameras_path.write_text(json.dumps(rig_to_cameras_json(rig), indent=1))
    reference = _reference(mesh)
    for name in ("reference.glb", "reference.ply"):
        reference.export(out_dir / name)
        paths.append(out_dir / name)
    return [cameras_path] + paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.recon.render_inputs", description=__doc__.splitlines()[0])
    parser.add_argument("mesh", type=Path, help="any mesh trimesh reads (OBJ+MTL+texture, PLY, GLB, ...)")
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--res", type=int, default=None, help="image size for cube6 (default 512)")
    parser.add_argument("--depth-bits", type=int, choices=(8, 16), default=16)
    parser.add_argument("--rig", default="cube6", help="cube6 (default) or a cameras.json")
    parser.add_argument("--no-normalize", action="store_true", help="keep the mesh's own position and scale")
    parser.add_argument("--turn", type=float, default=0.0, metavar="DEGREES",
                        help="turn the mesh about +Y (up) first, e.g. 180 to bring a face seen from the back to the front")
    args = parser.parse_args(argv)

    if args.rig == "cube6":
        rig = cube6_rig(args.res or 512)
    else:
        data = json.loads(Path(args.rig).read_text())
        width = height = args.res
        if width is None and isinstance(data, dict):
            width, height = data.get("w"), data.get("h")
        try:
            rig = parse_cameras_json(data, width, height)
        except FileValidationError as exc:
            print(f"{args.rig}: {exc.field}: {exc.message}", file=sys.stderr)
            return 2
    mesh = trimesh.load(args.mesh, force="mesh")
    mesh.apply_transform(trimesh.transformations.rotation_matrix(np.radians(args.turn), (0.0, 1.0, 0.0)))
    for path in render_inputs(mesh, args.outdir, depth_bits=args.depth_bits, rig=rig, normalize=not args.no_normalize):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
