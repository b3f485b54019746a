"""Which torch device the engine runs on, decided once from the settings."""

from __future__ import annotations

from functools import cache

import torch

from .config import Settings


@cache
def _cuda_available() -> bool:
    return torch.cuda.is_available()


def select_device(config: Settings) -> str:
    if config.device == "auto":
        return "cuda" if _cuda_available() else "cpu"
    return config.device


def configure_torch(config: Settings) -> None:
    if config.torch_threads > 0:
        torch.set_num_threads(config.torch_threads)
