"""Fit a mesh to the depth maps, along its normals, before simplification.

Fusion averages the views and truncates, and marching cubes interpolates linearly:
surfaces come out a fraction of a voxel off, and a part thinner than a couple of
voxels (a plate, a rod, a panel, a sheet put back as a shell) a voxel too thick,
while a 16-bit depth map says where each surface is to far less. So each vertex of
marching cubes' fine mesh asks the views that face it where their depth surface lies
along its normal (the plane of the 2x2 texels around it, at the depth of the cubic
through the 4x4) and moves by the facing-weighted mean. Where a view facing the other
way sees the far side of a thin part within reach, the vertex stops MIN_GAP_VOXELS
short of it: the two sides come to their own depths, and a sheet of no thickness stays
a thin closed shell instead of folding its sides through each other. In a scanned
surface's shell (tsdf, hollow) a vertex no view places is the unseen side of the scan
and comes to HOLLOW_GAP_VOXELS of the seen one, in steps of up to HOLLOW_STEP_VOXELS: it
starts a shell's thickness away, and in half-voxel steps a tenth of an open scan's inner
side stayed 0.3 voxel short (its surface lay 3 times as far from the scan as the Poisson
baseline's). Next to a placed vertex the step stays half a voxel: there the unplaced ones
are a thin part's rim, which the long step pulled in (a slab lost 0.2 dB). Vertices on a
curved surface leave the flat faces between them inside it, so a last pass asks the same
of each face's centroid and moves the vertices until the faces, on average, lie on the
surface (faces_to_depth: on the tuning corpus thin rods gained 1.6-2.1 dB novel-view
PSNR, plates 0.9-1.0; it doubles the fit's time). Last, fit_to_silhouettes brings what
lies past a view's silhouette back to its outline: the rims of shells put back around
depth points reach a voxel past it. Only vertices move, so the mesh stays closed.

The fit comes before simplification and wants a tight simplification tolerance:
measured on the corpus, a fitted mesh simplified to 25 millionths of its diagonal
gains 1.5-6 dB novel-view PSNR, while at 250 its larger triangles cut inside the
surface (fitting after simplification, or before it at 250, lost up to 3 dB).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np
import torch
from numba import njit, prange

from .devices import on_host
from .rig import Camera, packed_cameras, project_point, unproject_point, view_direction
from .sampling import pixels_at
from .surface import vertex_normals

MIN_FACING = 0.3  # grazing views have unreliable depth slopes
PLANE_SPREAD_VOXELS = 0.25  # the 2x2 depth points around a vertex lie this close to one plane
MIN_PLANE_COS = 0.7  # which turns by less than 45 degrees from the vertex's tangent plane (no depth edge)
CHUNK_VERTICES = 1 << 18
ROUNDS = 2  # the second round starts from the normals the first one left
MAX_STEP_VOXELS = 0.5
MIN_TURN_COS = 0.5  # no face may turn by more than 60 degrees
MIN_GAP_VOXELS = 0.1  # how close a vertex may come to the far surface of a thin part (a sheet: its shell)
HOLLOW_GAP_VOXELS = 0.005  # the same in a scanned surface's shell, whose unseen side is brought to its seen one
HOLLOW_STEP_VOXELS = 1.0  # how far that unseen side may move in a round (MAX_STEP_VOXELS beside a placed vertex)
THIN_VOXELS = 3.0  # a part whose far side lies within this of a vertex is thin there
FOLD_AVERAGINGS = 4  # rounds in which the corners of folding faces take their mean step
CUBIC_REACH_VOXELS = 0.25  # a cubic further than this from the bilinear depth has a depth edge in its texels
FOLD_HALVINGS = 3
FACE_GAP_SHARE = 0.75  # a flat face through three points of a quadratic surface: mean gap / gap at the centroid
MAX_FACE_STEP_VOXELS = 0.25
SILHOUETTE_TURN_COS = 0.0  # a shell's rim faces turn edge-on as its rim comes in; none may flip
SILHOUETTE_WINDOW_PIXELS = 3  # pixels around a vertex searched for its silhouette's nearest one
EDGE_INSET_PIXELS = 0.01  # a vertex fitted to a silhouette stops this far inside its edge pixel: on it, not past it
SILHOUETTE_STEP_SHARE = 0.95  # of the way there: all the vertices past a pixel's corner would land on that one point


class DepthFit(NamedTuple):
    """What a mesh is fitted to: depths (6, H, W) z-depth (0 = none) seen by `cameras`, a step at most `tolerance`
    from the surface, in a grid of `voxel_size`; `hollow`: a scanned surface's shell (tsdf)."""

    cameras: tuple[Camera, ...]
    depths: torch.Tensor
    tolerance: float
    voxel_size: float
    hollow: bool

    def inward_room(self, room: torch.Tensor) -> torch.Tensor:
        """How far a point may move inward, given how far inward the far side of a thin part lies (inf: none)."""
        gap = HOLLOW_GAP_VOXELS if self.hollow else MIN_GAP_VOXELS
        return (room - gap * self.voxel_size).clamp_min(0.0)


