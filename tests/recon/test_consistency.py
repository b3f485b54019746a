"""Depth renders that contradict the others are found, named and left out; agreeing, noisy, coarse or holey
ones are not."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import distance_transform_edt

from worker.recon.consistency import (NOT_NEEDED, _View, agreeing_inputs, check_depth_agreement, depth_noise,
                                      outside_silhouette)
from worker.recon.depth_views import CROP_MARGIN_PX, crop_window
from worker.recon.inputs import ReconInputs

from . import scenes

CPU = torch.device("cpu")

pytestmark = pytest.mark.usefixtures("one_thread")


def shifted(inputs: ReconInputs, views: list[int], offset: float) -> ReconInputs:
    """The inputs with the depth of `views` moved `offset` along their rays."""
    depths = inputs.depths.copy()
    for view in views:
        depths[view] = np.where(inputs.masks[view], depths[view] + offset, 0.0)
    inputs.depths = depths
    return inputs


@pytest.mark.parametrize("fixture", ["sphere_dir", "box_dir", "sphere_8bit_dir", "sphere_perspective_dir"])
def test_renders_of_one_object_agree(request, fixture):
    agreement = check_depth_agreement(scenes.load(request.getfixturevalue(fixture)), CPU)
    off_diagonal = agreement.in_free_space[~np.eye(6, dtype=bool)]
    assert np.nanmax(off_diagonal) < 0.01
    assert agreement.left_out == [] and agreement.warnings == []


@pytest.mark.parametrize("offset", [0.2, -0.2], ids=["farther", "nearer"])
def test_one_view_that_disagrees_is_left_out_with_its_silhouette_kept(box_dir, offset):
    given = shifted(scenes.load(box_dir), [4], offset)
    inputs, agreement = agreeing_inputs(given, CPU)
    assert agreement.left_out == [4]
    assert len(agreement.warnings) == 1 and agreement.warnings[0].startswith("the top depth render contradicts")
    assert not inputs.depths[4].any() and inputs.masks[4].any()
    assert np.array_equal(inputs.depths[:4], given.depths[:4]) and np.array_equal(inputs.masks, given.masks)


def test_two_views_that_disagree_are_still_a_minority(box_dir):
    _, agreement = agreeing_inputs(shifted(scenes.load(box_dir), [0, 2], 0.2), CPU)
    assert agreement.left_out == [0, 2]


def test_when_most_views_disagree_nothing_is_left_out_and_the_caller_is_told(sphere_dir):
    inputs = scenes.load(sphere_dir)
    inputs.depths = np.where(inputs.masks, 2.0, 0.0).astype(np.float32)  # every view claims a plane through the centre
    same, agreement = agreeing_inputs(inputs, CPU)
    assert same is inputs and agreement.left_out == []
    assert len(agreement.warnings) == 1 and "contradict each other" in agreement.warnings[0]


def test_noise_is_measured_and_tolerated(sphere_dir):
    inputs = scenes.load(sphere_dir)
    noise = np.random.default_rng(0).normal(0.0, 0.01, inputs.depths.shape).astype(np.float32)
    inputs.depths = np.where(inputs.depths > 0, inputs.depths + noise, 0.0).astype(np.float32)
    assert depth_noise(torch.as_tensor(inputs.depths[0])) == pytest.approx(0.01, rel=0.2)
    assert check_depth_agreement(inputs, CPU).left_out == []


def test_clean_depth_has_almost_no_noise(sphere_dir):
    assert depth_noise(torch.as_tensor(scenes.load(sphere_dir).depths[0])) < 0.001


@pytest.mark.parametrize("margin_px", [2.0, 7.5, 12.0, 30.0])  # within the window's margin, and beyond it
@pytest.mark.parametrize("empty", [False, True])
def test_beyond_the_window_a_pixel_is_outside_the_silhouette_as_over_the_whole_image(margin_px, empty):
    """Each view's maps cover only the window around its silhouette; how far outside it a pixel beyond the
    window lies must decide as the distance over the whole image would, which is asked for only where the
    silhouette's bounding box cannot tell (and everywhere when the silhouette is empty)."""
    mask = np.zeros((96, 96), dtype=bool)
    mask[30:50, 40:70] = True
    mask[45:60, 20:35] = True
    window = np.array(crop_window(mask, np.zeros(mask.shape, dtype=np.float32)), dtype=np.int64)
    top, left, bottom, right = window
    assert (top, left, bottom, right) != (0, 0, 96, 96)
    outside = distance_transform_edt(~mask[top:bottom, left:right]).astype(np.float32)
    view = _View(None, tuple(window), None, None, None, 0.0, None, np.zeros_like(mask) if empty else mask)
    whole = distance_transform_edt(~view.mask).astype(np.float32)
    pixel, margin = np.float32(0.01), np.float32(margin_px * 0.01)
    asked = 0
    for row in range(96):
        for col in range(96):
            verdict, unsure = outside_silhouette(row, col, window, outside, view.silhouette_box, NOT_NEEDED, pixel,
                                                 margin)
            if unsure:
                asked += 1
                verdict, unsure = outside_silhouette(row, col, window, outside, view.silhouette_box,
                                                     view.outside_whole, pixel, margin)
            assert not unsure and verdict == (whole[row, col] * pixel > margin), (row, col)
    if empty:
        assert asked == 96 * 96
    else:  # beyond the window every pixel is CROP_MARGIN_PX from the box at least: only wider margins ask
        assert asked < 96 * 96 - (bottom - top) * (right - left) and (asked > 0) == (margin_px > CROP_MARGIN_PX)
