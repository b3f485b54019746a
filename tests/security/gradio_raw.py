"""A small raw client of Gradio's queue protocol, speaking to the page the way a stranger would.

No gradio_client: the attacker reads GET /config, picks events by fn_index (private ones too),
uploads files with POST /gradio_api/upload, joins the queue with any data it likes and reads the
answers from the SSE stream GET /gradio_api/queue/data. Every call is bounded by a timeout.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable

import httpx

API = "/gradio_api"


def file_data(path: str) -> dict:
    """A gr.File value (FileData) pointing at `path`: the server trusts the path it is given."""
    return {"path": path, "meta": {"_type": "gradio.FileData"}}


def gallery_item(path: str, caption: str | None = None) -> dict:
    """One gallery value item, as the browser and gradio_client send it."""
    return {"image": file_data(path), "caption": caption}


def new_session() -> str:
    return uuid.uuid4().hex[:11]


@dataclass
class EventResult:
    """What one event produced: the queue/join answer and, once joined, the SSE messages of that event."""

    join_status: int
    join_body: str
    messages: list[dict] = field(default_factory=list)
    completed: dict | None = None  # the process_completed message, None when the stream ended or timed out first
    elapsed_s: float = 0.0

    @property
    def refused(self) -> bool:
        """Refused at the door (HTTP 4xx at queue/join) or by the event (process_completed with success=false)."""
        if 400 <= self.join_status < 500:
            return True
        return self.completed is not None and self.completed.get("success") is False

    @property
    def succeeded(self) -> bool:
        return self.join_status == 200 and self.completed is not None and self.completed.get("success") is True

    @property
    def error_text(self) -> str:
        """The refusal as a client sees it: the join body for an HTTP refusal, else the event's error message."""
        if self.join_status != 200:
            return self.join_body
        if self.completed is None:
            return ""
        output = self.completed.get("output") or {}
        return str(output.get("error") or "")

    @property
    def output_data(self) -> list:
        if self.completed is None:
            return []
        return (self.completed.get("output") or {}).get("data") or []

    def all_text(self) -> str:
        """Everything the client received, for leak checks."""
        return self.join_body + "\n" + "\n".join(json.dumps(message) for message in self.messages)

    def describe(self) -> str:
        return f"join {self.join_status} {self.join_body[:300]!r}; completed: {json.dumps(self.completed)[:600]}"


