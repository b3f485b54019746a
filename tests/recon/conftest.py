"""Input sets rendered once per session with render_inputs, and a cached one-call reconstruction."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import trimesh

from worker.recon.fusion import reconstruct_fusion
from worker.recon.render_inputs import render_inputs
from worker.recon.rig import parse_cameras_json

from . import scenes

RES = 256


@pytest.fixture
def one_thread():
    """Small tensors: one thread beats two fighting other processes on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _render(tmp_path_factory, name: str, mesh: trimesh.Trimesh, **kwargs) -> Path:
    directory = tmp_path_factory.mktemp(name)
    render_inputs(mesh, directory, normalize=False, **kwargs)
    return directory


@pytest.fixture(scope="session")
def sphere_dir(tmp_path_factory) -> Path:
    return _render(tmp_path_factory, "sphere", scenes.sphere(), res=RES)


@pytest.fixture(scope="session")
def box_dir(tmp_path_factory) -> Path:
    return _render(tmp_path_factory, "box", scenes.box(), res=RES)


@pytest.fixture(scope="session")
def sphere_8bit_dir(tmp_path_factory) -> Path:
    return _render(tmp_path_factory, "sphere8", scenes.sphere(), res=RES, depth_bits=8)


@pytest.fixture(scope="session")
def sphere_perspective_dir(tmp_path_factory) -> Path:
    rig = parse_cameras_json(scenes.perspective_cameras_json(RES), RES, RES)
    return _render(tmp_path_factory, "sphere_perspective", scenes.sphere(), rig=rig)


@pytest.fixture(scope="session")
def colour_cube_dir(tmp_path_factory) -> Path:
    return _render(tmp_path_factory, "colour_cube", scenes.colour_cube(), res=RES)


@dataclass
class Result:
    report: dict
    out_dir: Path
    progress: list[tuple[float, str, float]]  # (fraction, stage, monotonic time) per call
    mesh: trimesh.Trimesh  # model.glb, reloaded, texture seams welded (vertices split only for their UVs merged)


@pytest.fixture(scope="session")
def reconstruct(tmp_path_factory):
    """reconstruct(input_dir, grid_resolution=128, **options) -> Result; each combination runs once per session."""
    cache: dict = {}

    def run(directory: Path, grid_resolution: int = 128, **options) -> Result:
        key = (directory, grid_resolution, tuple(sorted(options.items())))
        if key not in cache:
            calls: list[tuple[float, str, float]] = []
            out_dir = tmp_path_factory.mktemp("out")
            report = reconstruct_fusion(
                scenes.load(directory), out_dir / "model.glb", lambda f, s: calls.append((f, s, time.monotonic())),
                grid_resolution=grid_resolution, **options,
            )
            mesh = trimesh.load(out_dir / "model.glb", force="mesh", process=False)
            mesh.merge_vertices(merge_tex=True, merge_norm=True)
            cache[key] = Result(report, out_dir, calls, mesh)
        return cache[key]

    return run


@pytest.fixture(scope="session")
def bored_block_dir(tmp_path_factory) -> Path:
    return _render(tmp_path_factory, "bored_block", scenes.bored_block(), res=RES)
