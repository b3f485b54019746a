"""A browser session's temporary files, removed when the session ends.

Two kinds: copies of finished results (the job store may live outside the
folders Gradio serves, e.g. /data in Docker, so the viewer and the download
buttons get a copy in Gradio's upload folder) and the files the user uploaded.
Gradio names an upload by its content, so two sessions that upload the same
file share it: a file is removed only when no live session still holds it.
Results themselves stay in the job store and follow the retention setting.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
from collections import defaultdict
from pathlib import Path
from typing import Iterable

SESSIONS_FOLDER = "multiview-studio-sessions"


class SessionFiles:
    def __init__(self, upload_folder: Path) -> None:
        self.upload_folder = upload_folder.resolve()
        self.sessions_root = self.upload_folder / SESSIONS_FOLDER
        self._holders: dict[Path, set[str]] = defaultdict(set)
        self._held: dict[str, set[Path]] = defaultdict(set)
        self._lock = threading.Lock()

    def folder(self, session: str) -> Path:
        """A folder of this session's own, named by a digest so that no client string becomes a path."""
        folder = self.sessions_root / hashlib.sha256(session.encode()).hexdigest()[:24]
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def copy_result(self, session: str, source: Path, name: str) -> Path:
        target = self.folder(session) / name
        shutil.copyfile(source, target)
        return target

    def hold(self, session: str, paths: Iterable[str | Path]) -> None:
        """Remember uploads (files in Gradio's upload folder) that this session uses."""
        with self._lock:
            for raw in paths:
                path = Path(raw).resolve()
                if path.is_relative_to(self.upload_folder) and not path.is_relative_to(self.sessions_root):
                    self._holders[path].add(session)
                    self._held[session].add(path)

    def discard(self, session: str) -> None:
        with self._lock:
            orphans = []
            for path in self._held.pop(session, set()):
                holders = self._holders[path]
                holders.discard(session)
                if not holders:
                    del self._holders[path]
                    orphans.append(path)
        for path in orphans:
            path.unlink(missing_ok=True)
        shutil.rmtree(self.sessions_root / hashlib.sha256(session.encode()).hexdigest()[:24], ignore_errors=True)
