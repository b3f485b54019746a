"""A completed job's result in the format a client asks for: made from the GLB on first request, kept with the job.

A format is built once: requests that arrive while it is being built wait for
it, and readers only ever see a whole file (it is written aside, then renamed;
another web process building the same file at once only wastes the work). Builds
take CPU in the web process, so at most BUILDS_AT_ONCE run together (a request
past that is told to retry), and each counts against the jobs' disk budget
before a byte is written.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from pathlib import Path

from ..errors import JobNotFoundError, ReconError, ServiceBusyError, StorageError
from .files import RESULT_NAMES, JobFiles
from .limits import DiskBudget

FORMATS = tuple(RESULT_NAMES)  # glb first: the default

BUILDS_AT_ONCE = 2
WAIT_FOR_BUILD_S = 60.0  # for a file another request is building: the slowest, OBJ of 200,000 triangles, takes 3-8 s
RETRY_AFTER_S = 10
# Bytes reserved per build, as a multiple of the GLB's size: the largest measured is STL at 1.9x (Spot, colours).
SIZE_FACTOR = 3


def require_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ReconError(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}", field="format")
    return fmt


class ResultFormats:
    def __init__(self, disk: DiskBudget, builds_at_once: int = BUILDS_AT_ONCE,
                 wait_for_build_s: float = WAIT_FOR_BUILD_S) -> None:
        self.disk = disk
        self.builds_at_once = builds_at_once
        self.wait_for_build_s = wait_for_build_s
        self._changed = threading.Condition()
        self._building: set[Path] = set()

    def path(self, files: JobFiles, fmt: str) -> Path:
        """The completed job's result as `fmt`, built now if it is not stored yet.

        A request for a file being built waits for it; one that would start a build past BUILDS_AT_ONCE is
        refused at once (503), so no request thread waits for a slot."""
        target = files.result_as(require_format(fmt))
        if fmt == "glb" or target.is_file():
            return target
        with self._changed:
            if not self._changed.wait_for(lambda: target not in self._building, timeout=self.wait_for_build_s):
                raise _busy(fmt)
            if target.is_file():
                return target
            if len(self._building) >= self.builds_at_once:
                raise _busy(fmt)
            self._building.add(target)
        try:
            self._build(files.result, fmt, target)
        finally:
            with self._changed:
                self._building.discard(target)
                self._changed.notify_all()
        return target

    def _build(self, glb: Path, fmt: str, target: Path) -> None:
        aside = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
        try:
            self.disk.reserve(SIZE_FACTOR * glb.stat().st_size)
            from ..recon.exports import write_export  # trimesh and usd-core load only when a format is first asked for

            write_export(glb, fmt, aside)
            os.replace(aside, target)
        except FileNotFoundError:
            raise JobNotFoundError("the job's result is no longer stored (it may have expired)", field="job_id") from None
        except OSError as exc:
            raise StorageError(f"the server could not store the {fmt} file ({exc.strerror or exc}); "
                               "try again later") from exc
        finally:
            with contextlib.suppress(OSError):
                aside.unlink()


def _busy(fmt: str) -> ServiceBusyError:
    return ServiceBusyError(f"the server is busy converting other results; try the {fmt} again in a few seconds",
                            retry_after=RETRY_AFTER_S, status_code=503)
