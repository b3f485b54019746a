"""What one client, and all clients together, may spend: submissions per minute, bytes per day, disk in total.

Per-client counters live in the job store's backend (SQLite or Redis), so every
web process and a restarted one share them. The windows are fixed (a minute, a
day): at a window's edge a client can spend up to twice its limit in a short
while, never more.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import Callable

from ..errors import ServiceBusyError, StorageError
from .store import JobStore

MINUTE_S = 60.0
DAY_S = 86400.0
MB = 1024 * 1024
RESCAN_S = 5.0


def _mb(nbytes: float) -> str:
    return f"{nbytes / MB:.0f} MB"


class ClientQuotas:
    def __init__(self, store: JobStore, submissions_per_minute: int, bytes_per_day: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.submissions_per_minute = submissions_per_minute
        self.bytes_per_day = bytes_per_day
        self.clock = clock

    def count_submission(self, client: str) -> None:
        """One submission for `client`, or ServiceBusyError (429) past the per-minute limit."""
        self.count_event(client, "submissions", self.submissions_per_minute)

    def count_event(self, client: str, kind: str, per_minute: int) -> None:
        """One costly event of `kind` for `client`, or ServiceBusyError (429) past `per_minute`."""
        wait = self._take(f"{kind}:{client}", 1, per_minute, MINUTE_S)
        if wait is not None:
            raise ServiceBusyError(f"too many {kind}: at most {per_minute} per minute per client; "
                                   f"try again in {wait} s", retry_after=wait, status_code=429)

    def count_bytes(self, client: str, nbytes: int) -> None:
        """`nbytes` about to be written for `client`, or ServiceBusyError (429) past its daily allowance."""
        wait = self._take(f"bytes:{client}", nbytes, self.bytes_per_day, DAY_S)
        if wait is not None:
            raise ServiceBusyError(
                f"this upload ({_mb(nbytes)}) would pass the {_mb(self.bytes_per_day)} a client may upload per day; "
                f"try again in {wait // 3600} h {wait % 3600 // 60} min",
                retry_after=wait, status_code=429,
            )

    def _take(self, key: str, amount: int, limit: int, window_s: float) -> int | None:
        """None when taken (a limit of 0 or less means none), else whole seconds to wait."""
        if limit <= 0:
            return None
        wait = self.store.take(key, amount, limit, window_s, self.clock())
        return None if wait is None else max(1, int(wait) + 1)


def folder_size(folder: Path) -> int:
    """Bytes of the regular files under `folder` (links not followed); files that vanish while walking count 0."""
    total = 0
    stack = [folder]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue
    return total


class DiskBudget:
    """A cap on one folder's size, and a reserve of free space on its disk, checked before anything is written.

    The folder is walked at most every RESCAN_S seconds; bytes reserved in between are added to the last walk.
    """

    def __init__(self, folder: Path, quota_bytes: int, min_free_bytes: int, what: str) -> None:
        self.folder = folder
        self.quota_bytes = quota_bytes
        self.min_free_bytes = min_free_bytes
        self.what = what
        self._lock = threading.Lock()
        self._used = 0
        self._scanned_at = -RESCAN_S

    def reserve(self, nbytes: int) -> None:
        """Count `nbytes` as written, or raise StorageError (507) when the cap or the free-space reserve forbids."""
        with self._lock:
            now = time.monotonic()
            if now - self._scanned_at >= RESCAN_S:
                self._used, self._scanned_at = folder_size(self.folder), now
            if self.quota_bytes > 0 and self._used + nbytes > self.quota_bytes:
                raise StorageError(
                    f"the server's space for {self.what} is full ({_mb(self._used)} of {_mb(self.quota_bytes)}); "
                    "try again later"
                )
            if self.min_free_bytes > 0 and _free_bytes(self.folder) - nbytes < self.min_free_bytes:
                raise StorageError(f"the server's disk is nearly full, so it takes no more {self.what}; "
                                   "try again later")
            self._used += nbytes


def _free_bytes(folder: Path) -> int:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free