class GradioRaw:
    def __init__(self, base_url: str, timeout: float = 30) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout)
        config = self.http.get("/config")
        config.raise_for_status()
        self.config = config.json()
        self.components = {component["id"]: component for component in self.config["components"]}
        self.dependencies = self.config["dependencies"]

    def close(self) -> None:
        self.http.close()

    # --- reading /config -------------------------------------------------------------------------------------

    def component_id(self, elem_id: str) -> int:
        for component in self.config["components"]:
            if component.get("props", {}).get("elem_id") == elem_id:
                return component["id"]
        raise KeyError(f"no component with elem_id {elem_id!r} in /config")

    def component_type(self, component_id: int) -> str:
        return self.components[component_id]["type"]

    def fn_index(self, api_name: str) -> int:
        for index, dependency in enumerate(self.dependencies):
            if dependency.get("api_name") == api_name:
                return dependency.get("id", index)
        raise KeyError(f"no dependency named {api_name!r} in /config")

    def fn_indexes(self, component_id: int | None, event: str) -> list[int]:
        """The events a trigger fires directly, e.g. (views gallery, "upload")."""
        return [
            dependency.get("id", index) for index, dependency in enumerate(self.dependencies)
            if any(list(target) == [component_id, event] for target in dependency["targets"])
        ]

    def then_of(self, fn_index: int) -> list[int]:
        """The events chained with .then() after `fn_index`."""
        return [
            dependency.get("id", index) for index, dependency in enumerate(self.dependencies)
            if dependency.get("trigger_after") == fn_index
        ]

    def dependency(self, fn_index: int) -> dict:
        for index, dependency in enumerate(self.dependencies):
            if dependency.get("id", index) == fn_index:
                return dependency
        raise KeyError(fn_index)

    def input_types(self, fn_index: int) -> list[str]:
        return [self.component_type(component_id) for component_id in self.dependency(fn_index)["inputs"]]

    def event_data(self, fn_index: int, values: dict[int, Any]) -> list:
        """The data of event `fn_index`: `values` for the input components they name (by id), an empty value for
        the others (a gallery: [], anything else: None), in the event's input order as /config lists it."""
        return [values.get(component_id, [] if self.component_type(component_id) == "gallery" else None)
                for component_id in self.dependency(fn_index)["inputs"]]

    def with_state_slots(self, fn_index: int, values: Iterable[Any]) -> list:
        """The client's values with None where the dependency reads a gr.State, as gradio_client sends them."""
        values = list(values)
        data = []
        for kind in self.input_types(fn_index):
            data.append(None if kind == "state" else values.pop(0))
        if values:
            raise ValueError(f"{len(values)} values left over for fn {fn_index}")
        return data

    # --- files -------------------------------------------------------------------------------------------------

    def upload(self, files: list[tuple[str, bytes]], timeout: float = 30) -> httpx.Response:
        """POST /gradio_api/upload with multipart field "files", as the browser does."""
        return self.http.post(
            f"{API}/upload", files=[("files", (name, data, "application/octet-stream")) for name, data in files],
            timeout=timeout,
        )

    def upload_paths(self, files: list[tuple[str, bytes]]) -> list[str]:
        response = self.upload(files)
        assert response.status_code == 200, f"upload refused: {response.status_code} {response.text[:300]}"
        return response.json()

    # --- the queue -----------------------------------------------------------------------------------------------

    def join(self, fn_index: int, data: list, session_hash: str, timeout: float = 10) -> httpx.Response:
        body = {"data": data, "fn_index": fn_index, "session_hash": session_hash, "event_data": None,
                "trigger_id": None}
        return self.http.post(f"{API}/queue/join", json=body, timeout=timeout)

    def listen(self, session_hash: str, event_id: str | None, timeout: float) -> tuple[list[dict], dict | None]:
        """Read the session's SSE stream until `event_id` completes, the stream closes, or `timeout` passes."""
        messages = self._read_stream(session_hash, timeout, lambda message: message.get("msg") == "process_completed"
                                     and (event_id is None or message.get("event_id") == event_id))
        last = messages[-1] if messages else {}
        return messages, last if last.get("msg") == "process_completed" else None

    def collect(self, session_hash: str, event_ids: set[str], timeout: float) -> dict[str, dict]:
        """The process_completed message of each of `event_ids` that arrives within `timeout` (one stream)."""
        completed: dict[str, dict] = {}

        def done(message: dict) -> bool:
            if message.get("msg") == "process_completed" and message.get("event_id") in event_ids:
                completed[message["event_id"]] = message
            return set(completed) == event_ids

        self._read_stream(session_hash, timeout, done)
        return completed

    def _read_stream(self, session_hash: str, timeout: float, until) -> list[dict]:
        """Messages of GET /gradio_api/queue/data until `until(message)`, close_stream, or `timeout`."""
        deadline = time.monotonic() + timeout
        messages: list[dict] = []
        read_timeout = httpx.Timeout(timeout=timeout, connect=min(timeout, 5.0))
        try:
            with self.http.stream("GET", f"{API}/queue/data", params={"session_hash": session_hash},
                                  timeout=read_timeout) as response:
                if response.status_code != 200:
                    return [{"msg": "http_error", "status": response.status_code}]
                for line in _lines_until(response, deadline):
                    if not line.startswith("data:"):
                        continue
                    try:
                        message = json.loads(line[5:].strip())
                    except ValueError:
                        continue
                    messages.append(message)
                    if until(message) or message.get("msg") == "close_stream":
                        break
        except httpx.HTTPError as error:
            messages.append({"msg": "client_error", "error": repr(error)})
        return messages

    def call(self, fn_index: int, data: list, session_hash: str | None = None, timeout: float = 30) -> EventResult:
        """Join the queue with `data` for event `fn_index` and wait (bounded) for its process_completed."""
        session_hash = session_hash or new_session()
        started = time.monotonic()
        try:
            joined = self.join(fn_index, data, session_hash, timeout=min(timeout, 10))
        except httpx.TimeoutException as error:
            return EventResult(0, f"queue/join timed out: {error!r}", elapsed_s=time.monotonic() - started)
        result = EventResult(joined.status_code, joined.text)
        if joined.status_code == 200:
            event_id = joined.json().get("event_id")
            remaining = max(0.5, timeout - (time.monotonic() - started))
            result.messages, result.completed = self.listen(session_hash, event_id, remaining)
        result.elapsed_s = time.monotonic() - started
        return result

    # --- sessions ----------------------------------------------------------------------------------------------

    def end_session(self, session_hash: str, timeout: float = 5) -> None:
        """Open the session's heartbeat stream, as a browser tab does, and close it: Gradio then runs the unload
        events for that session (it notices the disconnect within its heartbeat interval)."""
        try:
            with self.http.stream("GET", f"{API}/heartbeat/{session_hash}", timeout=timeout) as response:
                for _ in _lines_until(response, time.monotonic() + timeout):
                    break
        except httpx.HTTPError:
            pass


def _lines_until(response: httpx.Response, deadline: float):
    """The response's lines until `deadline`; the client's read timeout (at most the whole wait) bounds each read."""
    try:
        for line in response.iter_lines():
            yield line
            if time.monotonic() > deadline:
                return
    except httpx.ReadTimeout:
        return
