"""Edge answers: hostile bodies, odd routes and broken start-up files get a short, clean answer.

The "small" server (conftest.PROFILES) carries RECON_MAX_FILE_MB=1 (so the request cap is 13 x 1 + 1 =
14 MB) and RECON_BODY_TIMEOUT_S=2; its other limits (a 2 MB upload folder, a 1 s job time limit) do not
matter here, and none of these settings matters to the tests that do not name it. Two more processes
start on data folders whose queue.secret is empty or world-writable.
"""

from __future__ import annotations

import json
import secrets
import select
import socket
import time

import pytest

from tests.security.gradio_raw import gallery_item
from tests.security.live import FAST_FUSION, REPO, Server, example_files, leaks

MAX_FILE_MB = 1
REQUEST_CAP = 13 * MAX_FILE_MB * 1024 * 1024 + 1024 * 1024
BODY_TIMEOUT_S = 2
DEEP = 100_000
SERVERS = ("small", "empty-secret", "writable-secret")


@pytest.fixture(scope="module")
def apps(servers) -> dict[str, Server]:
    return {name: servers.get(name) for name in SERVERS}


@pytest.fixture
def server(apps) -> Server:
    """The "small" server: RECON_MAX_FILE_MB=1, RECON_BODY_TIMEOUT_S=2."""
    server = apps["small"]
    assert server.settings["RECON_MAX_FILE_MB"] == str(MAX_FILE_MB)
    assert server.settings["RECON_BODY_TIMEOUT_S"] == str(BODY_TIMEOUT_S)
    return server


def assert_error(response, status: int, field: str | None = None, field_prefix: str | None = None) -> dict:
    assert response.status_code == status, f"answered {response.status_code} {response.text[:300]}"
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body.get("error"), str) and body["error"], body
    if field is not None:
        assert body.get("field") == field, body
    if field_prefix is not None:
        assert str(body.get("field")).startswith(field_prefix), body
    return body


def test_a_cameras_json_nested_100000_deep_is_a_400(server):
    """Attack: POST /jobs with a cameras.json of 100,000 nested lists ("[" * 100000 + "]" * 100000), which blows
    Python's recursion limit in json.loads. Must hold: 400 JSON {"error": ..., "field": "cameras"}."""
    nested = ("[" * DEEP + "]" * DEEP).encode()
    files = example_files() + [("cameras", ("cameras.json", nested, "application/json"))]
    assert_error(server.submit(files, options=FAST_FUSION), 400, field="cameras")
    server.assert_responsive()


def test_options_nested_100000_deep_are_a_400(server):
    """Attack: POST /jobs whose options form field nests 100,000 lists. Must hold: 400 JSON, field "options"."""
    response = server.http.post("/jobs", params={"model_type": "fusion"}, files=example_files(),
                                data={"options": "[" * DEEP + "]" * DEEP})
    assert_error(response, 400, field="options")
    server.assert_responsive()


def test_an_infinite_option_is_a_400(server):
    """Attack: options '{"grid_resolution": 1e999}' (json.loads reads it as infinity). Must hold: 400 JSON whose
    field names the option ("options..." )."""
    response = server.http.post("/jobs", params={"model_type": "fusion"}, files=example_files(),
                                data={"options": '{"grid_resolution": 1e999}'})
    assert_error(response, 400, field_prefix="options")
    server.assert_responsive()


def _multipart_head(boundary: str) -> bytes:
    return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"views\"; filename=\"view.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode()


def test_a_chunked_body_past_the_request_cap_is_cut_off(server):
    """Attack: POST /jobs with Transfer-Encoding: chunked (no Content-Length to refuse up front) and a body that
    never ends. Must hold: the answer is 413 JSON and the server closes the connection: the client cannot push
    more than about twice the request cap (14 MB here) before the connection is closed or stops taking bytes."""
    boundary = "sec" + secrets.token_hex(8)
    sent, response, stopped = _push_endless_chunked_body(
        server, "/jobs", f"multipart/form-data; boundary={boundary}", _multipart_head(boundary))
    assert sent <= 2 * REQUEST_CAP, f"the client pushed {sent / 2**20:.0f} MB against a {REQUEST_CAP / 2**20:.0f} MB " \
                                    f"cap before {stopped}"
    status_line, _, rest = response.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 413"), f"the answer was {response[:200]!r} ({stopped})"
    body = rest.partition(b"\r\n\r\n")[2]
    assert "error" in json.loads(body[: body.rfind(b"}") + 1]), body[:200]
    server.assert_responsive()


