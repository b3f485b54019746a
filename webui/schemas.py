"""The REST API's response shapes, as /docs shows them."""

from __future__ import annotations

from pydantic import BaseModel, Field

from worker.jobs.models import OptionSpec


class ErrorResponse(BaseModel):
    error: str = Field(description="A sentence that says what is wrong and what to do")
    field: str | None = Field(None, description="The request field at fault, e.g. depth_renders[3]")


class SubmitResponse(BaseModel):
    job_id: str
    status: str
    created_at: str
    job_token: str = Field(description="Secret needed to cancel this job; shown only once")


class ResultLinks(BaseModel):
    glb: str = Field(description="The mesh as binary glTF 2.0")
    obj: str = Field(description="A zip of model.obj, model.mtl and the texture PNG")
    ply: str = Field(description="Binary PLY with sRGB vertex colours")
    stl: str = Field(description="Binary STL, the triangles only")
    usdz: str = Field(description="Textured USDZ, for AR viewers and DCC tools")
    report: str


class JobRecord(BaseModel):
    job_id: str
    status: str = Field(description="queued | processing | completed | failed | cancelled")
    progress: int = Field(ge=0, le=100)
    stage: str
    model_type: str
    options: dict
    warnings: list[str]
    created_at: str
    started_at: str | None
    finished_at: str | None
    error: str | None
    queue_position: int | None = Field(None, description="1 = next to start; only while queued")
    result: ResultLinks | None = Field(None, description="Download links, once completed")


class CancelRequest(BaseModel):
    confirm: bool = False


class CancelResponse(BaseModel):
    status: str = Field(description="cancel_requested, or cancelled")
    message: str


class ModelInfo(BaseModel):
    name: str
    label: str
    description: str
    needs: str
    available: bool
    unavailable_reason: str | None
    options: list[OptionSpec]