def fit_to_depth(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    cameras: tuple[Camera, ...],
    depths: torch.Tensor,
    tolerance: float,
    voxel_size: float,
    on_progress: Callable[[float], None] = lambda done: None,
    hollow: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """ROUNDS of snap_to_depth, each from the normals the last one left, then faces_to_depth: the vertices, and
    which of them (V,) bool some view could place. `on_progress(done)` reports 0..1."""
    fit = DepthFit(cameras, depths, tolerance, voxel_size, hollow)
    fitted = torch.zeros(vertices.shape[0], dtype=torch.bool, device=vertices.device)

    def reporter(pass_: int) -> Callable[[float], None]:
        return lambda views_done: on_progress((pass_ + views_done / len(cameras)) / (ROUNDS + 1))

    for round_ in range(ROUNDS):
        vertices, placed = snap_to_depth(vertices, faces, vertex_normals(vertices, faces), fit, reporter(round_))
        fitted |= placed
    vertices = faces_to_depth(vertices, faces, fit, reporter(ROUNDS))
    return vertices, fitted


def snap_to_depth(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    normals: torch.Tensor,
    fit: DepthFit,
    on_view: Callable[[float], None] = lambda views_done: None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The moved vertices (steps of at most MAX_STEP_VOXELS) and which of them (N,) bool were placed.

    Each of the 2x2 depth texels around a vertex is a surface point; a view
    sees a plane there when all four lie within PLANE_SPREAD_VOXELS of one plane that turns by less than
    arccos(MIN_PLANE_COS) from the vertex's tangent plane (no depth edge, no other part, among them), at the
    distance along the vertex's normal where that normal meets it. A vertex moves where a view facing it sees such a
    plane within the fit's tolerance; where a view facing away sees one less than THIN_VOXELS inward (the far side
    of a thin part), it stops MIN_GAP_VOXELS short of it. In a hollow fit (a scanned surface's shell) that gap is
    HOLLOW_GAP_VOXELS, and a vertex no view places but with such a far side moves to it.
    """
    shift, weight, room = _depth_offsets(vertices, normals, fit, on_view)
    placed = weight > 0
    max_step = MAX_STEP_VOXELS * fit.voxel_size
    outward = (shift / weight.clamp_min(1e-12)).clamp(-max_step, max_step)  # 0 where no view placed it
    inward_room = fit.inward_room(room)
    outward = torch.maximum(outward, -inward_room)
    if fit.hollow:  # a shell's far side that no view places comes to the side the views see
        beside_placed = torch.zeros_like(placed).index_fill_(0, faces[placed[faces].any(dim=1)].reshape(-1), True)
        reach = torch.where(beside_placed, max_step, HOLLOW_STEP_VOXELS * fit.voxel_size)
        outward = torch.where(~placed & torch.isfinite(room), -torch.minimum(inward_room, reach), outward)
    step = normals * outward[:, None]
    return vertices + _without_folds(vertices, faces, step), placed


def faces_to_depth(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    fit: DepthFit,
    on_view: Callable[[float], None] = lambda views_done: None,
) -> torch.Tensor:
    """The vertices (V, 3), moved so that the faces between them, not only their corners, lie on the depth
    surface on average.

    Corners on a curved surface leave the flat face between them inside it (a chord): a rod two voxels thick
    came out 0.03 voxel thin, and its outline a pixel short along its length. Each face asks the views facing it
    where the surface lies at its centroid; on a quadratic surface the face's mean gap is FACE_GAP_SHARE of that.
    Each vertex moves by the area-weighted mean over its faces of that gap along the face's own normal (at most
    MAX_FACE_STEP_VOXELS, and never through the far side of a thin part): at a sheet's rim the gaps of its two
    sides then cancel, where a step along the vertex's normal pulled the rim in (the alligator lost 0.4 dB).
    """
    cross = _face_normals(vertices, faces)
    area = cross.norm(dim=-1)
    normals = cross / area.clamp_min(1e-30)[:, None]
    shift, weight, room = _depth_offsets(vertices[faces].mean(dim=1), normals, fit, on_view)
    area = torch.where(weight > 0, area, 0.0)
    gap = FACE_GAP_SHARE * shift / weight.clamp_min(1e-12)
    corner_of = faces.reshape(-1)
    pull = ((gap * area)[:, None] * normals).repeat_interleave(3, dim=0)
    total = torch.zeros_like(vertices).index_add_(0, corner_of, pull)
    count = torch.zeros_like(vertices[:, 0]).index_add_(0, corner_of, area.repeat_interleave(3))
    step = total / count.clamp_min(1e-30)[:, None]
    limit = MAX_FACE_STEP_VOXELS * fit.voxel_size
    step = step * (limit / step.norm(dim=1).clamp_min(limit))[:, None]
    vertex_room = torch.full_like(count, torch.inf).scatter_reduce_(0, corner_of, room.repeat_interleave(3), "amin")
    inward_room = fit.inward_room(vertex_room)
    inward = -(step * vertex_normals(vertices, faces)).sum(dim=1)
    step = step * torch.where(inward > inward_room, inward_room / inward.clamp_min(1e-30), 1.0)[:, None]
    return vertices + _without_folds(vertices, faces, step)


def _depth_offsets(
    positions: torch.Tensor,
    normals: torch.Tensor,
    fit: DepthFit,
    on_view: Callable[[float], None] = lambda views_done: None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per point (N,): the facing-weighted sum of the distances along its normal to where the views facing it
    place the surface, the sum of their weights, and how far inward the far side of a thin part lies (inf: none).

    Compiled, a point at a time through all the views, on the CPU: as tensor operations it made a dozen passes
    over every point per view, 16 times the time."""
    points, point_normals, depths = on_host(positions), on_host(normals), on_host(fit.depths)
    cameras = packed_cameras(fit.cameras)
    voxel = fit.voxel_size
    limits = np.array([fit.tolerance, PLANE_SPREAD_VOXELS * voxel, CUBIC_REACH_VOXELS * voxel, THIN_VOXELS * voxel])
    shift, weight, room = (np.empty(len(points), dtype=points.dtype) for _ in range(3))
    for first in range(0, len(points), CHUNK_VERTICES):
        on_view(len(cameras) * first / len(points))
        chunk = slice(first, first + CHUNK_VERTICES)
        _offsets(points[chunk], point_normals[chunk], cameras, depths, limits, shift[chunk], weight[chunk],
                 room[chunk])
    return tuple(torch.as_tensor(array, device=positions.device) for array in (shift, weight, room))


@njit(cache=True, nogil=True)
def _cubic_depth(depth_map: np.ndarray, x0: float, y0: float, tx: float, ty: float, bilinear: float, reach: float
                 ) -> float:
    """The depth at a projected point: the Catmull-Rom cubic through the 4x4 texels around it (the 2x2 ones start
    at column x0, row y0, and it lies tx, ty into them) where all exist and it stays within `reach` of the
    `bilinear` depth (no depth edge among them), else that. A cubic follows a curved surface where the bilinear
    mean cuts a chord inside it (on a rod a few voxels thick, a fifth of a pixel)."""
    height, width = depth_map.shape
    across, down = _catmull_rom(tx), _catmull_rom(ty)
    cubic = 0.0
    for j in range(4):
        r = int(y0) - 1 + j
        for i in range(4):
            c = int(x0) - 1 + i
            value = depth_map[min(max(r, 0), height - 1), min(max(c, 0), width - 1)]
            if not value > 0:
                return bilinear
            if 0 <= c < width and 0 <= r < height:
                cubic += value * across[i] * down[j]
    return cubic if abs(cubic - bilinear) < reach else bilinear


@njit(cache=True, nogil=True)
def _catmull_rom(t: float) -> tuple[float, float, float, float]:
    """A fraction -> the weights of the texels at -1, 0, 1, 2 (they sum to 1)."""
    t2, t3 = t * t, t * t * t
    return (-t3 + 2 * t2 - t) / 2, (3 * t3 - 5 * t2 + 2) / 2, (-3 * t3 + 4 * t2 + t) / 2, (t3 - t2) / 2


@njit(cache=True, nogil=True)
def _texel(camera: np.ndarray, depth_map: np.ndarray, column: int, row: int) -> tuple[float, float, float, float]:
    """The depth of a texel (clamped into the image) and the world point at its centre at that depth."""
    height, width = depth_map.shape
    column, row = min(max(column, 0), width - 1), min(max(row, 0), height - 1)
    value = depth_map[row, column]
    x, y, z = unproject_point(camera, column + 0.5, row + 0.5, value)
    return value, x, y, z


@njit(cache=True, nogil=True)
def _on_image(column: int, row: int, width: int, height: int) -> bool:
    return 0 <= column < width and 0 <= row < height


@njit("void(f4[:, ::1], f4[:, ::1], f8[:, ::1], f4[:, :, ::1], f8[::1], f4[::1], f4[::1], f4[::1])", cache=True,
      nogil=True, parallel=True)
def _offsets(points: np.ndarray, normals: np.ndarray, cameras: np.ndarray, depths: np.ndarray, limits: np.ndarray,
             shift: np.ndarray, weight: np.ndarray, room: np.ndarray) -> None:
    """_depth_offsets for points (N, 3), normals (N, 3), packed cameras (K, CAMERA_ROW) and depths (K, H, W);
    `limits`: the tolerance, and the plane spread, cubic reach and thin-part depth in world units; writes the
    three outputs (N,)."""
    tolerance, spread, reach, thin = limits[0], limits[1], limits[2], limits[3]
    height, width = depths.shape[1], depths.shape[2]
    for i in prange(len(points)):
        px, py, pz = points[i, 0], points[i, 1], points[i, 2]
        nx, ny, nz = normals[i, 0], normals[i, 1], normals[i, 2]
        total, total_weight, nearest_far = 0.0, 0.0, np.inf
        for k in range(len(cameras)):
            camera, depth_map = cameras[k], depths[k]
            dx, dy, dz = view_direction(camera, px, py, pz)
            facing = -(nx * dx + ny * dy + nz * dz)
            if abs(facing) <= MIN_FACING:
                continue
            u, v, _ = project_point(camera, px, py, pz)
            x0, y0 = math.floor(u - 0.5), math.floor(v - 0.5)
            tx, ty = u - 0.5 - x0, v - 0.5 - y0
            column, row = int(x0), int(y0)
            # The 2x2 texels (value, world point) and their bilinear weights (0 off the image).
            t00, t10 = _texel(camera, depth_map, column, row), _texel(camera, depth_map, column + 1, row)
            t01, t11 = _texel(camera, depth_map, column, row + 1), _texel(camera, depth_map, column + 1, row + 1)
            w00 = (1.0 - tx) * (1.0 - ty) if _on_image(column, row, width, height) else 0.0
            w10 = tx * (1.0 - ty) if _on_image(column + 1, row, width, height) else 0.0
            w01 = (1.0 - tx) * ty if _on_image(column, row + 1, width, height) else 0.0
            w11 = tx * ty if _on_image(column + 1, row + 1, width, height) else 0.0
            weight_sum = w00 + w10 + w01 + w11
            if not (t00[0] > 0 and t10[0] > 0 and t01[0] > 0 and t11[0] > 0 and weight_sum > 0):
                continue
            ax, ay, az = t11[1] - t00[1], t11[2] - t00[2], t11[3] - t00[3]
            bx, by, bz = t01[1] - t10[1], t01[2] - t10[2], t01[3] - t10[3]
            qx, qy, qz = ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx
            norm = max(math.sqrt(qx * qx + qy * qy + qz * qz), 1e-12)
            qx, qy, qz = qx / norm, qy / norm, qz / norm
            twist = abs((t00[1] - t10[1] - t01[1] + t11[1]) * qx + (t00[2] - t10[2] - t01[2] + t11[2]) * qy
                        + (t00[3] - t10[3] - t01[3] + t11[3]) * qz) / 4
            along = qx * nx + qy * ny + qz * nz  # the texels' plane against the point's tangent plane
            if not (twist < spread and abs(along) > MIN_PLANE_COS):
                continue
            depth = (t00[0] * w00 + t10[0] * w10 + t01[0] * w01 + t11[0] * w11) / weight_sum
            if facing > 0:  # behind, only the room to a far side is asked
                depth = _cubic_depth(depth_map, x0, y0, tx, ty, depth, reach)
            sx, sy, sz = unproject_point(camera, u, v, depth)
            offset = ((sx - px) * qx + (sy - py) * qy + (sz - pz) * qz) / along
            if facing > 0 and abs(offset) <= tolerance:
                total += offset * facing * facing
                total_weight += facing * facing
            if facing < 0 and 0 < -offset <= thin:
                nearest_far = min(nearest_far, -offset)
        shift[i], weight[i], room[i] = total, total_weight, nearest_far


def _face_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    corners = vertices[faces]
    return torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0], dim=-1)


