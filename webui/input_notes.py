"""The notes under the page's inputs: a sentence per input (hint, ok, warning or error), from the REST API's own
validation, and validation errors phrased with the input they are about ("View 2 (back) is not a PNG file")."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Sequence

from worker.config import Settings
from worker.errors import FileValidationError, ReconError
from worker.jobs.limits import ClientQuotas
from worker.jobs.uploads import VIEW_COUNT, validate_upload_files
from worker.recon.rig import SLOT_NAMES

CHECKS_PER_MINUTE = 60
"""Input checks that decode files, per client; repeated checks of the same files are answered from memory."""
CHECK_MEMORY = 256

IDLE, OK, WARNING, ERROR = "idle", "ok", "warning", "error"
INPUT_FIELDS = ("views", "depth_renders", "cameras", "model_type", "options")
SLOT_LIST = ", ".join(SLOT_NAMES)
_INDEXED_FIELD = re.compile(r"^(views|depth_renders)\[(\d)\]")
_VERBS = {"is", "has", "must", "contains"}


@dataclass(frozen=True)
class Note:
    """A sentence shown next to one input: idle (a hint), ok, warning or error."""

    level: str
    text: str


def input_field(field: str | None) -> str | None:
    """The input a validation error belongs to: `depth_renders[3]` -> `depth_renders`."""
    if not field:
        return None
    return next((name for name in INPUT_FIELDS if field == name or field.startswith((name + "[", name + "."))), None)


def _subject(field: str) -> str:
    match = _INDEXED_FIELD.match(field)
    if match:
        index = int(match.group(2))
        return f"{'View' if match.group(1) == 'views' else 'Depth render'} {index} ({SLOT_NAMES[index]})"
    if field.startswith("cameras."):
        return f"cameras.json key {field[len('cameras.'):]}"
    return "cameras.json" if field == "cameras" else field


def error_sentence(error: ReconError) -> str:
    """The error's message with a subject when it has none, e.g. "View 2 (back) is not a PNG file"."""
    message = error.message
    if isinstance(error, FileValidationError) and error.field and message.split(" ", 1)[0] in _VERBS:
        return f"{_subject(error.field)} {message}"
    return message[:1].upper() + message[1:] if message.split(" ", 1)[0].isalpha() else message


class InputChecker:
    """Checks a page's uploads as the REST API would, remembering the answer per set of files."""

    def __init__(self, config: Settings, quotas: ClientQuotas, uploaded: Callable[..., object]) -> None:
        self.config = config
        self.quotas = quotas
        self.uploaded = uploaded  # raises FileValidationError for a path that is not an upload of this page
        self._checked: OrderedDict[tuple, dict[str, Note]] = OrderedDict()
        self._checked_lock = threading.Lock()

    def check_inputs(self, views: Sequence[str], depths: Sequence[str], cameras: str | None,
                     client: str = "unknown") -> dict[str, Note]:
        """The notes under the galleries and the cameras upload, from the REST API's own validation.

        Uploads are named by their content, so the notes for the same paths never change: they are kept, and
        only checks that decode files count against the client's CHECKS_PER_MINUTE."""
        key = (tuple(views), tuple(depths), cameras)
        with self._checked_lock:
            if key in self._checked:
                self._checked.move_to_end(key)
                return self._checked[key]
        try:
            self.uploaded(views, depths, cameras)
            if len(views) == len(depths) == VIEW_COUNT:
                self.quotas.count_event(client, "checks", CHECKS_PER_MINUTE)
        except ReconError as error:  # not an upload (FileValidationError naming it), or too many checks (429)
            return {**self._hints(), input_field(error.field) or "views": Note(ERROR, error_sentence(error))}
        notes = self._notes(views, depths, cameras)
        with self._checked_lock:
            self._checked[key] = notes
            if len(self._checked) > CHECK_MEMORY:
                self._checked.popitem(last=False)
        return notes

    @staticmethod
    def _hints() -> dict[str, Note]:
        return {
            "views": Note(IDLE, f"Add {VIEW_COUNT} views, one per slot: {SLOT_LIST}."),
            "depth_renders": Note(IDLE, f"Add {VIEW_COUNT} depth renders: the same slots, the same size as the views."),
            "cameras": Note(IDLE, "Optional: without it the default cube6 rig applies."),
        }

    def _notes(self, views: Sequence[str], depths: Sequence[str], cameras: str | None) -> dict[str, Note]:
        notes = self._hints()
        galleries = (("views", views, "views"), ("depth_renders", depths, "depth renders"))
        if any(len(files) != VIEW_COUNT for _, files, _ in galleries):
            for field, files, what in galleries:
                if len(files) == VIEW_COUNT:
                    notes[field] = Note(OK, f"{VIEW_COUNT} {what}, one per slot.")
                elif files:
                    notes[field] = Note(ERROR, f"Expected exactly {VIEW_COUNT} {what} ({SLOT_LIST}), got {len(files)}.")
            return notes
        try:
            upload = validate_upload_files(
                views, depths, cameras, max_file_bytes=self.config.max_file_bytes, max_pixels=self.config.max_pixels
            )
        except FileValidationError as error:
            notes[input_field(error.field) or "views"] = Note(ERROR, error_sentence(error))
            return notes
        notes["views"] = Note(OK, f"{VIEW_COUNT} views, {upload.width}×{upload.height}.")
        depth_text = f"{VIEW_COUNT} depth renders, {upload.depth_bits}-bit."
        notes["depth_renders"] = (
            Note(WARNING, f"{depth_text} {upload.warnings[0][:1].upper()}{upload.warnings[0][1:]}.")
            if upload.warnings else Note(OK, depth_text)
        )
        if cameras:
            notes["cameras"] = Note(OK, "Custom rig from cameras.json.")
        return notes

