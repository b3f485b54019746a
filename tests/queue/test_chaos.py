"""A short chaos run: worker SIGKILLs, a Redis restart and cancellations, and still no job lost or doubled."""

from bench.chaos import run_chaos


def test_every_job_ends_in_one_honest_terminal_state(tmp_path):
    result = run_chaos(tmp_path, jobs=8, pace_s=0.5, kill_every_s=4.0, cancel_fraction=0.2, seed=3)
    assert result.problems == []
    assert len(result.jobs) == 8 and result.worker_kills >= 1 and result.redis_restarts == 1
    assert result.counts().get("completed", 0) >= 1
