"""The result as USDZ (Pixar's USD, through `usd-core`): what AR viewers and DCC tools such as Blender read.

One Mesh prim under the default prim, +Y up, metres as glTF; a UsdPreviewSurface
material, fully rough and not metallic like the GLB's, whose diffuse colour is
the sRGB texture (with the mesh's `st` UVs) or the linear vertex colours
(`displayColor`) for an untextured result.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import trimesh
from pxr import Gf, Sdf, Usd, UsdGeom, UsdShade, UsdUtils, Vt

TEXTURE_NAME = "texture.png"
ROOT = "/model"


def write_usdz(mesh: trimesh.Trimesh, out: Path) -> None:
    """Write `mesh` (textured or with linear vertex colours) as a USDZ package at `out`."""
    with tempfile.TemporaryDirectory(prefix="usdz-") as folder:
        layer = Path(folder) / "model.usdc"
        stage = Usd.Stage.CreateNew(str(layer))
        UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y)
        UsdGeom.SetStageMetersPerUnit(stage, 1.0)
        stage.SetDefaultPrim(UsdGeom.Xform.Define(stage, ROOT).GetPrim())
        geometry = _define_mesh(stage, mesh)
        material = UsdShade.Material.Define(stage, f"{ROOT}/material")
        surface = UsdShade.Shader.Define(stage, f"{ROOT}/material/surface")
        surface.CreateIdAttr("UsdPreviewSurface")
        surface.CreateInput("roughness", Sdf.ValueTypeNames.Float).Set(1.0)
        surface.CreateInput("metallic", Sdf.ValueTypeNames.Float).Set(0.0)
        material.CreateSurfaceOutput().ConnectToSource(surface.ConnectableAPI(), "surface")
        diffuse = surface.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f)
        texture = getattr(mesh.visual.material, "baseColorTexture", None) if mesh.visual.kind == "texture" else None
        if texture is not None:
            texture.convert("RGB").save(Path(folder) / TEXTURE_NAME, compress_level=1)
            _texture_colour(stage, geometry, mesh.visual.uv, diffuse)
        else:
            _vertex_colour(stage, geometry, np.asarray(mesh.visual.vertex_colors), diffuse)
        UsdShade.MaterialBindingAPI.Apply(geometry.GetPrim()).Bind(material)
        stage.GetRootLayer().Save()
        if not UsdUtils.CreateNewUsdzPackage(Sdf.AssetPath(str(layer)), str(out)):
            raise RuntimeError("USD could not package the USDZ")


def _define_mesh(stage: Usd.Stage, mesh: trimesh.Trimesh) -> UsdGeom.Mesh:
    geometry = UsdGeom.Mesh.Define(stage, f"{ROOT}/mesh")
    points = np.ascontiguousarray(mesh.vertices, dtype=np.float32)
    geometry.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(points))
    geometry.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(len(mesh.faces), 3, dtype=np.int32)))
    geometry.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(np.ascontiguousarray(mesh.faces.ravel(), np.int32)))
    geometry.CreateNormalsAttr(Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(mesh.vertex_normals, np.float32)))
    geometry.SetNormalsInterpolation(UsdGeom.Tokens.vertex)
    geometry.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
    geometry.CreateExtentAttr([Gf.Vec3f(*map(float, points.min(0))), Gf.Vec3f(*map(float, points.max(0)))])
    return geometry


def _texture_colour(stage: Usd.Stage, geometry: UsdGeom.Mesh, uv: np.ndarray, diffuse: UsdShade.Input) -> None:
    """st from the mesh's UVs (v up, as USD and trimesh both keep them) into a UsdUVTexture reading texture.png."""
    primvars = UsdGeom.PrimvarsAPI(geometry)
    st = primvars.CreatePrimvar("st", Sdf.ValueTypeNames.TexCoord2fArray, UsdGeom.Tokens.vertex)
    st.Set(Vt.Vec2fArray.FromNumpy(np.ascontiguousarray(uv, dtype=np.float32)))
    reader = UsdShade.Shader.Define(stage, f"{ROOT}/material/st")
    reader.CreateIdAttr("UsdPrimvarReader_float2")
    reader.CreateInput("varname", Sdf.ValueTypeNames.String).Set("st")
    image = UsdShade.Shader.Define(stage, f"{ROOT}/material/texture")
    image.CreateIdAttr("UsdUVTexture")
    image.CreateInput("file", Sdf.ValueTypeNames.Asset).Set(TEXTURE_NAME)
    image.CreateInput("sourceColorSpace", Sdf.ValueTypeNames.Token).Set("sRGB")
    image.CreateInput("wrapS", Sdf.ValueTypeNames.Token).Set("clamp")
    image.CreateInput("wrapT", Sdf.ValueTypeNames.Token).Set("clamp")
    image.CreateInput("st", Sdf.ValueTypeNames.Float2).ConnectToSource(reader.ConnectableAPI(), "result")
    diffuse.ConnectToSource(image.ConnectableAPI(), "rgb")


def _vertex_colour(stage: Usd.Stage, geometry: UsdGeom.Mesh, rgba: np.ndarray, diffuse: UsdShade.Input) -> None:
    """displayColor per vertex (linear, as glTF's COLOR_0 and USD's colours are) read by a primvar reader."""
    colours = np.ascontiguousarray(rgba[:, :3] / 255.0, dtype=np.float32)
    UsdGeom.PrimvarsAPI(geometry).CreatePrimvar(
        "displayColor", Sdf.ValueTypeNames.Color3fArray, UsdGeom.Tokens.vertex,
    ).Set(Vt.Vec3fArray.FromNumpy(colours))
    reader = UsdShade.Shader.Define(stage, f"{ROOT}/material/colour")
    reader.CreateIdAttr("UsdPrimvarReader_float3")
    reader.CreateInput("varname", Sdf.ValueTypeNames.String).Set("displayColor")
    diffuse.ConnectToSource(reader.ConnectableAPI(), "result")
