"""Place a mesh made in some other frame onto the inputs' world frame: a similarity transform fitted to points.

Generative models return meshes in their own normalised frame (centred, unit
size, their own idea of "up" and "front"). The bounding boxes give the scale and
translation; the orientation is found by trying the 24 axis-aligned rotations of
a cube with a short ICP each and keeping the best; a final trimmed, symmetric,
scaled ICP (Umeyama's closed form per step) then fits the surface to the
back-projected depth points, which cover only what the views saw.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.spatial import cKDTree

TRIM_SHARE = 0.9  # fit each ICP step to the closest 90% of the pairs (outliers: parts no view saw)
SEARCH_ITERATIONS = 6
REFINE_ITERATIONS = 40
SEARCH_POINTS = 1000
REFINE_POINTS = 10000
CONVERGED = 1e-5  # stop when the rms improves by less than this share


@dataclass(frozen=True)
class Alignment:
    """A 4x4 similarity `matrix` (scale * rotation, then translation) and the fit it reached."""

    matrix: np.ndarray
    scale: float
    rms: float  # root mean square distance of the kept pairs, in target units
    mean_distance: float  # mean distance of all target points to the moved source points


def cube_rotations() -> list[np.ndarray]:
    """The 24 proper rotations that map the coordinate axes onto (signed) coordinate axes."""
    rotations = []
    for order in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            matrix = np.zeros((3, 3))
            matrix[range(3), order] = signs
            if np.linalg.det(matrix) > 0:
                rotations.append(matrix)
    return rotations


def umeyama(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Scale s, rotation R and translation t minimising sum |s R source + t - target|^2 (Umeyama 1991)."""
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    a, b = source - mu_s, target - mu_t
    covariance = b.T @ a / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2, 2] = -1
    rotation = u @ sign @ vt
    variance = (a**2).sum() / len(source)
    scale = float((singular * np.diag(sign)).sum() / max(variance, 1e-30))
    return scale, rotation, mu_t - scale * rotation @ mu_s


def _matrix(scale: float, rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = scale * rotation
    matrix[:3, 3] = translation
    return matrix


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def icp(source: np.ndarray, target: np.ndarray, initial: np.ndarray, iterations: int,
        target_tree: cKDTree | None = None, on_step: Callable[[], None] = lambda: None) -> tuple[np.ndarray, float]:
    """Trimmed symmetric similarity ICP from `initial`; returns the matrix and the rms of the kept pairs.

    `on_step` is called once per iteration (progress reporting).
    """
    tree = target_tree or cKDTree(target)
    matrix, rms = initial, np.inf
    for _ in range(iterations):
        on_step()
        moved = _apply(matrix, source)
        forward, to_target = tree.query(moved)
        backward, to_source = cKDTree(moved).query(target)
        pairs_source = np.concatenate((source, source[to_source]))
        pairs_target = np.concatenate((target[to_target], target))
        distances = np.concatenate((forward, backward))
        keep = distances <= np.quantile(distances, TRIM_SHARE)
        previous, rms = rms, float(np.sqrt((distances[keep] ** 2).mean()))
        matrix = _matrix(*umeyama(pairs_source[keep], pairs_target[keep]))
        if previous - rms < CONVERGED * max(rms, 1e-12):
            break
    return matrix, rms


def _subsample(points: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    return points if len(points) <= count else points[rng.choice(len(points), count, replace=False)]


def align_points(source: np.ndarray, target: np.ndarray, seed: int = 0,
                 on_step: Callable[[], None] = lambda: None) -> Alignment:
    """The similarity that best lays `source` (points on the mesh) onto `target` (points seen by the views).

    `on_step` is called after every ICP iteration (progress reporting; it may raise to abandon the fit).
    """
    rng = np.random.default_rng(seed)
    source, target = np.asarray(source, dtype=np.float64), np.asarray(target, dtype=np.float64)
    centre_s = (source.min(axis=0) + source.max(axis=0)) / 2
    centre_t = (target.min(axis=0) + target.max(axis=0)) / 2
    size_s = np.linalg.norm(source.max(axis=0) - source.min(axis=0))
    size_t = np.linalg.norm(target.max(axis=0) - target.min(axis=0))
    scale = size_t / max(size_s, 1e-12)

    few_s, few_t = _subsample(source, SEARCH_POINTS, rng), _subsample(target, SEARCH_POINTS, rng)
    few_tree = cKDTree(few_t)
    candidates = []
    for rotation in cube_rotations():
        initial = _matrix(scale, rotation, centre_t - scale * rotation @ centre_s)
        candidates.append(icp(few_s, few_t, initial, SEARCH_ITERATIONS, few_tree, on_step))
    best, _ = min(candidates, key=lambda candidate: candidate[1])

    many_s, many_t = _subsample(source, REFINE_POINTS, rng), _subsample(target, REFINE_POINTS, rng)
    matrix, rms = icp(many_s, many_t, best, REFINE_ITERATIONS, on_step=on_step)
    mean_distance = float(cKDTree(_apply(matrix, many_s)).query(many_t)[0].mean())
    return Alignment(matrix, float(np.cbrt(np.linalg.det(matrix[:3, :3]))), rms, mean_distance)
