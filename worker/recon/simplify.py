"""Quadric edge-collapse decimation that keeps a closed, oriented mesh closed and manifold.

Garland-Heckbert collapses in sweeps over the faces, each allowing STEP times the
error of the last, from FREE_SHARE of the bound up to it: every edge within a sweep's
threshold collapses to its quadric's minimum (pulled a little toward the edge's
midpoint), unless an end already moved in that sweep or the mesh would stop being a
closed manifold: the link condition (the two ends share exactly the two opposite
vertices), valences, and no neighbouring face may flip. A decimator that skips the
link condition (fast-simplification's) leaves non-manifold edges and folded face
pairs on fusion meshes.

Compiled (Numba), in memory order. Vectorised in NumPy, collapses had to be taken in
batches far enough apart to be checked on their own; a batch removed at most an
eighth of the triangles, and a 490,000-triangle bore took 19 batches and 5 s, where
this takes 0.5 s. A heap, cheapest collapse first, visits the mesh at random: 2 s
for triangle counts within 3% of these. Within the bound, eight runs of faces (slices of the
object, as marching cubes writes them) are swept at once, each collapsing only edges whose
ends and neighbours lie in it, the rest after them in order: 1.3x faster on 2 cores, and
the same mesh on any number.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
from numba import njit, prange

from .surface import is_watertight

MAX_VALENCE = 12  # no collapse may leave a vertex with more neighbours: keeps triangles well shaped
MIN_VALENCE = 4
FLIP_COS = 0.2  # a neighbouring face whose normal turns by more than ~78 degrees counts as flipped
REGULARISATION = 1e-3  # pull toward the edge midpoint, relative to the mean vertex quadric (flat regions)
FREE_SHARE = 0.01  # the first sweep's threshold, as a share of the bound: flat faces snapped to a depth plane, whose
# collapses cost exactly 0 or a hair more by rounding, all go in it alike (rounding once decided how far they went)
STEP = 4.0  # each sweep allows this many times the mean squared error of the last, up to the bound
STALL_SHARE = 0.01  # at the bound, sweeps go on while each removes at least this share of the triangles
RING = 64  # corners gathered around a vertex at most (a vertex with more is over MAX_VALENCE: never collapsed)
PARTS = 8  # runs of faces swept at once (a constant, so that the mesh does not depend on the number of cores)


class Simplified(NamedTuple):
    """The decimated mesh and the largest error a collapse made: the root-mean-square distance, weighted by
    area, of a merged vertex from the planes of the original faces it stands for (0 when nothing collapsed).
    A root mean square, not a maximum: a vertex may lie somewhat farther (~1.5x on a sphere) from one plane."""

    vertices: np.ndarray
    faces: np.ndarray
    error: float


def simplify(vertices: np.ndarray, faces: np.ndarray, target: int = 0, max_error: float = 0.0,
             on_progress: Callable[[float], None] = lambda done: None) -> Simplified:
    """Collapse edges, cheapest first (to within a factor STEP), while a collapse within `max_error` (a distance,
    see Simplified.error; 0 = no bound) is left, and on past the bound down to `target` triangles (0 = no count);
    always only collapses that keep the mesh manifold. With both 0 nothing collapses. The input must be closed and
    oriented (is_watertight), and so is the output. `on_progress(done)` reports progress (0..1) after each sweep."""
    if len(faces) == 0 or not max_error and (len(faces) <= target or not target):
        return Simplified(vertices, faces, 0.0)
    if not is_watertight(faces):
        raise ValueError("simplify needs a closed, consistently oriented mesh")
    verts = np.array(vertices, dtype=np.float64)
    tris = np.array(faces, dtype=np.int64)
    quadrics = _plane_quadrics(verts, tris)
    regularisation = REGULARISATION * float((quadrics[:, 0] + quadrics[:, 4] + quadrics[:, 7]).mean())
    mesh = _linked(verts, quadrics, tris)
    first = live = len(tris)
    reached, bound_sq = 0.0, max_error ** 2
    scale_sq = float(((verts.max(axis=0) - verts.min(axis=0)) ** 2).sum())
    threshold = (FREE_SHARE * max_error) ** 2 if max_error else (FREE_SHARE * 1e-4) ** 2 * scale_sq
    owner, deferred = np.empty(len(verts), dtype=np.int64), np.empty(3 * len(tris), dtype=np.int64)
    sweep = 0
    while True:
        before = live
        if target and threshold > bound_sq:
            live, most = _sweep(mesh, sweep, threshold, target, live, regularisation)
        else:
            live, most = _sweep_in_parts(mesh, sweep, threshold, live, regularisation, owner, deferred)
        sweep += 1
        reached = max(reached, most)
        on_progress(_done(first, live, target))
        if threshold < bound_sq:
            threshold = min(STEP * threshold, bound_sq)
        elif target and live > target:
            if live == before and threshold > scale_sq:
                break  # no valid collapse is left
            threshold *= STEP
        elif not max_error or before - live < STALL_SHARE * before:
            break
    tris = tris[mesh.face_alive]
    used = np.zeros(len(verts), dtype=bool)
    used[tris] = True
    index = np.cumsum(used) - 1
    return Simplified(verts[used], index[tris], float(np.sqrt(reached)))


@njit(cache=True)
def _plane_quadrics(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Per vertex, the sum of its faces' area-weighted plane quadrics, as the 10 distinct entries of the
    symmetric 4x4 matrix (xx, xy, xz, xw, yy, yz, yw, zz, zw, ww) (V, 10)."""
    quadrics = np.zeros((len(vertices), 10))
    plane = np.empty(4)
    for face in range(len(faces)):
        p, q, r = vertices[faces[face, 0]], vertices[faces[face, 1]], vertices[faces[face, 2]]
        ux, uy, uz, vx, vy, vz = q[0] - p[0], q[1] - p[1], q[2] - p[2], r[0] - p[0], r[1] - p[1], r[2] - p[2]
        plane[0], plane[1], plane[2] = uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx
        plane[3] = -(plane[0] * p[0] + plane[1] * p[1] + plane[2] * p[2])
        double_area = np.sqrt(plane[0] ** 2 + plane[1] ** 2 + plane[2] ** 2)
        plane /= np.sqrt(2 * max(double_area, 1e-30))  # unit plane times sqrt(area)
        entry = 0
        for i in range(4):
            for j in range(i, 4):
                for k in range(3):
                    quadrics[faces[face, k], entry] += plane[i] * plane[j]
                entry += 1
    return quadrics


