"""The job record's identifiers: what counts as a job id before it touches storage or the filesystem."""

import pytest

from worker.jobs.record import is_job_id, new_job_id


def test_a_new_job_id_is_a_job_id():
    assert is_job_id(new_job_id())


@pytest.mark.parametrize("value", ["qb4hp7ur\n", "qb4hp7u", "qb4hp7urx", "QB4HP7UR", "../../..", "qb4hp7u/", "", None])
def test_anything_else_is_not(value):
    assert not is_job_id(value)
