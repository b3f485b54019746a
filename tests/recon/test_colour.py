"""Vertex colours from the views, and filling what no view sees across the mesh."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worker.recon.colour import far_sides, fill_unseen, linear_to_srgb, unseen_share, vertex_colours
from worker.recon.render_inputs import procedural_albedo
from worker.recon.surface import vertex_normals

from . import scenes

pytestmark = pytest.mark.usefixtures("one_thread")

RED, BLUE = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)


def hairpin(steps: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A strip bent back on itself: arm one runs along y = 0 from x = 0 to 1, arm two returns along y = 0.05.
    Points across the gap are near in space and far along the mesh. Returns vertices, faces and the arc length
    of each vertex along the strip (0-2)."""
    arc = np.linspace(0.0, 2.0, steps + 1)
    x = np.where(arc <= 1.0, arc, 2.0 - arc)
    y = np.where(arc <= 1.0, 0.0, 0.05)
    vertices = np.concatenate([np.column_stack((x, y, np.full_like(x, z))) for z in (0.0, 0.02)])
    n = steps + 1
    quads = [(i, i + 1, n + i + 1, n + i) for i in range(steps)]
    faces = np.array([(a, b, c) for a, b, c, _ in quads] + [(a, c, d) for a, _, c, d in quads])
    return vertices, faces, np.concatenate((arc, arc))


def test_unseen_vertices_blend_the_colours_seen_along_the_mesh_not_in_space():
    vertices, faces, arc = hairpin()
    seen = (arc <= 0.5) | (arc >= 1.9)  # arm one's first half is red, the tip of arm two is blue
    colours = np.zeros((len(vertices), 3), dtype=np.float32)
    colours[arc <= 0.5] = RED
    colours[arc >= 1.9] = BLUE
    filled, share = fill_unseen(vertices, faces, colours, seen), unseen_share(vertices, faces, seen)
    np.testing.assert_array_equal(filled[seen], colours[seen])
    # Along the strip the fill runs evenly from red (arc 0.5) to blue (arc 1.9): a harmonic fill on a strip.
    blue_share = np.clip((arc - 0.5) / 1.4, 0.0, 1.0)
    unseen = ~seen
    np.testing.assert_allclose(filled[unseen, 2], blue_share[unseen], atol=0.01)
    np.testing.assert_allclose(filled[unseen, 0] + filled[unseen, 2], 1.0, atol=0.01)
    # Arm two at x = 0.4 is 0.05 from arm one's red in space, but 0.3 from its own blue tip along the strip.
    assert (filled[(arc > 1.55) & (arc < 1.85), 2] > 0.75).all()
    assert share == pytest.approx(1.0 - (0.5 + 0.1) / 2.0, abs=0.02)  # by area: 1.4 of the strip's 2.0 was filled


def test_the_far_side_of_a_thin_part_takes_the_colour_seen_across_it():
    """Within `across` in space, an unseen vertex is the other side of a thin wall (an open scan's shell): it takes
    the colour of the seen side right behind it, however far the rim is along the mesh."""
    vertices, faces, arc = hairpin()
    seen = (arc <= 0.5) | (arc >= 1.9)
    colours = np.zeros((len(vertices), 3), dtype=np.float32)
    colours[arc <= 0.5] = RED
    colours[arc >= 1.9] = BLUE
    filled = fill_unseen(vertices, faces, colours, seen, across=0.06)  # the arms are 0.05 apart
    share = unseen_share(vertices, faces, seen)
    assert (filled[(arc > 1.55) & (arc < 1.85)] == RED).all()  # arm two over arm one's red
    assert (filled[(arc > 0.55) & (arc < 0.9)] == RED).all()
    assert share == pytest.approx(1.0 - (0.5 + 0.1) / 2.0, abs=0.02)  # still counted as filled


@pytest.mark.parametrize("unseen_count", [5, 300, 3000])
def test_far_sides_pair_every_unseen_point_within_reach_with_its_nearest_seen_one(unseen_count):
    """As a brute-force search finds them, whether few points are unseen (a sheet's rim: only the seen points near
    them are searched) or many."""
    rng = np.random.default_rng(unseen_count)
    points = rng.random((4000, 3)) * (1.0, 1.0, 0.05)
    seen = np.ones(len(points), dtype=bool)
    seen[rng.choice(len(points), unseen_count, replace=False)] = False
    across = 0.02
    far, behind = far_sides(points, seen, across)

    unseen, seen_at = np.flatnonzero(~seen), np.flatnonzero(seen)
    distances = np.linalg.norm(points[unseen][:, None] - points[seen_at][None], axis=2)
    reached = distances.min(axis=1) <= across
    assert np.array_equal(far, unseen[reached]) and seen[behind].all()
    assert np.allclose(np.linalg.norm(points[far] - points[behind], axis=1), distances[reached].min(axis=1))


