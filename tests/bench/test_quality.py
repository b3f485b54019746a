"""bench/quality.py's novel-view metrics: the colour ceiling separates what a texture could gain from what only
geometry can (Open3D, a bench-only requirement, finds the closest reference points)."""

import numpy as np
import pytest
import trimesh

pytest.importorskip("open3d")

from bench.quality import Coloured, TrueColours, held_out_cameras, render, view_metrics  # noqa: E402
from bench.summary import Row, refinement_summary  # noqa: E402


def _sphere(radius: float, colour=None) -> Coloured:
    mesh = trimesh.creation.icosphere(subdivisions=4, radius=radius)
    vertices = np.asarray(mesh.vertices)
    if colour is None:  # red above the equator, blue below: a pattern a flat colour cannot match
        colour = np.where(vertices[:, 1:2] > 0, [[0.9, 0.1, 0.1]], [[0.1, 0.2, 0.9]])
    srgb = np.broadcast_to(colour, vertices.shape).astype(np.float32)
    return Coloured(vertices, np.asarray(mesh.faces), vertex_srgb=srgb)


@pytest.fixture(scope="module")
def reference_views():
    reference = _sphere(0.6)
    cameras = held_out_cameras(128)
    return reference, cameras, [render(camera, reference) for camera in cameras]


def test_the_right_geometry_with_wrong_colours_has_a_perfect_ceiling(reference_views):
    reference, cameras, views = reference_views
    metrics = view_metrics(views, _sphere(0.6, colour=[0.5, 0.5, 0.5]), cameras, TrueColours(reference))
    assert metrics["psnr_db"] < 15
    assert metrics["colour_ceiling_db"] > 60


def test_wrong_geometry_keeps_its_ceiling_below_perfect_but_above_its_wrong_colours(reference_views):
    reference, cameras, views = reference_views
    smaller = view_metrics(views, _sphere(0.5, colour=[0.5, 0.5, 0.5]), cameras, TrueColours(reference))
    assert smaller["psnr_db"] < smaller["colour_ceiling_db"] < 30


def test_without_true_colours_no_ceiling_is_reported(reference_views):
    reference, cameras, views = reference_views
    assert "colour_ceiling_db" not in view_metrics(views, reference, cameras)


def test_the_refinement_summary_gives_the_colour_headroom_of_the_fusion_start():
    rows = [Row("a", "fusion", {"psnr_db": 30.0, "colour_ceiling_db": 30.5, "chamfer_pct": 0.1}),
            Row("a", "nvdiffrec", {"psnr_db": 30.2, "chamfer_pct": 0.1, "kept": True}),
            Row("b", "fusion", {"psnr_db": 20.0, "colour_ceiling_db": 23.0, "chamfer_pct": 0.2}),
            Row("b", "nvdiffrec", {"psnr_db": 20.0, "chamfer_pct": 0.2, "kept": False})]
    lines = refinement_summary(rows)
    assert lines[0].startswith("a: +0.20 dB (perfect colours: +0.50 dB)")
    assert lines[-1] == "colour headroom (fusion's geometry with perfect colours): median +1.75 dB, largest +3.00 dB"
