"""Tensor factories with PyTorch's names: arange, linspace, full, eye, zeros_like, ones_like,
full_like. Each takes dtype, device and requires_grad keywords (zeros, ones, rand, randn live
in minidl.autograd). Floating results get the default dtype unless told otherwise; arange of
integers gives int64, as torch."""

from __future__ import annotations

import numpy as np

from minidl import backend
from minidl.autograd import Tensor


def _make(arr, requires_grad: bool) -> Tensor:
    return Tensor(arr, requires_grad=requires_grad)


def _float(dtype):
    return np.dtype(dtype or backend.get_default_dtype())


def arange(start, end=None, step=1, *, dtype=None, device: str = "cpu",
           requires_grad: bool = False) -> Tensor:
    """[start, start + step, ...) up to end (exclusive); arange(n) is 0..n-1."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    integral = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
    dtype = np.dtype(dtype) if dtype else (np.dtype(np.int64) if integral else _float(None))
    return _make(backend.xp_for(device).arange(start, end, step, dtype=dtype), requires_grad)


def linspace(start, end, steps: int, *, dtype=None, device: str = "cpu",
             requires_grad: bool = False) -> Tensor:
    """`steps` evenly spaced values from start to end, both included."""
    if steps < 0:
        raise ValueError(f"linspace: steps must be >= 0, got {steps}")
    arr = backend.xp_for(device).linspace(start, end, steps, dtype=_float(dtype))
    return _make(arr, requires_grad)


def full(size, fill_value, *, dtype=None, device: str = "cpu",
         requires_grad: bool = False) -> Tensor:
    """A tensor of `size` filled with fill_value (floats get the default dtype)."""
    if dtype is None:
        dtype = _float(None) if isinstance(fill_value, float) else np.asarray(fill_value).dtype
    size = (size,) if isinstance(size, (int, np.integer)) else tuple(size)
    return _make(backend.xp_for(device).full(size, fill_value, dtype=dtype), requires_grad)


def eye(n: int, m: int | None = None, *, dtype=None, device: str = "cpu",
        requires_grad: bool = False) -> Tensor:
    """The n x m identity (m defaults to n)."""
    return _make(backend.xp_for(device).eye(n, m, dtype=_float(dtype)), requires_grad)


def full_like(a, fill_value, *, dtype=None, requires_grad: bool = False) -> Tensor:
    """A tensor of a's shape, device and dtype (unless given) filled with fill_value."""
    data = a.data if isinstance(a, Tensor) else a
    arr = backend.xp_of(data).full(data.shape, fill_value, dtype=dtype or data.dtype)
    return _make(arr, requires_grad)


def zeros_like(a, *, dtype=None, requires_grad: bool = False) -> Tensor:
    """Zeros of a's shape, device and dtype (unless given)."""
    return full_like(a, 0, dtype=dtype, requires_grad=requires_grad)


def ones_like(a, *, dtype=None, requires_grad: bool = False) -> Tensor:
    """Ones of a's shape, device and dtype (unless given)."""
    return full_like(a, 1, dtype=dtype, requires_grad=requires_grad)