@pytest.mark.parametrize("path, content_type", [("/jobs", "application/octet-stream"), ("/nope", "text/plain")])
def test_an_endless_body_answered_before_it_is_read_is_not_drained(server, path, content_type):
    """Attack: an endless chunked body to a route that answers without reading it (a body that is no form, an
    unknown route): the server answered 400/404 at once and then drained the body for as long as the client
    sent it (600 MB). Must hold: after its answer the server closes the connection, within about twice the
    request cap."""
    sent, response, stopped = _push_endless_chunked_body(server, path, content_type, b"x")
    assert sent <= 2 * REQUEST_CAP, f"the client pushed {sent / 2**20:.0f} MB to {path} before {stopped}"
    assert response.startswith((b"HTTP/1.1 4",)), f"the answer was {response[:200]!r} ({stopped})"
    server.assert_responsive()


def _push_endless_chunked_body(server, path: str, content_type: str, first: bytes) -> tuple[int, bytes, str]:
    """Send chunks of 64 KB until the server closes, stops reading, 4 x the cap, or 30 s: (bytes sent, the
    server's answer, why the client stopped)."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sent, response, stopped = 0, b"", "the client gave up (4 x the cap, or 30 s)"
    frame_data = b"\x00" * 65536
    frame = f"{len(frame_data):x}\r\n".encode() + frame_data + b"\r\n"
    try:
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                f"Content-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
        sock.sendall(head + f"{len(first):x}\r\n".encode() + first + b"\r\n")
        deadline = time.monotonic() + 30
        while sent < 4 * REQUEST_CAP and time.monotonic() < deadline:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                try:
                    data = sock.recv(65536)
                except OSError as error:
                    stopped = f"the connection broke ({error.__class__.__name__})"
                    break
                response += data
                if not data:
                    stopped = "the server closed the connection"
                    break
            try:
                sock.sendall(frame)
            except socket.timeout:
                stopped = "the server stopped reading"
                break
            except OSError as error:
                stopped = f"the connection broke ({error.__class__.__name__})"
                break
            sent += len(frame_data)
        response += _read_rest(sock, 5)
    finally:
        sock.close()
    return sent, response, stopped


def _read_rest(sock: socket.socket, timeout: float) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
        if not readable:
            break
        try:
            chunk = sock.recv(65536)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.parametrize("path", ["/jobs", "/gradio_api/upload"])
def test_a_body_sent_one_byte_a_second_is_answered_408_or_closed(server, path):
    """Attack: a raw socket declares Content-Length: 1000000, then sends one byte a second, holding a
    connection (and a worker thread) for 11 days. Must hold: within RECON_BODY_TIMEOUT_S (2 s here; 10 s allowed)
    the server answers 408 or closes the connection."""
    boundary = "sec" + secrets.token_hex(8)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    started = time.monotonic()
    answer, closed = b"", False
    try:
        sock.sendall((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                      f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                      "Content-Length: 1000000\r\n\r\n").encode())
        body = _multipart_head(boundary)
        index = 0
        while time.monotonic() - started < 10 and not answer and not closed:
            try:
                sock.sendall(body[index % len(body):index % len(body) + 1])
            except OSError:
                closed = True
                break
            index += 1
            readable, _, _ = select.select([sock], [], [], 1.0)
            if readable:
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                answer += data
                closed = not data
        elapsed = time.monotonic() - started
    finally:
        sock.close()
    assert answer or closed, f"after {elapsed:.0f} s of one byte a second the server still waits for the body"
    if answer:
        # 408; or a refusal up front that never waited for the body (an earlier test may have used up the
        # upload folder's 2 MB: 507)
        assert answer.startswith((b"HTTP/1.1 408", b"HTTP/1.1 413", b"HTTP/1.1 429", b"HTTP/1.1 507")), \
            f"the answer was {answer[:200]!r}"
    server.assert_responsive()


@pytest.mark.parametrize("method, path", [("GET", "/nope"), ("POST", "/jobs/x/nope")])
def test_an_unknown_route_is_a_404_in_the_api_error_shape(server, method, path):
    """Attack: probe for routes. Must hold: 404 JSON whose keys are exactly {"error", "field"}, like every other
    error of the API."""
    response = server.http.request(method, path)
    body = assert_error(response, 404)
    assert set(body) == {"error", "field"}, body
    server.assert_responsive()


def test_a_job_id_with_a_newline_is_a_404(server):
    """Attack: GET /jobs/qb4hp7ur%0A (a valid id plus a newline, which a `$`-anchored pattern lets through).
    Must hold: 404 JSON."""
    assert_error(server.http.get("/jobs/qb4hp7ur%0A"), 404)
    server.assert_responsive()


def test_an_empty_queue_secret_file_does_not_crash_the_start(apps):
    """Setup fault: data/queue.secret exists but is empty (a crash between creating and writing it). Must hold:
    either the app starts, having written a fresh, non-empty secret, or it exits non-zero with a sentence about
    the file in its log; never a Python traceback."""
    server = apps["empty-secret"]
    code = server.wait_exit(90)
    log = server.log()
    assert "Traceback" not in log, f"the start crashed with a traceback:\n{log[-3000:]}"
    if code is None:
        assert server.answers(), "the app neither exited nor serves requests"
        assert server.queue_secret().strip(), "the app runs with an empty queue secret"
        server.assert_responsive()
    else:
        assert code != 0, "the app exited with 0"
        assert "queue.secret" in log, f"the log does not name the file:\n{log[-2000:]}"


def test_a_world_writable_queue_secret_stops_the_start_with_a_sentence(apps):
    """Setup fault: data/queue.secret is world-writable (chmod 666): anyone on the host could replace the key that
    signs queue messages (pickles). Must hold: the app refuses to start: a non-zero exit, a log sentence that
    names the file and the fix (e.g. chmod 600), and no Python traceback. (The test runs as root, but mode bits
    are checked the same for root.)"""
    server = apps["writable-secret"]
    code = server.wait_exit(90)
    log = server.log()
    assert code is not None, "the app started with a world-writable queue.secret"
    assert code != 0, "the app exited with 0"
    assert "Traceback" not in log, f"the refusal is a traceback:\n{log[-3000:]}"
    assert "queue.secret" in log, f"the log does not name the file:\n{log[-2000:]}"
    assert any(word in log for word in ("chmod", "600", "permission")), f"the log gives no fix:\n{log[-2000:]}"


MALFORMED = {
    "a string for the gallery": ["not a gallery", [], "fusion", {}, None],
    "a number for a gallery item": [[5], [], "fusion", {}, None],
    "an item without a path": [[{"image": {"meta": {"_type": "gradio.FileData"}}, "caption": None}], [], "fusion",
                               {}, None],
    "a string for the options": [[], [], "fusion", "{not json", None],
    "a gallery item for the cameras": [[], [], "fusion", {}, [gallery_item("x.json")]],
}


@pytest.mark.parametrize("shape", MALFORMED)
def test_malformed_submit_data_gets_an_error_without_internals(server, gradio, shape):
    """Attack: /submit (by the raw queue protocol) with data of the wrong shape. Must hold: refused (4xx at
    queue/join or success=false), and the error text shows no "object at 0x" and no server path."""
    client = gradio(server)
    submit = client.fn_index("submit")
    result = client.call(submit, client.with_state_slots(submit, MALFORMED[shape]), timeout=15)
    assert result.refused, f"malformed data was not refused: {result.describe()}"
    found = leaks(result.all_text(), server.data_dir, server.gradio_dir, REPO)
    assert not found, f"the error shows {found}: {result.error_text[:300]!r}"
    server.assert_responsive()


def test_an_event_that_does_not_exist_is_a_400_not_a_500(server):
    """Attack: POST /gradio_api/queue/join with fn_index 999: a plain-text 500 and a KeyError in the log."""
    response = server.http.post("/gradio_api/queue/join", json={"data": [], "fn_index": 999, "session_hash": "x"})
    assert_error(response, 400, field="fn_index")
    server.assert_responsive()


@pytest.mark.parametrize("session", ["a" * 100_000, "../../etc", "x y"])
def test_a_session_hash_is_a_short_token_wherever_it_appears(server, session):
    """Attack: a 100 KB session_hash on queue/join reset the connection; `../../etc` on the queue's stream
    aborted it mid-answer with a traceback. Must hold: a flat 400 naming session_hash in the body and the query;
    in the heartbeat's path, a flat 400 or 404."""
    joined = server.http.post("/gradio_api/queue/join", json={"data": [], "fn_index": 0, "session_hash": session})
    assert_error(joined, 400, field="session_hash")
    if len(session) < 1000:
        assert_error(server.http.get("/gradio_api/queue/data", params={"session_hash": session}), 400,
                     field="session_hash")
        heartbeat = server.http.get(f"/gradio_api/heartbeat/{session.replace('/', '%2F')}")
        assert heartbeat.status_code in (400, 404) and set(heartbeat.json()) == {"error", "field"}
    server.assert_responsive()


def test_a_file_that_is_not_served_is_refused_without_echoing_its_path(server):
    response = server.http.get("/gradio_api/file=/etc/passwd")
    body = assert_error(response, 403)
    assert "passwd" not in body["error"] and "/etc" not in response.text
    server.assert_responsive()
