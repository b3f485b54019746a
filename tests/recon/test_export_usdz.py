"""USDZ: opens in USD with the GLB's mesh, +Y up in metres, textured (or vertex-coloured), and passes USD's own
validators, the USDZ package rules among them."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import trimesh
from pxr import Usd, UsdGeom, UsdShade, UsdValidation

from worker.recon.atlas import build_atlas
from worker.recon.export import write_glb, write_textured_glb
from worker.recon.exports import load_result, write_export

TEXTURE = 128


@pytest.fixture(scope="module")
def sphere() -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=3)


@pytest.fixture(scope="module")
def textured_usdz(tmp_path_factory, sphere):
    folder = tmp_path_factory.mktemp("usdz")
    texture = np.full((TEXTURE, TEXTURE, 3), (200, 120, 40), dtype=np.uint8)
    write_textured_glb(folder / "model.glb", sphere.vertices, sphere.vertex_normals,
                       build_atlas(sphere.vertices, sphere.faces, TEXTURE), texture)
    write_export(folder / "model.glb", "usdz", folder / "model.usdz")
    return folder / "model.glb", folder / "model.usdz"


def the_mesh(stage: Usd.Stage) -> UsdGeom.Mesh:
    meshes = [prim for prim in stage.Traverse() if prim.IsA(UsdGeom.Mesh)]
    assert len(meshes) == 1
    return UsdGeom.Mesh(meshes[0])


def test_the_mesh_has_the_glbs_points_triangles_and_uvs(textured_usdz):
    glb, usdz = textured_usdz
    reference = load_result(glb)
    stage = Usd.Stage.Open(str(usdz))
    mesh = the_mesh(stage)
    points = np.array(mesh.GetPointsAttr().Get())
    assert len(points) == len(reference.vertices)
    np.testing.assert_allclose(points, reference.vertices, atol=1e-6)
    assert list(mesh.GetFaceVertexCountsAttr().Get()) == [3] * len(reference.faces)
    np.testing.assert_array_equal(np.array(mesh.GetFaceVertexIndicesAttr().Get()), reference.faces.ravel())
    st = UsdGeom.PrimvarsAPI(mesh).GetPrimvar("st")
    np.testing.assert_allclose(np.array(st.Get()), reference.visual.uv, atol=1e-6)
    assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.y and UsdGeom.GetStageMetersPerUnit(stage) == 1.0
    assert stage.GetDefaultPrim().IsValid()


def test_its_material_reads_the_packaged_srgb_texture(textured_usdz):
    _, usdz = textured_usdz
    stage = Usd.Stage.Open(str(usdz))
    material, _ = UsdShade.MaterialBindingAPI(the_mesh(stage).GetPrim()).ComputeBoundMaterial()
    surface = material.ComputeSurfaceSource()[0]
    texture = surface.GetInput("diffuseColor").GetConnectedSources()[0][0].source
    assert UsdShade.Shader(texture).GetIdAttr().Get() == "UsdUVTexture"
    assert UsdShade.Shader(texture).GetInput("sourceColorSpace").Get() == "sRGB"
    file = UsdShade.Shader(texture).GetInput("file").Get()
    assert file.resolvedPath.startswith(f"{usdz}[") and file.resolvedPath.endswith(".png]")
    with zipfile.ZipFile(usdz) as package:
        assert [name for name in package.namelist() if name.endswith(".png")]


def test_usds_validators_find_nothing(textured_usdz, tmp_path, sphere):
    write_glb(tmp_path / "coloured.glb", sphere.vertices, sphere.faces, sphere.vertex_normals,
              np.full((len(sphere.vertices), 3), 0.5))
    write_export(tmp_path / "coloured.glb", "usdz", tmp_path / "coloured.usdz")
    validators = UsdValidation.ValidationRegistry().GetOrLoadAllValidators()
    for usdz in (textured_usdz[1], tmp_path / "coloured.usdz"):
        errors = UsdValidation.ValidationContext(validators).Validate(Usd.Stage.Open(str(usdz)))
        assert [error.GetMessage() for error in errors] == [], usdz


def test_an_untextured_result_shows_its_vertex_colours(tmp_path, sphere):
    linear = np.random.default_rng(1).uniform(0, 1, (len(sphere.vertices), 3))
    write_glb(tmp_path / "coloured.glb", sphere.vertices, sphere.faces, sphere.vertex_normals, linear)
    write_export(tmp_path / "coloured.glb", "usdz", tmp_path / "coloured.usdz")
    stage = Usd.Stage.Open(str(tmp_path / "coloured.usdz"))
    colours = UsdGeom.PrimvarsAPI(the_mesh(stage)).GetPrimvar("displayColor")
    assert colours.GetInterpolation() == UsdGeom.Tokens.vertex
    np.testing.assert_allclose(np.array(colours.Get()), np.round(linear * 255) / 255, atol=1e-6)