def test_where_two_fills_meet_the_colours_blend_instead_of_jumping():
    vertices, faces, arc = hairpin()
    seen = (arc <= 0.2) | (arc >= 1.8)
    colours = np.zeros((len(vertices), 3), dtype=np.float32)
    colours[arc <= 0.2] = RED
    colours[arc >= 1.8] = BLUE
    filled = fill_unseen(vertices, faces, colours, seen)
    order = np.argsort(arc[: len(arc) // 2])
    steps = np.abs(np.diff(filled[order], axis=0)).max()
    assert steps < 0.5  # red to blue across more than one edge


def test_a_part_no_view_sees_even_at_its_border_takes_the_nearest_colour_in_space():
    vertices, faces, arc = hairpin()
    island = vertices + (0.0, 0.0, 0.3)  # a second, unconnected strip above the first
    all_vertices = np.concatenate((vertices, island))
    all_faces = np.concatenate((faces, faces + len(vertices)))
    seen = np.concatenate((np.ones(len(vertices), bool), np.zeros(len(island), bool)))
    colours = np.zeros((len(all_vertices), 3), dtype=np.float32)
    colours[: len(vertices)] = np.where((arc <= 1.0)[:, None], RED, BLUE)
    filled, share = fill_unseen(all_vertices, all_faces, colours, seen), unseen_share(all_vertices, all_faces, seen)
    assert (filled[len(vertices):][arc < 0.9] == RED).all()
    assert (filled[len(vertices):][arc > 1.1] == BLUE).all()
    assert share == pytest.approx(0.5)


def test_a_bore_seen_only_at_grazing_angles_gets_its_true_colours_and_no_black(bored_block_dir):
    """Views that see a surface almost edge-on once darkened it (a weight below the normalisation's floor), and
    the fill spread that black over the bore."""
    inputs = scenes.load(bored_block_dir)
    mesh = scenes.bored_block()
    vertices = torch.tensor(mesh.vertices, dtype=torch.float32)
    normals = vertex_normals(vertices, torch.tensor(mesh.faces))
    linear, seen = vertex_colours(vertices, normals, inputs.rig.cameras, torch.tensor(inputs.colors),
                                  torch.tensor(inputs.masks), torch.tensor(inputs.depths), 0.02)
    filled = fill_unseen(mesh.vertices, mesh.faces, linear.numpy(), seen.numpy())
    share = unseen_share(mesh.vertices, mesh.faces, seen.numpy())
    srgb = linear_to_srgb(filled)
    truth = procedural_albedo(mesh.vertices)
    assert 0.02 < share < 0.5  # the bore's walls
    assert np.abs(srgb[seen.numpy()] - truth[seen.numpy()]).max() < 0.1  # seen: the views' own colours
    luminance = srgb @ np.array([0.2126, 0.7152, 0.0722])
    assert luminance.min() > 0.9 * (truth @ np.array([0.2126, 0.7152, 0.0722])).min()  # nothing darker than the object


def test_a_point_seen_only_edge_on_counts_as_unseen_not_as_black(colour_cube_dir):
    """The right view sees the point on the red face at 1e-4 of frontal: too little to trust, and a weight that
    small once darkened the colour to black instead of leaving it to the fill."""
    inputs = scenes.load(colour_cube_dir)
    points = torch.tensor([[0.6, 0.1, 0.1], [0.6, 0.1, 0.1]])
    normals = torch.nn.functional.normalize(torch.tensor([[1e-4, 0.0, 1.0], [1.0, 0.0, 0.0]]), dim=1)
    linear, seen = vertex_colours(points, normals, inputs.rig.cameras, torch.tensor(inputs.colors),
                                  torch.tensor(inputs.masks), torch.tensor(inputs.depths), 0.01)
    assert seen.tolist() == [False, True]
    red = np.array(scenes.FACE_COLOURS[(1, 0, 0)]) / 255.0
    np.testing.assert_allclose(linear_to_srgb(linear[1].numpy()), red, atol=2 / 255)
