""""Private" events: hidden from the API page, yet callable by anyone who reads GET /config.

api_visibility="private" only hides an event; the queue runs any fn_index it is given. So every page
event is an API: these tests call the gallery, cameras and unload handlers from a second session with
the first session's upload, and flood the input check with the largest images the server accepts.
"""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np
import pytest

from tests.security.gradio_raw import EventResult, GradioRaw, file_data, gallery_item, new_session
from tests.security.live import Server, leaks, png_bytes

EVENT_TIMEOUT_S = 15
UNLOAD_WAIT_S = 3
STORM_CALLS = 40
STORM_BOUND_S = 60
SERVERS = ("default",)


@pytest.fixture(scope="module")
def app(servers) -> Server:
    return servers.get("default")


@pytest.fixture
def server(app) -> Server:
    """The module's server, restarted first if an earlier attack left it wedged."""
    app.revive()
    return app


def unique_png() -> bytes:
    rng = np.random.default_rng(uuid.uuid4().int % 2**32)
    return png_bytes(rng.integers(0, 256, (64, 64, 4), dtype=np.uint8))


def unique_cameras_json() -> bytes:
    return ('{"camera_model": "ORTHO", "note": "%s", "frames": []}' % uuid.uuid4().hex).encode()


def unload_fns(client: GradioRaw) -> list[int]:
    """The page's unload events (end_session), if it has any."""
    return client.fn_indexes(None, "unload")


def holding_call(client: GradioRaw, event: str, png: str, cameras: str) -> tuple[int, list] | None:
    """The page event `event` ("component.trigger" or "component.trigger.then") with the other session's upload
    as that component's value; None when the page no longer has that event."""
    name, trigger, *then = event.split(".")
    component = client.component_id(name)
    fns = client.fn_indexes(component, trigger)
    if then:
        fns = [chained for fn in fns for chained in client.then_of(fn)]
    if not fns:
        return None
    value = file_data(cameras) if name == "cameras" else [gallery_item(png)]
    return fns[0], client.event_data(fns[0], {component: value})


EVENTS = ("views.upload", "views.upload.then", "views.change", "depths.upload", "depths.change", "cameras.upload",
          "cameras.change")


def test_every_event_in_config_is_reachable_by_fn_index_and_answers_cleanly(server, gradio):
    """Attack: call every backend event listed in GET /config by its fn_index, private or not, with empty data
    from a fresh session. Must hold: each one is answered (refused at queue/join with a 4xx, or completed,
    within 15 s), no answer shows a Python repr, a traceback or a server path, and the server keeps answering."""
    client = gradio(server)
    problems = []
    for index, dependency in enumerate(client.dependencies):
        fn_index = dependency.get("id", index)
        if not dependency.get("backend_fn"):
            continue
        data = [None] * len(dependency["inputs"])
        result = client.call(fn_index, data, timeout=EVENT_TIMEOUT_S)
        name = dependency.get("api_name") or fn_index
        if result.join_status >= 500 or result.join_status == 0:
            problems.append(f"{name}: queue/join answered {result.join_status} {result.join_body[:200]!r}")
        elif result.join_status == 200 and result.completed is None:
            problems.append(f"{name}: no process_completed within {EVENT_TIMEOUT_S} s")
        found = leaks(result.all_text(), server.data_dir, server.gradio_dir)
        if found:
            problems.append(f"{name}: the answer shows {found}: {result.error_text[:200]!r}")
    assert not problems, "\n".join(problems)
    server.assert_responsive()


