"""Reading a stranger's mesh upload (GLB, OBJ, PLY, or a zip of an OBJ with its MTL and textures) within bounds.

Every bound is checked before the heavy step it guards: the file's size before
it is read, a zip's member names and uncompressed sizes before any member is
inflated (and each member read no further than its declared size), the triangle
count a file declares in its header before trimesh builds it, and again on the
mesh built. Nothing is written to disk: zip members are read into memory and
served to trimesh by a resolver that knows only them, so a material naming
`../../etc/...` finds nothing. A bare OBJ is read without its MTL (a material
file uploaded beside it is not reachable): zip it with its MTL and textures to
keep the texture.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import trimesh
from PIL import Image
from trimesh.resolvers import ZipResolver

from worker.config import Settings
from worker.errors import FileValidationError

FIELD = "mesh"
MESH_TYPES = (".glb", ".obj", ".ply")
ZIPPED_TYPES = MESH_TYPES + (".gltf",)
ZIP_ASSETS = (".mtl", ".bin", ".png", ".jpg", ".jpeg")
MAX_ZIP_MEMBERS = 64
MAX_TEXTURE_PIXELS = 4096 * 4096
MB = 1024 * 1024
ACCEPTED = "a .glb, .obj or .ply mesh, or a .zip holding one mesh with its MTL and textures"


@dataclass(frozen=True)
class MeshLimits:
    """What one mesh upload may cost: bytes (a zip's uncompressed total too), triangles, seconds of work."""

    max_bytes: int
    max_triangles: int
    time_limit_s: float

    @classmethod
    def of(cls, config: Settings) -> MeshLimits:
        return cls(config.max_mesh_mb * MB, config.max_mesh_triangles, config.mesh_render_time_limit_s)


def refuse(message: str) -> FileValidationError:
    return FileValidationError(FIELD, message)


def read_mesh(path: Path, limits: MeshLimits) -> trimesh.Trimesh:
    """The one mesh in an upload, or FileValidationError(`mesh`) with a sentence saying what is wrong."""
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise refuse(f"The mesh file is {size / MB:.1f} MB; at most {limits.max_bytes // MB} MB is accepted.")
    kind = path.suffix.lower()
    resolver = None
    if kind == ".zip":
        data, kind, resolver = _from_zip(path, limits)
    elif kind in MESH_TYPES:
        data = path.read_bytes()
    else:
        raise refuse(f"The mesh file must be {ACCEPTED}; got a {kind or 'file without extension'}.")
    _bound_triangles(declared_triangles(data, kind), limits, "declares")
    mesh = _load(data, kind, resolver)
    _bound_triangles(len(mesh.faces), limits, "has")
    return mesh


def _bound_triangles(count: int, limits: MeshLimits, verb: str) -> None:
    if count > limits.max_triangles:
        raise refuse(f"The mesh {verb} {count:,} triangles; at most {limits.max_triangles:,} are accepted "
                     "(simplify it first).")


def _load(data: bytes, kind: str, resolver: ZipResolver | None) -> trimesh.Trimesh:
    try:
        mesh = trimesh.load(io.BytesIO(data), file_type=kind[1:], resolver=resolver, force="mesh")
    except Exception as error:  # noqa: BLE001 - trimesh raises anything on a hostile file: all is "not readable"
        reason = " ".join(str(error).split())[:120] or type(error).__name__
        raise refuse(f"The mesh file could not be read as {kind[1:].upper()} ({reason}).") from None
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise refuse("The mesh file holds no triangles (a point cloud or an empty scene?).")
    extent = np.ptp(mesh.vertices, axis=0) if len(mesh.vertices) else np.zeros(3)
    if not np.isfinite(mesh.vertices).all() or float(extent.max()) <= 0:
        raise refuse("The mesh has no extent or non-finite vertex positions.")
    return mesh


def declared_triangles(data: bytes, kind: str) -> int:
    """The triangles a file says it holds, read from its header or by counting face lines, without building it."""
    if kind == ".obj":
        return sum(max(len(line.split()) - 3, 1) for line in data.splitlines() if line.startswith(b"f "))
    if kind == ".ply":
        return _ply_faces(data)
    if kind in (".glb", ".gltf"):
        return _gltf_triangles(_gltf_json(data, kind))
    return 0


def _ply_faces(data: bytes) -> int:
    header = data[:data.find(b"end_header")] if b"end_header" in data[:65536] else b""
    for line in header.splitlines():
        words = line.split()
        if words[:2] == [b"element", b"face"] and len(words) == 3 and words[2].isdigit():
            return int(words[2])
    return 0


def _gltf_json(data: bytes, kind: str) -> dict:
    try:
        if kind == ".glb":
            magic, _, _, chunk_length, chunk_type = struct.unpack_from("<4sIIII", data)
            if magic != b"glTF" or chunk_type != 0x4E4F534A:
                raise ValueError("no glTF header")
            data = data[20:20 + chunk_length]
        document = json.loads(data)
    except (struct.error, ValueError, UnicodeDecodeError):
        raise refuse(f"The mesh file is not a valid {kind[1:].upper()} (its JSON header cannot be read).") from None
    if not isinstance(document, dict):
        raise refuse(f"The mesh file is not a valid {kind[1:].upper()} (its JSON header is not an object).")
    return document


def _gltf_triangles(document: dict) -> int:
    """Triangles of every node that places a mesh: a mesh used by many nodes counts once per node."""
    try:
        accessors, meshes = document.get("accessors", []), document.get("meshes", [])
        per_mesh = []
        for mesh in meshes:
            count = 0
            for primitive in mesh.get("primitives", []):
                index = primitive.get("indices", primitive.get("attributes", {}).get("POSITION"))
                count += int(accessors[index]["count"]) // 3 if isinstance(index, int) else 0
            per_mesh.append(count)
        placed = [node["mesh"] for node in document.get("nodes", []) if isinstance(node.get("mesh"), int)]
        return sum(per_mesh[index] for index in placed) if placed else sum(per_mesh)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        raise refuse("The mesh file is not a valid glTF (its meshes or accessors are malformed).") from None


def _from_zip(path: Path, limits: MeshLimits) -> tuple[bytes, str, ZipResolver]:
    """The mesh member's bytes, its type, and a resolver over the zip's other usable members (all in memory)."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise refuse("The mesh .zip is not a readable zip archive.") from None
    with archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        if len(members) > MAX_ZIP_MEMBERS:
            raise refuse(f"The mesh .zip holds {len(members)} files; at most {MAX_ZIP_MEMBERS} are accepted.")
        for info in members:
            _check_member_name(info.filename)
        usable = [info for info in members if PurePosixPath(info.filename).suffix.lower() in ZIPPED_TYPES + ZIP_ASSETS]
        meshes = [info.filename for info in usable if PurePosixPath(info.filename).suffix.lower() in ZIPPED_TYPES]
        if len(meshes) != 1:
            raise refuse("The mesh .zip must hold exactly one mesh (.obj, .glb, .gltf or .ply); "
                         f"it holds {len(meshes)}.")
        unpacked = sum(info.file_size for info in usable)
        if unpacked > limits.max_bytes:
            raise refuse(f"The mesh .zip unpacks to {unpacked / MB:.1f} MB; at most {limits.max_bytes // MB} MB "
                         "is accepted.")
        files = {info.filename: _read_member(archive, info) for info in usable}
    for name, content in files.items():
        if PurePosixPath(name).suffix.lower() in (".png", ".jpg", ".jpeg"):
            _check_texture(name, content)
    folder = str(PurePosixPath(meshes[0]).parent)
    resolver = ZipResolver(files, namespace=None if folder == "." else folder)
    return files[meshes[0]], PurePosixPath(meshes[0]).suffix.lower(), resolver


def _check_member_name(name: str) -> None:
    parts = PurePosixPath(name).parts
    if name.startswith("/") or "\\" in name or "\x00" in name or ".." in parts or ":" in name:
        raise refuse(f"The mesh .zip holds a file named {name[:80]!r} that points outside the archive.")


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """A member's bytes, read no further than its declared size (a lying header cannot inflate more)."""
    try:
        with archive.open(info) as member:
            content = member.read(info.file_size + 1)
    except (zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError, OSError, zlib.error):
        # a bad CRC, an encrypted member, an unknown compression method, a truncated stream
        raise refuse(f"The mesh .zip's file {info.filename[:80]!r} cannot be unpacked.") from None
    if len(content) != info.file_size:
        raise refuse(f"The mesh .zip's file {info.filename[:80]!r} is not the size its header declares.")
    return content


def _check_texture(name: str, content: bytes) -> None:
    try:
        width, height = Image.open(io.BytesIO(content)).size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):  # what PIL raises on a broken header
        raise refuse(f"The mesh .zip's texture {name[:80]!r} is not a readable image.") from None
    if width * height > MAX_TEXTURE_PIXELS:
        raise refuse(f"The mesh .zip's texture {name[:80]!r} is {width}×{height}; at most "
                     f"{MAX_TEXTURE_PIXELS:,} pixels are accepted.")
