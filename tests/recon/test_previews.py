"""The pictures of the fit: the comparison sheet's documented layout, its depth-error heat map, the turntable."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from worker.recon import previews
from worker.recon.colour import linear_to_srgb
from worker.recon.export import write_glb
from worker.recon.previews import (ERROR_SCALE_PCT, EXTRA, GAP, HEADER, LEGEND, MARGIN, TILE, TURNTABLE_FRAMES,
                                   TURNTABLE_SIZE, draw_comparison, draw_turntable, error_colours, load_result,
                                   object_size, slot_tiles)
from worker.recon.render_inputs import render_inputs
from worker.recon.rig import parse_cameras_json

from . import scenes

ZERO = error_colours(np.array(0.0))
TOP = error_colours(np.array(1.0))
FRONT, BACK = 0, 2
GREY = round(255 * float(linear_to_srgb(np.array(128 / 255))))  # write_glb stores linear 0.5 as 128 / 255
DISPLACEMENT = 0.06  # world units: more than ERROR_SCALE_PCT % of the sphere's size (2% of 2.42 = 0.048)


def sphere_glb(directory, vertices: np.ndarray | None = None):
    """The sphere as a model writes it (vertex colours through export.write_glb), its vertices optionally moved."""
    mesh = scenes.sphere()
    path = directory / "model.glb"
    grey = np.full((len(mesh.vertices), 3), 0.5)
    write_glb(path, mesh.vertices if vertices is None else vertices, mesh.faces, mesh.vertex_normals, grey)
    return load_result(path)


def heat(tiles) -> np.ndarray:
    return np.asarray(tiles[2]).astype(int)


def close_to(pixels: np.ndarray, colour: np.ndarray, tolerance: int = 3) -> np.ndarray:
    return (np.abs(pixels - colour.astype(int)) <= tolerance).all(axis=-1)


@pytest.fixture(scope="module")
def sphere_inputs(sphere_dir):
    return scenes.load(sphere_dir)


@pytest.fixture(scope="module")
def large_box_dir(tmp_path_factory):
    """A box seen by the contract's perspective rig at 384 px, larger than a tile: its tiles are scaled down."""
    directory = tmp_path_factory.mktemp("box384")
    render_inputs(scenes.box(), directory, rig=parse_cameras_json(scenes.perspective_cameras_json(384), 384, 384),
                  normalize=False)
    return directory


def test_tiles_fit_the_inputs_into_a_tile_and_are_never_enlarged():
    assert previews.tile_size(384, 384) == (TILE, TILE)
    assert previews.tile_size(512, 384) == (256, 192)
    assert previews.tile_size(128, 96) == (128, 96)