def test_another_sessions_uploads_survive_a_stranger_naming_them(server, gradio):
    """Attack: session A uploads a file (as gradio_client does before /submit) and gets its path; session B calls
    a private page event with A's path (each gallery's upload and change events, the .then check after an
    upload, the cameras upload and change events), then calls the unload event (end_session) by fn_index and
    closes its heartbeat stream, which makes Gradio run the unload events for B.
    Must hold: for every event, A's upload is still there, byte for byte, a few seconds later."""
    client = gradio(server)
    targets = {}
    for event in EVENTS:
        png_data, cameras_data = unique_png(), unique_cameras_json()
        png, cameras = client.upload_paths([("mine.png", png_data), ("cameras.json", cameras_data)])
        targets[event] = (cameras, cameras_data) if event.startswith("cameras") else (png, png_data)

        stranger = new_session()
        call = holding_call(client, event, png, cameras)
        if call is not None:  # a page without that event offers nothing to attack there
            result = client.call(*call, session_hash=stranger, timeout=EVENT_TIMEOUT_S)
            assert result.join_status != 0 and (result.join_status != 200 or result.completed is not None), (
                f"the {event} event did not answer: {result.describe()}"
            )
        for unload in unload_fns(client):
            client.call(unload, [], session_hash=stranger, timeout=EVENT_TIMEOUT_S)
        client.end_session(stranger)

    deleted: set[str] = set()
    deadline = time.monotonic() + UNLOAD_WAIT_S
    while time.monotonic() < deadline:
        deleted |= {event for event, (path, data) in targets.items() if not _unchanged(path, data)}
        time.sleep(0.2)
    assert not deleted, f"session B's event + unload deleted session A's upload for: {sorted(deleted)}"
    server.assert_responsive()


def _unchanged(path: str, data: bytes) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read() == data
    except OSError:
        return False


def test_forty_rapid_checks_with_the_largest_images_are_bounded(server, gradio):
    """Attack: upload twelve 1024x1024 RGBA noise PNGs once (the largest images accepted by default; noise does
    not compress, so every check decodes ~4 MB per file), then fire 40 calls of the views gallery's change
    event (the input check) at once. Must hold: every call finishes or is refused (429 at queue/join, or an
    error message) within 60 s, and GET /models keeps answering within 2 s throughout."""
    client = gradio(server)
    rng = np.random.default_rng(7)
    paths = []
    for index in range(12):
        noise = rng.integers(0, 256, (1024, 1024, 4), dtype=np.uint8)
        response = client.upload([(f"noise_{index}.png", png_bytes(noise, compress_level=0))], timeout=15)
        if response.status_code == 200:
            paths.extend(response.json())
        else:
            assert response.status_code in (413, 429, 507), f"upload answered {response.status_code}"
    assert paths, "the server accepted none of the twelve 1024x1024 uploads"
    paths = (paths * 12)[:12]
    views, depths = client.component_id("views"), client.component_id("depths")
    check = client.fn_indexes(views, "change")[0]
    data = client.event_data(check, {views: [gallery_item(path) for path in paths[:6]],
                                     depths: [gallery_item(path) for path in paths[6:]]})

    latencies: list[float | None] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            latencies.append(server.models_latency())
            stop.wait(0.5)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    session = new_session()
    started = time.monotonic()
    try:
        joined = []
        for _ in range(STORM_CALLS):
            if time.monotonic() - started > STORM_BOUND_S:
                break
            joined.append(client.join(check, data, session, timeout=10))
        assert len(joined) == STORM_CALLS, f"only {len(joined)} calls could join within {STORM_BOUND_S} s"
        refused_at_join = [r for r in joined if 400 <= r.status_code < 500]
        unexpected = [r for r in joined if r.status_code != 200 and not 400 <= r.status_code < 500]
        event_ids = {r.json()["event_id"] for r in joined if r.status_code == 200}
        completed = client.collect(session, event_ids, max(1.0, STORM_BOUND_S - (time.monotonic() - started)))
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        prober.join(5)

    assert not unexpected, f"queue/join answered {[r.status_code for r in unexpected]}"
    assert len(completed) == len(event_ids), (
        f"{len(event_ids) - len(completed)} of {STORM_CALLS} checks neither finished nor were refused within "
        f"{STORM_BOUND_S} s ({len(refused_at_join)} refused at queue/join)"
    )
    slow = [latency for latency in latencies if latency is None or latency >= 2]
    assert not slow, (f"GET /models took 2 s or more {len(slow)} times of {len(latencies)} during the storm "
                      f"({elapsed:.0f} s)")
    for message in completed.values():
        text = EventResult(200, "", [message], message).error_text
        assert not leaks(text, server.data_dir, server.gradio_dir), text
    server.assert_responsive()
