"""HTML fragments of the page: the notes next to the inputs, the model note, the job card, the progress text.

Every piece of text that can come from a user or a job (messages, stages,
warnings) is escaped here.
"""

from __future__ import annotations

from html import escape

from worker.config import Settings
from worker.jobs.models import MODELS, availability
from worker.jobs.record import ACTIVE, CANCELLED, COMPLETED, FAILED, PROCESSING, QUEUED, Job

from .input_notes import ERROR, WARNING, Note

IDLE_STATUS = (
    "<div class='job-card job-empty'>No job yet. Add the inputs on the left (or click an example) "
    "and press <b>Reconstruct</b>.</div>"
)
BADGES = {QUEUED: "Queued", PROCESSING: "Running", COMPLETED: "Completed", FAILED: "Failed", CANCELLED: "Cancelled"}


def note_html(note: Note) -> str:
    return f"<div class='note note-{note.level}'>{escape(note.text)}</div>"


def model_note_html(name: str, config: Settings) -> str:
    spec = MODELS.get(name)
    if spec is None:
        return note_html(Note(ERROR, f"Unknown model {name!r}."))
    reason = availability(config)[name]
    text = f"<div class='note note-idle'>{escape(spec.description)}</div>"
    if reason is not None:
        text += note_html(Note(WARNING, f"Not available on this deployment: {reason}. Pick another model."))
    return text


def _duration(job: Job) -> str:
    if job.started_at is None or job.finished_at is None:
        return ""
    return f" in {job.finished_at - job.started_at:.1f} s"


def progress_text(job: Job, position: int | None) -> str:
    if job.status == QUEUED:
        return f"Queued · position {position} · job {job.job_id}" if position else f"Queued · job {job.job_id}"
    return f"{job.stage} · job {job.job_id}"


def status_html(job: Job, position: int | None, owned: bool) -> str:
    """The job card: badge, id, model, what is happening now, and warnings."""
    if job.status == QUEUED:
        detail = f"Position {position} in the queue, waiting for a worker." if position else "Waiting for a worker."
    elif job.status == PROCESSING:
        detail = f"{job.stage[:1].upper()}{job.stage[1:]} · {job.progress}%"
    elif job.status == COMPLETED:
        detail = f"Finished{_duration(job)}. Drag to rotate the mesh, scroll to zoom."
    elif job.status == FAILED:
        detail = job.error or "The job failed."
    else:
        detail = "Cancelled; the work done so far was discarded."
    if job.status in ACTIVE and not owned:
        detail += " Only the session that submitted this job can cancel it."
    items = "".join(f"<li>{escape(warning)}</li>" for warning in job.warnings)
    warnings = f"<ul class='job-warnings'>{items}</ul>" if items else ""
    return (
        f"<div class='job-card job-{job.status}'><div class='job-line'>"
        f"<span class='badge badge-{job.status}'>{BADGES[job.status]}</span>"
        f"<span>Job <code>{job.job_id}</code></span><span class='job-model'>{escape(job.model_type)}</span></div>"
        f"<div class='job-detail'>{escape(detail)}</div>{warnings}</div>"
    )


def error_card_html(message: str) -> str:
    return (
        "<div class='job-card job-failed'><div class='job-line'><span class='badge badge-failed'>Error</span></div>"
        f"<div class='job-detail'>{escape(message)}</div></div>"
    )
