"""Input sets rendered by the project's own render_inputs, for tests and benchmarks."""

from __future__ import annotations

from pathlib import Path

import trimesh
from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def rendered_inputs(directory: Path, mesh: trimesh.Trimesh, res: int, **kwargs) -> Path:
    from worker.recon.render_inputs import render_inputs

    render_inputs(mesh, directory, res=res, **kwargs)
    return directory


def sphere(directory: Path, res: int, subdivisions: int = 4) -> Path:
    return rendered_inputs(directory, trimesh.creation.icosphere(subdivisions=subdivisions), res)


def enlarged(source: Path, directory: Path, res: int) -> Path:
    """The 12 inputs of a set resized with nearest-neighbour sampling, so depth values stay exact: slow, valid
    jobs. Anything else in the folder (an example's thumbnail) is left behind."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in [*source.glob("view_*.png"), *source.glob("depth_*.png")]:
        with Image.open(path) as image:
            image.resize((res, res), Image.NEAREST).save(directory / path.name)
    return directory
