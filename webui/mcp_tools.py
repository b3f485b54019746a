"""The reconstruction as Model Context Protocol tools, served by the app itself at /mcp (streamable HTTP).

An MCP client (Claude Desktop, an agent) submits the twelve PNGs as base64 text,
follows the job and takes the mesh back, through the same JobService as POST /jobs:
the same validation, queue limit, rate limit and per-client quotas, counted against
the address the request came from. Files only ever arrive inside the request, so a
tool never opens a server path a client names; a request is at most the base64 of
twelve uncompressed PNGs at RECON_MAX_PIXELS, every file at most RECON_MAX_FILE_MB.

Gradio's own MCP server (`mcp_server=True`) is not used: mounted, it calls the
page back through a Gradio client built from the first request's Host header, and
writes base64 files into the upload folder without the upload quotas.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import anyio
from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import BlobResourceContents, EmbeddedResource, TextContent
from pydantic import Field
from starlette.types import Receive, Scope, Send

from worker.config import Settings
from worker.errors import FileValidationError, ReconError
from worker.jobs.service import JobService
from worker.jobs.uploads import VIEW_COUNT
from worker.recon.rig import SLOT_NAMES

from .rest_api import job_record, model_catalogue
from .input_notes import error_sentence

MCP_PATH = "/mcp"
Lifespan = Callable[[Any], contextlib.AbstractAsyncContextManager[None]]
MAX_INLINE_RESULT_BYTES = 32 * 1024 * 1024
"""A larger mesh comes back as its download path only: base64 inflates it by a third inside one JSON answer."""
INLINE_RESULTS_AT_ONCE = 2
"""Meshes read and encoded at the same time, so a burst of job_result calls cannot fill the memory."""
PNG_SLACK_BYTES = 256 * 1024
"""Per file, beyond its pixels: chunk framing, zlib's stored blocks, metadata (and the cameras.json)."""
SLOTS = ", ".join(SLOT_NAMES)
INSTRUCTIONS = (
    "Turns six views and six depth renders of an object into a textured 3D mesh (binary glTF). "
    "Call submit_reconstruction with the 12 PNGs as base64, then job_status until the status is completed "
    "(or failed/cancelled), then job_result. list_models gives the models and their options."
)
Png = Annotated[str, Field(description="a PNG file as base64 (a data:image/png;base64,... URL is accepted too)")]


def decode_file(text: str, field: str, max_bytes: int) -> bytes:
    """The bytes of one base64 file; the length is checked before decoding, so no oversized buffer is made."""
    if not isinstance(text, str):
        raise FileValidationError(field, "must be base64 text")
    if text.startswith("data:"):
        header, _, text = text.partition(",")
        if not header.endswith(";base64"):
            raise FileValidationError(field, "must be base64 (a data URL: data:image/png;base64,...)")
    if len(text) > (max_bytes + 2) // 3 * 4 + 4:
        raise FileValidationError(field, f"is larger than the {max_bytes // (1024 * 1024)} MB limit")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise FileValidationError(field, "is not valid base64") from None


def max_body_bytes(config: Settings) -> int:
    """The largest honest submission: twelve uncompressed 8-bit RGBA PNGs at RECON_MAX_PIXELS, as base64.

    Below the REST body limit (files that big cannot hold an accepted image), it keeps a JSON request, which is
    parsed in memory, to about 70 MB with the default settings."""
    files = 2 * VIEW_COUNT * (4 * config.max_pixels * 1.01 + PNG_SLACK_BYTES) + PNG_SLACK_BYTES
    return min(config.max_request_bytes, int(files * 4 / 3) + 1024 * 1024)


def _files(items: list[str], field: str, max_bytes: int) -> list[bytes]:
    if len(items) != VIEW_COUNT:
        raise FileValidationError(field, f"expected exactly {VIEW_COUNT} files ({SLOTS}), got {len(items)}")
    return [decode_file(item, f"{field}[{index}]", max_bytes) for index, item in enumerate(items)]


def _tool_error(error: ReconError) -> ToolError:
    """The page's sentence for the error, with the field at fault as the REST API names it."""
    return ToolError(f"{error_sentence(error)} (field: {error.field})" if error.field else error_sentence(error))


def _client(ctx: Context) -> str:
    request = ctx.request_context.request
    client = getattr(request, "client", None)
    return client.host if client else "unknown"


