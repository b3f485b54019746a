"""bench/gpu_check.py where no GPU is: the backend comparison it runs on CUDA, its time limits, its CPU-only run."""

from __future__ import annotations

import os
import sys

import pytest

from bench import gpu_check, gpu_parity, gpu_run
from worker.recon import ops


@pytest.fixture
def restored_environ():
    """main() sets variables for the processes it starts; give the other tests their environment back."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_the_reference_backend_compared_with_itself_differs_nowhere():
    """The scenes, every op, the gradients and the comparison that the GPU run uses, with nothing to differ."""
    sphere = gpu_parity.parity_scenes("cpu")[0]
    results = [gpu_parity.compare_backends(ops.RenderContext("cpu"), ops.RenderContext("cpu"), sphere, camera)
               for camera in gpu_parity.parity_cameras(48)]
    summary = gpu_parity.worst(results)
    assert set(summary) == set(gpu_parity.PARITY_TOLERANCES)
    for check, found in summary.items():
        assert found["max"] == found["mean"] == 0.0, check
        assert found.get("cosine", 1.0) == pytest.approx(1.0), check
    assert all(row.status == "ok" for row in gpu_parity.parity_rows(summary))


def test_a_differing_backend_fails_its_tolerance():
    summary = {check: {"max": 1.0, "mean": 1.0, "cosine": 0.0} for check in gpu_parity.PARITY_TOLERANCES}
    assert all(row.status == "FAILED" for row in gpu_parity.parity_rows(summary))


def test_a_part_past_its_time_limit_is_killed_and_reported(tmp_path):
    log = tmp_path / "part.log"
    code, seconds = gpu_run.run_logged([sys.executable, "-c", "import time; print('started', flush=True); "
                                          "time.sleep(60)"], log, timeout_s=1)
    assert code is None and seconds < 10
    assert "started" in log.read_text() and "killed after 1 s" in log.read_text()
    assert gpu_run.ended(code, seconds).startswith("timed out")


@pytest.mark.usefixtures("restored_environ")
def test_without_cuda_the_check_skips_the_gpu_parts_and_exits_0(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check.torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--out", str(tmp_path), "--parts", "parity"]) == 0
    table = (tmp_path / "table.md").read_text()
    assert "| parity | nvdiffrast vs reference | skipped | no CUDA |" in table
    assert "| setup | nvdiffrast plugin | skipped | no CUDA |" in table
    assert sorted(path.name for path in tmp_path.iterdir()) == ["results.json", "table.md"]