def _without_folds(vertices: torch.Tensor, faces: torch.Tensor, step: torch.Tensor, min_turn_cos: float = MIN_TURN_COS
                   ) -> torch.Tensor:
    """The steps (V, 3), made to agree at the corners of every face they would turn by more than
    arccos(min_turn_cos): first each such corner takes the mean step of its folding faces (marching cubes' slivers
    then move as one instead of flipping: without it a fifth of a thin rod's vertices stayed half a voxel out),
    then the steps there are halved, and dropped if halving does not help. After the first look only the faces
    around the corners whose step changed are looked at again: the others turn as they did. Compiled, on the CPU."""
    kept = on_host(step).copy()
    _unfolded(on_host(vertices), on_host(faces, np.int64), kept, min_turn_cos)
    return torch.as_tensor(kept, device=step.device)


@njit(cache=True, nogil=True)
def _normal(points: np.ndarray, step: np.ndarray, moved: bool, faces: np.ndarray, f: int
            ) -> tuple[float, float, float]:
    """The (unnormalised) normal of triangle `f` of `faces` (F, 3) on `points` (V, 3), `moved` by `step` (V, 3) or
    not, in their float32."""
    a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
    scale = np.float32(1.0 if moved else 0.0)  # exact either way
    ax, ay, az = points[a, 0] + step[a, 0] * scale, points[a, 1] + step[a, 1] * scale, points[a, 2] + step[a, 2] * scale
    bx, by, bz = points[b, 0] + step[b, 0] * scale, points[b, 1] + step[b, 1] * scale, points[b, 2] + step[b, 2] * scale
    cx, cy, cz = points[c, 0] + step[c, 0] * scale, points[c, 1] + step[c, 1] * scale, points[c, 2] + step[c, 2] * scale
    ux, uy, uz = bx - ax, by - ay, bz - az
    vx, vy, vz = cx - ax, cy - ay, cz - az
    return uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx


