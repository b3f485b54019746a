"""Which device and threads the engine uses, and how its stages overlap."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numba
import numpy as np
import pytest
from numba import njit, prange

from worker.recon.devices import alongside

ROOT = Path(__file__).resolve().parents[2]


@njit(parallel=True)
def _parallel_sum(values: np.ndarray) -> float:
    total = 0.0
    for i in prange(len(values)):
        total += values[i]
    return total


@pytest.fixture
def loops_have_run() -> None:
    """A parallel loop has run, so Numba has chosen its threading layer (OpenMP here)."""
    _parallel_sum(np.ones(10))
    assert numba.threading_layer() in ("omp", "tbb")


def test_alongside_gives_the_result_when_waited_for(loops_have_run):
    wait = alongside(lambda: 6 * 7)
    assert wait() == 42 and wait() == 42


def test_alongside_raises_what_the_work_raised_when_waited_for(loops_have_run):
    def fails() -> None:
        raise ValueError("no atlas")

    wait = alongside(fails)  # nothing is raised yet: the job's thread goes on
    with pytest.raises(ValueError, match="no atlas"):
        wait()


def test_alongside_works_on_another_thread_while_the_caller_goes_on(loops_have_run):
    started, release = threading.Event(), threading.Event()

    def work() -> tuple[int, float]:
        started.set()
        release.wait(10)
        return threading.get_ident(), _parallel_sum(np.ones(1000))

    wait = alongside(work)
    assert started.wait(10)
    release.set()
    thread, total = wait()
    assert thread != threading.get_ident() and total == 1000.0


def run_script(script: str, **environment: str) -> list[str]:
    """What a fresh Python process prints, run with these environment variables."""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **environment})
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split()


PRELUDE = """
import threading
import numba
import numpy as np
from tests.recon.test_devices import _parallel_sum
from worker.recon.devices import alongside
_parallel_sum(np.ones(10))
"""


def test_alongside_work_takes_as_many_threads_as_its_caller():
    """Numba's count belongs to the thread that sets it: RECON_TORCH_THREADS=1 must hold for the work too."""
    script = PRELUDE + """
numba.set_num_threads(1)
print(numba.get_num_threads(), alongside(numba.get_num_threads)())
"""
    assert run_script(script, NUMBA_NUM_THREADS="2") == ["1", "1"]


def test_where_numbas_own_pool_runs_the_loops_work_runs_at_once():
    """Numba's own pool (no OpenMP, no TBB) aborts the process when two threads run parallel loops at once."""
    script = PRELUDE + """
print(numba.threading_layer(), alongside(threading.get_ident)() == threading.get_ident())
"""
    assert run_script(script, NUMBA_THREADING_LAYER="workqueue") == ["workqueue", "True"]
