"""Decode a job's 12 PNGs (+ cameras.json) into the arrays every model works on.

Upload validation already checked the files; this module still fails with a
sentence (ReconstructionFailed) rather than a traceback if something is off.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import FileValidationError, ReconstructionFailed
from .colour import srgb_to_linear
from .rig import SLOT_NAMES, Rig, cube6_rig, parse_cameras_json

ALPHA_THRESHOLD = 128


def eight_bit_depth_warning(step: float | None = None) -> str:
    """The one sentence about 8-bit depth, with the step in world units where the rig is known."""
    size = "1/255 of the depth range" if step is None else f"{step:.4f} world units (1/255 of the depth range)"
    return (f"depth renders are 8-bit: each depth step is {size}, so fine detail is lost; 16-bit depth PNGs give "
            "a more accurate mesh")


@dataclass
class ReconInputs:
    """Views in linear RGB, silhouettes, and depth in world units, in slot order."""

    rig: Rig
    colors: np.ndarray  # (6, H, W, 3) float32, linear RGB in [0, 1]
    masks: np.ndarray  # (6, H, W) bool
    depths: np.ndarray  # (6, H, W) float32 world units (z-depth), 0 outside the mask or without depth
    depth_bits: int


def _open(path: Path, what: str) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
    except (OSError, ValueError) as exc:
        raise ReconstructionFailed(f"Could not read the {what} ({Path(path).name}): {exc}.") from None
    return image


def _read_view(path: Path, slot: str) -> tuple[np.ndarray, np.ndarray | None]:
    """sRGB view -> (H, W, 3) uint8 RGB and its alpha channel, or None when it has none (or it is all opaque)."""
    image = _open(path, f"{slot} view")
    has_alpha = "A" in image.getbands() or "transparency" in image.info
    rgba = np.asarray(image.convert("RGBA"))
    alpha = rgba[..., 3] if has_alpha and (rgba[..., 3] < 255).any() else None
    return rgba[..., :3], alpha


def _read_depth(path: Path, slot: str) -> tuple[np.ndarray, int]:
    """Depth PNG -> (H, W) integer values and the bit depth (16 for modes I;16 / I, else 8)."""
    image = _open(path, f"{slot} depth render")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return np.asarray(image).astype(np.int64), 16
    if image.mode == "L":
        return np.asarray(image).astype(np.int64), 8
    if image.mode in ("RGB", "RGBA"):
        pixels = np.asarray(image)
        if (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 0] == pixels[..., 2]).all():
            return pixels[..., 0].astype(np.int64), 8
    raise ReconstructionFailed(
        f"The {slot} depth render is a {image.mode} image; depth renders must be one-channel 8-bit or 16-bit PNGs."
    )


def load_inputs(view_paths: list[Path], depth_paths: list[Path], cameras: dict | None) -> ReconInputs:
    """Read 6 views and 6 depth renders; the rig is cube6 unless a cameras.json (decoded) is given."""
    if len(view_paths) != len(SLOT_NAMES) or len(depth_paths) != len(SLOT_NAMES):
        raise ReconstructionFailed(
            f"A job needs exactly 6 views and 6 depth renders, got {len(view_paths)} and {len(depth_paths)}."
        )
    views = [_read_view(p, slot) for p, slot in zip(view_paths, SLOT_NAMES)]
    raw_depths = [_read_depth(p, slot) for p, slot in zip(depth_paths, SLOT_NAMES)]
    height, width = views[0][0].shape[:2]
    for slot, (rgb, _), (values, _) in zip(SLOT_NAMES, views, raw_depths):
        if rgb.shape[:2] != (height, width) or values.shape != (height, width):
            raise ReconstructionFailed(
                f"The {slot} view or depth render is not {width}x{height} like the front view; all 12 images must match."
            )
    if cameras is None:
        if width != height:
            raise ReconstructionFailed(
                f"The views are {width}x{height}, but the default cube6 rig needs square images; upload a cameras.json."
            )
        rig = cube6_rig(width)
    else:
        try:
            rig = parse_cameras_json(cameras, width, height)
        except FileValidationError as exc:
            raise ReconstructionFailed(f"The cameras.json is invalid: {exc.field} {exc.message}.") from None

    colors = np.stack([srgb_to_linear(rgb.astype(np.float32) / 255.0) for rgb, _ in views])
    depths = np.stack([rig.depth.decode(values, bits) for values, bits in raw_depths])
    masks = np.stack([
        alpha >= ALPHA_THRESHOLD if alpha is not None else depth > 0 for (_, alpha), depth in zip(views, depths)
    ])
    depths[~masks] = 0.0
    return ReconInputs(rig, colors.astype(np.float32), masks, depths, min(bits for _, bits in raw_depths))