@njit(cache=True, nogil=True)
def _turns(before: tuple[float, float, float], after: tuple[float, float, float], min_turn_cos: float) -> bool:
    """Whether a face turns by more than arccos(min_turn_cos), from normal `before` to `after`."""
    dot = before[0] * after[0] + before[1] * after[1] + before[2] * after[2]
    before_norm = math.sqrt(before[0] ** 2 + before[1] ** 2 + before[2] ** 2)
    after_norm = math.sqrt(after[0] ** 2 + after[1] ** 2 + after[2] ** 2)
    return dot <= min_turn_cos * before_norm * after_norm


@njit(cache=True, nogil=True, parallel=True)
def _folds(vertices: np.ndarray, step: np.ndarray, faces: np.ndarray, before: np.ndarray, changed: np.ndarray,
           min_turn_cos: float, folded: np.ndarray) -> None:
    """folded (F,): whether each face whose corners `changed` (V,) turns by more than arccos(min_turn_cos) from its
    normal `before` (F, 3) when its corners take their `step`. Apart from _unfolded, whose other loops would be
    made parallel one array operation at a time."""
    for f in prange(len(faces)):
        if changed[faces[f, 0]] or changed[faces[f, 1]] or changed[faces[f, 2]]:
            folded[f] = _turns((before[f, 0], before[f, 1], before[f, 2]), _normal(vertices, step, True, faces, f),
                               min_turn_cos)


