"""What a client, and all clients together, may spend: counters in the job store's backend, disk budgets."""

import pytest

from worker.errors import ServiceBusyError, StorageError
from worker.jobs.limits import MB, ClientQuotas, DiskBudget, folder_size


class Clock:
    def __init__(self):
        self.now = 1_000_020.0

    def __call__(self):
        return self.now


def test_a_client_gets_its_submissions_per_minute_then_a_429_with_retry_after(store):
    clock = Clock()
    quotas = ClientQuotas(store, submissions_per_minute=3, bytes_per_day=0, clock=clock)
    for _ in range(3):
        quotas.count_submission("alice")
    with pytest.raises(ServiceBusyError) as refused:
        quotas.count_submission("alice")
    assert refused.value.status_code == 429 and 1 <= refused.value.retry_after <= 61
    quotas.count_submission("bob")
    clock.now += 60
    quotas.count_submission("alice")


def test_counters_are_shared_by_every_process_that_uses_the_same_store(store):
    """A second web process (or a restarted one) sees the submissions the first one counted."""
    clock = Clock()
    ClientQuotas(store, 2, 0, clock=clock).count_submission("alice")
    ClientQuotas(store, 2, 0, clock=clock).count_submission("alice")
    with pytest.raises(ServiceBusyError):
        ClientQuotas(store, 2, 0, clock=clock).count_submission("alice")


def test_bytes_per_day_are_refused_before_they_are_written_and_a_refusal_costs_nothing(store):
    clock = Clock()
    quotas = ClientQuotas(store, 0, bytes_per_day=10 * MB, clock=clock)
    quotas.count_bytes("alice", 6 * MB)
    with pytest.raises(ServiceBusyError) as refused:
        quotas.count_bytes("alice", 6 * MB)
    assert refused.value.status_code == 429 and "10 MB" in refused.value.message
    quotas.count_bytes("alice", 4 * MB)
    clock.now += 86400
    quotas.count_bytes("alice", 10 * MB)


def test_zero_disables_a_limit(store):
    quotas = ClientQuotas(store, 0, 0)
    for _ in range(100):
        quotas.count_submission("alice")
        quotas.count_bytes("alice", 100 * MB)


def test_a_disk_budget_refuses_past_its_cap_with_a_507(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_bytes(b"x" * 3000)
    budget = DiskBudget(tmp_path, quota_bytes=5000, min_free_bytes=0, what="uploads")
    budget.reserve(1500)
    with pytest.raises(StorageError) as refused:
        budget.reserve(1000)
    assert refused.value.status_code == 507 and "uploads" in refused.value.message


def test_a_disk_budget_keeps_free_space_in_reserve(tmp_path):
    budget = DiskBudget(tmp_path, quota_bytes=0, min_free_bytes=1 << 62, what="jobs")
    with pytest.raises(StorageError, match="nearly full"):
        budget.reserve(1)


def test_folder_size_counts_regular_files_and_not_what_links_point_to(tmp_path):
    (tmp_path / "f").write_bytes(b"x" * 100)
    (tmp_path / "link").symlink_to("/etc/passwd")
    assert folder_size(tmp_path) == 100
