"""A UV atlas for a closed mesh: charts by projection onto the six axis directions, packed by xatlas.

xatlas's own chart growing and parametrisation take 25-95 s on a 200k-triangle
fusion mesh (1.5 s on 20k), and even packing whole charts with their own UVs takes
0.4 s: far beyond a fusion job's budget. Charts made of connected faces that all
face one axis direction project orthographically onto that axis plane without
flips and with bounded stretch (at most 1/MIN_FACING), in a few vectorised passes.
Faces are labelled with their best-facing direction, labels are smoothed so that
marching-cubes noise does not shatter the charts, and tiny charts join a neighbour
when its direction still faces them well enough. xatlas then packs the charts'
bounding boxes (two triangles each, milliseconds), and each chart moves with its
box: about half the atlas is covered, against four fifths when xatlas packs the
charts' outlines, which costs texel density, not correctness.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xatlas
from numba import njit

from .surface import components, face_cross

# Direction k, then two axes (e1, e2) of its plane with e1 x e2 = direction, so projected faces keep their winding.
DIRECTIONS = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.float64)
PLANE_AXES = np.array([
    [[0, 0, -1], [0, 1, 0]], [[0, 0, 1], [0, 1, 0]],
    [[1, 0, 0], [0, 0, -1]], [[1, 0, 0], [0, 0, 1]],
    [[1, 0, 0], [0, 1, 0]], [[-1, 0, 0], [0, 1, 0]],
], dtype=np.float64)
MIN_FACING = 0.35  # a face may join a direction's chart only if it faces it at least this much (stretch <= 2.9)
MERGE_MIN_FACING = 0.1  # ...or this much when it would otherwise stay in a tiny chart
SMOOTHING_ROUNDS = 3
SMALL_CHART_FACES = 24
MERGE_ROUNDS = 3
PADDING_TEXELS = 3
NO_ATLAS_WARNING = "no texture atlas could be packed for this mesh; it carries vertex colours instead"


@dataclass
class Atlas:
    """The mesh split along chart seams: output vertex i is input vertex `source[i]` at `uv[i]`."""

    source: np.ndarray  # (N,) int64 index into the input vertices
    uv: np.ndarray  # (N, 2) float32 in [0, 1], image convention: (column, row) / size, row 0 at the top
    faces: np.ndarray  # (F, 3) int64 into the output vertices, same face order as the input
    charts: int
    utilization: float  # share of the atlas covered by charts


def face_neighbours(faces: np.ndarray) -> np.ndarray:
    """(F, 3): the face across edge k (from corner k to corner k + 1) of each face of a closed, oriented mesh."""
    src = faces.reshape(-1)
    dst = faces[:, [1, 2, 0]].reshape(-1)
    lo, hi = np.minimum(src, dst), np.maximum(src, dst)
    order = np.argsort((lo * (int(faces.max()) + 1) + hi) * 2 + (src > dst))
    first, second = order[0::2], order[1::2]
    across = np.empty(len(src), dtype=np.int64)
    across[first], across[second] = second // 3, first // 3
    return across.reshape(-1, 3)


def _labels(facing: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """Per face, the direction it faces most, then smoothed: a face follows two neighbours that agree on a
    direction it faces at least MIN_FACING."""
    label = facing.argmax(axis=1)
    rows = np.arange(len(label))
    for _ in range(SMOOTHING_ROUNDS):
        around = label[neighbours]
        majority = np.where(around[:, 1] == around[:, 2], around[:, 1], around[:, 0])
        agreed = (around[:, 0] == around[:, 1]) | (around[:, 0] == around[:, 2]) | (around[:, 1] == around[:, 2])
        label = np.where(agreed & (facing[rows, majority] >= MIN_FACING), majority, label)
    return label


def _charts(label: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """Connected components of faces with the same label (across shared edges)."""
    faces = np.repeat(np.arange(len(label)), 3)
    across = neighbours.reshape(-1)
    same = label[faces] == label[across]
    return components(np.column_stack((faces[same], across[same])), len(label))


def _merge_small(label: np.ndarray, chart: np.ndarray, facing: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """Labels after each tiny chart took the direction of the bigger neighbouring chart it shares most edges with,
    provided every face of it still faces that direction by MERGE_MIN_FACING (so no face flips)."""
    count = int(chart.max()) + 1
    sizes = np.bincount(chart, minlength=count)
    worst, _ = chart_bounds(chart, facing, count)
    here = np.repeat(chart, 3)
    there = chart[neighbours.reshape(-1)]
    pairs = (here != there) & (sizes[here] < SMALL_CHART_FACES) & (sizes[there] >= SMALL_CHART_FACES)
    here, there = here[pairs], there[pairs]
    direction = _chart_label(label, chart, count)[there]
    ok = worst[here, direction] >= MERGE_MIN_FACING
    here, direction = here[ok], direction[ok]
    if len(here) == 0:
        return label
    key, shared = np.unique(here * len(DIRECTIONS) + direction, return_counts=True)
    order = np.lexsort((-shared, key // len(DIRECTIONS)))
    key = key[order]
    small = key // len(DIRECTIONS)
    first = np.r_[True, small[1:] != small[:-1]]
    new_direction = np.full(count, -1)
    new_direction[small[first]] = key[first] % len(DIRECTIONS)
    moved = new_direction[chart] >= 0
    return np.where(moved, new_direction[chart], label)


def chart_bounds(chart: np.ndarray, values: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The least and the greatest of `values` (F, K) over each of `count` charts (chart id per face (F,)), as
    (count, K) float64 arrays (inf and -inf for a chart without faces)."""
    lo, hi = np.full((count, values.shape[1]), np.inf), np.full((count, values.shape[1]), -np.inf)
    _bounds(np.ascontiguousarray(chart, dtype=np.int64), np.ascontiguousarray(values, dtype=np.float64), lo, hi)
    return lo, hi


