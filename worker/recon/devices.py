"""Which torch device the engine runs on: the one choice every model and the worker share."""

from __future__ import annotations

from functools import cache

import numba
import numpy as np
import torch

# Numba's parallel loops run on OpenMP where it is installed (as torch's do), else on TBB or Numba's own pool
# (safe for one job at a time only): its default tries TBB first, which warns in every process where it is too old.
numba.config.THREADING_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]


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
