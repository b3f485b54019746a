"""The REST API: POST /jobs, GET /jobs/{id}, two-step cancel, result downloads, models."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Body, File, Form, Header, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from worker.config import Settings
from worker.errors import ReconError, ServiceBusyError
from worker.jobs.files import download_name
from worker.jobs.models import MODELS, availability
from worker.jobs.record import COMPLETED, Job
from worker.jobs.result_formats import FORMATS
from worker.jobs.service import JobService
from worker.jobs.uploads import load_json

from .schemas import CancelRequest, CancelResponse, ErrorResponse, JobRecord, ModelInfo, SubmitResponse

ERRORS = {code: {"model": ErrorResponse} for code in (400, 403, 404, 409, 413, 422, 429, 503, 507)}
MEDIA_TYPES = {"glb": "model/gltf-binary", "obj": "application/zip", "ply": "application/octet-stream",
               "stl": "model/stl", "usdz": "model/vnd.usdz+zip"}
FORMAT_HELP = ("glb: binary glTF 2.0, as the worker wrote it; obj: a zip of model.obj, model.mtl and the texture PNG; "
               "ply: binary, with sRGB vertex colours; stl: binary, the triangles only; usdz: textured, for AR and DCC "
               "tools. Every format but glb is made on first request and kept with the job.")


def job_record(service: JobService, job: Job) -> dict:
    record = job.public()
    record["queue_position"] = service.queue_position(job)
    record["result"] = result_links(job.job_id) if job.status == COMPLETED else None
    return record


def result_links(job_id: str) -> dict:
    links = {fmt: f"/jobs/{job_id}/result?format={fmt}" for fmt in FORMATS}
    links["glb"] = f"/jobs/{job_id}/result"
    return {**links, "report": f"/jobs/{job_id}/report"}


def model_catalogue(config: Settings) -> list[dict]:
    reasons = availability(config)
    return [
        {
            "name": spec.name, "label": spec.label, "description": spec.description, "needs": spec.needs,
            "available": reasons[name] is None, "unavailable_reason": reasons[name],
            "options": [asdict(option) for option in spec.options],
        }
        for name, spec in MODELS.items()
    ]


def _bearer(authorization: str | None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return None


def _parse_options(raw: str | None) -> dict:
    if not raw:
        return {}
    options = load_json(raw, "options", "options")
    if not isinstance(options, dict):
        raise ReconError("options must be a JSON object, e.g. {\"grid_resolution\": 256}", field="options")
    return options


def build_router(service: JobService) -> APIRouter:
    router = APIRouter(tags=["jobs"], responses=ERRORS)

    @router.post("/jobs", response_model=SubmitResponse, summary="Submit 6 views and 6 depth renders")
    def submit_job(
        request: Request,
        views: list[UploadFile] = File(default=[], description="6 PNG views in slot order: front, right, back, left, top, bottom"),
        depth_renders: list[UploadFile] = File(default=[], description="6 PNG depth renders, same order and size"),
        cameras: UploadFile | None = File(default=None, description="Optional cameras.json (default rig: cube6)"),
        model_type: str | None = Query(default=None, description="fusion, nvdiffrec or reconviagen; default: best available"),
        model_type_form: str | None = Form(default=None, alias="model_type", include_in_schema=False),
        options: str | None = Form(default=None, description='JSON object of model options, e.g. {"grid_resolution": 256}'),
    ) -> dict:
        submitted = service.submit(
            [upload.file for upload in views],
            [upload.file for upload in depth_renders],
            cameras.file if cameras is not None else None,
            model_type or model_type_form,
            _parse_options(options),
            client=request.client.host if request.client else "unknown",
        )
        return {
            "job_id": submitted.job.job_id, "status": submitted.job.status,
            "created_at": submitted.job.public()["created_at"], "job_token": submitted.token,
        }

    @router.get("/jobs/{job_id}", response_model=JobRecord, summary="The job's status, progress and result links")
    def get_job(job_id: str) -> JSONResponse:
        """Answered directly (the shape is JobRecord's): the hottest endpoint skips re-validation."""
        return JSONResponse(job_record(service, service.get(job_id)))

    @router.post("/jobs/{job_id}/cancel", response_model=CancelResponse, summary="Request, then confirm, cancellation")
    def cancel_job(
        job_id: str,
        body: CancelRequest | None = Body(default=None),
        authorization: str | None = Header(default=None, description="Bearer <job_token>"),
    ) -> dict:
        outcome = service.cancel(job_id, _bearer(authorization), bool(body and body.confirm))
        return {"status": outcome.status, "message": outcome.message}

    @router.get("/jobs/{job_id}/result", response_class=FileResponse, summary="The mesh, as GLB, OBJ, PLY, STL or USDZ",
                responses={200: {"content": {media_type: {} for media_type in MEDIA_TYPES.values()}}})
    def get_result(
        job_id: str,
        fmt: str = Query(default="glb", alias="format", description=FORMAT_HELP,
                         json_schema_extra={"enum": list(FORMATS)}),
    ) -> FileResponse:
        return FileResponse(service.result_file(job_id, fmt), media_type=MEDIA_TYPES[fmt],
                            filename=download_name(job_id, fmt))

    @router.get("/jobs/{job_id}/report", summary="The job's report.json")
    def get_report(job_id: str) -> FileResponse:
        return FileResponse(service.output_file(job_id, "report"), media_type="application/json",
                            filename=f"{job_id}-report.json")

    @router.get("/jobs/{job_id}/comparison.png", response_class=FileResponse, tags=["previews"],
                summary="The comparison sheet: per slot the input, the result and the depth error",
                responses={200: {"content": {"image/png": {}}}})
    def get_comparison(job_id: str) -> FileResponse:
        return FileResponse(service.output_file(job_id, "comparison"), media_type="image/png",
                            filename=f"{job_id}-comparison.png", content_disposition_type="inline")

    @router.get("/jobs/{job_id}/turntable.webp", response_class=FileResponse, tags=["previews"],
                summary="The turntable: 8 renders around the result, an animated WebP",
                responses={200: {"content": {"image/webp": {}}}})
    def get_turntable(job_id: str) -> FileResponse:
        return FileResponse(service.output_file(job_id, "turntable"), media_type="image/webp",
                            filename=f"{job_id}-turntable.webp", content_disposition_type="inline")

    @router.get("/models", response_model=list[ModelInfo], tags=["models"], summary="Models and whether they can run here")
    def list_models() -> list[dict]:
        return model_catalogue(service.config)

    return router


def recon_error_response(_: Request, exc: ReconError) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, ServiceBusyError) else None
    return JSONResponse({"error": exc.message, "field": exc.field}, status_code=exc.status_code, headers=headers)


def http_error_response(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    return JSONResponse({"error": str(exc.detail), "field": None}, status_code=exc.status_code, headers=exc.headers)


def not_served_response(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Gradio's 403 for a file it will not serve echoes the path; the answer needs none of it."""
    return JSONResponse({"error": "this file is not served", "field": None}, status_code=403)


def request_validation_response(_: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path", "header")]
    return JSONResponse(
        {"error": first.get("msg", "the request is malformed"), "field": ".".join(location) or None},
        status_code=422,
    )
