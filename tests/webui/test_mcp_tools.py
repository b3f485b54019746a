"""The MCP tools at /mcp, through the `mcp` package's own client over streamable HTTP against a live `python app.py`."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trimesh
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.webui.live import EXAMPLE, depths_of, views_of
from webui.mcp_tools import decode_file, max_body_bytes
from worker.config import load_settings
from worker.errors import FileValidationError

SERVER_ENV = {"RECON_MAX_FILE_MB": "1", "RECON_MAX_PIXELS": str(256 * 256)}  # the examples are 256 x 256
ONE_MB = 1024 * 1024


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def example_arguments(**extra: Any) -> dict:
    return {"views": [b64(path.read_bytes()) for path in views_of(EXAMPLE)],
            "depth_renders": [b64(path.read_bytes()) for path in depths_of(EXAMPLE)], **extra}


def over_mcp(url: str, work: Callable[[ClientSession], Awaitable[Any]]) -> Any:
    """Run `work` in one initialised MCP session with the server."""

    async def session() -> Any:
        async with streamable_http_client(f"{url}/mcp") as (read, write, _), ClientSession(read, write) as client:
            await client.initialize()
            return await work(client)

    return asyncio.run(session())


def test_a_base64_file_is_decoded_and_a_data_url_is_accepted():
    assert decode_file(b64(b"\x89PNG"), "views[0]", ONE_MB) == b"\x89PNG"
    assert decode_file("data:image/png;base64," + b64(b"\x89PNG"), "views[0]", ONE_MB) == b"\x89PNG"


@pytest.mark.parametrize("text, sentence", [
    ("not base64!", "is not valid base64"),
    ("data:image/png," + "abcd", "must be base64"),
    ("A" * (4 * ONE_MB // 3 + 16), "is larger than the 1 MB limit"),
], ids=["not-base64", "data-url-not-base64", "too-large"])
def test_a_bad_file_is_refused_by_name_before_it_is_decoded(text, sentence):
    with pytest.raises(FileValidationError) as refused:
        decode_file(text, "depth_renders[4]", ONE_MB)
    assert refused.value.field == "depth_renders[4]" and sentence in refused.value.message


def test_the_tools_are_listed_with_their_arguments(live_server):
    tools = over_mcp(live_server.url, lambda client: client.list_tools()).tools
    by_name = {tool.name: tool for tool in tools}
    assert set(by_name) == {"submit_reconstruction", "job_status", "job_result", "list_models"}
    submit = by_name["submit_reconstruction"].inputSchema
    assert set(submit["required"]) == {"views", "depth_renders"}
    assert {"cameras", "model_type", "options"} <= set(submit["properties"])
    assert by_name["job_status"].inputSchema["required"] == ["job_id"]


def test_a_fusion_job_runs_from_submission_to_mesh_over_mcp(live_server):
    async def job(client: ClientSession) -> tuple[dict, dict, Any]:
        submitted = await client.call_tool("submit_reconstruction",
                                           example_arguments(model_type="fusion", options={"grid_resolution": 128}))
        assert not submitted.isError, submitted.content
        job_id = submitted.structuredContent["job_id"]
        for _ in range(240):
            record = (await client.call_tool("job_status", {"job_id": job_id})).structuredContent
            if record["status"] not in ("queued", "processing"):
                break
            await asyncio.sleep(0.25)
        return submitted.structuredContent, record, await client.call_tool("job_result", {"job_id": job_id})

    submitted, record, result = over_mcp(live_server.url, job)
    assert submitted["status"] == "queued" and submitted["job_token"]
    assert record["status"] == "completed" and record["result"]["glb"] == f"/jobs/{submitted['job_id']}/result"
    paths, report, mesh = result.content
    assert f"/jobs/{submitted['job_id']}/result" in paths.text
    assert json.loads(report.text)["model"] == "fusion"
    glb = base64.b64decode(mesh.resource.blob)
    assert mesh.resource.mimeType == "model/gltf-binary"
    assert glb == live_server.http.get(f"/jobs/{submitted['job_id']}/result").content
    assert len(trimesh.load(io.BytesIO(glb), file_type="glb", force="mesh").faces) > 100


def test_a_wrong_input_is_a_tool_error_naming_the_field_and_nothing_is_queued(live_server):
    before = live_server.job_ids()
    arguments = example_arguments()
    arguments["depth_renders"] = arguments["depth_renders"][:5]
    wrong_count = over_mcp(live_server.url, lambda client: client.call_tool("submit_reconstruction", arguments))
    arguments = example_arguments(model_type="fusion", options={"grid_resolution": 9999})
    wrong_option = over_mcp(live_server.url, lambda client: client.call_tool("submit_reconstruction", arguments))
    assert wrong_count.isError and "(field: depth_renders)" in wrong_count.content[0].text
    assert wrong_option.isError and "(field: options.grid_resolution)" in wrong_option.content[0].text
    assert live_server.job_ids() == before


def test_a_server_path_given_as_a_file_is_never_opened(live_server):
    arguments = example_arguments()
    arguments["views"][2] = "/etc/hostname"
    refused = over_mcp(live_server.url, lambda client: client.call_tool("submit_reconstruction", arguments))
    assert refused.isError and "View 2 (back)" in refused.content[0].text
    assert "(field: views[2])" in refused.content[0].text


def test_a_request_larger_than_twelve_uncompressed_images_is_refused_unread(live_server):
    limit = max_body_bytes(load_settings(SERVER_ENV))
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    assert live_server.http.post("/mcp", content=b" " * (limit + 1), headers=headers).status_code == 413
    read = live_server.http.post("/mcp", content=b" " * limit, headers=headers)
    assert read.status_code == 400 and "Parse error" in read.text  # as large as twelve images: read and parsed


def test_an_unknown_job_is_a_tool_error(live_server):
    answer = over_mcp(live_server.url, lambda client: client.call_tool("job_status", {"job_id": "zzzzzzzz"}))
    assert answer.isError and "There is no job 'zzzzzzzz'" in answer.content[0].text
