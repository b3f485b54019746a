"""Input sets rendered by the project's own render_inputs, for tests and benchmarks."""

from __future__ import annotations

from pathlib import Path

import trimesh


def rendered_inputs(directory: Path, mesh: trimesh.Trimesh, res: int, **kwargs) -> Path:
    from worker.render_inputs import render_inputs

    render_inputs(mesh, directory, res=res, **kwargs)
    return directory


def sphere(directory: Path, res: int, subdivisions: int = 4) -> Path:
    return rendered_inputs(directory, trimesh.creation.icosphere(subdivisions=subdivisions), res)


def box(directory: Path, res: int) -> Path:
    return rendered_inputs(directory, trimesh.creation.box(), res)
