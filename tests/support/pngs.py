"""Small, valid input sets made in memory, and ways to break them one rule at a time."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def png(array: np.ndarray, mode: str | None = None, **save_args) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format="PNG", **save_args)
    return buffer.getvalue()


def disc_mask(size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    centre = (size - 1) / 2
    return (yy - centre) ** 2 + (xx - centre) ** 2 < (size * 0.35) ** 2


def view_png(size: int = 32, alpha: bool = True, colour=(200, 80, 40)) -> bytes:
    mask = disc_mask(size)
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[mask] = (*colour, 255)
    return png(rgba if alpha else rgba[..., :3].copy())


def depth_png(size: int = 32, bits: int = 16, width: int | None = None) -> bytes:
    width = width or size
    mask = np.zeros((size, width), bool)
    mask[: min(size, width), : min(size, width)] = disc_mask(min(size, width))
    if bits == 16:
        return png(np.where(mask, 30000, 0).astype(np.uint16))
    return png(np.where(mask, 120, 0).astype(np.uint8))


def input_set(size: int = 32, bits: int = 16) -> tuple[list[bytes], list[bytes]]:
    return [view_png(size) for _ in range(6)], [depth_png(size, bits) for _ in range(6)]
