"""Stage timing and progress reporting for a model's run: every stage start is reported and timed.

Inside a long stage `tick` keeps progress flowing at a steady cadence without
flooding it; `progress` may raise JobCancelled, which simply propagates.
"""

from __future__ import annotations

import time
from typing import Callable

Progress = Callable[[float, str], None]
TICK_INTERVAL_S = 0.25


class Stages:
    """Reports each stage start to `progress`, times it, and throttles progress within a stage."""

    def __init__(self, progress: Progress, interval_s: float = TICK_INTERVAL_S) -> None:
        self.progress = progress
        self.interval_s = interval_s
        self.timings: dict[str, float] = {}
        self._name: str | None = None
        self._text = ""
        self._start = self._last = time.perf_counter()

    def start(self, name: str, fraction: float, text: str) -> None:
        self._close()
        self._name, self._text = name, text
        self._start = self._last = time.perf_counter()
        self.progress(fraction, text)

    def tick(self, fraction: float, text: str | None = None) -> None:
        """Report progress if `interval_s` has passed since the last report."""
        now = time.perf_counter()
        if now - self._last >= self.interval_s:
            self._last = now
            self.progress(fraction, text or self._text)

    def _close(self) -> None:
        if self._name is not None:
            self.timings[self._name] = round(time.perf_counter() - self._start, 3)

    def finish(self) -> dict[str, float]:
        self._close()
        self._name = None
        self.timings["total"] = round(sum(self.timings.values()), 3)
        return self.timings
