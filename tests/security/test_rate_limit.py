"""The submission rate limit: a stranger must not buy more submissions by naming another address or by
waiting for a restart. No worker runs (RECON_EMBEDDED_WORKERS=0), so the valid jobs just stay queued."""

from __future__ import annotations

import time

import pytest

from tests.security.live import FAST_FUSION, Server, example_files

LIMIT = 3
FORGED = [f"203.0.113.{index}" for index in range(11, 17)]  # TEST-NET-3: addresses no test machine has
SERVERS = ("rate-limit",)  # RECON_RATE_LIMIT_PER_MINUTE=3, RECON_EMBEDDED_WORKERS=0
FORGED_NEEDS_S = 12  # six submissions
RESTART_NEEDS_S = 35  # four submissions, a SIGKILL and a restart (about 10-20 s on 2 cores)


@pytest.fixture(scope="module")
def app(servers) -> Server:
    server = servers.get("rate-limit")
    assert server.settings["RECON_RATE_LIMIT_PER_MINUTE"] == str(LIMIT)
    return server


def within_one_window(needed_s: float) -> None:
    """The counters use fixed one-minute windows (worker/jobs/limits.py): wait, if need be, for the next one, so
    that the `needed_s` a test takes fit in one."""
    left = 60 - time.time() % 60
    if left < needed_s:
        time.sleep(left + 0.1)


def test_a_forged_x_forwarded_for_buys_no_extra_submissions(app):
    """Attack: six valid POST /jobs within a minute, each claiming another client address in X-Forwarded-For,
    against a limit of 3 per minute. Must hold: at least 3 are refused with 429 (forwarded headers count only
    from RECON_FORWARDED_ALLOW_IPS, empty by default), and the web log never records a forged address."""
    within_one_window(FORGED_NEEDS_S)
    statuses = [app.submit(example_files(), options=FAST_FUSION, headers={"X-Forwarded-For": address}).status_code
                for address in FORGED]
    assert set(statuses) <= {200, 429}, statuses
    assert statuses.count(429) >= len(FORGED) - LIMIT, f"answers to six forged addresses: {statuses}"
    logged = [address for address in FORGED if address in app.log()]
    assert not logged, f"the web log records the forged addresses {logged}"
    app.assert_responsive()


def test_the_count_survives_a_restart_within_the_minute(app):
    """Attack: use up the limit, then wait for (or cause) a restart of the web process, whose in-memory counters
    would start from zero. Must hold: a new server on the same RECON_DATA_DIR, started within the same minute
    after the old one was killed, still answers the next submission with 429 (the counters live in the job
    store's backend)."""
    within_one_window(RESTART_NEEDS_S)
    first = time.monotonic()
    answers = []
    for _ in range(LIMIT + 1):
        answers.append(app.submit(example_files(), options=FAST_FUSION).status_code)
        if answers[-1] == 429:
            break
    assert answers[-1] == 429, f"{len(answers)} submissions within a minute, limit {LIMIT}: {answers}"

    app.restart(graceful=False)  # SIGKILL: nothing gets a chance to save in-memory counters
    response = app.submit(example_files(), options=FAST_FUSION)
    elapsed = time.monotonic() - first
    assert time.time() % 60 >= elapsed - 1, f"the restart took too long ({elapsed:.0f} s) to stay in one window"
    assert response.status_code == 429, f"after a restart {elapsed:.0f} s later the submission got " \
                                        f"{response.status_code} {response.text[:200]}"
    app.assert_responsive()
