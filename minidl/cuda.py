"""torch.cuda's two questions, for code written against PyTorch: is a GPU there, how many."""

from __future__ import annotations

from minidl import backend


def is_available() -> bool:
    """Whether CuPy imports and sees a GPU (the 'cuda' device works)."""
    return backend.gpu_available()


def device_count() -> int:
    """1 when a GPU is available (minidl uses the current one), else 0."""
    return int(backend.gpu_available())