@njit(cache=True, nogil=True, parallel=True)
def _normals_into(vertices: np.ndarray, step: np.ndarray, faces: np.ndarray, normals: np.ndarray) -> None:
    """normals (F, 3): the faces' normals before their corners take their `step`."""
    for f in prange(len(faces)):
        normals[f, 0], normals[f, 1], normals[f, 2] = _normal(vertices, step, False, faces, f)


@njit("void(f4[:, ::1], i8[:, ::1], f4[:, ::1], f8)", cache=True, nogil=True)
def _unfolded(vertices: np.ndarray, faces: np.ndarray, step: np.ndarray, min_turn_cos: float) -> None:
    """_without_folds on vertices (V, 3) and faces (F, 3); changes `step` (V, 3) in place."""
    before = np.empty((len(faces), 3), dtype=np.float32)
    _normals_into(vertices, step, faces, before)
    folded = np.zeros(len(faces), dtype=np.bool_)
    changed = np.ones(len(vertices), dtype=np.bool_)
    _folds(vertices, step, faces, before, changed, min_turn_cos, folded)
    total = np.zeros_like(step)
    count = np.zeros(len(vertices), dtype=np.float32)
    for attempt in range(FOLD_AVERAGINGS + FOLD_HALVINGS + 1):
        if not folded.any():
            break
        changed[:] = False
        if attempt < FOLD_AVERAGINGS:  # each corner of a folding face: the mean step of its folding faces
            total[:] = 0.0
            count[:] = 0.0
            for f in np.flatnonzero(folded):
                mean = (step[faces[f, 0]] + step[faces[f, 1]] + step[faces[f, 2]]) / np.float32(3)
                for corner in faces[f]:
                    total[corner] += mean
                    count[corner] += 1
                    changed[corner] = True
            for v in np.flatnonzero(changed):
                step[v] = total[v] / count[v]
        else:
            for f in np.flatnonzero(folded):
                changed[faces[f]] = True
            factor = np.float32(0.5) if attempt < FOLD_AVERAGINGS + FOLD_HALVINGS else np.float32(0.0)
            for v in np.flatnonzero(changed):
                step[v] *= factor
            if factor == 0:
                break
        _folds(vertices, step, faces, before, changed, min_turn_cos, folded)


