"""Quadric edge-collapse decimation that keeps a closed, oriented mesh closed and manifold, vectorised.

A sequential decimator (fast-simplification's) does not check the link condition, so
on fusion meshes it leaves a few non-manifold edges and folded face pairs: the
result is no longer watertight. Here each pass prices every edge with its quadric
error (Garland-Heckbert, the merged vertex at the quadric's minimum), then picks,
cheapest first, a set of collapses no two of which come within one edge of each
other, so that each can be checked on its own and all applied at once: the link
condition (the two ends share exactly the two opposite vertices), valences, and no
neighbouring face may flip. Equal prices (flat faces, exactly 0) are taken in a
scattered order: a set is picked among local minima of the order, which an order
that follows the mesh's indices makes few. Edges the last pass left alone keep
their price. NumPy on the CPU, like marching cubes before it.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
from scipy.sparse import coo_matrix

from .surface import is_watertight

MAX_VALENCE = 12  # no collapse may leave a vertex with more neighbours: keeps triangles well shaped
MIN_VALENCE = 4
FLIP_COS = 0.2  # a neighbouring face whose normal turns by more than ~78 degrees counts as flipped
CANDIDATE_SHARE = 0.5  # each pass considers the cheapest half of the edges
MAX_ROUNDS = 6  # selection rounds per pass, each adding collapses away from those already chosen
MAX_PASSES = 64
STALL_SHARE = 0.02  # within the budget, a pass under the error bound removing fewer triangles than this ends it:
# at 0.005 the last dozen passes on a 490,000-triangle bore took 1 s to remove 6% more, and no PSNR with it
REGULARISATION = 1e-3  # pull toward the edge midpoint, relative to the mean vertex quadric (flat regions)
FREE_SHARE = 0.01  # collapses that move the surface by less than this share of the bound cost nothing: they are
# taken in a scattered order, as rounding noise once ordered them (flat faces snapped to a depth plane price exactly 0,
# and in index order so few of a pass's candidates were local minima: 1,800 a round instead of 6,000)
PLACEMENT_CHUNK = 1 << 16  # edges priced at a time
NONE = np.iinfo(np.int64).max
QUADRIC_ENTRIES = ((0, 0), (0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3), (2, 2), (2, 3), (3, 3))


class _Topology(NamedTuple):
    """Edges of a closed oriented mesh, each once: ends a < b in faces (a, b, c) and (b, a, d); per-vertex rings."""

    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    d: np.ndarray
    face_ab: np.ndarray
    face_ba: np.ndarray
    valence: np.ndarray  # per vertex
    start: np.ndarray  # per vertex: its first slot in `neighbours` / `ring_opposite`
    neighbours: np.ndarray  # the other end of each outgoing half-edge, grouped by vertex
    ring_opposite: np.ndarray  # the third vertex of each outgoing half-edge's face, grouped by vertex


def _topology(faces: np.ndarray, count: int) -> _Topology:
    """Edges and rings from two sorts of the half-edges (by edge, by source vertex)."""
    src = faces.reshape(-1)
    dst = faces[:, [1, 2, 0]].reshape(-1)
    lo, hi = np.minimum(src, dst), np.maximum(src, dst)
    order = np.concatenate((np.flatnonzero(src < dst), np.flatnonzero(src > dst)))  # by (lo, hi, src > dst):
    order = order[_grouped(hi[order], count)]  # least significant key first, each sort stable
    order = order[_grouped(lo[order], count)]
    forward, backward = order[0::2], order[1::2]  # closed and oriented: each edge's two half-edges, in turn
    by_vertex = _grouped(src, count)
    valence = np.bincount(src, minlength=count)
    opposite = faces[:, [2, 0, 1]].reshape(-1)
    return _Topology(src[forward], dst[forward], opposite[forward], opposite[backward], forward // 3,
                     backward // 3, valence, np.cumsum(valence) - valence, dst[by_vertex], opposite[by_vertex])


def _grouped(keys: np.ndarray, count: int) -> np.ndarray:
    """A stable argsort of `keys` (each < count), as a counting sort: SciPy's conversion to CSR, whose rows are
    the keys and whose sorted column indices the positions, takes a tenth of np.argsort's time."""
    matrix = coo_matrix((np.ones(len(keys), dtype=np.int8), (keys, np.arange(len(keys)))),
                        shape=(count, len(keys))).tocsr()
    matrix.sort_indices()
    return matrix.indices.astype(np.int64)


