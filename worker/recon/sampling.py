"""Lookups of per-pixel maps at continuous pixel coordinates (pixel centres at +0.5), as tensor operations.

A bilinear lookup must know which of the 2x2 texels exist (inside the image, and
valid) so that background never bleeds into a colour: the previews and the input
renderer read textures this way. Fusion's own loops over points read their depth
and colour texels the same way, compiled (snap, colour).
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class Neighbours(NamedTuple):
    values: torch.Tensor  # (N, K, C): for 2x2, texels (x0, y0), (x0+1, y0), (x0, y0+1), (x0+1, y0+1)
    weights: torch.Tensor  # (N, K): interpolation weights, 0 for texels outside the image
    flat: torch.Tensor  # (N, K) int64 flat texel index (clamped into the image)


def neighbours_2x2(image: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> Neighbours:
    """The 2x2 texels around each (u, v) of an (H, W, C) map, with their bilinear weights."""
    x, y = u - 0.5, v - 0.5
    x0, y0 = torch.floor(x), torch.floor(y)
    tx, ty = x - x0, y - y0
    x0, y0 = x0.long(), y0.long()
    xs = torch.stack((x0, x0 + 1, x0, x0 + 1), dim=-1)
    ys = torch.stack((y0, y0, y0 + 1, y0 + 1), dim=-1)
    weights = torch.stack(((1 - tx) * (1 - ty), tx * (1 - ty), (1 - tx) * ty, tx * ty), dim=-1)
    return _gathered(image, xs, ys, weights)


def _gathered(image: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor, weights: torch.Tensor) -> Neighbours:
    """The texels at integer (xs, ys) (N, K, or shapes that broadcast to the weights') of an (H, W, C) map, with
    `weights` zeroed outside the image."""
    height, width = image.shape[:2]
    inside, flat = _clamped(xs, ys, height, width)
    values = image.reshape(height * width, -1)[flat]
    return Neighbours(values, torch.where(inside, weights, torch.zeros_like(weights)), flat)


def pixels_at(mask: torch.Tensor, cols: torch.Tensor, rows: torch.Tensor, beyond: bool = False) -> torch.Tensor:
    """A bool map (H, W) at integer pixel coordinates (any shape); `beyond` where they lie outside the image."""
    inside, flat = _clamped(cols, rows, *mask.shape)
    return torch.where(inside, mask.reshape(-1)[flat], beyond)


def _clamped(xs: torch.Tensor, ys: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Whether integer pixel coordinates lie inside an (H, W) image, and their flat index clamped into it."""
    inside = (xs >= 0) & (xs < width) & (ys >= 0) & (ys < height)
    return inside, ys.clamp(0, height - 1) * width + xs.clamp(0, width - 1)


def sample_masked(
    image: torch.Tensor, valid: torch.Tensor, u: torch.Tensor, v: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinear sample of an (H, W, C) map using only texels where `valid` (H, W); returns (values, coverage).

    Weights are renormalised over the valid texels; coverage is their summed bilinear weight (0 = no data).
    """
    near = neighbours_2x2(image, u, v)
    weights = near.weights * valid.reshape(-1)[near.flat].to(near.weights.dtype)
    coverage = weights.sum(dim=-1)
    values = (near.values * weights[..., None]).sum(dim=-2) / coverage.clamp_min(1e-12)[..., None]
    return values, coverage
