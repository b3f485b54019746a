"""CPU and memory: requests that cost the server far more than they cost the stranger who sends them."""

from __future__ import annotations

import time

import pytest

from tests.security.live import FAST_FUSION, Server, example_files, parts, solid_png

TERMINAL = ("completed", "failed", "cancelled")
NVDIFFREC_BOUND_S = 60  # measured: about 13 s on 2 cores with the 3 s budget (decoding, fusion and checks included)
SERVERS = ("default", "small")  # RECON_NVDIFFREC_CPU_BUDGET_S=3 on "default", RECON_JOB_TIME_LIMIT_S=1 on "small"


@pytest.fixture(scope="module")
def apps(servers) -> dict[str, Server]:
    return {name: servers.get(name) for name in SERVERS}


def cancel_if_accepted(server: Server, response) -> None:
    """Do not leave an accepted attack running on the worker for the next test."""
    if response.status_code == 200:
        server.cancel(response.json()["job_id"], response.json()["job_token"])


def test_small_files_that_declare_huge_images_are_refused_from_their_header(apps):
    """Attack: twelve valid PNGs of one colour (tens of KB each, zlib does the rest) that declare 4096x4096:
    decoded, each is 48 MB (views) or 32 MB (16-bit depth). Must hold: POST /jobs answers 400 naming
    views[0] (the default pixel cap is 1024x1024), within 5 s."""
    server = apps["default"]
    view, depth = solid_png(4096, 4096, (200, 80, 40)), solid_png(4096, 4096, (30000,), bit_depth=16)
    started = time.monotonic()
    response = server.submit(parts([view] * 6, [depth] * 6), timeout=60)
    elapsed = time.monotonic() - started
    cancel_if_accepted(server, response)
    assert response.status_code == 400, f"answered {response.status_code} {response.text[:300]} after {elapsed:.1f} s"
    assert response.json().get("field") == "views[0]", response.json()
    assert elapsed < 5, f"the refusal took {elapsed:.1f} s"
    server.assert_responsive()


def test_nvdiffrec_asked_for_5000_iterations_stays_within_the_cpu_budget(apps):
    """Attack: nvdiffrec with {"iterations": 5000} on a CPU-only server (RECON_NVDIFFREC_CPU_BUDGET_S=3): hours
    of the only worker. Must hold: either POST /jobs answers 400 naming options.iterations, or the job completes
    and its report.json shows fewer iterations than asked, with a warning that says so (in the job's or the
    report's warnings)."""
    server = apps["default"]
    assert server.settings["RECON_NVDIFFREC_CPU_BUDGET_S"] == "3"
    # nvdiffrec starts from fusion's result with the same options: a quick one, since the iterations are the attack
    response = server.submit(example_files(), model="nvdiffrec", options={**FAST_FUSION, "iterations": 5000})
    if response.status_code == 400:
        assert response.json().get("field", "").startswith("options.iterations"), response.json()
        server.assert_responsive()
        return
    assert response.status_code == 200, response.text
    job_id = response.json()["job_id"]
    record = server.wait_job(job_id, lambda job: job["status"] in TERMINAL, NVDIFFREC_BOUND_S)
    if record["status"] not in TERMINAL:
        server.cancel(job_id, response.json()["job_token"])
    assert record["status"] == "completed", (
        f"after {NVDIFFREC_BOUND_S} s with a 3 s budget the job is {record['status']}: {record}"
    )
    report = server.http.get(f"/jobs/{job_id}/report").json()
    iterations = report.get("refinement", {}).get("iterations")
    assert iterations is not None and iterations < 5000, f"the report says {iterations} iterations"
    warnings = list(record.get("warnings") or []) + list(report.get("warnings") or [])
    assert any("iteration" in warning for warning in warnings), f"no warning names the iterations: {warnings}"
    server.assert_responsive()


def test_a_job_past_the_time_limit_fails_with_a_sentence_that_says_so(apps, slow_inputs):
    """Attack: a fusion job on 1024x1024 inputs with {"grid_resolution": 512} (15-25 s of CPU) on a server whose
    job time limit is 1 s (RECON_JOB_TIME_LIMIT_S=1). Must hold: the job ends "failed", within 15 s, with an
    "error" sentence that contains "time limit"."""
    server = apps["small"]
    assert server.settings["RECON_JOB_TIME_LIMIT_S"] == "1"
    folder_files = example_files(slow_inputs)
    response = server.submit(folder_files, options={"grid_resolution": 512})
    assert response.status_code == 200, response.text
    job_id = response.json()["job_id"]
    record = server.wait_job(job_id, lambda job: job["status"] in TERMINAL, 15)
    if record["status"] not in TERMINAL:
        server.cancel(job_id, response.json()["job_token"])
    assert record["status"] == "failed", f"a job with a 1 s time limit is {record['status']} after 15 s: {record}"
    assert "time limit" in (record.get("error") or ""), record.get("error")
    server.assert_responsive()
