"""Which torch device the engine runs on: the one choice every model and the worker share."""

from __future__ import annotations

from functools import cache

import numpy as np
import torch


@cache
def _cuda_available() -> bool:
    return torch.cuda.is_available()


def resolve_device(name: str = "auto") -> str:
    """`auto` means the GPU where there is one; any other name (`cpu`, `cuda:1`) is taken as given."""
    if name == "auto":
        return "cuda" if _cuda_available() else "cpu"
    return name


def set_threads(count: int) -> None:
    """0 leaves torch's own choice."""
    if count > 0:
        torch.set_num_threads(count)


def on_host(tensor: torch.Tensor, dtype: type = np.float32) -> np.ndarray:
    """The tensor as a C-contiguous NumPy array of `dtype` in host memory: what the compiled (Numba) loops take,
    which run on the CPU whatever the device."""
    return np.ascontiguousarray(tensor.detach().cpu().numpy(), dtype=dtype)
