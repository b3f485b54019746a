"""A model's run as a table of stages: what the progress bar says, and how much of it each stage owns.

Each model declares its stages once (name, text, weight); the weights are each
stage's rough share of the run's time, so the bar advances evenly and a page can
estimate the time left. Inside a long stage `within(done)` reports the share done
at a steady cadence without flooding the store. `progress` may raise
JobCancelled, which simply propagates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

Progress = Callable[[float, str], None]  # the job's bar: fraction of the whole run (0..1), stage text
Done = Callable[[float], None]  # the one callback inside a stage: share (0..1) of the current stage done
TICK_INTERVAL_S = 0.25


@dataclass(frozen=True)
class Stage:
    name: str
    text: str
    weight: float  # share of the bar; the table's weights are normalised to sum to 1


def spans(table: Sequence[Stage]) -> dict[str, tuple[float, float]]:
    """Each stage's (start, end) fraction of the bar; a stage that is skipped leaves its span unused."""
    total = sum(stage.weight for stage in table)
    spans, start = {}, 0.0
    for stage in table:
        end = start + stage.weight / total
        spans[stage.name] = (round(start, 6), round(end, 6))
        start = end
    return spans


class Stages:
    """Reports each stage start to `progress`, times it, and throttles progress within a stage."""

    def __init__(self, progress: Progress, table: Sequence[Stage], interval_s: float | None = None) -> None:
        self.progress = progress
        self.interval_s = TICK_INTERVAL_S if interval_s is None else interval_s
        self.texts = {stage.name: stage.text for stage in table}
        self.spans = spans(table)
        self.timings: dict[str, float] = {}
        self._name: str | None = None
        self._span = (0.0, 0.0)
        self._start = self._last = time.perf_counter()

    def start(self, name: str) -> None:
        self._close()
        self._name, self._span = name, self.spans[name]
        self._start = self._last = time.perf_counter()
        self.progress(self._span[0], self.texts[name])

    def within(self, done: float) -> None:
        """`done` (0..1) of the current stage, reported if `interval_s` has passed since the last report."""
        now = time.perf_counter()
        if now - self._last >= self.interval_s:
            self._last = now
            start, end = self._span
            # min: start + (end - start) can round past end, above where the next stage starts
            self.progress(min(start + (end - start) * max(done, 0.0), end), self.texts[self._name])

    def views(self, count: int) -> Callable[[float], None]:
        """`within` for work counted in views: `views_done` of `count`."""
        return lambda views_done: self.within(views_done / count)

    def _close(self) -> None:
        if self._name is not None:
            self.timings[self._name] = round(time.perf_counter() - self._start, 3)

    def finish(self) -> dict[str, float]:
        self._close()
        self._name = None
        self.timings["total"] = round(sum(self.timings.values()), 3)
        return self.timings