def fit_to_silhouettes(vertices: torch.Tensor, faces: torch.Tensor, cameras: tuple[Camera, ...], masks: torch.Tensor,
                       onto_edge: torch.Tensor, reach: float) -> torch.Tensor:
    """The vertices (V, 3), each moved in the image plane of every view whose silhouette (masks (6, H, W) bool) it
    falls outside, SILHOUETTE_STEP_SHARE of the way to the nearest point where its outline may lie, if that is
    within `reach` (world units); in turn per view, and never folding a face (_without_folds).

    No surface lies outside a view's silhouette, which gives an outline to a pixel: the edge lies between the last
    pixel centre inside and the first one outside, so within half a pixel of the silhouette's pixels. Vertices
    `onto_edge` marks ((V,) bool) come onto the edge of the nearest pixel inside (EDGE_INSET_PIXELS within it):
    fused_surface marks those no depth map placed on a surface put back as shells around depth points (a sheet,
    a scan's cut edge, open panels), whose rims reach past the last point by the shell's radius, most of a voxel.
    Every other vertex only comes back to within half a pixel. Measured on the tuning corpus (novel-view PSNR):
    slabs +0.4 and +3.5 dB, assemblies of panels +3.0 and +3.1, sheets +0.8 and +0.9, open scans +0.6 and +0.7,
    solids and thin rods unchanged; bringing every vertex onto the edge cost a block -7.5 dB (its walls, seen
    edge-on, lie up to half a pixel past it), bringing a solid's unplaced ones (rounded edges) up to -0.3."""
    for camera, mask in zip(cameras, masks):
        if not mask.any():
            continue
        uvd = camera.project(vertices)
        outside = ~pixels_at(mask, uvd[:, 0].floor().long(), uvd[:, 1].floor().long(), beyond=True)
        at = torch.nonzero(outside).squeeze(1)  # off the image is not outside a silhouette: the view says nothing
        at = at[onto_edge[at] | ~_within_half_pixel(uvd[at, :2], mask)]  # the others lie where an outline may
        slack = torch.where(onto_edge[at], -EDGE_INSET_PIXELS, 0.5).to(vertices.dtype)
        step = torch.zeros_like(vertices)
        size = CHUNK_VERTICES // 4  # (size, 49) candidate pixels at a time
        for first in range(0, at.numel(), size):
            chunk = at[first : first + size]
            u, v, found = _nearest_in_silhouette(uvd[chunk, :2], mask, slack[first : first + size])
            chunk, u, v = chunk[found], u[found], v[found]
            moved = SILHOUETTE_STEP_SHARE * (camera.unproject(u, v, uvd[chunk, 2]) - vertices[chunk])
            within = moved.norm(dim=1) <= reach
            step[chunk[within]] = moved[within]
        if step.any():
            vertices = vertices + _without_folds(vertices, faces, step, SILHOUETTE_TURN_COS)
    return vertices


