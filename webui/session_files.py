"""A browser session's temporary files, removed when the session ends.

Two kinds: copies of finished results (the job store may live outside the
folders Gradio serves, e.g. /data in Docker, so the viewer and the download
buttons get a copy in Gradio's upload folder) and the files the user uploaded.
Gradio names an upload by its content, so two sessions that upload the same
file share it: a file is removed only when no live session still holds it, and
never when it is one of the shipped examples (an upload of an example file is
the very file the Examples widget serves to everyone).
API clients have no session end, so their result copies are swept once they
are older than the retention setting, like the results themselves.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Iterable

SESSIONS_FOLDER = "multiview-studio-sessions"
SWEEP_INTERVAL_S = 60.0


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class SessionFiles:
    def __init__(self, upload_folder: Path, max_age_s: float, keep: Iterable[Path] = ()) -> None:
        self.upload_folder = upload_folder.resolve()
        self._kept = {(path.stat().st_size, _digest(path)) for path in keep}
        self.sessions_root = self.upload_folder / SESSIONS_FOLDER
        self.max_age_s = max_age_s
        self._holders: dict[Path, set[str]] = defaultdict(set)
        self._held: dict[str, set[Path]] = defaultdict(set)
        self._lock = threading.Lock()
        self._last_sweep = 0.0

    def _folder(self, session: str) -> Path:
        """Named by a digest, so that no client string ever becomes part of a path."""
        return self.sessions_root / hashlib.sha256(session.encode()).hexdigest()[:24]

    def copy_result(self, session: str, source: Path, name: str) -> Path:
        """Copy a JobService output into this session's folder; `name` is built from a stored job id."""
        self._sweep()
        folder = self._folder(session)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / name
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
            if not self._is_kept(path):
                path.unlink(missing_ok=True)
        shutil.rmtree(self._folder(session), ignore_errors=True)

    def _is_kept(self, path: Path) -> bool:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return True
        return any(size == kept_size for kept_size, _ in self._kept) and (size, _digest(path)) in self._kept

    def _sweep(self) -> None:
        now = time.time()
        if now - self._last_sweep < SWEEP_INTERVAL_S or not self.sessions_root.is_dir():
            return
        self._last_sweep = now
        for folder in self.sessions_root.iterdir():
            try:
                if now - folder.stat().st_mtime > self.max_age_s:
                    shutil.rmtree(folder, ignore_errors=True)
            except FileNotFoundError:
                continue
