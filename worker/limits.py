"""Per-client submission rate limit: a sliding window kept in the web process."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque

from .errors import ServiceBusyError

WINDOW_S = 60.0


class RateLimiter:
    def __init__(self, per_minute: int, clock=time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._events: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def check(self, client: str) -> None:
        """Count one submission for `client`, or raise ServiceBusyError (429) past the limit."""
        if self.per_minute <= 0:
            return
        now = self.clock()
        with self._lock:
            events = self._events[client]
            while events and events[0] <= now - WINDOW_S:
                events.popleft()
            if len(events) >= self.per_minute:
                retry_after = max(1, int(events[0] + WINDOW_S - now) + 1)
                raise ServiceBusyError(
                    f"too many submissions: at most {self.per_minute} per minute per client; "
                    f"try again in {retry_after} s",
                    retry_after=retry_after, status_code=429,
                )
            events.append(now)
            if len(self._events) > 10_000:
                self._forget_idle(now)

    def _forget_idle(self, now: float) -> None:
        for client in [c for c, events in self._events.items() if not events or events[-1] <= now - WINDOW_S]:
            del self._events[client]
