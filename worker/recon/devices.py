"""Which torch device the engine runs on, the one choice every model and the worker share; how many threads its
loops take, and which of its stages overlap."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Callable, TypeVar

import numba
import numpy as np
import torch

# Numba's parallel loops run on OpenMP where it is installed (as torch's do), else on TBB or Numba's own pool
# (safe for one job at a time only): its default tries TBB first, which warns in every process where it is too old.
numba.config.THREADING_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]
THREADSAFE_LAYERS = ("omp", "tbb")

T = TypeVar("T")


@cache
def _cuda_available() -> bool:
    return torch.cuda.is_available()


def resolve_device(name: str = "auto") -> str:
    """`auto` means the GPU where there is one; any other name (`cpu`, `cuda:1`) is taken as given."""
    if name == "auto":
        return "cuda" if _cuda_available() else "cpu"
    return name


def set_threads(count: int) -> None:
    """Threads for torch's and Numba's loops; 0 leaves their own choice (one per core)."""
    if count > 0:
        torch.set_num_threads(count)
        numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))


def on_host(tensor: torch.Tensor, dtype: type = np.float32) -> np.ndarray:
    """The tensor as a C-contiguous NumPy array of `dtype` in host memory: what the compiled (Numba) loops take,
    which run on the CPU whatever the device. It shares memory with a CPU tensor of that dtype: copy to write."""
    return np.ascontiguousarray(tensor.detach().cpu().numpy(), dtype=dtype)


def alongside(work: Callable[[], T]) -> Callable[[], T]:
    """Starts `work` on a thread of its own and returns what waits for its result (or raises what it raised):
    how a stage overlaps the next ones that do not need it. Most stages keep one core busy at a time
    (simplification, the atlas, the filling's solver, marching cubes), so on a few cores the job takes less
    time. `work` must not report progress (the job's bar, and its cancellation, belong to the job's thread).
    Where Numba's loops cannot run from two threads at once (its own pool: neither OpenMP nor TBB is
    installed), or none has run yet, `work` runs now, and the waiting returns its result."""
    try:
        threadsafe = numba.threading_layer() in THREADSAFE_LAYERS
    except ValueError:  # no parallel loop has run in this process: the layer is not chosen yet
        threadsafe = False
    if not threadsafe:
        result = work()
        return lambda: result
    torch_threads, numba_threads = torch.get_num_threads(), numba.get_num_threads()

    def run() -> T:
        torch.set_num_threads(torch_threads)  # both counts belong to the thread that sets them (OpenMP's too)
        numba.set_num_threads(numba_threads)
        return work()

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alongside")
    future = pool.submit(run)
    pool.shutdown(wait=False)  # the thread ends with `work`
    return future.result
