"""What every model does first, in one wording: refuse inputs that show no object, warn about views left out
and coarse depth, keep only the depth renders that agree; and the mesh that fusion and nvdiffrec both start
from (depth fusion, marching cubes, optional simplification, a fit to the depth maps)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ReconstructionFailed
from .consistency import agreeing_inputs
from .depth_views import fits_depth
from .devices import resolve_device
from .holes import wells
from .inputs import ReconInputs, eight_bit_depth_warning
from .rig import SLOT_NAMES
from .simplify import simplify
from .snap import fit_to_depth, fit_to_silhouettes
from .stages import Stages
from .surface import extract_surface, vertex_normals
from .tsdf import SdfGrid, fuse_depth

EMPTY_SILHOUETTES = ("Every silhouette is empty, so there is no object to reconstruct: give the views an alpha "
                     "channel that covers the object, or depth renders that are non-zero on it.")
SNAP_TOLERANCE_VOXELS = 1.5  # a vertex further than this from every depth map is left where fusion put it
SILHOUETTE_REACH_VOXELS = 1.5  # a vertex further than this outside a silhouette is left where it is


def compile_ahead() -> None:
    """Compile the fused start's Numba code now, or load it from Numba's cache (beside the source, else under the
    user's cache folder), so that a model's first job does not wait for it: 30-40 s on 2 cores once per install,
    then under a second per process. The loops over points (fusion's lookups, the fit to the depth maps, the
    colours, the rasterizer, the bake) have fixed signatures and compile when their modules are imported;
    simplification's collapses and the hole search's spill level compile at a first call, made here on small
    inputs. Models call this when they load; the Docker image does at build."""
    from . import bake  # noqa: F401  (the only such module this one does not import already)

    octahedron = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.float64)
    faces = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
    simplify(octahedron, faces, 4)  # down to a count: swept in turn
    simplify(octahedron, faces, 0, 0.1)  # within a bound: swept in parts at once
    wells(np.ones((8, 8), dtype=np.float32), 1.0)  # depth maps decode to float32


@dataclass
class Prelude:
    given: ReconInputs  # as decoded: what the result is checked against
    inputs: ReconInputs  # the same, without depth renders that contradict the others
    device: torch.device
    warnings: list[str]
    depth_left_out: list[str]


def begin(inputs: ReconInputs, device: str | torch.device | None, stages: Stages) -> Prelude:
    """Runs the `agree` stage; raises ReconstructionFailed when no view shows the object."""
    device = torch.device(device if device is not None else resolve_device())
    if not inputs.masks.any():
        raise ReconstructionFailed(EMPTY_SILHOUETTES)
    warnings = [f"the {slot} view shows no object (empty silhouette); it was left out"
                for slot, mask in zip(SLOT_NAMES, inputs.masks) if not mask.any()]
    if inputs.depth_bits == 8:
        warnings.insert(0, eight_bit_depth_warning(inputs.rig.depth.step(8)))
    stages.start("agree")
    agreed, agreement = agreeing_inputs(inputs, device)
    return Prelude(inputs, agreed, device, warnings + agreement.warnings, agreement.left_out_slots)


@dataclass
class FittedSurface:
    """Marching cubes' fine mesh fitted to the depth maps: what simplification starts from, and what colours
    filled across the surface are computed on (at its density)."""

    vertices: np.ndarray  # (V, 3) float64
    faces: np.ndarray  # (F, 3)
    grid: SdfGrid
    snapped: float | None  # share of vertices fitted to the depth maps; None when depth is too coarse to fit
    tolerance: float  # how far a surface point may lie from a depth map and still count as seen there
    diagonal: float  # of the bounding box, before the fit: the scale of simplification's error bound


@dataclass
class FusedSurface:
    vertices: torch.Tensor  # (V, 3) float32 on the run's device
    faces: torch.Tensor  # (F, 3) int64
    normals: torch.Tensor  # (V, 3)
    grid: SdfGrid
    extracted_triangles: int  # before simplification
    simplify_error: float  # simplify.Simplified.error as a share of the bounding-box diagonal
    snapped: float | None  # as FittedSurface.snapped
    tolerance: float  # as FittedSurface.tolerance


def fitted_surface(start: Prelude, grid_resolution: int, stages: Stages) -> FittedSurface:
    """Runs the `fuse`, `extract` and `snap` stages (the fit runs on marching cubes' fine triangles, before
    simplification moves them off the surface)."""
    inputs, device = start.inputs, start.device
    stages.start("fuse")
    grid = fuse_depth(inputs, grid_resolution, device, stages.within)
    looking = [slot for slot, count in zip(SLOT_NAMES, grid.openings) if count]
    if looking:
        built = ("the object was built as the surface the views show, a thin closed shell" if grid.hollow
                 else "it was closed as a solid object would be")
        views = f"{looking[0]} view looks" if len(looking) == 1 else f"{', '.join(looking)} views look"
        start.warnings.append(f"the {views} through an opening into the object (an open scan?): {built}")
    elif grid.hollow:
        start.warnings.append("views facing each other see the same surfaces from either side (open panels, or a "
                              "sheet of no thickness): the object was built as the surface the views show, a thin "
                              "closed shell")
    stages.start("extract")
    vertices_np, faces_np = extract_surface(grid, stages.within)
    diagonal = float(np.linalg.norm(vertices_np.max(axis=0) - vertices_np.min(axis=0)))
    step = inputs.rig.depth.step(inputs.depth_bits)
    tolerance = max(SNAP_TOLERANCE_VOXELS * grid.voxel_size, step)
    snapped = None
    if fits_depth(step, grid.voxel_size):
        stages.start("snap")
        vertices = torch.as_tensor(vertices_np, dtype=torch.float32, device=device)  # float64: 1.3x the time
        depths = torch.as_tensor(inputs.depths, dtype=vertices.dtype, device=device)
        faces = torch.as_tensor(faces_np, device=device)
        fitted, placed = fit_to_depth(vertices, faces, inputs.rig.cameras, depths, tolerance, grid.voxel_size,
                                      stages.within, grid.hollow)
        shells = grid.hollow or grid.restored > 0  # a solid's unplaced vertices are its rounded edges: left be
        fitted = fit_to_silhouettes(fitted, faces, inputs.rig.cameras, torch.as_tensor(inputs.masks, device=device),
                                    ~placed & shells, SILHOUETTE_REACH_VOXELS * grid.voxel_size)
        snapped = float(placed.float().mean().item())
        vertices_np = fitted.cpu().numpy().astype(np.float64)
    return FittedSurface(vertices_np, faces_np, grid, snapped, tolerance, diagonal)


def simplified_surface(fitted: FittedSurface, device: torch.device, stages: Stages, target_triangles: int = 0,
                       max_error: float = 0.0) -> FusedSurface:
    """Runs the `simplify` stage where there is a `target_triangles` or a `max_error` (a share of the
    bounding-box diagonal)."""
    vertices_np, faces_np, diagonal = fitted.vertices, fitted.faces, fitted.diagonal
    error = 0.0
    if target_triangles or max_error:
        stages.start("simplify")
        vertices_np, faces_np, error = simplify(vertices_np, faces_np, target_triangles, max_error * diagonal,
                                                stages.within)
    vertices = torch.as_tensor(np.asarray(vertices_np), dtype=torch.float32, device=device)
    faces = torch.as_tensor(np.asarray(faces_np), dtype=torch.int64, device=device)
    normals = vertex_normals(vertices, faces)
    return FusedSurface(vertices, faces, normals, fitted.grid, len(fitted.faces), error / diagonal, fitted.snapped,
                        fitted.tolerance)