@njit("void(i8[::1], f8[:, ::1], f8[:, ::1], f8[:, ::1])", cache=True, nogil=True)
def _bounds(chart: np.ndarray, values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
    """chart_bounds in one pass (NumPy's minimum.at and maximum.at took 0.14 s on 170k faces)."""
    for face in range(len(chart)):
        for k in range(values.shape[1]):
            lo[chart[face], k] = min(lo[chart[face], k], values[face, k])
            hi[chart[face], k] = max(hi[chart[face], k], values[face, k])


def _chart_label(label: np.ndarray, chart: np.ndarray, count: int) -> np.ndarray:
    """The (shared) direction label of each chart."""
    per_chart = np.empty(count, dtype=label.dtype)
    per_chart[chart] = label
    return per_chart


def segment(normals: np.ndarray, neighbours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(direction label, chart id) per face, from unit face normals and face adjacency."""
    facing = normals @ DIRECTIONS.T
    label = _labels(facing, neighbours)
    chart = _charts(label, neighbours)
    for _ in range(MERGE_ROUNDS):
        merged = _merge_small(label, chart, facing, neighbours)
        if np.array_equal(merged, label):
            break
        label = merged
        chart = _charts(label, neighbours)
    return label, chart


def build_atlas(vertices: np.ndarray, faces: np.ndarray, size: int) -> Atlas | None:
    """Charts, seams and packed UVs for a closed, oriented mesh, for a square texture of `size` texels; None when
    xatlas packs nothing."""
    normals = face_cross(vertices, faces)
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-30)
    label, chart = segment(normals, face_neighbours(faces))

    # One output vertex per (input vertex, chart) pair.
    key = np.repeat(chart, 3).astype(np.int64) * len(vertices) + faces.reshape(-1)
    unique, inverse = np.unique(key, return_inverse=True)
    source = unique % len(vertices)
    out_faces = inverse.reshape(-1, 3)
    vertex_label = np.empty(len(unique), dtype=np.int64)
    vertex_label[out_faces.reshape(-1)] = np.repeat(label, 3)
    # xatlas's area thresholds are absolute: hand it the mesh scaled to about unit size.
    unit = vertices[source] / max(float(np.ptp(vertices, axis=0).max()), 1e-12)
    projected = np.einsum("nj,nkj->nk", unit, PLANE_AXES[vertex_label]).astype(np.float32)

    uv = _pack_boxes(projected, out_faces, chart, size)
    if uv is None:
        return None
    corner_uv = uv[out_faces].astype(np.float64)
    edge1, edge2 = corner_uv[:, 1] - corner_uv[:, 0], corner_uv[:, 2] - corner_uv[:, 0]
    covered = 0.5 * np.abs(edge1[:, 0] * edge2[:, 1] - edge1[:, 1] * edge2[:, 0]).sum()
    return Atlas(source, uv, out_faces, int(chart.max()) + 1, float(covered))


def _pack_boxes(projected: np.ndarray, faces: np.ndarray, chart: np.ndarray, size: int) -> np.ndarray | None:
    """Pack the charts' bounding boxes with xatlas (two triangles each: its packer is fast on few triangles and
    slow on whole charts) and move every chart with its box. UVs in [0, 1], or None if nothing was packed."""
    corner_uv = projected[faces]  # (F, 3, 2)
    count = int(chart.max()) + 1
    lo, hi = chart_bounds(chart, np.concatenate((corner_uv.min(axis=1), corner_uv.max(axis=1)), axis=1), count)
    lo, hi = lo[:, :2], np.maximum(hi[:, 2:], lo[:, :2] + 1e-6)
    box = np.stack([lo, np.column_stack((hi[:, 0], lo[:, 1])), hi, np.column_stack((lo[:, 0], hi[:, 1]))], axis=1)
    box_uv = box.reshape(-1, 2).astype(np.float32)
    box_faces = (np.arange(count)[:, None, None] * 4 + np.array([[0, 1, 2], [0, 2, 3]])).reshape(-1, 3)
    packer = xatlas.Atlas()
    packer.add_mesh(np.column_stack((box_uv, np.zeros(len(box_uv), np.float32))), box_faces.astype(np.uint32),
                    None, box_uv)
    chart_options = xatlas.ChartOptions()
    chart_options.use_input_mesh_uvs = True
    pack_options = xatlas.PackOptions()
    pack_options.resolution = size
    pack_options.padding = PADDING_TEXELS
    pack_options.bilinear = True
    pack_options.blockAlign = True
    pack_options.bruteForce = False
    pack_options.rotate_charts = False  # xatlas "rotates" by swapping u and v, which mirrors a chart
    pack_options.rotate_charts_to_axis = False
    packer.generate(chart_options, pack_options)
    if packer.atlas_count == 0:
        return None
    mapping, _, packed = packer[0]
    output_of = np.empty(count * 4, dtype=np.int64)
    output_of[mapping] = np.arange(len(mapping))  # box corner -> one output vertex (copies share the UV)
    low_corner = packed[output_of[np.arange(count) * 4]]  # where each box's lo corner went
    high_corner = packed[output_of[np.arange(count) * 4 + 2]]
    scale = (high_corner - low_corner) / (hi - lo)
    vertex_chart = np.empty(len(projected), dtype=np.int64)
    vertex_chart[faces.reshape(-1)] = np.repeat(chart, 3)
    uv = (projected - lo[vertex_chart]) * scale[vertex_chart] + low_corner[vertex_chart]
    return uv.astype(np.float32)

