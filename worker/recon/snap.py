"""Move a mesh's vertices onto the surface the depth maps describe, along their normals.

The fused signed-distance grid averages views and truncates, and marching cubes
interpolates it linearly: curved surfaces come out a fraction of a voxel off, while a
16-bit depth map, bilinearly interpolated where its 2x2 texels lie on one smooth
surface, is accurate to far less. So each vertex asks the views that see it (depth
test, as for colours) how far in front of or behind their depth surface it lies, and
moves along its normal by the facing-weighted mean of those perpendicular distances
(at most a fraction of a voxel, and less where a thin triangle would fold). Only
vertices move: the mesh stays closed.
"""

from __future__ import annotations

from typing import Callable

import torch

from .rig import Camera
from .sampling import neighbours_2x2
from .surface import vertex_normals

MIN_FACING = 0.3  # grazing views have unreliable depth slopes
SMOOTH_SLOPE = 3.0  # the 2x2 depths may differ by this many pixel widths / facing (no depth edge between them)
CHUNK_VERTICES = 1 << 18
ROUNDS = 2  # the second round starts from the normals the first one left
MAX_STEP_VOXELS = 0.5
MAX_DEPTH_STEP_VOXELS = 0.05  # coarser (8-bit) depth would print its steps into the surface
MIN_TURN_COS = 0.5  # no face may turn by more than 60 degrees
FOLD_HALVINGS = 3


def fits_depth(depth_step: float, voxel_size: float) -> bool:
    """Whether the depth maps are fine enough to snap to (their quantisation well below a voxel)."""
    return depth_step <= MAX_DEPTH_STEP_VOXELS * voxel_size


def fit_to_depth(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    cameras: tuple[Camera, ...],
    depths: torch.Tensor,
    tolerance: float,
    voxel_size: float,
    on_progress: Callable[[float], None] = lambda done: None,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """ROUNDS of snap_to_depth, steps of at most MAX_STEP_VOXELS: vertices, their normals, and the share of
    vertices the views could place. `on_progress(done)` reports 0..1."""
    normals = vertex_normals(vertices, faces)
    placed = 0.0
    for round_ in range(ROUNDS):
        vertices, placed = snap_to_depth(
            vertices, faces, normals, cameras, depths, tolerance, MAX_STEP_VOXELS * voxel_size,
            lambda views_done: on_progress((round_ + views_done / len(cameras)) / ROUNDS),
        )
        normals = vertex_normals(vertices, faces)
    return vertices, normals, placed


def snap_to_depth(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    normals: torch.Tensor,
    cameras: tuple[Camera, ...],
    depths: torch.Tensor,
    tolerance: float,
    max_step: float,
    on_view: Callable[[float], None] = lambda views_done: None,
) -> tuple[torch.Tensor, float]:
    """The moved vertices and the share of vertices that some view could place.

    depths (6, H, W) z-depth, 0 = none; a view places a vertex when its depth there is within `tolerance`.
    """
    shift = torch.zeros_like(vertices)
    weight = torch.zeros(vertices.shape[0], dtype=vertices.dtype, device=vertices.device)
    for index, (camera, depth_map) in enumerate(zip(cameras, depths)):
        has_depth = (depth_map > 0).reshape(-1)
        pixel = 1.0 / max(camera.fx, camera.fy)  # world units per pixel (times depth for PERSPECTIVE)
        forward = torch.as_tensor(camera.forward, dtype=vertices.dtype, device=vertices.device)
        for first in range(0, vertices.shape[0], CHUNK_VERTICES):
            on_view(index + first / vertices.shape[0])
            points = vertices[first : first + CHUNK_VERTICES]
            rays = camera.view_dirs(points)
            facing = -(normals[first : first + CHUNK_VERTICES] * rays).sum(dim=-1)
            front = torch.nonzero(facing > MIN_FACING).squeeze(1)
            rays, facing = rays[front], facing[front]
            uvd = camera.project(points[front])
            near = neighbours_2x2(depth_map[..., None], uvd[:, 0], uvd[:, 1])
            values = near.values[..., 0]
            width = pixel * (1.0 if camera.is_ortho else uvd[:, 2].abs())
            spread = values.amax(dim=-1) - values.amin(dim=-1)
            smooth = has_depth[near.flat].all(dim=-1) & (spread < SMOOTH_SLOPE * width / facing)
            surface = (values * near.weights).sum(dim=-1) / near.weights.sum(dim=-1).clamp_min(1e-12)
            behind = (surface - uvd[:, 2]) / (rays @ forward).clamp_min(1e-6)  # along the ray, > 0: vertex in front
            usable = smooth & (behind.abs() <= tolerance)
            w = torch.where(usable, facing**2, 0.0)
            inward = -(normals[first : first + CHUNK_VERTICES][front]) * (behind * facing)[:, None]
            shift.index_add_(0, front + first, inward * w[:, None])
            weight.index_add_(0, front + first, w)
    placed = weight > 0
    step = shift / weight.clamp_min(1e-12)[:, None]
    length = step.norm(dim=1, keepdim=True)
    step = step * (max_step / length.clamp_min(max_step))  # no longer than max_step
    return vertices + _without_folds(vertices, faces, step), float(placed.float().mean().item())


def _face_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    corners = vertices[faces]
    return torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0], dim=-1)


def _without_folds(vertices: torch.Tensor, faces: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """The steps, halved at the corners of every face they would turn by more than arccos(MIN_TURN_COS)
    (thin triangles fold when their corners move apart), and dropped there if halving does not help."""
    before = _face_normals(vertices, faces)
    for attempt in range(FOLD_HALVINGS + 1):
        after = _face_normals(vertices + step, faces)
        folded = (before * after).sum(dim=1) <= MIN_TURN_COS * before.norm(dim=1) * after.norm(dim=1)
        if not folded.any():
            break
        corners = torch.zeros(vertices.shape[0], dtype=torch.bool, device=vertices.device)
        corners[faces[folded].reshape(-1)] = True
        step = torch.where(corners[:, None], step * (0.5 if attempt < FOLD_HALVINGS else 0.0), step)
    return step
