"""HTML fragments of the page: the notes next to the inputs, the model note, the job card, the progress text.

Every piece of text that can come from a user or a job (messages, stages,
warnings) is escaped here.
"""

from __future__ import annotations

import time
from html import escape

from worker.config import Settings
from worker.jobs.models import MODELS, availability
from worker.jobs.record import ACTIVE, CANCELLED, COMPLETED, FAILED, PROCESSING, QUEUED, Job

from .input_notes import ERROR, WARNING, Note
from .progress import clock, stage_label, time_left_text

IDLE_STATUS = (
    "<div class='job-card job-empty'>No job yet. Add the six views and six depth renders (or click an example) "
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
    """The client API's progress description: the card's wording and the job id."""
    return f"{stage_label(job, position)} · job {job.job_id}"


def progress_bar_html(job: Job, position: int | None, left_s: float | None, now: float) -> str:
    """The bar of an active job: stage, percent, time since submission (the page's script keeps it ticking) and
    the time left when there is an estimate; `role=progressbar` with its value for assistive technology."""
    label = stage_label(job, position)
    percent = job.progress if job.status == PROCESSING else 0
    elapsed = max(0.0, now - job.created_at)
    left = time_left_text(left_s)
    return (
        f"<div class='job-progress job-progress-{job.status}' role='progressbar' aria-label='Job {job.job_id}' "
        f"aria-valuemin='0' aria-valuemax='100' aria-valuenow='{percent}' "
        f"aria-valuetext='{escape(label, quote=True)} {percent}%'>"
        f"<div class='job-progress-head'><span class='job-stage'>{escape(label)}</span>"
        f"<span class='job-percent'>{percent}%</span></div>"
        f"<div class='job-progress-track'><div class='job-progress-fill' style='width: {percent}%'></div></div>"
        f"<div class='job-progress-times'><span>Elapsed <span class='job-elapsed' data-job='{job.job_id}' "
        f"data-elapsed='{elapsed:.1f}'>{clock(elapsed)}</span></span>"
        f"<span class='job-left'>{escape(left)}</span></div></div>"
    )


def _detail(job: Job) -> str:
    if job.status == COMPLETED:
        return f"Finished{_duration(job)}. Drag to rotate the mesh, scroll to zoom."
    if job.status == FAILED:
        return job.error or "The job failed."
    return "Cancelled; the work done so far was discarded."


def status_html(job: Job, position: int | None, owned: bool, left_s: float | None = None,
                now: float | None = None) -> str:
    """The job card: badge, id, model; the progress bar while the job is active, else how it ended; warnings."""
    if job.status in ACTIVE:
        body = progress_bar_html(job, position, left_s, time.time() if now is None else now)
        if not owned:
            body += "<div class='job-detail'>Only the session that submitted this job can cancel it.</div>"
    else:
        body = f"<div class='job-detail'>{escape(_detail(job))}</div>"
    items = "".join(f"<li>{escape(warning)}</li>" for warning in job.warnings)
    warnings = f"<ul class='job-warnings'>{items}</ul>" if items else ""
    return (
        f"<div class='job-card job-{job.status}'><div class='job-line'>"
        f"<span class='badge badge-{job.status}'>{BADGES[job.status]}</span>"
        f"<span>Job <code>{job.job_id}</code></span><span class='job-model'>{escape(job.model_type)}</span></div>"
        f"{body}{warnings}</div>"
    )


def error_card_html(message: str) -> str:
    return (
        "<div class='job-card job-failed'><div class='job-line'><span class='badge badge-failed'>Error</span></div>"
        f"<div class='job-detail'>{escape(message)}</div></div>"
    )
