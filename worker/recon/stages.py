"""Stage timing and progress reporting for a model's run: every stage start is reported and timed.

Inside a long stage `tick` (an absolute fraction) or `within` (the share of the
stage done) keeps progress flowing at a steady cadence without flooding it;
`progress` may raise JobCancelled, which simply propagates.
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
        self._span = (0.0, 0.0)
        self._start = self._last = time.perf_counter()

    def start(self, name: str, fraction: float, text: str, until: float | None = None) -> None:
        """Stage `name` begins at `fraction` of the progress bar (and ends at `until`, for `within`)."""
        self._close()
        self._name, self._text = name, text
        self._span = (fraction, fraction if until is None else until)
        self._start = self._last = time.perf_counter()
        self.progress(fraction, text)

    def tick(self, fraction: float, text: str | None = None) -> None:
        """Report progress if `interval_s` has passed since the last report."""
        now = time.perf_counter()
        if now - self._last >= self.interval_s:
            self._last = now
            self.progress(fraction, text or self._text)

    def within(self, done: float) -> None:
        """`done` (0..1) of the current stage's span, throttled like `tick`."""
        self.tick(self._span[0] + (self._span[1] - self._span[0]) * min(done, 1.0))

    def _close(self) -> None:
        if self._name is not None:
            self.timings[self._name] = round(time.perf_counter() - self._start, 3)

    def finish(self) -> dict[str, float]:
        self._close()
        self._name = None
        self.timings["total"] = round(sum(self.timings.values()), 3)
        return self.timings
