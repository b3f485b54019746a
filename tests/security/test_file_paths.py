"""Client-sent file paths: a stranger puts a server path where the page expects one of its own uploads.

Gradio trusts the `path` of a FileData in an event's data (a mounted app skips its own check), so each
attack below sends a path through the raw queue protocol, as a gallery item of the views gallery's
upload and change events and of the client API's /submit, and checks that the server refuses it
without reading, copying, serving or describing the file, and keeps answering.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.security.gradio_raw import EventResult, GradioRaw, gallery_item, new_session
from tests.security.live import EXAMPLE, FAST_FUSION, REPO, SLOTS, Server, files_with_bytes, leaks, parts, png_bytes

EVENT_TIMEOUT_S = 20
EVENTS = ("upload", "change", "submit")
TARGETS = ("dev_zero", "etc_passwd", "etc_shadow", "queue_secret", "other_job_input", "missing", "http_url",
           "symlink")
MISSING = f"/etc/no-such-file-{uuid.uuid4().hex[:8]}"
SERVERS = ("default",)


@pytest.fixture(scope="module")
def app(servers) -> Server:
    return servers.get("default")


@dataclass(frozen=True)
class Victim:
    path: Path  # <data>/jobs/<id>/inputs/view_0.png
    data: bytes


@pytest.fixture(scope="module")
def victim(app) -> Victim:
    """Another user's job, submitted over REST: its stored input view_0.png is the target. Its view 0 is the spot
    example's, re-encoded, so that no other copy of these bytes exists on the server (the page's Examples put
    the originals in the upload folder)."""
    views, depths = example_paths()
    first = png_bytes(np.asarray(Image.open(views[0])), compress_level=9)
    response = app.submit(parts([first] + [path.read_bytes() for path in views[1:]],
                                [path.read_bytes() for path in depths]), options=FAST_FUSION)
    assert response.status_code == 200, response.text
    return Victim(app.jobs_dir / response.json()["job_id"] / "inputs" / "view_0.png", first)


@pytest.fixture
def server(app) -> Server:
    """The module's server, restarted first if an earlier attack left it wedged (e.g. reading /dev/zero)."""
    app.revive()
    return app


@pytest.fixture
def symlink(server) -> Path:
    """A link inside Gradio's upload folder, with an image's name, pointing to /etc/passwd."""
    folder = server.gradio_dir / "planted"
    folder.mkdir(exist_ok=True)
    link = folder / "passwd.png"
    if not link.is_symlink():
        link.symlink_to("/etc/passwd")
    return link


@pytest.fixture
def attacker_files(server) -> tuple[list[str], list[str]]:
    """The attacker's own, valid uploads: views 1-5 and the six depth renders (view 0 is the path under test)."""
    views, depths = example_paths()
    client = GradioRaw(server.url)
    try:
        return (client.upload_paths([(path.name, path.read_bytes()) for path in views[1:]]),
                client.upload_paths([(path.name, path.read_bytes()) for path in depths]))
    finally:
        client.close()


def example_paths(folder: Path = EXAMPLE) -> tuple[list[Path], list[Path]]:
    return ([folder / f"view_{i}_{slot}.png" for i, slot in enumerate(SLOTS)],
            [folder / f"depth_{i}_{slot}.png" for i, slot in enumerate(SLOTS)])


def target_path(name: str, server: Server, victim: Victim, symlink: Path) -> str:
    return {
        "dev_zero": "/dev/zero",
        "etc_passwd": "/etc/passwd",
        "etc_shadow": "/etc/shadow",
        "queue_secret": str(server.data_dir / "queue.secret"),
        "other_job_input": str(victim.path),
        "missing": str(server.jobs_dir / "aaaaaaaa" / "inputs" / "view_0.png"),
        "http_url": f"{server.url}/models",
        "symlink": str(symlink),
    }[name]


def event_call(client: GradioRaw, event: str, path: str, attacker_files) -> tuple[int, list]:
    """(fn_index, data) of `event` with `path` as the first item of the views gallery."""
    views = client.component_id("views")
    if event in ("upload", "change"):
        fn_index = client.fn_indexes(views, event)[0]
        return fn_index, client.event_data(fn_index, {views: [gallery_item(path)]})
    own_views, own_depths = attacker_files
    submit = client.fn_index("submit")
    return submit, client.with_state_slots(submit, [
        [gallery_item(path)] + [gallery_item(p) for p in own_views], [gallery_item(p) for p in own_depths],
        "fusion", FAST_FUSION, None,
    ])