@njit(cache=True)
def _placement(quadrics: np.ndarray, vertices: np.ndarray, a: int, b: int, regularisation: float
               ) -> tuple[float, float, float, float, float]:
    """The merged point of edge (a, b), its quadric error and that error per unit of area (a mean squared
    distance). The small pull toward the midpoint makes the 3x3 system solvable where the quadric is flat and
    keeps the point near the edge; solved in closed form."""
    q = quadrics[a] + quadrics[b]
    xx, xy, xz, xw, yy, yz, yw, zz, zw, ww = q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7], q[8], q[9]
    mx = 0.5 * (vertices[a, 0] + vertices[b, 0])
    my = 0.5 * (vertices[a, 1] + vertices[b, 1])
    mz = 0.5 * (vertices[a, 2] + vertices[b, 2])
    mxx, myy, mzz = xx + regularisation, yy + regularisation, zz + regularisation
    rx, ry, rz = regularisation * mx - xw, regularisation * my - yw, regularisation * mz - zw
    cxx, cyy, czz = myy * mzz - yz * yz, mxx * mzz - xz * xz, mxx * myy - xy * xy
    cxy, cxz, cyz = xz * yz - xy * mzz, xy * yz - xz * myy, xy * xz - mxx * yz
    det = mxx * cxx + xy * cxy + xz * cxz
    x, y, z = mx, my, mz
    if det != 0.0:
        x = (cxx * rx + cxy * ry + cxz * rz) / det
        y = (cxy * rx + cyy * ry + cyz * rz) / det
        z = (cxz * rx + cyz * ry + czz * rz) / det
        length_sq = ((vertices[a, 0] - vertices[b, 0]) ** 2 + (vertices[a, 1] - vertices[b, 1]) ** 2
                     + (vertices[a, 2] - vertices[b, 2]) ** 2)
        if not (x - mx) ** 2 + (y - my) ** 2 + (z - mz) ** 2 <= 4.0 * length_sq:  # wild, or not finite
            x, y, z = mx, my, mz
    error = x * (xx * x + 2 * (xy * y + xz * z + xw)) + y * (yy * y + 2 * (yz * z + yw)) + z * (zz * z + 2 * zw) + ww
    return x, y, z, error, max(error, 0.0) / max(xx + yy + zz, 1e-30)


