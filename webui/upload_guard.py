"""What a Gradio client may send about files: nothing but uploads, and no more bytes than its allowance.

A mounted Gradio app takes any file path a client puts in an event's data (see
SECURITY.md). Two layers stop that here, in front of Gradio and
again in the handlers: a path must name a regular file (no link, no device) of
at most the file-size limit inside Gradio's upload folder, where files are named
by the SHA-256 of their content, so a path can only be known to someone who
had the file. Every refusal reads the same, whether or not the path exists.
Uploads themselves count against the client's daily bytes and the upload
folder's cap before Gradio writes a byte.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from worker.errors import FileValidationError, ReconError, ServiceBusyError
from worker.jobs.limits import ClientQuotas, DiskBudget
from worker.jobs.uploads import nesting_depth

from .refusals import DISCONNECT, Refusal, answer

NOT_AN_UPLOAD = "is not a file uploaded to this page (or it has expired); add the file again"
MAX_EVENT_BYTES = 1024 * 1024
MAX_NESTING = 64
GRADIO_API = "/gradio_api/"
MAX_UPLOAD_FILES = 16
UPLOAD_MIN_CHARGE = 1024 * 1024
SESSION_HASH = re.compile(r"[A-Za-z0-9_-]{1,64}")


class UploadPaths:
    """The one rule for a client-sent path."""

    def __init__(self, upload_folder: Path, max_file_bytes: int) -> None:
        self.folder = upload_folder.resolve()
        self.max_file_bytes = max_file_bytes

    def is_upload(self, raw: object) -> bool:
        if not isinstance(raw, str) or not raw or "\x00" in raw or not os.path.isabs(raw):
            return False
        if not Path(os.path.realpath(raw)).is_relative_to(self.folder):
            return False
        try:
            info = os.lstat(raw)
        except OSError:
            return False
        return stat.S_ISREG(info.st_mode) and info.st_size <= self.max_file_bytes

    def check(self, raw: object, field: str) -> str:
        """`raw` if it names an upload, else FileValidationError naming `field`."""
        if not self.is_upload(raw):
            raise FileValidationError(field, NOT_AN_UPLOAD)
        return str(raw)


def file_paths(data: object) -> Iterator[object]:
    """Every `path` of a FileData-like object in an event's data, walked without recursion."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "path" in item:
                yield item["path"]
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None past `limit` bytes or on a disconnect."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > limit:
            return None
        if not message.get("more_body", False):
            return b"".join(chunks)


class PartCounter:
    """Counts multipart delimiters in a body as it streams by (a delimiter may straddle two chunks)."""

    def __init__(self, boundary: bytes) -> None:
        self.delimiter = b"--" + boundary
        self.tail = b""
        self.count = 0

    def feed(self, chunk: bytes) -> int:
        data = self.tail + chunk
        self.count += data.count(self.delimiter)  # the tail is shorter than a delimiter: nothing counts twice
        self.tail = data[-(len(self.delimiter) - 1):] if len(self.delimiter) > 1 else b""
        return self.count


def _boundary(scope: Scope) -> bytes | None:
    content_type = dict(scope["headers"]).get(b"content-type", b"")
    kind, _, params = content_type.partition(b";")
    if kind.strip().lower() != b"multipart/form-data":
        return None
    for param in params.split(b";"):
        key, _, value = param.strip().partition(b"=")
        if key.lower() == b"boundary" and value.strip(b'"'):
            return value.strip(b'"')
    return None


class GradioRequestGuard:
    """In front of the mounted Gradio app: events must exist and name uploads only; sessions are short tokens;
    uploads are paid for before Gradio writes a byte, each request at least UPLOAD_MIN_CHARGE (many tiny files
    cost inodes and blocks, not bytes) and at most MAX_UPLOAD_FILES files."""

    def __init__(self, app: ASGIApp, paths: UploadPaths, quotas: ClientQuotas, disk: DiskBudget,
                 events: frozenset[int]) -> None:
        self.app = app
        self.paths = paths
        self.quotas = quotas
        self.disk = disk
        self.events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = scope.get("path", "") if scope["type"] == "http" else ""
        if scope["type"] != "http" or GRADIO_API not in route:
            await self.app(scope, receive, send)
        elif not _session_ok(scope):
            await answer(send, 400, "session_hash must be 1-64 letters, digits, '-' or '_'", "session_hash")
        elif scope["method"] != "POST":
            await self.app(scope, receive, send)
        elif route.endswith(f"{GRADIO_API}upload"):
            await self._upload(scope, receive, send)
        else:
            await self._event(scope, receive, send)

    async def _upload(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = dict(scope["headers"]).get(b"content-length", b"")
        boundary = _boundary(scope)
        if not declared.isdigit() or boundary is None:
            await answer(send, 411 if boundary else 400,
                         "an upload is a multipart/form-data request with a Content-Length header", "files")
            return
        client = scope["client"][0] if scope.get("client") else "unknown"
        charge = max(int(declared), UPLOAD_MIN_CHARGE)
        try:
            self.disk.reserve(charge)
            self.quotas.count_bytes(client, charge)
        except ReconError as error:
            headers = {"Retry-After": str(error.retry_after)} if isinstance(error, ServiceBusyError) else None
            await answer(send, error.status_code, error.message, "files", headers)
            return
        parts = PartCounter(boundary)
        refusal = Refusal(send)

        async def counting_receive() -> Message:
            if refusal.refused:
                return DISCONNECT
            message = await receive()
            if message["type"] == "http.request" and parts.feed(message.get("body", b"")) > MAX_UPLOAD_FILES + 1:
                return await refusal.refuse(413, f"an upload may carry at most {MAX_UPLOAD_FILES} files", "files")
            return message

        await refusal.run(self.app, scope, counting_receive)

    async def _event(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive, MAX_EVENT_BYTES)
        if body is None:
            await answer(send, 413, f"an event's data may be at most {MAX_EVENT_BYTES // 1024} KB", "data")
            return
        refusal = self._refusal(body)
        if refusal:
            await answer(send, 400, *refusal)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _refusal(self, body: bytes) -> tuple[str, str] | None:
        """(sentence, field) when the event must not reach Gradio."""
        if nesting_depth(body) > MAX_NESTING:
            return f"the event's data nests deeper than {MAX_NESTING} levels", "data"
        try:
            data = json.loads(body)
        except ValueError:
            return None  # not JSON: Gradio answers it
        if not isinstance(data, dict):
            return None
        if "fn_index" in data and data["fn_index"] not in self.events:
            return "fn_index names no event of this page", "fn_index"
        if "session_hash" in data and not _token_ok(data["session_hash"]):
            return "session_hash must be 1-64 letters, digits, '-' or '_'", "session_hash"
        if any(not self.paths.is_upload(path) for path in file_paths(data)):
            return f"a file in the event's data {NOT_AN_UPLOAD}", "data"
        return None


def _token_ok(value: object) -> bool:
    return isinstance(value, str) and SESSION_HASH.fullmatch(value) is not None


def _session_ok(scope: Scope) -> bool:
    """A session hash in the query (queue/data) or the path (heartbeat) is a short token."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    hashes = query.get("session_hash", [])
    route = scope.get("path", "")
    if f"{GRADIO_API}heartbeat/" in route:
        hashes.append(route.rsplit("/", 1)[-1])
    return all(_token_ok(value) for value in hashes)
