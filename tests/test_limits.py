"""Per-client submission rate limit."""

import pytest

from worker.errors import ServiceBusyError
from worker.limits import RateLimiter


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_client_gets_its_quota_per_minute_then_a_429_with_retry_after():
    clock = Clock()
    limiter = RateLimiter(3, clock=clock)
    for _ in range(3):
        limiter.check("alice")
    with pytest.raises(ServiceBusyError) as refused:
        limiter.check("alice")
    assert refused.value.status_code == 429 and 1 <= refused.value.retry_after <= 61
    limiter.check("bob")
    clock.now += 60.5
    limiter.check("alice")


def test_zero_disables_the_limit():
    limiter = RateLimiter(0)
    for _ in range(100):
        limiter.check("alice")
