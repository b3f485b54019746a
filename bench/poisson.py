"""The classical baseline of the quality benchmark: back-projected depth points -> Open3D screened Poisson.

All depth pixels of the six views become points with the views' colours; normals
come from their neighbours, turned toward the camera that saw them; screened
Poisson at depth 9 meshes them, the 2% of vertices with the lowest density (where
Poisson extrapolated) are trimmed, and each vertex takes the colour of the nearest
input point. Open3D is a bench-only dependency (bench/requirements.txt).
"""

from __future__ import annotations

import time

import numpy as np
import open3d as o3d
import torch
from scipy.spatial import cKDTree

from worker.recon.colour import linear_to_srgb
from worker.recon.inputs import ReconInputs

POISSON_DEPTH = 9
TRIM_QUANTILE = 0.02
NORMAL_NEIGHBOURS = 30


def back_project(inputs: ReconInputs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every depth pixel as a world point (N, 3), its sRGB colour (N, 3) and its camera's viewing direction."""
    points, colours, directions = [], [], []
    for camera, depth, colour in zip(inputs.rig.cameras, inputs.depths, inputs.colors):
        depth_t = torch.as_tensor(depth, dtype=torch.float64)
        valid = depth > 0
        world = camera.unproject_depth_map(depth_t)[torch.as_tensor(valid)]
        points.append(world.numpy())
        colours.append(linear_to_srgb(colour[valid]))
        directions.append(camera.view_dirs(world).numpy())
    return np.concatenate(points), np.concatenate(colours), np.concatenate(directions)


def poisson_baseline(inputs: ReconInputs) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, float]]:
    """(vertices, faces, sRGB vertex colours, seconds per stage) of the screened-Poisson reconstruction."""
    timings: dict[str, float] = {}
    start = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal start
        now = time.perf_counter()
        timings[name] = round(now - start, 3)
        start = now

    points, colours, directions = back_project(inputs)
    lap("backproject")
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    cloud.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(NORMAL_NEIGHBOURS))
    normals = np.asarray(cloud.normals)
    normals[(normals * directions).sum(axis=1) > 0] *= -1  # face the camera that saw the point
    cloud.normals = o3d.utility.Vector3dVector(normals)
    lap("normals")
    mesh, densities = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(cloud, depth=POISSON_DEPTH)
    lap("poisson")
    densities = np.asarray(densities)
    mesh.remove_vertices_by_mask(densities < np.quantile(densities, TRIM_QUANTILE))
    mesh.remove_unreferenced_vertices()
    vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.triangles)
    lap("trim")
    _, nearest = cKDTree(points).query(vertices)
    srgb = colours[nearest]
    lap("colour")
    timings["total"] = round(sum(timings.values()), 3)
    return vertices, faces, srgb, timings
