"""A result in another format is built once, on request, whole or not at all, within the jobs' disk budget."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import trimesh

from worker.errors import JobNotFoundError, ReconError, ServiceBusyError, StorageError
from worker.jobs.files import RESULT_NAMES, JobFiles, download_name
from worker.jobs.limits import DiskBudget, folder_size
from worker.jobs.result_formats import FORMATS, SIZE_FACTOR, ResultFormats
from worker.recon.export import write_glb

JOB_ID = "k3m8xq2p"


def stored_job(jobs_dir, subdivisions: int = 3) -> JobFiles:
    files = JobFiles.of(jobs_dir, JOB_ID)
    files.output.mkdir(parents=True)
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions)
    write_glb(files.result, mesh.vertices, mesh.faces, mesh.vertex_normals, np.full((len(mesh.vertices), 3), 0.5))
    return files


def budget(jobs_dir, builds: float) -> DiskBudget:
    """Room for `builds` reservations on top of what the folder holds now."""
    glb = JobFiles.of(jobs_dir, JOB_ID).result.stat().st_size
    return DiskBudget(jobs_dir, int(folder_size(jobs_dir) + builds * SIZE_FACTOR * glb), 0, "jobs")


def leftovers(files: JobFiles) -> list[str]:
    return [path.name for path in files.output.iterdir() if path.name.endswith(".partial")]


def test_every_format_has_a_stored_name_and_a_download_name():
    assert set(RESULT_NAMES) == set(FORMATS)
    assert [download_name(JOB_ID, fmt) for fmt in FORMATS] == [
        "k3m8xq2p.glb", "k3m8xq2p-obj.zip", "k3m8xq2p.ply", "k3m8xq2p.stl", "k3m8xq2p.usdz"]


def test_glb_is_the_stored_result_and_costs_nothing(tmp_path):
    files = stored_job(tmp_path)
    formats = ResultFormats(budget(tmp_path, 0))
    assert formats.path(files, "glb") == files.result
    assert sorted(path.name for path in files.output.iterdir()) == ["model.glb"]


def test_many_requests_at_once_build_the_file_once(tmp_path):
    """The budget has room for one build: a second build would be refused."""
    files = stored_job(tmp_path)
    formats = ResultFormats(budget(tmp_path, 1.5))
    with ThreadPoolExecutor(6) as pool:
        paths = list(pool.map(lambda _: formats.path(files, "usdz"), range(6)))
    assert set(paths) == {files.result_as("usdz")} and paths[0].stat().st_size > 0
    assert leftovers(files) == []
    assert formats.path(files, "usdz") == paths[0]  # stored: no new build, no new reservation


def test_an_unknown_format_is_refused_naming_the_field(tmp_path):
    files = stored_job(tmp_path)
    with pytest.raises(ReconError) as refused:
        ResultFormats(budget(tmp_path, 1)).path(files, "fbx")
    assert refused.value.field == "format" and refused.value.status_code == 400
    assert "glb, obj, ply, stl, usdz" in refused.value.message


def test_no_room_in_the_budget_writes_nothing(tmp_path):
    files = stored_job(tmp_path)
    with pytest.raises(StorageError):
        ResultFormats(budget(tmp_path, 0.5)).path(files, "stl")
    assert sorted(path.name for path in files.output.iterdir()) == ["model.glb"]


def test_a_result_that_expired_is_not_found(tmp_path):
    files = stored_job(tmp_path)
    formats = ResultFormats(budget(tmp_path, 1))
    files.result.unlink()
    with pytest.raises(JobNotFoundError):
        formats.path(files, "ply")
    assert leftovers(files) == []


def test_builds_beyond_the_limit_are_told_to_retry(tmp_path):
    """Three formats at once, one build at a time: the two that find the slot taken do not wait for it."""
    files = stored_job(tmp_path, subdivisions=5)
    formats = ResultFormats(budget(tmp_path, 3), builds_at_once=1)

    def request(fmt: str) -> str:
        try:
            formats.path(files, fmt)
        except ServiceBusyError as busy:
            assert busy.status_code == 503 and busy.retry_after > 0
            return "busy"
        return "built"

    with ThreadPoolExecutor(3) as pool:
        outcomes = dict(zip(("obj", "ply", "usdz"), pool.map(request, ("obj", "ply", "usdz"))))
    assert sorted(outcomes.values()) == ["built", "busy", "busy"], outcomes
    assert [fmt for fmt, outcome in outcomes.items() if files.result_as(fmt).exists()] == [
        fmt for fmt, outcome in outcomes.items() if outcome == "built"]
    assert leftovers(files) == []
