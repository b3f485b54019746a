"""Lookups of per-pixel maps at continuous pixel coordinates."""

from __future__ import annotations

import torch

from worker.recon.sampling import neighbours_2x2


def test_the_four_texels_around_a_point_carry_its_bilinear_weights():
    image = torch.arange(12, dtype=torch.float64).reshape(3, 4, 1)
    near = neighbours_2x2(image, torch.tensor([1.75]), torch.tensor([1.0]))  # a quarter past column 1, half row 0
    assert near.flat.tolist() == [[1, 2, 5, 6]]
    torch.testing.assert_close(near.weights, torch.tensor([[0.375, 0.125, 0.375, 0.125]]))


def test_texels_outside_the_image_weigh_nothing():
    near = neighbours_2x2(torch.ones(4, 4, 1), torch.tensor([0.2]), torch.tensor([3.9]))
    assert near.weights[0, 0] == 0 and near.weights[0, 2:].eq(0).all()  # the column left of 0, the row below 3
    assert near.weights[0, 1] > 0