def build_mcp(service: JobService) -> FastMCP:
    """The MCP server and its four tools, each a thin call into JobService."""
    config = service.config
    inline_results = anyio.Semaphore(INLINE_RESULTS_AT_ONCE)
    server = FastMCP(
        "Multiview Studio", instructions=INSTRUCTIONS, stateless_http=True, json_response=True,
        max_request_body_size=max_body_bytes(config),
        # The tools are as public as the REST API; a Host allow-list would have to know every public name.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )

    @server.tool()
    async def submit_reconstruction(
        ctx: Context,
        views: Annotated[list[Png], Field(description=f"6 view PNGs (8-bit RGB/RGBA), in slot order: {SLOTS}")],
        depth_renders: Annotated[list[Png], Field(description="6 depth PNGs (one channel, 8 or 16 bit, 0 = "
                                                               "background), same order and size as the views")],
        cameras: Annotated[str | None, Field(description="optional text of a cameras.json (nerfstudio "
                                                          "transforms.json convention); default rig: cube6")] = None,
        model_type: Annotated[str | None, Field(description="fusion, nvdiffrec or reconviagen; default: the best "
                                                            "available (see list_models)")] = None,
        options: Annotated[dict[str, Any] | None, Field(description='model options, e.g. {"grid_resolution": 256}')] = None,
    ) -> dict[str, Any]:
        """Queue a reconstruction of 6 views and 6 depth renders; returns the job id and its cancel token."""
        client = _client(ctx)

        def submit() -> dict[str, Any]:
            submitted = service.submit(
                _files(views, "views", config.max_file_bytes),
                _files(depth_renders, "depth_renders", config.max_file_bytes),
                cameras.encode() if cameras is not None else None, model_type, options or {}, client=client,
            )
            record = submitted.job.public()
            return {"job_id": record["job_id"], "status": record["status"], "created_at": record["created_at"],
                    "job_token": submitted.token}

        try:
            return await anyio.to_thread.run_sync(submit)
        except ReconError as error:
            raise _tool_error(error) from None

    @server.tool()
    async def job_status(job_id: Annotated[str, Field(description="the id submit_reconstruction returned")],
                         ) -> dict[str, Any]:
        """The job record, as GET /jobs/{job_id}: status, progress 0-100, stage, queue position, warnings, error."""
        try:
            return await anyio.to_thread.run_sync(lambda: job_record(service, service.get(job_id)))
        except ReconError as error:
            raise _tool_error(error) from None

    @server.tool(structured_output=False)
    async def job_result(
        job_id: Annotated[str, Field(description="the id of a completed job")],
        include_mesh: Annotated[bool, Field(description="embed the GLB (base64); false: report and paths only")] = True,
    ) -> list[TextContent | EmbeddedResource]:
        """A completed job's report.json and its mesh (binary glTF, embedded), with their download paths."""
        try:
            report, mesh = await anyio.to_thread.run_sync(
                lambda: (service.output_file(job_id, "report"), service.output_file(job_id, "result")))
        except ReconError as error:
            raise _tool_error(error) from None
        blocks: list[TextContent | EmbeddedResource] = [
            TextContent(type="text", text=f"GLB: GET /jobs/{job_id}/result, report: GET /jobs/{job_id}/report"),
            TextContent(type="text", text=report.read_text()),
        ]
        if include_mesh and mesh.stat().st_size <= MAX_INLINE_RESULT_BYTES:
            async with inline_results:
                blob = await anyio.to_thread.run_sync(lambda: base64.b64encode(mesh.read_bytes()).decode("ascii"))
            blocks.append(EmbeddedResource(type="resource", resource=BlobResourceContents(
                uri=f"multiview-studio://jobs/{job_id}/model.glb", mimeType="model/gltf-binary", blob=blob)))
        return blocks

    @server.tool()
    def list_models() -> list[dict[str, Any]]:
        """Every model, what it needs, whether it can run here, and its options with their ranges."""
        return model_catalogue(config)

    return server


class McpEndpoint:
    """The ASGI handler for MCP_PATH and the lifespan its session manager needs."""

    def __init__(self, service: JobService) -> None:
        self.server = build_mcp(service)
        self.server.streamable_http_app()  # creates the session manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.server.session_manager.handle_request(scope, receive, send)

    def around(self, lifespan: Lifespan | None) -> Lifespan:
        """The app's lifespan with the MCP session manager running inside it."""

        @contextlib.asynccontextmanager
        async def both(app: Any) -> AsyncIterator[None]:
            async with self.server.session_manager.run():
                if lifespan is None:
                    yield
                else:
                    async with lifespan(app):
                        yield

        return both