def test_the_sheet_has_six_columns_of_the_input_the_result_and_the_error_and_the_input_tiles_are_the_inputs_resized(
    large_box_dir, tmp_path, one_thread
):
    inputs = scenes.load(large_box_dir)
    path = tmp_path / "comparison.png"
    box = scenes.box()
    glb = tmp_path / "model.glb"
    write_glb(glb, box.vertices, box.faces, box.vertex_normals, np.full((len(box.vertices), 3), 0.5))
    draw_comparison(inputs, load_result(glb), path)

    sheet = Image.open(path)
    assert sheet.format == "PNG" and sheet.mode == "RGB"
    assert sheet.size == (MARGIN + 6 * (TILE + GAP) + GAP, HEADER + 3 * (TILE + GAP) + LEGEND)
    pixels = np.asarray(sheet).astype(int)
    views, _ = scenes.input_paths(large_box_dir)
    for column, view in enumerate(views):
        left, top = MARGIN + GAP + column * (TILE + GAP), HEADER + GAP
        expected = np.asarray(Image.open(view).convert("RGB").resize((TILE, TILE), Image.Resampling.BILINEAR))
        assert np.abs(pixels[top:top + TILE, left:left + TILE] - expected.astype(int)).max() <= 2, view.name
        result = pixels[top + TILE + GAP:top + 2 * TILE + GAP, left:left + TILE]
        assert (result[TILE // 2, TILE // 2] == GREY).all()
        error = pixels[top + 2 * (TILE + GAP):top + 3 * TILE + 2 * GAP, left:left + TILE]
        assert close_to(error[TILE // 2, TILE // 2], ZERO)
    assert (pixels[HEADER + 3 * (TILE + GAP) + GAP:, :] != 255).any(), "the legend is drawn under the rows"


def test_the_heat_map_is_zero_coloured_where_the_mesh_matches_the_inputs(sphere_inputs, tmp_path, one_thread):
    mesh = sphere_glb(tmp_path)
    scale_top = ERROR_SCALE_PCT / 100 * object_size(sphere_inputs)
    for index in range(6):
        error = heat(slot_tiles(sphere_inputs, mesh, index, (256, 256), scale_top))
        inside = sphere_inputs.masks[index] & (np.abs(np.arange(256) - 127.5)[None, :] < 80) \
            & (np.abs(np.arange(256) - 127.5)[:, None] < 80)
        assert close_to(error[inside], ZERO).all()
        assert (error[~sphere_inputs.masks[index]] == 0).sum() > 0.9 * (~sphere_inputs.masks[index]).sum()


def test_a_displaced_patch_is_hot_in_the_views_that_see_it_only(sphere_inputs, tmp_path, one_thread):
    sphere = scenes.sphere()
    moved = sphere.vertices.copy()
    cap = moved[:, 2] > 0.6  # the cap facing the front camera (+z)
    moved[cap] += DISPLACEMENT * sphere.vertex_normals[cap]
    mesh = sphere_glb(tmp_path, moved)
    scale_top = ERROR_SCALE_PCT / 100 * object_size(sphere_inputs)
    front = heat(slot_tiles(sphere_inputs, mesh, FRONT, (256, 256), scale_top))
    back = heat(slot_tiles(sphere_inputs, mesh, BACK, (256, 256), scale_top))
    assert close_to(front[118:138, 118:138], TOP).all()
    assert close_to(back[118:138, 118:138], ZERO).all()


def test_a_wrong_input_depth_is_hot_where_it_is_wrong(sphere_inputs, tmp_path, one_thread):
    mesh = sphere_glb(tmp_path)
    depths = sphere_inputs.depths.copy()
    depths[FRONT, 100:130, 100:130] += 0.5 * ERROR_SCALE_PCT / 100 * object_size(sphere_inputs)
    wrong = dataclasses.replace(sphere_inputs, depths=depths)
    scale_top = ERROR_SCALE_PCT / 100 * object_size(sphere_inputs)
    front = heat(slot_tiles(wrong, mesh, FRONT, (256, 256), scale_top))
    assert close_to(front[105:125, 105:125], error_colours(np.array(0.5)), tolerance=6).all()
    assert close_to(front[140:160, 140:160], ZERO).all()


def test_mesh_outside_the_input_silhouette_is_marked_extra(sphere_inputs, tmp_path, one_thread):
    mesh = sphere_glb(tmp_path, scenes.sphere().vertices * 1.1)
    scale_top = ERROR_SCALE_PCT / 100 * object_size(sphere_inputs)
    for index in range(6):
        error = heat(slot_tiles(sphere_inputs, mesh, index, (256, 256), scale_top))
        rim = ~sphere_inputs.masks[index] & (np.hypot(*np.mgrid[-127.5:128, -127.5:128]) < 0.74 * 128)
        assert (error[rim] == EXTRA).all()


def test_the_turntable_is_an_animated_webp_of_eight_different_frames_around_the_mesh(tmp_path, one_thread):
    box = trimesh.creation.box((1.6, 0.8, 0.4))
    glb = tmp_path / "model.glb"
    write_glb(glb, box.vertices, box.faces, box.vertex_normals, np.full((len(box.vertices), 3), 0.5))
    path = tmp_path / "turntable.webp"
    draw_turntable(load_result(glb), path)

    animation = Image.open(path)
    assert animation.format == "WEBP" and animation.is_animated and animation.n_frames == TURNTABLE_FRAMES
    assert animation.size == (TURNTABLE_SIZE, TURNTABLE_SIZE)
    widths = []
    for frame in range(TURNTABLE_FRAMES):
        animation.seek(frame)
        alpha = np.asarray(animation.convert("RGBA"))[..., 3]
        assert alpha[0, 0] == 0 and alpha[TURNTABLE_SIZE // 2, TURNTABLE_SIZE // 2] > 0
        columns = np.nonzero((alpha > 0).any(axis=0))[0]
        widths.append(columns[-1] - columns[0])
    assert widths[0] > 1.5 * widths[2]  # the long side faces the first frame, the short side the third


def test_a_result_without_colours_is_drawn_grey(tmp_path):
    box = trimesh.creation.box((1.0, 1.0, 1.0))
    path = tmp_path / "plain.glb"
    box.export(path)
    mesh = load_result(path)
    raster_colour = previews.surface_colour(mesh, torch.tensor([[0, -1]]), torch.tensor([[[1.0, 0, 0], [0, 0, 0]]]))
    assert torch.allclose(raster_colour[0, 0], torch.tensor(previews.UNCOLOURED)) and (raster_colour[0, 1] == 0).all()


def test_a_large_texture_is_read_at_most_texture_max_wide(tmp_path):
    box = trimesh.creation.box((1.0, 1.0, 1.0))
    texture = Image.new("RGB", (4096, 2048), (200, 100, 50))
    box.visual = trimesh.visual.TextureVisuals(uv=np.random.default_rng(0).random((len(box.vertices), 2)),
                                               material=trimesh.visual.material.PBRMaterial(baseColorTexture=texture))
    path = tmp_path / "textured.glb"
    box.export(path)
    mesh = load_result(path)
    assert tuple(mesh.texture.shape) == (previews.TEXTURE_MAX // 2, previews.TEXTURE_MAX, 3)
    assert torch.allclose(mesh.texture[0, 0], torch.tensor([200, 100, 50]) / 255.0)
