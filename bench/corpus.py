"""A benchmark corpus that produces each known failure class on purpose.

    python bench/corpus.py OUTDIR [--split tuning|held-out|shared|all]

Procedural objects come from signed-distance functions meshed by marching cubes
(closed and manifold by construction: booleans without a CSG engine) or are put
together from trimesh primitives; two public meshes live in bench/meshes/ (their
licences in bench/meshes/README.md). Each class has its own generator, and the
seed draws every free parameter (sizes, directions, positions, colours), so the
tuning set (seeds TUNING_SEEDS) and the held-out set (HELD_OUT_SEEDS) hold
different objects of the same classes. Objects without colours of their own are
coloured by render_inputs' procedural albedo; the `texture` class brings fine
vertex-colour detail.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh
from skimage.measure import marching_cubes

MESHES = Path(__file__).resolve().parent / "meshes"
TUNING_SEEDS = (0, 1)
HELD_OUT_SEEDS = (100, 101)
SPLITS = ("tuning", "held-out", "shared")
GRID = 128  # marching-cubes cells along each axis of [-1, 1]^3
SHARED = {"horse": ("horse.ply", "thin-rods"), "alligator": ("alligator.obj", "sheet")}


@dataclass(frozen=True)
class Specimen:
    """One corpus object: its class, the seed that drew it, the split it belongs to and how to build it."""

    name: str
    kind: str
    seed: int
    split: str
    build: Callable[[], trimesh.Trimesh]


# -- signed distances (negative inside), on points (N, 3) -------------------------------------------------------

def sd_sphere(p: np.ndarray, centre, radius: float) -> np.ndarray:
    return np.linalg.norm(p - np.asarray(centre), axis=1) - radius


def sd_box(p: np.ndarray, half, rounding: float = 0.0) -> np.ndarray:
    q = np.abs(p) - (np.asarray(half) - rounding)
    return np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(axis=1), 0) - rounding


def sd_capsule(p: np.ndarray, a, b, radius: float) -> np.ndarray:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    t = np.clip(((p - a) @ (b - a)) / max(float((b - a) @ (b - a)), 1e-12), 0, 1)
    return np.linalg.norm(p - (a + t[:, None] * (b - a)), axis=1) - radius


def sd_torus(p: np.ndarray, centre, axis, major: float, minor: float) -> np.ndarray:
    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    d = p - np.asarray(centre)
    height = d @ axis
    ring = np.linalg.norm(d - height[:, None] * axis, axis=1) - major
    return np.hypot(ring, height) - minor


def smooth_union(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0, 1)
    return b * (1 - h) + a * h - k * h * (1 - h)


def subtract(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum(a, -b)


def mesh_sdf(sdf: Callable[[np.ndarray], np.ndarray], grid: int = GRID) -> trimesh.Trimesh:
    """The zero level set of `sdf` on [-1, 1]^3 as a closed mesh with outward normals."""
    axis = np.linspace(-1, 1, grid + 1)
    points = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    values = sdf(points).reshape(grid + 1, grid + 1, grid + 1)
    values = np.pad(values, 1, constant_values=1.0)  # anything touching the border still closes
    vertices, faces, _, _ = marching_cubes(values, 0.0, spacing=(2 / grid,) * 3)
    mesh = trimesh.Trimesh(vertices - 1 - 2 / grid, faces[:, ::-1], process=True)
    mesh.update_faces(mesh.nondegenerate_faces())
    mesh.remove_unreferenced_vertices()
    if mesh.volume < 0:
        mesh.invert()
    return mesh


def unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def tilted_axis(rng: np.random.Generator, max_degrees: float) -> np.ndarray:
    """An axis direction tipped by up to `max_degrees` toward a random side."""
    axis = np.eye(3)[rng.integers(3)]
    side = np.cross(axis, unit(rng))
    angle = np.radians(rng.uniform(0, max_degrees))
    return np.cos(angle) * axis + np.sin(angle) * side / np.linalg.norm(side)


def blob(rng: np.random.Generator, p: np.ndarray, lobes: int = 4) -> np.ndarray:
    """A smooth union of a core sphere and a few off-centre lobes."""
    d = sd_sphere(p, (0, 0, 0), rng.uniform(0.45, 0.55))
    for _ in range(lobes):
        d = smooth_union(d, sd_sphere(p, unit(rng) * rng.uniform(0.3, 0.45), rng.uniform(0.2, 0.32)), 0.15)
    return d


# -- the classes --------------------------------------------------------------------------------------------------

def bore(rng: np.random.Generator) -> trimesh.Trimesh:
    """A machined block with a through-bore (near an axis: its walls are seen edge-on or not at all) and a blind
    bore tipped off the axes."""
    half = rng.uniform([0.45, 0.35, 0.35], [0.75, 0.6, 0.6])
    through = tilted_axis(rng, 20) * 2.0
    radius = rng.uniform(0.12, 0.2)
    blind = unit(rng)
    entry = blind * 1.2

    def sdf(p):
        d = sd_box(p, half, rounding=0.05)
        d = subtract(d, sd_capsule(p, -through, through, radius))
        return subtract(d, sd_capsule(p, entry, entry * 0.05, radius * 0.7))
    return mesh_sdf(sdf)


def tunnel(rng: np.random.Generator) -> trimesh.Trimesh:
    """A blend of spheres with a curved tunnel through it: no view looks down it."""
    axis = unit(rng)
    centre = np.cross(axis, unit(rng))
    centre = centre / np.linalg.norm(centre) * rng.uniform(0.45, 0.6)
    major, minor = rng.uniform(0.5, 0.65), rng.uniform(0.09, 0.14)
    lobes = rng.integers(3, 6)
    seed = int(rng.integers(1 << 31))
    return mesh_sdf(lambda p: subtract(blob(np.random.default_rng(seed), p, lobes),
                                       sd_torus(p, centre, axis, major, minor)))


def cavity(rng: np.random.Generator) -> trimesh.Trimesh:
    """A blob with deep, narrow blind holes along diagonals and a dent: concavities no axis view sees into."""
    seed = int(rng.integers(1 << 31))
    holes = [(unit(rng), rng.uniform(0.07, 0.12), rng.uniform(0.0, 0.25)) for _ in range(rng.integers(2, 4))]
    dent = unit(rng) * 0.75

    def sdf(p):
        d = blob(np.random.default_rng(seed), p)
        for direction, radius, depth in holes:
            d = subtract(d, sd_capsule(p, direction * 1.2, direction * depth, radius))
        return subtract(d, sd_sphere(p, dent, 0.25))
    return mesh_sdf(sdf)


def open_scan(rng: np.random.Generator) -> trimesh.Trimesh:
    """A closed blob with faces cut away, as a scan leaves it: an open base and a hole in its side."""
    seed = int(rng.integers(1 << 31))
    mesh = mesh_sdf(lambda p: blob(np.random.default_rng(seed), p))
    centres = mesh.triangles_center
    lo, hi = mesh.bounds
    base = centres[:, 1] < lo[1] + rng.uniform(0.1, 0.25) * (hi[1] - lo[1])
    spot = centres[rng.integers(len(centres))]
    side = np.linalg.norm(centres - spot, axis=1) < rng.uniform(0.12, 0.22)
    mesh.update_faces(~(base | side))
    mesh.remove_unreferenced_vertices()
    return mesh


def sheet(rng: np.random.Generator) -> trimesh.Trimesh:
    """A zero-thickness wavy sheet with a ragged outline (one layer of triangles)."""
    n = 96
    u, v = np.meshgrid(np.linspace(-0.8, 0.8, n), np.linspace(-0.6, 0.6, n), indexing="ij")
    freq, amp = rng.uniform(2, 5, 2), rng.uniform(0.02, 0.12)
    height = amp * np.sin(freq[0] * u) * np.cos(freq[1] * v)
    vertices = np.column_stack((u.ravel(), v.ravel(), height.ravel()))
    index = np.arange(n * n).reshape(n, n)
    a, b, c, d = index[:-1, :-1].ravel(), index[1:, :-1].ravel(), index[1:, 1:].ravel(), index[:-1, 1:].ravel()
    faces = np.concatenate((np.column_stack((a, b, c)), np.column_stack((a, c, d))))
    outline = 0.55 + 0.2 * np.sin(rng.integers(3, 7) * np.arctan2(v, u) + rng.uniform(0, 6))
    inside = (np.hypot(u / 0.8, v / 0.6) < outline).ravel()
    mesh = trimesh.Trimesh(vertices, faces[inside[faces].all(axis=1)], process=True)
    mesh.remove_unreferenced_vertices()
    return mesh.apply_transform(trimesh.transformations.rotation_matrix(rng.uniform(0, 0.5), unit(rng)))


def slab(rng: np.random.Generator) -> trimesh.Trimesh:
    """A nearly flat closed plate, thinner than a fusion voxel, tipped a little."""
    thickness = rng.uniform(0.004, 0.015)
    plate = trimesh.creation.box((rng.uniform(1.2, 1.6), rng.uniform(0.8, 1.2), thickness))
    plate = plate.subdivide_to_size(0.05)
    return plate.apply_transform(trimesh.transformations.rotation_matrix(rng.uniform(0, 0.6), unit(rng)))


def thin_rods(rng: np.random.Generator) -> trimesh.Trimesh:
    """A frame of thin rods (overlapping closed cylinders) around a small hub."""
    parts = [trimesh.creation.icosphere(2, radius=rng.uniform(0.06, 0.12))]
    for _ in range(rng.integers(4, 8)):
        direction = unit(rng)
        length = rng.uniform(0.5, 0.8)
        rod = trimesh.creation.cylinder(rng.uniform(0.008, 0.025), length, sections=12,
                                        segment=(np.zeros(3), direction * length))
        parts.append(rod)
    return trimesh.util.concatenate(parts)


def assembly(rng: np.random.Generator) -> trimesh.Trimesh:
    """A low-poly car: an open-bottomed body, an overlapping cabin and uncapped wheels through the body."""
    length, width, height = rng.uniform(1.2, 1.6), rng.uniform(0.55, 0.75), rng.uniform(0.25, 0.4)
    body = trimesh.creation.box((length, height, width))
    body.update_faces(body.face_normals[:, 1] > -0.5)  # no floor
    cabin = trimesh.creation.box((length * rng.uniform(0.4, 0.6), height * 0.9, width * 0.9))
    cabin.apply_translation((rng.uniform(-0.15, 0.1), height * 0.75, 0))
    parts = [body, cabin]
    radius = height * rng.uniform(0.45, 0.6)
    for x in (-0.32 * length, 0.32 * length):
        for z in (-0.5 * width, 0.5 * width):
            wheel = trimesh.creation.cylinder(radius, width * 0.2, sections=10)
            wheel.update_faces(np.abs(wheel.face_normals[:, 2]) < 0.5)  # tyre only, no hubs
            wheel.apply_translation((x, -height / 2, z))
            parts.append(wheel)
    return trimesh.util.concatenate(parts)


def fine_texture(rng: np.random.Generator) -> trimesh.Trimesh:
    """A blob whose vertex colours carry fine stripes and dots (a period of a few input pixels)."""
    seed = int(rng.integers(1 << 31))
    mesh = mesh_sdf(lambda p: blob(np.random.default_rng(seed), p), grid=160)
    direction, period = unit(rng), rng.uniform(0.04, 0.08)
    palette = rng.uniform(0.05, 0.95, (3, 3))
    p = mesh.vertices
    stripes = (np.floor(p @ direction / period) % 2).astype(int)
    dots = (np.linalg.norm((p / (period * 1.7)) % 1.0 - 0.5, axis=1) < 0.2).astype(int)
    colours = palette[np.where(dots == 1, 2, stripes)]
    mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=np.round(colours * 255).astype(np.uint8))
    return mesh


GENERATORS: dict[str, Callable[[np.random.Generator], trimesh.Trimesh]] = {
    "bore": bore, "tunnel": tunnel, "cavity": cavity, "open-scan": open_scan, "sheet": sheet, "slab": slab,
    "thin-rods": thin_rods, "assembly": assembly, "texture": fine_texture,
}


def _generated(kind: str, seed: int, split: str) -> Specimen:
    generator = GENERATORS[kind]
    return Specimen(f"{kind}-{seed}", kind, seed, split, lambda: generator(np.random.default_rng(seed)))


def _shared(name: str) -> Specimen:
    file, kind = SHARED[name]
    return Specimen(name, kind, -1, "shared", lambda: trimesh.load(MESHES / file, force="mesh"))


def corpus(split: str = "all", kinds: tuple[str, ...] = (), names: tuple[str, ...] = ()) -> list[Specimen]:
    """The specimens of one split (or all), optionally only those of the given classes or names."""
    specimens = [_generated(kind, seed, "tuning") for kind in GENERATORS for seed in TUNING_SEEDS]
    specimens += [_generated(kind, seed, "held-out") for kind in GENERATORS for seed in HELD_OUT_SEEDS]
    specimens += [_shared(name) for name in SHARED]
    return [s for s in specimens if split in ("all", s.split) and (not kinds or s.kind in kinds)
            and (not names or s.name in names)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/corpus.py", description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path, help="writes NAME.ply for every specimen")
    parser.add_argument("--split", choices=("all",) + SPLITS, default="all")
    args = parser.parse_args(argv)
    args.outdir.mkdir(parents=True, exist_ok=True)
    for specimen in corpus(args.split):
        mesh = specimen.build()
        mesh.export(args.outdir / f"{specimen.name}.ply")
        print(f"{specimen.split:8} {specimen.kind:9} {specimen.name:14} {len(mesh.faces):7} faces "
              f"closed={mesh.is_watertight}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
