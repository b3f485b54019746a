"""A finished job's files as Gradio serves them: one copy per job in Gradio's cache, shared by every session.

The job store's folder is a blocked path for Gradio (inputs live there), so the
viewer and the download buttons need the result inside Gradio's upload folder.
The copy is placed where Gradio's own cache would put it (a folder named by the
file's hash), so Gradio finds it there and adds no copy of its own; the
upload folder's age sweep removes it, and the next request makes it again.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path

from gradio.processing_utils import save_file_to_cache

MAX_REMEMBERED = 10_000


class ServedResults:
    def __init__(self, upload_folder: Path) -> None:
        self.folder = upload_folder
        self._served: dict[tuple[Path, str], Path] = {}
        self._lock = threading.Lock()

    def serve(self, source: Path, name: str) -> Path:
        """The served copy of `source` named `name` (built from a stored job id, never from client input)."""
        key = (source, name)
        with self._lock:
            served = self._served.get(key)
            if served is not None and served.is_file():
                return served
            self.folder.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".serving-", dir=self.folder))
            try:
                staged = staging / name
                try:
                    os.link(source, staged)
                except OSError:
                    shutil.copyfile(source, staged)
                served = Path(save_file_to_cache(staged, str(self.folder)))
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            if len(self._served) >= MAX_REMEMBERED:
                self._served.clear()
            self._served[key] = served
            return served
