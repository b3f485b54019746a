"""Exports: every format reopens in trimesh with the GLB's vertices, triangles and bounds, and the colour people see."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import trimesh

from worker.recon.atlas import build_atlas
from worker.recon.colour import linear_to_srgb8
from worker.recon.export import write_glb, write_textured_glb
from worker.recon.exports import FORMATS, MTL_NAME, OBJ_NAME, load_result, write_export

TEXTURE = 256


def gradient_texture() -> np.ndarray:
    """Red grows with the column, green with the row: a sampled colour says where it was sampled."""
    ramp = np.arange(TEXTURE, dtype=np.uint8)
    texture = np.zeros((TEXTURE, TEXTURE, 3), dtype=np.uint8)
    texture[..., 0] = ramp[None, :]
    texture[..., 1] = ramp[:, None]
    return texture


@pytest.fixture(scope="module")
def sphere() -> trimesh.Trimesh:
    mesh = trimesh.creation.icosphere(subdivisions=3)
    mesh.apply_translation((0.3, -0.2, 0.1))
    return mesh


@pytest.fixture(scope="module")
def textured_glb(tmp_path_factory, sphere):
    path = tmp_path_factory.mktemp("textured") / "model.glb"
    atlas = build_atlas(sphere.vertices, sphere.faces, TEXTURE)
    write_textured_glb(path, sphere.vertices, sphere.vertex_normals, atlas, gradient_texture())
    return path


@pytest.fixture(scope="module")
def linear_colours(sphere) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 1, (len(sphere.vertices), 3))


@pytest.fixture(scope="module")
def coloured_glb(tmp_path_factory, sphere, linear_colours):
    path = tmp_path_factory.mktemp("coloured") / "model.glb"
    write_glb(path, sphere.vertices, sphere.faces, sphere.vertex_normals, linear_colours)
    return path


def reopen(path, fmt: str) -> trimesh.Trimesh:
    return trimesh.load(path, file_type="zip" if fmt == "obj" else fmt, force="mesh", process=False)


def assert_same_geometry(mesh: trimesh.Trimesh, reference: trimesh.Trimesh) -> None:
    assert len(mesh.vertices) == len(reference.vertices) and len(mesh.faces) == len(reference.faces)
    np.testing.assert_allclose(mesh.bounds, reference.bounds, atol=1e-6)


@pytest.mark.parametrize("glb", ["textured_glb", "coloured_glb"])
@pytest.mark.parametrize("fmt", ["obj", "ply"])
def test_obj_and_ply_keep_every_vertex_and_triangle(request, tmp_path, glb, fmt):
    source = request.getfixturevalue(glb)
    write_export(source, fmt, tmp_path / f"out.{fmt}")
    assert_same_geometry(reopen(tmp_path / f"out.{fmt}", fmt), load_result(source))


@pytest.mark.parametrize("glb", ["textured_glb", "coloured_glb"])
def test_stl_keeps_the_triangles_and_bounds(request, tmp_path, glb):
    """STL has no vertex list: its corners merge back to the GLB's distinct positions."""
    source = request.getfixturevalue(glb)
    write_export(source, "stl", tmp_path / "out.stl")
    reference = load_result(source)
    stl = trimesh.load(tmp_path / "out.stl")
    assert len(stl.faces) == len(reference.faces)
    assert len(stl.vertices) == len(np.unique(reference.vertices, axis=0))
    np.testing.assert_allclose(stl.bounds, reference.bounds, atol=1e-6)


def test_a_textured_obj_is_a_zip_of_mesh_material_and_texture(tmp_path, textured_glb):
    write_export(textured_glb, "obj", tmp_path / "out.zip")
    with zipfile.ZipFile(tmp_path / "out.zip") as archive:
        names = set(archive.namelist())
        pngs = [name for name in names if name.endswith(".png")]
        assert {OBJ_NAME, MTL_NAME} <= names and len(pngs) == 1
        assert f"map_Kd {pngs[0]}" in archive.read(MTL_NAME).decode()
    reopened = reopen(tmp_path / "out.zip", "obj")
    assert reopened.visual.kind == "texture" and reopened.visual.material.image.size == (TEXTURE, TEXTURE)
    np.testing.assert_allclose(reopened.visual.uv, load_result(textured_glb).visual.uv, atol=1e-6)


def test_a_textured_ply_carries_the_texture_sampled_at_each_vertex(tmp_path, textured_glb):
    write_export(textured_glb, "ply", tmp_path / "out.ply")
    colours = reopen(tmp_path / "out.ply", "ply").visual.vertex_colors[:, :3].astype(int)
    uv = load_result(textured_glb).visual.uv  # v up; the texture's row 0 is at the top
    expected = np.column_stack((uv[:, 0] * (TEXTURE - 1), (1 - uv[:, 1]) * (TEXTURE - 1)))
    assert np.abs(colours[:, :2] - expected).max() <= 1.5
    assert (colours[:, 2] == 0).all()


def test_vertex_colours_become_srgb_in_ply_and_obj(tmp_path, coloured_glb, linear_colours):
    """glTF's COLOR_0 is linear; PLY and OBJ colours are read as sRGB, as a texture is."""
    expected = linear_to_srgb8(np.round(linear_colours * 255) / 255).astype(int)
    for fmt in ("ply", "obj"):
        write_export(coloured_glb, fmt, tmp_path / f"out.{fmt}")
        colours = reopen(tmp_path / f"out.{fmt}", fmt).visual.vertex_colors[:, :3].astype(int)
        assert np.abs(colours - expected).max() <= 1, fmt


def test_every_format_but_glb_has_a_writer(tmp_path, coloured_glb):
    for fmt in FORMATS[1:]:
        write_export(coloured_glb, fmt, tmp_path / f"out.{fmt}")
        assert (tmp_path / f"out.{fmt}").stat().st_size > 0