def _within_half_pixel(uv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Which image points (N, 2) lie within half a pixel of a pixel of `mask` (H, W): of the neighbours, only
    those on the side of the point's nearer halves can be that close."""
    col, row = uv[:, 0].floor().long(), uv[:, 1].floor().long()
    step_col = torch.where(uv[:, 0] - col < 0.5, -1, 1)
    step_row = torch.where(uv[:, 1] - row < 0.5, -1, 1)
    return (pixels_at(mask, col, row) | pixels_at(mask, col + step_col, row) | pixels_at(mask, col, row + step_row)
            | pixels_at(mask, col + step_col, row + step_row))


def _nearest_in_silhouette(uv: torch.Tensor, mask: torch.Tensor, slack: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For image points (N, 2) off the silhouette `mask` (H, W): the nearest point (u (N,), v (N,)) of its pixels
    within SILHOUETTE_WINDOW_PIXELS, each pixel's square grown by `slack` (N,) pixels, and whether one was there.
    The nearest point of all the pixels around, not of the one with the nearest centre: off a staircase of pixels
    (a rounded edge seen edge-on) that one may lie further."""
    window = torch.arange(-SILHOUETTE_WINDOW_PIXELS, SILHOUETTE_WINDOW_PIXELS + 1, device=uv.device)
    offsets = torch.cartesian_prod(window, window)  # (K, 2): column, row
    col = uv[:, 0, None].floor().long() + offsets[:, 0]  # (N, K)
    row = uv[:, 1, None].floor().long() + offsets[:, 1]
    real = pixels_at(mask, col, row)
    grow = slack[:, None]
    u = torch.minimum(torch.maximum(uv[:, 0, None], col - grow), col + 1 + grow)
    v = torch.minimum(torch.maximum(uv[:, 1, None], row - grow), row + 1 + grow)
    gap = torch.where(real, (u - uv[:, 0, None]) ** 2 + (v - uv[:, 1, None]) ** 2, torch.inf)
    best = gap.argmin(dim=1, keepdim=True)
    return u.gather(1, best).squeeze(1), v.gather(1, best).squeeze(1), torch.isfinite(gap.gather(1, best)).squeeze(1)
