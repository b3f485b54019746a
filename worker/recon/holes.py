"""Openings in a surface that a view looks through: the sign that the input is a scanned surface, not a solid.

An open scan (a blob without its base) shows, through its opening, the inside of
its far wall. Taken as a solid, that depth says the whole volume between the opening
and the far wall is empty, and fusion carves a tunnel through the object, its walls
deep inside it. Such a region gives itself away twice: it is a well in its depth map
(every way out of it crosses nearer depth, the opening's rim), and the surface it
shows is seen from the other side too, by a view facing the opposite way, at the same
place (a wall of no thickness). A bowl or a bore shows a well as well, but the floor
it shows has a real thickness behind it, so it is carved as before.

When a view looks through openings that cover HOLLOW_OPENING_SHARE of its depth
pixels or more (an open base), tsdf.py builds the object as the surface the views
show, a thin closed shell, open where the scan is open. Closing such an opening as a
solid would be closed cost up to 8 times the Chamfer distance of the shell on the
corpus's open scans (the cap lies far from every scanned surface) and up to 5 dB of
novel-view PSNR (views through the opening see the cap, not the inside). Smaller
openings (a hole in a side, a teapot's spout: 1-11% of their view on the corpus;
open bases 40-73%) cost a cap little, and a whole object as a shell whose inner side
no view fits costs more (the teapot: Chamfer 0.20% against the cap's 0.12%); so do
shells from depth too coarse to fit their two sides to (depth_views.fits_depth). There
an opening gets the depth of a cap spanning its rim (linear across the rim's points),
and fusion takes what lies behind a cap as inside: it is closed as a solid would be.

The same test, that a view facing the other way sees a depth point at the same place
from behind, finds sheets of no thickness for tsdf.py (two_sided). Open panels whose
rim a view sees only edge-on (a car body without a floor, seen from below) show no
well, but when such sheets cover HOLLOW_PANEL_SHARE of a view's depth the object is
built as the surface the views show as well. Closed as a solid, what the panels hide
from every view (above a wheel inside the body) became a block whose walls stand far
from any surface the object has: on the corpus's tuning cars the surface the views
show has 18-24% less Chamfer distance. The sheets gain 1.5-2.5 dB that way;
plates thinner than a voxel lose up to 1.3 dB, their rims a fraction of a voxel wide.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.interpolate import griddata
from scipy.ndimage import binary_dilation, binary_erosion, find_objects, label
from numba import njit

from .inputs import ReconInputs
from .rig import Camera
from .stages import Done

OPPOSITE_COS = -0.5  # a view whose direction is at least 120 degrees from another's sees its surfaces from behind
TWO_SIDED_SHARE = 0.5  # a well is an opening when at least this share of what it shows is seen from behind too
MIN_WELL_PIXELS = 16
WELL_GRID_PIXELS = 512  # larger depth maps look for wells on a coarser grid (the spill level takes 0.4 s at 1024)
EDGE_PIXELS = 2
HOLLOW_OPENING_SHARE = 0.2  # openings covering this share of a view's depth make the object a scanned surface
HOLLOW_PANEL_SHARE = 0.2  # and so do panels of no thickness (two_sided) covering this share of a view's depth
CAP_INSET = 1 / 3  # of the tolerance (about a voxel): where the side views' silhouettes end (at the rim), the
# surface they bound zigzags between voxel layers; a cap a little inside the rim is shaped by its own view alone


def wells(depth: np.ndarray, tolerance: float) -> np.ndarray:
    """(H, W) bool: depth more than `tolerance` farther than the rim it is seen through; no depth counts as
    infinitely far, so a region that reaches the background or the image's edge is no well. The spill level
    is found on a grid of at most WELL_GRID_PIXELS a side, each cell the nearest depth of its pixels (a rim
    stays whole), and taken back to every pixel of the cell; only over the depth's bounding box and a ring of
    cells around it, all background, through which no way out is lower than it is outside (a third of the
    time on the corpus' 512-pixel views)."""
    factor = -(-max(depth.shape) // WELL_GRID_PIXELS)
    found = np.zeros(depth.shape, dtype=bool)
    rows, cols = np.flatnonzero((depth > 0).any(axis=1)), np.flatnonzero((depth > 0).any(axis=0))
    if len(rows) == 0:
        return found
    box = [slice(max(int(first) // factor - 1, 0) * factor, min((int(last) // factor + 2) * factor, size))
           for first, last, size in ((rows[0], rows[-1], depth.shape[0]), (cols[0], cols[-1], depth.shape[1]))]
    found[tuple(box)] = _wells_on_grid(depth[tuple(box)], tolerance, factor)
    return found


def _wells_on_grid(depth: np.ndarray, tolerance: float, factor: int) -> np.ndarray:
    """wells, on a grid of cells `factor` pixels a side."""
    ceiling = float(depth.max()) * 2 + 1
    far = np.where(depth > 0, depth, ceiling)
    height, width = -(-depth.shape[0] // factor) * factor, -(-depth.shape[1] // factor) * factor
    padded = np.pad(far, ((0, height - depth.shape[0]), (0, width - depth.shape[1])), constant_values=ceiling)
    coarse = padded.reshape(height // factor, factor, width // factor, factor).min(axis=(1, 3))
    spill = _spill_levels(coarse)
    spill = np.repeat(np.repeat(spill, factor, axis=0), factor, axis=1)[: depth.shape[0], : depth.shape[1]]
    return (depth > 0) & (far > spill + tolerance)


@njit(cache=True)
def _spill_levels(levels: np.ndarray) -> np.ndarray:
    """(H, W): for each cell the highest level at which it joins the grid's border, a path's level being its lowest
    cell (8-connected): what water poured in from outside stands at. The morphological reconstruction by dilation
    of the border under `levels`, as a priority flood from the border, highest first (scikit-image's took 4.7x as
    long: 0.22 s on a 512-cell grid)."""
    height, width = levels.shape
    flat = levels.ravel()
    spill = np.empty(flat.size, dtype=levels.dtype)
    reached = np.zeros(flat.size, dtype=np.bool_)
    keys = np.empty(flat.size)  # a heap of the reached cells by level, negated: highest first (on arrays: Numba's
    cells = np.empty(flat.size, dtype=np.int64)  # heapq on a list of tuples took 3x as long, same result)
    size = 0
    for cell in range(flat.size):
        row, col = cell // width, cell % width
        if row == 0 or col == 0 or row == height - 1 or col == width - 1:
            reached[cell], spill[cell] = True, flat[cell]
            size = _pushed(keys, cells, size, -flat[cell], cell)
    while size:
        level, cell = -keys[0], cells[0]
        size = _popped(keys, cells, size)
        row, col = cell // width, cell % width
        for near_row in range(max(row - 1, 0), min(row + 2, height)):
            for near_col in range(max(col - 1, 0), min(col + 2, width)):
                near = near_row * width + near_col
                if not reached[near]:
                    reached[near], spill[near] = True, min(level, flat[near])
                    size = _pushed(keys, cells, size, -spill[near], near)
    return spill.reshape(height, width)


@njit(cache=True)
def _pushed(keys: np.ndarray, cells: np.ndarray, size: int, key: float, cell: int) -> int:
    """Adds (key, cell) to the binary min-heap of `size` entries; returns its new size."""
    at = size
    while at > 0 and keys[(at - 1) >> 1] > key:
        keys[at], cells[at] = keys[(at - 1) >> 1], cells[(at - 1) >> 1]
        at = (at - 1) >> 1
    keys[at], cells[at] = key, cell
    return size + 1


@njit(cache=True)
def _popped(keys: np.ndarray, cells: np.ndarray, size: int) -> int:
    """Removes the least entry of the binary min-heap of `size` entries; returns its new size."""
    last = size - 1
    key, cell = keys[last], cells[last]
    at = 0
    while 2 * at + 1 < last:
        child = 2 * at + 1
        if child + 1 < last and keys[child + 1] < keys[child]:
            child += 1
        if key <= keys[child]:
            break
        keys[at], cells[at] = keys[child], cells[child]
        at = child
    keys[at], cells[at] = key, cell
    return last


def _others(cameras: list[Camera], depths: list[np.ndarray], index: int) -> list[tuple[Camera, np.ndarray]]:
    """Every view but `index`, with its depth map."""
    return [(camera, depth) for j, (camera, depth) in enumerate(zip(cameras, depths)) if j != index]


def seen_from_behind(camera: Camera, depth: np.ndarray, region: np.ndarray, others: list[tuple[Camera, np.ndarray]],
                     tolerance: float) -> np.ndarray:
    """(N,) bool for the N pixels of `region`: a view facing the other way sees their point within `tolerance`
    of its own depth there, so the surface they show has no thickness behind it."""
    rows, cols = np.nonzero(region)
    u = torch.as_tensor(cols + 0.5, dtype=torch.float64)
    v = torch.as_tensor(rows + 0.5, dtype=torch.float64)
    points = camera.unproject(u, v, torch.as_tensor(depth[rows, cols], dtype=torch.float64))
    behind = np.zeros(len(rows), dtype=bool)
    for other, other_depth in others:
        if float(np.dot(camera.forward, other.forward)) > OPPOSITE_COS:
            continue
        projected = other.project(points).numpy()
        column = np.floor(projected[:, 0]).astype(np.int64)
        row = np.floor(projected[:, 1]).astype(np.int64)
        inside = (column >= 0) & (column < other_depth.shape[1]) & (row >= 0) & (row < other_depth.shape[0])
        there = np.zeros(len(rows))
        there[inside] = other_depth[row[inside], column[inside]]
        behind |= (there > 0) & (np.abs(projected[:, 2] - there) <= tolerance)
    return behind


def two_sided(cameras: list[Camera], depths: list[np.ndarray], tolerance: float) -> list[np.ndarray]:
    """Per view, (N,) bool for its N pixels with depth, in row-major order: seen_from_behind, and more than
    EDGE_PIXELS inside the depth's outline (a sheet seen edge-on is a line of pixels half a pixel off it)."""
    sides = []
    for index, depth in enumerate(depths):
        inner = binary_erosion(depth > 0, np.ones((3, 3), bool), iterations=EDGE_PIXELS)
        result = np.zeros(depth.shape, bool)
        result[inner] = seen_from_behind(cameras[index], depth, inner, _others(cameras, depths, index), tolerance)
        sides.append(result[depth > 0])
    return sides


def _cap(depth: np.ndarray, well: np.ndarray) -> np.ndarray:
    """Depth across the well, linear between the points of its rim (never farther than the depth itself)."""
    rim = binary_dilation(well, np.ones((3, 3), bool)) & ~well & (depth > 0)
    rim_rows, rim_cols = np.nonzero(rim)
    rows, cols = np.nonzero(well)
    if len(rim_rows) < 3:
        return depth[rows, cols]
    cap = griddata((rim_rows, rim_cols), depth[rim_rows, rim_cols], (rows, cols), method="linear")
    nearest = griddata((rim_rows, rim_cols), depth[rim_rows, rim_cols], (rows, cols), method="nearest")
    return np.minimum(np.where(np.isnan(cap), nearest, cap), depth[rows, cols])


@dataclass
class Openings:
    """Per view: its wells labelled 1, 2, ... (0 elsewhere), which of the labels are openings (wells that a view
    facing the other way sees from behind), and what share of its depth pixels they cover."""

    labels: list[np.ndarray]
    numbers: list[list[int]]
    shares: list[float]

    @property
    def counts(self) -> tuple[int, ...]:
        return tuple(len(numbers) for numbers in self.numbers)


def find_openings(inputs: ReconInputs, tolerance: float, on_view: Done = lambda done: None) -> Openings:
    """The wells of every view whose floor a view facing the other way sees from behind (within `tolerance`,
    world units); `on_view(done)` after each view (0..1)."""
    cameras, depths = inputs.rig.cameras, inputs.depths
    result = Openings([], [], [])
    for index, (camera, depth) in enumerate(zip(cameras, depths)):
        labels, count = label(wells(depth, tolerance), np.ones((3, 3), bool))
        sizes = np.bincount(labels.ravel(), minlength=count + 1)
        behind = seen_from_behind(camera, depth, labels > 0, _others(cameras, depths, index), tolerance)
        shares = np.bincount(labels[labels > 0], weights=behind, minlength=count + 1) / np.maximum(sizes, 1)
        opening = [number for number in range(1, count + 1)
                   if sizes[number] >= MIN_WELL_PIXELS and shares[number] >= TWO_SIDED_SHARE]
        result.labels.append(labels)
        result.numbers.append(opening)
        result.shares.append(float(sizes[opening].sum()) / max(int((depth > 0).sum()), 1))
        on_view((index + 1) / len(depths))
    return result


def capped(depths: list[np.ndarray], openings: Openings, tolerance: float) -> list[np.ndarray]:
    """The depth maps with every opening closed by a cap across its rim, CAP_INSET * `tolerance` inside it."""
    result = []
    for depth, labels, numbers in zip(depths, openings.labels, openings.numbers):
        closed = depth.copy()
        boxes = find_objects(labels, max_label=max(numbers, default=0))
        for number in numbers:
            box = tuple(slice(max(part.start - 1, 0), part.stop + 1) for part in boxes[number - 1])  # and its rim
            well = labels[box] == number
            closed[box][well] = np.minimum(_cap(depth[box], well) + CAP_INSET * tolerance, depth[box][well])
        result.append(closed)
    return result
