"""Lookups of per-pixel maps at continuous pixel coordinates."""

from __future__ import annotations

import torch

from worker.recon.sampling import neighbours_2x2, neighbours_4x4


def _bowl(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """A depth that curves like a rod's side: quadratic in the pixel coordinates."""
    return 5.0 + 0.02 * (u - 8.0) ** 2 + 0.01 * (u - 8.0) * (v - 6.0) - 0.015 * (v - 6.0) ** 2


def _map() -> torch.Tensor:
    centres = torch.arange(16, dtype=torch.float64) + 0.5
    v, u = torch.meshgrid(centres, centres, indexing="ij")
    return _bowl(u, v)[..., None]


def test_the_cubic_follows_a_curved_depth_where_bilinear_cuts_its_chord():
    generator = torch.Generator().manual_seed(0)
    u, v = (2 + 12 * torch.rand(200, generator=generator, dtype=torch.float64) for _ in range(2))
    fine, near = neighbours_4x4(_map(), u, v), neighbours_2x2(_map(), u, v)
    cubic = (fine.values[..., 0] * fine.weights).sum(dim=-1)
    bilinear = (near.values[..., 0] * near.weights).sum(dim=-1)
    torch.testing.assert_close(cubic, _bowl(u, v))  # Catmull-Rom reproduces quadratics
    assert (bilinear - _bowl(u, v)).abs().max() > 1e-3


def test_texels_outside_the_image_weigh_nothing():
    near = neighbours_4x4(_map(), torch.tensor([0.7], dtype=torch.float64), torch.tensor([15.6], dtype=torch.float64))
    assert near.weights.shape == (1, 16)
    outside = near.weights[0].reshape(4, 4)
    assert (outside[:, 0] == 0).all() and (outside[2:, :] == 0).all()  # the column left of 0, the rows below 15
