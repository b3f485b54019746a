"""Disk: what a stranger can make the server keep, copy or write.

Three servers: the default one (with its embedded worker), "no-worker" (jobs stay queued; a 3 MB
per-client quota) and "small" (a 2 MB cap on the whole upload folder).
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from tests.security.gradio_raw import new_session
from tests.security.live import FAST_FUSION, Server, example_files, parts, png_bytes, tree_bytes, tree_files

TERMINAL = ("completed", "failed", "cancelled")
ONE_MB = 1_000_000
SERVERS = ("default", "no-worker", "small")


@pytest.fixture(scope="module")
def apps(servers) -> dict[str, Server]:
    return {name: servers.get(name) for name in SERVERS}


def wait_gone(path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not os.path.exists(path):
            return True
        time.sleep(0.1)
    return not os.path.exists(path)


def test_a_job_cancelled_while_queued_leaves_no_inputs(apps):
    """Attack: submit jobs and cancel them while queued, again and again: each would leave 12 stored inputs
    behind until the retention time. Must hold: within a few seconds of the confirmed cancel (two steps, with
    the job_token), <data>/jobs/<id>/inputs is gone. (No worker runs, so the job is still queued.)"""
    server = apps["no-worker"]
    response = server.submit(example_files(), options=FAST_FUSION)
    assert response.status_code == 200, response.text
    job_id, token = response.json()["job_id"], response.json()["job_token"]
    inputs = server.jobs_dir / job_id / "inputs"
    assert inputs.is_dir(), "the submission stored no inputs"

    requested, confirmed = server.cancel(job_id, token)
    assert requested.json()["status"] == "cancel_requested", requested.text
    assert confirmed.json()["status"] == "cancelled", confirmed.text
    assert wait_gone(inputs, 5), f"{inputs} is still there 5 s after the cancel was confirmed"
    server.assert_responsive()


def test_a_failed_job_leaves_no_inputs(apps):
    """Attack: submit inputs that are bound to fail (six transparent views, six all-background depth renders:
    "every silhouette is empty"), again and again. Must hold: the job fails, and within a few seconds its
    <data>/jobs/<id>/inputs is gone."""
    server = apps["default"]
    views = [png_bytes(np.zeros((64, 64, 4), np.uint8))] * 6
    depths = [png_bytes(np.zeros((64, 64), np.uint16))] * 6
    response = server.submit(parts(views, depths), options=FAST_FUSION)
    assert response.status_code == 200, response.text
    job_id = response.json()["job_id"]
    record = server.wait_job(job_id, lambda job: job["status"] in TERMINAL, 60)
    assert record["status"] == "failed", f"the job was meant to fail: {record}"
    inputs = server.jobs_dir / job_id / "inputs"
    assert wait_gone(inputs, 5), f"{inputs} is still there 5 s after the job failed ({record['error']!r})"
    server.assert_responsive()


def test_twenty_result_downloads_keep_at_most_one_copy(apps, gradio):
    """Attack: call the client API's /result for one completed job from 20 fresh session hashes; each call
    used to copy the GLB into a session folder that no session end ever removes. Must hold: Gradio's upload
    folder grows by less than two GLBs in all."""
    server = apps["default"]
    response = server.submit(example_files(), options=FAST_FUSION)
    assert response.status_code == 200, response.text
    job_id = response.json()["job_id"]
    record = server.wait_job(job_id, lambda job: job["status"] in TERMINAL, 90)
    assert record["status"] == "completed", record
    glb_size = len(server.http.get(f"/jobs/{job_id}/result").content)

    client = gradio(server)
    result = client.fn_index("result")
    before = tree_bytes(server.gradio_dir)
    outcomes = [client.call(result, [job_id, "glb"], session_hash=new_session(), timeout=15) for _ in range(20)]
    growth = tree_bytes(server.gradio_dir) - before

    unanswered = [outcome.describe() for outcome in outcomes if not (outcome.succeeded or outcome.refused)]
    assert not unanswered, f"some /result calls got no answer: {unanswered[:2]}"
    assert any(outcome.succeeded for outcome in outcomes), outcomes[0].describe()
    assert growth < 2 * glb_size, (
        f"20 /result calls grew the upload folder by {growth} bytes: {growth / glb_size:.1f} copies of the "
        f"{glb_size}-byte GLB"
    )
    server.assert_responsive()


def upload_until_refused(server: Server, client, attempts: int = 8) -> tuple[list[int], list]:
    """Upload distinct 1 MB files until three are refused (at most `attempts`). Returns every status, and each
    refusal as (response, upload folder bytes before, after)."""
    statuses, refusals = [], []
    for index in range(attempts):
        before = tree_bytes(server.gradio_dir)
        response = client.upload([(f"blob-{index}.bin", os.urandom(ONE_MB))])
        after = tree_bytes(server.gradio_dir)
        statuses.append(response.status_code)
        if response.status_code != 200:
            refusals.append((response, before, after))
            if len(refusals) == 3:
                break
    return statuses, refusals


@pytest.mark.parametrize("name, status, cap_mb", [("no-worker", 429, 3), ("small", 507, 2)],
                         ids=["per-client quota 3 MB -> 429", "upload folder cap 2 MB -> 507"])
def test_uploads_past_the_quota_are_refused_before_anything_is_written(apps, gradio, name, status, cap_mb):
    """Attack: POST /gradio_api/upload 1 MB files, one after another, past the quota (RECON_CLIENT_QUOTA_MB=3:
    the client's own; RECON_UPLOAD_QUOTA_MB=2: the whole upload folder). Must hold: after at most about the
    quota accepted, the next upload is refused (429 per client, 507 for the folder) with JSON
    {"error": <sentence>, "field": ...}, so are the ones after it, and the upload folder does not grow on a
    refused request."""
    server = apps[name]
    client = gradio(server)
    statuses, refusals = upload_until_refused(server, client)
    accepted = next((index for index, code in enumerate(statuses) if code != 200), len(statuses))
    assert refusals, f"all {accepted} uploads of 1 MB were accepted under a {cap_mb} MB quota"
    assert accepted <= cap_mb + 1, f"{accepted} uploads of 1 MB were accepted under a {cap_mb} MB quota"
    assert 200 not in statuses[accepted:], f"uploads were accepted again after a refusal: {statuses}"
    for response, before, after in refusals:
        assert response.status_code == status, f"the refusal is {response.status_code} {response.text[:200]}"
        body = response.json()
        assert isinstance(body.get("error"), str) and body["error"] and "field" in body, body
        assert after == before, f"a refused upload grew the upload folder by {after - before} bytes"
    server.assert_responsive()


def noise_job(seed: int) -> list:
    """A valid job of about 2.4 MB: 256x256 RGBA noise views, 16-bit noise depth renders."""
    rng = np.random.default_rng(seed)
    views = [png_bytes(rng.integers(0, 256, (256, 256, 4), dtype=np.uint8)) for _ in range(6)]
    depths = [png_bytes(rng.integers(1, 65535, (256, 256), dtype=np.uint16)) for _ in range(6)]
    return parts(views, depths)


def test_rest_jobs_past_the_client_quota_are_refused_and_write_nothing(apps):
    """Attack: POST /jobs with ~2.4 MB of inputs, again and again, past the client's 3 MB quota (no worker runs,
    so every job stays stored). Must hold: by the third submission at the latest the answer is 429 with JSON
    {"error": <sentence>, ...}, and the refused request writes nothing under <data>/jobs."""
    server = apps["no-worker"]
    refusal = None
    for attempt in range(4):
        before = tree_files(server.jobs_dir)
        response = server.submit(noise_job(attempt), options=FAST_FUSION)
        after = tree_files(server.jobs_dir)
        if response.status_code != 200:
            refusal = (attempt, response, before, after)
            break
    assert refusal is not None, "four submissions of ~2.4 MB each were all accepted under a 3 MB client quota"
    attempt, response, before, after = refusal
    assert attempt <= 2, f"{attempt} submissions of ~2.4 MB were accepted under a 3 MB client quota"
    assert response.status_code == 429, f"the refusal is {response.status_code} {response.text[:200]}"
    assert isinstance(response.json().get("error"), str) and response.json()["error"], response.text
    assert after == before, f"the refused request wrote under jobs/: {sorted(set(after) - set(before))}"
    server.assert_responsive()


def test_an_upload_of_many_tiny_files_is_refused_and_each_upload_costs_at_least_a_megabyte(apps, gradio):
    """Attack: POST /gradio_api/upload with 1000 files of 8 bytes: the quota counted 8 KB while the disk took
    two inodes and 8 KB of blocks per file. Must hold: at most 16 files per upload (413, nothing of it kept
    beyond what came before the 17th file), and every upload counts at least 1 MB against the client's quota
    (the "no-worker" server allows 3 MB: a fourth small upload is a 429)."""
    server = apps["no-worker"]
    client = gradio(server)
    many = client.upload([(f"f{index}.png", b"12345678") for index in range(1000)])
    assert many.status_code in (413, 429), f"1000 tiny files answered {many.status_code} {many.text[:200]}"
    statuses = [client.upload([("tiny.png", b"%d" % index)]).status_code for index in range(5)]
    assert statuses.count(200) <= 3 and statuses[-1] == 429, statuses
    assert tree_files(server.gradio_dir) and len(tree_files(server.gradio_dir)) < 100
    server.assert_responsive()