@njit(cache=True)
def _around(vertex: int, faces: np.ndarray, face_alive: np.ndarray, head: np.ndarray, after: np.ndarray,
            ring: np.ndarray) -> int:
    """How many live faces hold `vertex`, their corners (3 face + k) written to `ring` (up to RING of them);
    the vertex's list of corners is relinked without the dead ones on the way."""
    count = 0
    corner = head[vertex]
    while corner >= 0:
        if face_alive[corner // 3]:
            if count < RING:
                ring[count] = corner
            count += 1
        corner = after[corner]
    if count <= RING:
        head[vertex] = ring[0] if count else -1
        for i in range(count):
            after[ring[i]] = ring[i + 1] if i + 1 < count else -1
    return count


@njit(cache=True)
def _keeps_orientation(vertices: np.ndarray, faces: np.ndarray, ring: np.ndarray, count: int, other: int,
                       x: float, y: float, z: float) -> bool:
    """No face of `ring` (the corners around one end) that does not hold the `other` end turns by more than
    arccos(FLIP_COS) when that end moves to (x, y, z)."""
    for i in range(count):
        face, k = ring[i] // 3, ring[i] % 3
        v, u, w = faces[face, k], faces[face, (k + 1) % 3], faces[face, (k + 2) % 3]
        if u == other or w == other:
            continue
        ux, uy, uz = vertices[u, 0], vertices[u, 1], vertices[u, 2]
        wx, wy, wz = vertices[w, 0], vertices[w, 1], vertices[w, 2]
        ax, ay, az = ux - vertices[v, 0], uy - vertices[v, 1], uz - vertices[v, 2]
        bx, by, bz = wx - vertices[v, 0], wy - vertices[v, 1], wz - vertices[v, 2]
        old = (ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx)
        ax, ay, az, bx, by, bz = ux - x, uy - y, uz - z, wx - x, wy - y, wz - z
        new = (ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx)
        dot = old[0] * new[0] + old[1] * new[1] + old[2] * new[2]
        old_sq = old[0] ** 2 + old[1] ** 2 + old[2] ** 2
        new_sq = new[0] ** 2 + new[1] ** 2 + new[2] ** 2
        if not dot > FLIP_COS * np.sqrt(old_sq * new_sq):
            return False
    return True


@njit(cache=True)
def _neighbours(faces: np.ndarray, ring: np.ndarray, count: int, out: np.ndarray) -> None:
    """The vertices around the vertex of `ring`, each once (the second corner of each face: a closed fan)."""
    for i in range(count):
        out[i] = faces[ring[i] // 3, (ring[i] % 3 + 1) % 3]


@njit(cache=True)
def _valid(a: int, b: int, x: float, y: float, z: float, vertices: np.ndarray, faces: np.ndarray,
           valence: np.ndarray, ring_a: np.ndarray, count_a: int, ring_b: np.ndarray, count_b: int,
           around_a: np.ndarray, around_b: np.ndarray) -> bool:
    """Whether edge (a, b) may collapse to (x, y, z) and leave a closed manifold with well-shaped triangles."""
    if count_a > MAX_VALENCE or count_b > MAX_VALENCE or count_a + count_b - 4 > MAX_VALENCE:
        return False
    _neighbours(faces, ring_a, count_a, around_a)
    _neighbours(faces, ring_b, count_b, around_b)
    shared = 0
    for i in range(count_a):
        for j in range(count_b):
            if around_a[i] == around_b[j]:
                shared += 1
                if valence[around_a[i]] < MIN_VALENCE:
                    return False
    if shared != 2:  # the link condition: only the two vertices opposite the edge
        return False
    return (_keeps_orientation(vertices, faces, ring_a, count_a, b, x, y, z)
            and _keeps_orientation(vertices, faces, ring_b, count_b, a, x, y, z))


class _Mesh(NamedTuple):
    """The mesh as the sweeps change it: which faces live, and per vertex a linked list of its corners."""

    vertices: np.ndarray  # (V, 3) float64
    quadrics: np.ndarray  # (V, 10)
    faces: np.ndarray  # (F, 3) int64; a collapsed vertex's corners are renamed to the vertex it merged into
    face_alive: np.ndarray  # (F,) bool
    valence: np.ndarray  # (V,) live faces around each vertex
    head: np.ndarray  # (V,) int64: its first corner (3 face + k), -1 for none
    after: np.ndarray  # (3 F,) int64: the next corner of the same vertex, -1 at the end
    error: np.ndarray  # (3 F,) the mean squared error of the edge from each corner, as last computed...
    computed: np.ndarray  # (3 F,) int64: ...in this sweep (-1: never)
    changed: np.ndarray  # (V,) int64: the sweep in which the vertex last moved (-1: never)


@njit(cache=True)
def _linked(vertices: np.ndarray, quadrics: np.ndarray, faces: np.ndarray) -> _Mesh:
    """The mesh with every face alive and its corner lists, each in the corners' order."""
    count, face_count = len(vertices), len(faces)
    valence = np.zeros(count, dtype=np.int64)
    head = np.full(count, -1, dtype=np.int64)
    after = np.full(3 * face_count, -1, dtype=np.int64)
    for corner in range(3 * face_count - 1, -1, -1):
        vertex = faces[corner // 3, corner % 3]
        after[corner] = head[vertex]
        head[vertex] = corner
        valence[vertex] += 1
    never = np.full(3 * face_count, -1, dtype=np.int64)
    return _Mesh(vertices, quadrics, faces, np.ones(face_count, dtype=np.bool_), valence, head, after,
                 np.zeros(3 * face_count), never, np.full(count, -1, dtype=np.int64))


@njit(cache=True, nogil=True)
def _sweep_corners(mesh: _Mesh, sweep: int, threshold: float, target: int, live: int, regularisation: float,
                   moved: np.ndarray, first: int, end: int, order: np.ndarray, part: int, owner: np.ndarray,
                   deferred: np.ndarray) -> tuple[int, float, int]:
    """Visits the corners `order[first:end]` (`first:end` where `order` is empty) in turn: collapse the edge from
    each if its mean squared error is within `threshold`, while more than `target` faces live, if it keeps the
    mesh manifold and neither end `moved` earlier in the sweep. With a `part` (>= 0), only edges whose ends and
    their neighbours all belong to it (`owner`, see _owners), so that parts may run at once; the others are
    written to `deferred[first:]`. An edge's error is computed again only where an end moved since it last was
    (most edges wait through several sweeps). Returns the faces left, the largest mean squared error taken and
    how many corners were deferred."""
    vertices, faces, face_alive, valence = mesh.vertices, mesh.faces, mesh.face_alive, mesh.valence
    ring_a, ring_b = np.empty(RING, dtype=np.int64), np.empty(RING, dtype=np.int64)
    around_a, around_b = np.empty(RING, dtype=np.int64), np.empty(RING, dtype=np.int64)
    reached, left = 0.0, 0
    for i in range(first, end):
        if live <= target:
            break
        corner = order[i] if len(order) else i
        face, k = corner // 3, corner % 3
        a, b = faces[face, k], faces[face, (k + 1) % 3]
        if not face_alive[face] or a > b or moved[a] or moved[b]:
            continue
        if mesh.computed[corner] > max(mesh.changed[a], mesh.changed[b]):
            mean_sq = mesh.error[corner]
        else:
            mean_sq = _placement(mesh.quadrics, vertices, a, b, regularisation)[4]
            mesh.error[corner], mesh.computed[corner] = mean_sq, sweep
        if not mean_sq <= threshold:
            continue
        if part >= 0 and (owner[a] != part or owner[b] != part):
            deferred[first + left], left = corner, left + 1
            continue
        x, y, z, _, mean_sq = _placement(mesh.quadrics, vertices, a, b, regularisation)
        count_a = _around(a, faces, face_alive, mesh.head, mesh.after, ring_a)
        count_b = _around(b, faces, face_alive, mesh.head, mesh.after, ring_b)
        if part >= 0 and not (count_a <= RING and count_b <= RING and _owned(faces, ring_a, count_a, owner, part)
                              and _owned(faces, ring_b, count_b, owner, part)):
            deferred[first + left], left = corner, left + 1
            continue
        if not _valid(a, b, x, y, z, vertices, faces, valence, ring_a, count_a, ring_b, count_b, around_a,
                      around_b):
            continue
        for j in range(count_a):  # the two faces on the edge go; their third vertices lose a neighbour
            near, at_a = ring_a[j] // 3, ring_a[j] % 3
            at_b = (at_a + 1) % 3 if faces[near, (at_a + 1) % 3] == b else (at_a + 2) % 3
            if faces[near, at_b] == b:
                face_alive[near] = False
                valence[faces[near, 3 - at_a - at_b]] -= 1
        for j in range(count_b):  # b's other faces now hold a
            near, at_b = ring_b[j] // 3, ring_b[j] % 3
            if face_alive[near]:
                faces[near, at_b] = a
                mesh.after[ring_b[j]] = mesh.head[a]
                mesh.head[a] = ring_b[j]
        vertices[a, 0], vertices[a, 1], vertices[a, 2] = x, y, z
        mesh.quadrics[a] += mesh.quadrics[b]
        valence[a] = count_a + count_b - 4
        moved[a] = True
        mesh.changed[a] = sweep
        live -= 2
        reached = max(reached, mean_sq)
    return live, reached, left


@njit(cache=True, nogil=True)
def _owned(faces: np.ndarray, ring: np.ndarray, count: int, owner: np.ndarray, part: int) -> bool:
    """Every vertex of the faces of `ring` belongs to `part`."""
    for i in range(count):
        face = ring[i] // 3
        for k in range(3):
            if owner[faces[face, k]] != part:
                return False
    return True


@njit(cache=True, nogil=True)
def _owners(faces: np.ndarray, face_alive: np.ndarray, per_part: int, owner: np.ndarray) -> None:
    """Per vertex the part (of PARTS runs of `per_part` faces) that holds all its live faces, -1 where they lie in
    several. Marching cubes writes its faces slab by slab, so each part is a slice of the object."""
    owner[:] = PARTS
    for face in range(len(faces)):
        if face_alive[face]:
            part = face // per_part
            for k in range(3):
                vertex = faces[face, k]
                if owner[vertex] == PARTS:
                    owner[vertex] = part
                elif owner[vertex] != part:
                    owner[vertex] = -1


@njit(cache=True)
def _sweep(mesh: _Mesh, sweep: int, threshold: float, target: int, live: int, regularisation: float
           ) -> tuple[int, float]:
    """Sweep number `sweep`: one pass over the faces in order (_sweep_corners). Returns the faces left and the
    largest mean squared error taken."""
    none = np.empty(0, dtype=np.int64)
    live, reached, _ = _sweep_corners(mesh, sweep, threshold, target, live, regularisation,
                                      np.zeros(len(mesh.vertices), dtype=np.bool_), 0, 3 * len(mesh.faces), none, -1,
                                      none, none)
    return live, reached


@njit(cache=True, parallel=True)
def _sweep_in_parts(mesh: _Mesh, sweep: int, threshold: float, live: int, regularisation: float, owner: np.ndarray,
                    deferred: np.ndarray) -> tuple[int, float]:
    """_sweep without a target, the same whatever the number of threads: the PARTS runs of faces at once, each
    collapsing the edges that reach no other part, then the edges they left, in order."""
    faces_per_part = -(-len(mesh.faces) // PARTS)
    _owners(mesh.faces, mesh.face_alive, faces_per_part, owner)
    moved = np.zeros(len(mesh.vertices), dtype=np.bool_)
    corners, per_part = 3 * len(mesh.faces), 3 * faces_per_part
    none = np.empty(0, dtype=np.int64)
    left, removed, reached = np.zeros(PARTS, dtype=np.int64), np.zeros(PARTS, dtype=np.int64), np.zeros(PARTS)
    for part in prange(PARTS):
        first = part * per_part
        after, reached[part], left[part] = _sweep_corners(mesh, sweep, threshold, 0, live, regularisation, moved,
                                                          first, min(first + per_part, corners), none, part, owner,
                                                          deferred)
        removed[part] = live - after
    live, most = live - removed.sum(), reached.max()
    for part in range(PARTS):
        first = part * per_part
        live, taken, _ = _sweep_corners(mesh, sweep, threshold, 0, live, regularisation, moved, first,
                                        first + left[part], deferred, -1, none, none)
        most = max(most, taken)
    return live, most


def _done(first: int, now: int, target: int) -> float:
    """Progress as the share of the triangles to remove; with no count target, of nine tenths of them (an error
    bound stops at a share known only at the end)."""
    goal = target if target else first // 10
    return min(1.0, (first - now) / max(first - goal, 1))