def _scattered(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A hash of each edge (a, b): an order of equal prices with no spatial pattern, the same on every pass."""
    return ((a * 0x9E3779B1) ^ (b * 0x85EBCA77)) & 0xFFFFFFFF


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Cross product over the last axis (np.cross is several times slower on big arrays)."""
    return np.stack((u[..., 1] * v[..., 2] - u[..., 2] * v[..., 1],
                     u[..., 2] * v[..., 0] - u[..., 0] * v[..., 2],
                     u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]), axis=-1)


def _dot(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Dot product over the last axis of length 3 (a reduction over it is slow in NumPy)."""
    return u[..., 0] * v[..., 0] + u[..., 1] * v[..., 1] + u[..., 2] * v[..., 2]


def _plane_quadrics(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Per vertex, the sum of its faces' area-weighted plane quadrics, as the 10 distinct entries of the
    symmetric 4x4 matrix in the order of QUADRIC_ENTRIES (10, V)."""
    corners = vertices[faces]
    normal = _cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    double_area = np.linalg.norm(normal, axis=1)
    plane = np.concatenate((normal, -(normal * corners[:, 0]).sum(axis=1, keepdims=True)), axis=1)
    plane /= np.sqrt(2 * np.maximum(double_area, 1e-30))[:, None]  # unit plane times sqrt(area)
    per_face = np.stack([plane[:, i] * plane[:, j] for i, j in QUADRIC_ENTRIES])
    quadrics = np.zeros((len(QUADRIC_ENTRIES), len(vertices)))
    for k in range(3):
        for row, values in zip(quadrics, per_face):
            row += np.bincount(faces[:, k], weights=values, minlength=len(vertices))
    return quadrics


def _placement(quadrics: np.ndarray, vertices: np.ndarray, a: np.ndarray, b: np.ndarray,
               regularisation: float) -> tuple[np.ndarray, np.ndarray]:
    """Merged position (E, 3) and quadric error (E,) per edge (a[i], b[i]), PLACEMENT_CHUNK edges at a time: the
    twenty-odd temporaries of a million edges each would be fresh memory, and faulting it in took longer (1.9 s
    against 1.0 s on an open scan's 1.1 million edges) than the arithmetic."""
    points = np.empty((len(a), 3))
    error = np.empty(len(a))
    for first in range(0, len(a), PLACEMENT_CHUNK):
        part = slice(first, first + PLACEMENT_CHUNK)
        points[part], error[part] = _placement_of(quadrics, vertices, a[part], b[part], regularisation)
    return points, error


def _placement_of(quadrics: np.ndarray, vertices: np.ndarray, a: np.ndarray, b: np.ndarray,
                  regularisation: float) -> tuple[np.ndarray, np.ndarray]:
    """_placement's arithmetic. The small pull toward the midpoint makes the 3x3 system solvable where the
    quadric is flat and keeps the point near the edge; solved in closed form."""
    xx, xy, xz, xw, yy, yz, yw, zz, zw, ww = quadrics[:, a] + quadrics[:, b]
    mid = 0.5 * (vertices[a] + vertices[b])
    mxx, myy, mzz = xx + regularisation, yy + regularisation, zz + regularisation
    rx, ry, rz = regularisation * mid[:, 0] - xw, regularisation * mid[:, 1] - yw, regularisation * mid[:, 2] - zw
    cxx, cyy, czz = myy * mzz - yz * yz, mxx * mzz - xz * xz, mxx * myy - xy * xy
    cxy, cxz, cyz = xz * yz - xy * mzz, xy * yz - xz * myy, xy * xz - mxx * yz
    det = mxx * cxx + xy * cxy + xz * cxz
    with np.errstate(divide="ignore", invalid="ignore"):
        point = np.stack(((cxx * rx + cxy * ry + cxz * rz) / det,
                          (cxy * rx + cyy * ry + cyz * rz) / det,
                          (cxz * rx + cyz * ry + czz * rz) / det), axis=1)
    length = np.linalg.norm(vertices[a] - vertices[b], axis=1)
    wild = ~np.isfinite(point).all(axis=1) | (np.linalg.norm(point - mid, axis=1) > 2 * length)
    point[wild] = mid[wild]
    x, y, z = point[:, 0], point[:, 1], point[:, 2]
    error = (x * (xx * x + 2 * (xy * y + xz * z + xw)) + y * (yy * y + 2 * (yz * z + yw))
             + z * (zz * z + 2 * zw) + ww)
    return point, error


def _reprice(quadrics: np.ndarray, vertices: np.ndarray, topology: _Topology, keys: np.ndarray, moved: np.ndarray,
             priced: tuple[np.ndarray, np.ndarray, np.ndarray] | None, regularisation: float
             ) -> tuple[np.ndarray, np.ndarray]:
    """_placement for every edge; an edge between two vertices the last pass left alone existed then, with the
    same quadrics and ends, so its price is looked up instead of recomputed."""
    if priced is None:
        return _placement(quadrics, vertices, topology.a, topology.b, regularisation)
    old_keys, old_points, old_error = priced
    stale = moved[topology.a] | moved[topology.b]
    kept = np.flatnonzero(~stale)
    found = np.searchsorted(old_keys, keys[kept])
    points = np.empty((len(keys), 3))
    error = np.empty(len(keys))
    points[kept], error[kept] = old_points[found], old_error[found]
    fresh = np.flatnonzero(stale)
    points[fresh], error[fresh] = _placement(quadrics, vertices, topology.a[fresh], topology.b[fresh], regularisation)
    return points, error


def _ring(topology: _Topology, vertex: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, MAX_VALENCE) ring entries of each vertex (neighbours or faces) and which slots are real; a vertex
    with more neighbours shows only the first MAX_VALENCE."""
    slots = np.arange(MAX_VALENCE)
    real = slots < topology.valence[vertex, None]
    index = np.minimum(topology.start[vertex, None] + slots, len(values) - 1)
    return values[index], real


def _valid(topology: _Topology, vertices: np.ndarray, edge: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Which of the edges `edge` may collapse to `point` without breaking the mesh (valence, link, flips)."""
    a, b, c, d = topology.a[edge], topology.b[edge], topology.c[edge], topology.d[edge]
    valence = topology.valence
    ok = (valence[a] <= MAX_VALENCE) & (valence[b] <= MAX_VALENCE) & (valence[a] + valence[b] - 4 <= MAX_VALENCE)
    ok &= (valence[c] >= MIN_VALENCE) & (valence[d] >= MIN_VALENCE)
    around_a, real_a = _ring(topology, a, topology.neighbours)
    around_b, real_b = _ring(topology, b, topology.neighbours)
    shared = (around_a[:, :, None] == around_b[:, None, :]) & real_a[:, :, None] & real_b[:, None, :]
    ok &= np.count_nonzero(shared.reshape(len(edge), -1), axis=1) == 2
    survivors = np.flatnonzero(ok)
    ok[survivors] = _keeps_orientation(topology, vertices, edge[survivors], point[survivors])
    return ok


def _keeps_orientation(topology: _Topology, vertices: np.ndarray, edge: np.ndarray, point: np.ndarray) -> np.ndarray:
    """No face around either end of an edge turns by more than arccos(FLIP_COS) when the edge collapses.

    Around a vertex v, outgoing half-edge v -> u with opposite vertex w is the face (v, u, w); the two faces
    that contain the edge itself disappear and are skipped. The faces are listed flat, as many per end as it
    has (padding every ring to MAX_VALENCE doubled the arithmetic)."""
    a, b = topology.a[edge], topology.b[edge]
    flipped = np.zeros(len(edge), dtype=np.int64)
    for end, other in ((a, b), (b, a)):
        valence = np.minimum(topology.valence[end], MAX_VALENCE)
        owner = np.repeat(np.arange(len(edge)), valence)
        slot = np.arange(len(owner)) - np.repeat(np.cumsum(valence) - valence, valence) + topology.start[end][owner]
        u, w = topology.neighbours[slot], topology.ring_opposite[slot]
        kept = (u != other[owner]) & (w != other[owner])
        owner, u, w = owner[kept], u[kept], w[kept]
        pu, pw, pv, pn = vertices[u], vertices[w], vertices[end][owner], point[owner]
        old = _cross(pu - pv, pw - pv)
        new = _cross(pu - pn, pw - pn)
        agree = _dot(old, new) > FLIP_COS * np.sqrt(_dot(old, old) * _dot(new, new))
        flipped += np.bincount(owner[~agree], minlength=len(edge))
    return flipped == 0


def _select(topology: _Topology, vertices: np.ndarray, faces: np.ndarray, points: np.ndarray,
            candidates: np.ndarray, wanted: int, on_round: Callable[[], None]) -> np.ndarray:
    """Up to `wanted` collapses (edge indices) to apply together: valid, and no end of one within one edge of
    an end of another. Candidates come in order of preference; each round adds the valid local minima. Only
    the faces around candidates are looked at, and candidates only drop out: each round looks among the faces
    the last one kept."""
    count = len(vertices)
    blocked = np.zeros(count, dtype=bool)
    rank = np.arange(len(candidates))
    chosen: list[np.ndarray] = []
    total = 0
    for _ in range(MAX_ROUNDS):
        on_round()
        a, b = topology.a[candidates], topology.b[candidates]
        free = ~(blocked[a] | blocked[b])
        candidates, rank, a, b = candidates[free], rank[free], a[free], b[free]
        if len(candidates) == 0 or total >= wanted:
            break
        best = np.full(count, NONE)
        np.minimum.at(best, a, rank)
        np.minimum.at(best, b, rank)
        corner_best = best[faces]
        face_best = np.minimum(np.minimum(corner_best[:, 0], corner_best[:, 1]), corner_best[:, 2])
        near = face_best < NONE
        faces, face_best = faces[near], face_best[near]
        nearby = np.full(count, NONE)
        np.minimum.at(nearby, faces.reshape(-1), np.repeat(face_best, 3))
        winners = (nearby[a] == rank) & (nearby[b] == rank)
        picked = candidates[winners]
        ok = _valid(topology, vertices, picked, points[picked])
        accepted = picked[ok][: wanted - total]
        chosen.append(accepted)
        total += len(accepted)
        for end in (topology.a[accepted], topology.b[accepted]):
            ring, real = _ring(topology, end, topology.neighbours)
            blocked[np.where(real, ring, end[:, None])] = True
        keep = np.ones(len(candidates), dtype=bool)
        keep[np.flatnonzero(winners)[~ok]] = False
        candidates, rank = candidates[keep], rank[keep]
    return np.concatenate(chosen) if chosen else candidates[:0]


class Simplified(NamedTuple):
    """The decimated mesh and the largest error a collapse made: the root-mean-square distance, weighted by
    area, of a merged vertex from the planes of the original faces it stands for (0 when nothing collapsed).
    A root mean square, not a maximum: a vertex may lie somewhat farther (~1.5x on a sphere) from one plane."""

    vertices: np.ndarray
    faces: np.ndarray
    error: float


def simplify(vertices: np.ndarray, faces: np.ndarray, target: int = 0, max_error: float = 0.0,
             on_progress: Callable[[float], None] = lambda done: None) -> Simplified:
    """Collapse edges, cheapest quadric error first, down to `target` triangles (0 = no count), then on while a
    collapse within `max_error` (a distance, see Simplified.error; 0 = no bound) is left; always only collapses
    that keep the mesh manifold. With both 0 nothing collapses. The input must be closed and oriented
    (is_watertight), and so is the output. `on_progress(done)` reports progress (0..1) between selection rounds
    and after each pass."""
    if not max_error and (len(faces) <= target or not target):
        return Simplified(vertices, faces, 0.0)
    if not is_watertight(faces):
        raise ValueError("simplify needs a closed, consistently oriented mesh")
    verts = np.array(vertices, dtype=np.float64)
    tris = np.asarray(faces, dtype=np.int64)
    count = len(verts)
    quadrics = _plane_quadrics(verts, tris)
    regularisation = REGULARISATION * float((quadrics[0] + quadrics[4] + quadrics[7]).mean())
    first = len(tris)
    priced: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # last pass's edge keys, points, errors
    moved = np.ones(count, dtype=bool)
    reached = 0.0
    for _ in range(MAX_PASSES):
        over_budget = target and len(tris) > target
        wanted = (len(tris) - target + 1) // 2 if over_budget else (len(tris) + 1) // 2 if max_error else 0
        if wanted <= 0:
            break
        topology = _topology(tris, count)
        keys = topology.a * count + topology.b  # ascending: _topology sorts the edges by it
        points, error = _reprice(quadrics, verts, topology, keys, moved, priced, regularisation)
        priced = (keys, points, error)
        # The quadric's trace is the area it stands for: error / area is the mean squared distance to its planes.
        area = quadrics[0] + quadrics[4] + quadrics[7]
        mean_square = np.maximum(error, 0.0) / np.maximum(area[topology.a] + area[topology.b], 1e-30)
        allowed = np.arange(len(error)) if over_budget else np.flatnonzero(mean_square <= max_error ** 2)
        share = min(len(allowed), max(int(CANDIDATE_SHARE * len(error)), 2 * wanted))
        if share == 0:
            break
        price = np.where(mean_square <= (FREE_SHARE * max_error) ** 2, 0.0, error)
        cheapest = allowed[np.argpartition(price[allowed], share - 1)[:share]]
        candidates = cheapest[np.lexsort((_scattered(topology.a[cheapest], topology.b[cheapest]), price[cheapest]))]
        done = _done(first, len(tris), target)
        # Orientation checks compare signs of products of short edges: single precision is plenty, and faster.
        chosen = _select(topology, verts.astype(np.float32), tris, points.astype(np.float32), candidates, wanted,
                         lambda: on_progress(done))
        if len(chosen) == 0 or (not over_budget and 2 * len(chosen) < STALL_SHARE * len(tris)):
            break
        reached = max(reached, float(np.sqrt(mean_square[chosen].max())))
        a, b = topology.a[chosen], topology.b[chosen]
        verts[a] = points[chosen]
        quadrics[:, a] += quadrics[:, b]
        moved[:] = False
        moved[a] = True
        remap = np.arange(count)
        remap[b] = a
        dead = np.zeros(len(tris), dtype=bool)
        dead[topology.face_ab[chosen]] = True
        dead[topology.face_ba[chosen]] = True
        tris = remap[tris[~dead]]
        on_progress(_done(first, len(tris), target))
    used = np.zeros(count, dtype=bool)
    used[tris] = True
    index = np.cumsum(used) - 1
    return Simplified(verts[used], index[tris], reached)


def _done(first: int, now: int, target: int) -> float:
    """Progress as the share of the triangles to remove; with no count target, of nine tenths of them (an error
    bound stops at a share known only at the end)."""
    goal = target if target else first // 10
    return min(1.0, (first - now) / max(first - goal, 1))