def secrets_of(server: Server, victim: Victim) -> list[bytes]:
    """The bytes that must never turn up in the upload folder."""
    wanted = [Path("/etc/passwd").read_bytes(), server.queue_secret(), victim.data]
    try:
        wanted.append(Path("/etc/shadow").read_bytes())
    except OSError:
        pass
    return wanted


def served_urls(value) -> list[str]:
    """Every /gradio_api/file= URL in an event's output."""
    found = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and "/gradio_api/file=" in item:
            found.append(item)
    return found


def send(server: Server, client: GradioRaw, fn_index: int, data: list) -> tuple[EventResult | None, float | None]:
    """Join the queue, time GET /models while the event is outstanding, then wait (bounded) for its outcome."""
    session = new_session()
    try:
        joined = client.join(fn_index, data, session, timeout=10)
    except httpx.TimeoutException:
        return None, server.models_latency()
    latency = server.models_latency()
    result = EventResult(joined.status_code, joined.text)
    if joined.status_code == 200:
        result.messages, result.completed = client.listen(session, joined.json().get("event_id"), EVENT_TIMEOUT_S)
    return result, latency


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("event", EVENTS)
def test_a_server_path_in_event_data_is_refused_without_touching_the_file(
    event, target, server, gradio, victim, symlink, attacker_files
):
    """Attack: a gallery item whose path is a device, a system file, the queue secret, another job's stored
    input, a path that does not exist, a URL back into the server, or a link planted in the upload folder,
    sent to the views gallery's upload event, its change event, or /submit.
    Must hold: refused (HTTP 4xx at queue/join, or process_completed with success=false), with a sentence that
    shows no server path and no Python repr; no copy of a secret appears in the upload folder; no
    /gradio_api/file= URL is handed out for it; GET /models answers within 2 s while the event is outstanding."""
    client = gradio(server)
    path = target_path(target, server, victim, symlink)
    wanted = secrets_of(server, victim)
    for leftover in files_with_bytes(server.gradio_dir, wanted, skip=[symlink]):
        leftover.unlink()  # copies left by an earlier attack: start from a clean upload folder

    fn_index, data = event_call(client, event, path, attacker_files)
    result, latency = send(server, client, fn_index, data)

    assert latency is not None and latency < 2, f"GET /models did not answer within 2 s while the {event} event " \
                                                f"read {path}"
    assert result is not None, f"queue/join itself did not answer within 10 s for {path}"
    assert result.refused, f"{path} was not refused: {result.describe()}"
    assert not leaks(result.error_text, path, server.data_dir, server.gradio_dir, REPO), (
        f"the refusal shows {leaks(result.error_text, path, server.data_dir, server.gradio_dir, REPO)}: "
        f"{result.error_text[:300]!r}"
    )
    copies = files_with_bytes(server.gradio_dir, wanted, skip=[symlink])
    assert not copies, f"the server copied a secret into its upload folder: {copies}"
    for url in served_urls(result.output_data):
        body = httpx.get(url, timeout=5).content
        assert body not in wanted, f"the server serves the content of {path} at {url}"
    server.assert_responsive()


@pytest.mark.parametrize("pair", ("system_file", "job_input"))
@pytest.mark.parametrize("event", EVENTS)
def test_the_refusal_reads_the_same_whether_or_not_the_path_exists(event, pair, server, gradio, victim,
                                                                   attacker_files):
    """Attack: probe the server's filesystem by comparing the answers for a path that exists and one that does
    not: /etc/passwd against /etc/no-such-file-..., and another job's stored view_0.png against a view_9.png
    beside it. Must hold: both refused with the very same text, which names neither path."""
    client = gradio(server)
    existing, missing = {
        "system_file": ("/etc/passwd", MISSING),
        "job_input": (str(victim.path), str(victim.path.with_name("view_9.png"))),
    }[pair]
    answers = {}
    for path in (existing, missing):
        fn_index, data = event_call(client, event, path, attacker_files)
        result = client.call(fn_index, data, timeout=EVENT_TIMEOUT_S)
        assert result.refused, f"{path} was not refused by the {event} event: {result.describe()}"
        answers[path] = result.error_text
    assert answers[existing] == answers[missing], f"the answers tell the paths apart: {answers}"
    assert not leaks(answers[missing], missing, existing, server.data_dir, server.gradio_dir), answers
    server.assert_responsive()
