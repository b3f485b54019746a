"""A stranger's mesh upload is read within bounds, or refused with a sentence naming the mesh; nothing is written."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from webui.mesh_files import MB, MeshLimits, declared_triangles, read_mesh
from worker.errors import FileValidationError

LIMITS = MeshLimits(max_bytes=MB, max_triangles=2_000, time_limit_s=30.0)
TEXTURED_OBJ = """mtllib square.mtl
v -1 -1 0
v 1 -1 0
v 1 1 0
v -1 1 0
vt 0 0
vt 1 0
vt 1 1
vt 0 1
usemtl paint
f 1/1 2/2 3/3
f 1/1 3/3 4/4
"""
MTL = "newmtl paint\nmap_Kd textures/paint.png\n"


def refusal(path: Path, limits: MeshLimits = LIMITS) -> str:
    with pytest.raises(FileValidationError) as caught:
        read_mesh(path, limits)
    assert caught.value.field == "mesh"
    return caught.value.message


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def png(width: int, height: int, colour: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()


def test_a_glb_a_ply_and_an_obj_are_read_as_one_mesh(tmp_path):
    sphere = trimesh.creation.icosphere(subdivisions=2)
    for kind in ("glb", "ply", "obj"):
        sphere.export(tmp_path / f"sphere.{kind}")
        mesh = read_mesh(tmp_path / f"sphere.{kind}", LIMITS)
        assert len(mesh.faces) == len(sphere.faces) == 320


def test_a_zipped_obj_keeps_its_texture_from_a_subfolder(tmp_path):
    archive = write_zip(tmp_path / "square.zip", {
        "model/square.obj": TEXTURED_OBJ.encode(), "model/square.mtl": MTL.encode(),
        "model/textures/paint.png": png(8, 8), "model/README.txt": b"ignored",
    })
    mesh = read_mesh(archive, LIMITS)
    assert mesh.visual.kind == "texture"
    image = np.asarray(mesh.visual.material.image.convert("RGB"))
    assert tuple(image[0, 0]) == (200, 40, 40)


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path):
    big = tmp_path / "big.ply"
    big.write_bytes(b"\0" * (MB + 1))
    assert refusal(big) == "The mesh file is 1.0 MB; at most 1 MB is accepted."


def test_too_many_triangles_are_refused_from_the_header_of_each_type(tmp_path):
    sphere = trimesh.creation.icosphere(subdivisions=4)  # 5120 triangles
    for kind in ("glb", "ply", "obj"):
        path = tmp_path / f"sphere.{kind}"
        sphere.export(path)
        assert declared_triangles(path.read_bytes(), f".{kind}") == 5120
        assert refusal(path) == "The mesh declares 5,120 triangles; at most 2,000 are accepted (simplify it first)."


def test_a_glb_that_places_one_mesh_many_times_counts_every_placement(tmp_path):
    scene = trimesh.Scene()
    sphere = trimesh.creation.icosphere(subdivisions=2)  # 320 triangles
    for index in range(10):
        scene.add_geometry(sphere, node_name=f"copy{index}", geom_name="sphere",
                           transform=trimesh.transformations.translation_matrix((index * 3, 0, 0)))
    scene.export(tmp_path / "copies.glb")
    assert declared_triangles((tmp_path / "copies.glb").read_bytes(), ".glb") == 3200
    assert "3,200 triangles" in refusal(tmp_path / "copies.glb")


def test_what_is_not_a_mesh_is_named_in_a_sentence(tmp_path):
    (tmp_path / "noise.glb").write_bytes(b"glTF" + bytes(range(200)))
    (tmp_path / "noise.obj").write_bytes(b"this is not a mesh\n")
    (tmp_path / "points.ply").write_bytes(b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\n"
                                          b"property float y\nproperty float z\nend_header\n0 0 0\n")
    (tmp_path / "notes.txt").write_text("hello")
    assert refusal(tmp_path / "noise.glb") == "The mesh file is not a valid GLB (its JSON header cannot be read)."
    assert refusal(tmp_path / "noise.obj").startswith("The mesh file holds no triangles")
    assert refusal(tmp_path / "points.ply").startswith("The mesh file holds no triangles")
    assert refusal(tmp_path / "notes.txt").startswith("The mesh file must be a .glb, .obj or .ply mesh")
    (tmp_path / "flat.ply").write_bytes(b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\n"
                                        b"property float y\nproperty float z\nelement face 1\n"
                                        b"property list uchar int vertex_indices\nend_header\n"
                                        b"0 0 0\n0 0 0\n0 0 0\n3 0 1 2\n")
    assert refusal(tmp_path / "flat.ply") == "The mesh has no extent or non-finite vertex positions."


def test_a_zip_with_a_path_out_of_the_archive_is_refused_and_nothing_is_written(tmp_path):
    archive = write_zip(tmp_path / "escape.zip", {"square.obj": TEXTURED_OBJ.encode(), "../../evil.mtl": MTL.encode()})
    before = sorted(tmp_path.rglob("*"))
    assert refusal(archive) == "The mesh .zip holds a file named '../../evil.mtl' that points outside the archive."
    assert sorted(tmp_path.rglob("*")) == before


def test_a_zip_bomb_is_refused_from_its_declared_sizes_before_inflating(tmp_path):
    archive = write_zip(tmp_path / "bomb.zip", {"square.obj": TEXTURED_OBJ.encode(),
                                                "huge.png": b"\0" * (4 * MB)})
    assert archive.stat().st_size < 50_000
    assert refusal(archive) == "The mesh .zip unpacks to 4.0 MB; at most 1 MB is accepted."


def test_a_zip_member_that_declares_less_than_it_holds_is_read_no_further_and_refused(tmp_path):
    archive = write_zip(tmp_path / "liar.zip", {"square.obj": b"\0" * (4 * MB)})
    data = bytearray(archive.read_bytes())
    central = data.rfind(b"PK\x01\x02")
    data[central + 24:central + 28] = (10).to_bytes(4, "little")  # the central directory's uncompressed size
    archive.write_bytes(bytes(data))
    assert refusal(archive) == "The mesh .zip's file 'square.obj' cannot be unpacked."  # its CRC fails at byte 10


def test_a_zip_needs_exactly_one_mesh_and_small_readable_textures(tmp_path):
    none = write_zip(tmp_path / "none.zip", {"square.mtl": MTL.encode()})
    two = write_zip(tmp_path / "two.zip", {"a.obj": TEXTURED_OBJ.encode(), "b.obj": TEXTURED_OBJ.encode()})
    broken = write_zip(tmp_path / "broken.zip", {"square.obj": TEXTURED_OBJ.encode(), "paint.png": b"not a png"})
    (tmp_path / "fake.zip").write_bytes(b"PK not really")
    assert refusal(none) == "The mesh .zip must hold exactly one mesh (.obj, .glb, .gltf or .ply); it holds 0."
    assert refusal(two).endswith("it holds 2.")
    assert refusal(broken) == "The mesh .zip's texture 'paint.png' is not a readable image."
    assert refusal(tmp_path / "fake.zip") == "The mesh .zip is not a readable zip archive."
