"""Backend: which array module (NumPy or CuPy) holds an array, devices, dtypes, random generators.

This is the only module of minidl that imports CuPy, and it does so lazily: importing minidl
never imports CuPy and never touches a GPU. Every op asks the data for its module::

    xp = xp_of(a)          # numpy or cupy, whichever owns `a`

and then uses only calls that both modules share, so one code path serves CPU and GPU.

Devices are the strings ``'cpu'`` (NumPy) and ``'cuda'`` (CuPy, current GPU).
"""

from __future__ import annotations

import contextlib
import math
import types
from typing import Iterator, NamedTuple

import numpy as np

DEVICES = ("cpu", "cuda")

_cupy_module: types.ModuleType | None = None
_cupy_tried = False
_default_dtype = np.dtype(np.float32)
_rngs: dict[str, object] = {}
_seed: int | None = None
_transfers = 0  # device-to-host copies since start (see to_numpy)
_kernels: dict[tuple, object] = {}  # built ElementwiseKernels, keyed by their source


# --------------------------------------------------------------------------- array modules


def _cupy() -> types.ModuleType | None:
    """Import CuPy once, on first need; None when it is not installed or fails to import."""
    global _cupy_module, _cupy_tried
    if not _cupy_tried:
        _cupy_tried = True
        try:
            import cupy  # noqa: PLC0415  (lazy on purpose: importing minidl starts no device)

            _cupy_module = cupy
        except Exception:  # ImportError, or a CUDA library that fails to load
            _cupy_module = None
    return _cupy_module


def is_cupy_array(a) -> bool:
    """True when `a` is a CuPy ndarray (checked without importing CuPy)."""
    return type(a).__module__.startswith("cupy")


def xp_of(*arrays) -> types.ModuleType:
    """The array module (numpy or cupy) that owns the given arrays.

    Non-array arguments (Python scalars, None) are ignored. Mixing NumPy and CuPy arrays raises.
    """
    found = None
    for a in arrays:
        if a is None or isinstance(a, (int, float, bool, np.generic)):
            continue
        mod = "cuda" if is_cupy_array(a) else "cpu"
        if found is None:
            found = mod
        elif found != mod:
            raise RuntimeError("arrays live on different devices (cpu and cuda); move them first")
    return _cupy() if found == "cuda" else np


def device_of(a) -> str:
    """'cuda' for a CuPy array, 'cpu' otherwise."""
    return "cuda" if is_cupy_array(a) else "cpu"


def gpu_available() -> bool:
    """Whether CuPy imports and sees at least one CUDA device."""
    cp = _cupy()
    if cp is None:
        return False
    try:
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def check_device(device: str) -> str:
    """Validate a device name and return it; 'cuda' requires a usable GPU."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; valid devices: {', '.join(DEVICES)}")
    if device == "cuda" and not gpu_available():
        raise RuntimeError(
            "device 'cuda' requested but no GPU is usable: install the 'gpu' extra "
            "(pip install 'minidl[gpu]') on a machine with an NVIDIA GPU and CUDA driver"
        )
    return device


def xp_for(device: str) -> types.ModuleType:
    """The array module that serves `device`."""
    return _cupy() if check_device(device) == "cuda" else np


def to_device(a, device: str):
    """Return `a` as an array on `device` (no copy when it is already there)."""
    check_device(device)
    if device == device_of(a):
        return a
    if device == "cuda":
        return _cupy().asarray(a)
    return to_numpy(a)


def to_numpy(a) -> np.ndarray:
    """Return `a` as a NumPy array: a device-to-host copy for a GPU array. Every call is
    counted by `transfer_count()`, on either device."""
    global _transfers
    _transfers += 1
    if is_cupy_array(a):
        return a.get()
    return np.asarray(a)


def transfer_count() -> int:
    """Host reads made through `to_numpy` (and so `Tensor.item`/`.numpy`) so far: a debugging
    counter. On the GPU each one is a device-to-host copy that stalls the pipeline; the CPU
    counts the same calls, so a test on either backend can pin how often a loop reads back."""
    return _transfers


# --------------------------------------------------------------------------- dtypes


def get_default_dtype() -> np.dtype:
    """The floating dtype new tensors get from Python data and initialisers (float32)."""
    return _default_dtype


def set_default_dtype(dtype) -> None:
    """Set the default floating dtype (float32 or float64)."""
    global _default_dtype
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise ValueError(f"default dtype must be float32 or float64, got {dt}")
    _default_dtype = dt


@contextlib.contextmanager
def default_dtype(dtype) -> Iterator[None]:
    """Context manager: use `dtype` as the default inside the block, restore it after.

    >>> with default_dtype('float64'):
    ...     x = Tensor([1.0, 2.0])        # float64
    """
    old = _default_dtype
    set_default_dtype(dtype)
    try:
        yield
    finally:
        set_default_dtype(old)


# --------------------------------------------------------------------------- random numbers


def manual_seed(seed: int) -> None:
    """Seed minidl's random generators (one per device) so that runs are reproducible."""
    global _seed
    _seed = int(seed)
    _rngs.clear()


def get_rng(device: str = "cpu"):
    """The generator minidl draws from on `device` (numpy or cupy `Generator`).

    Created on first use from the seed of `manual_seed` (fresh entropy if never seeded).
    """
    if device not in _rngs:
        xp = xp_for(device)
        _rngs[device] = xp.random.default_rng(_seed)
    return _rngs[device]


def rng_state() -> dict:
    """A picklable snapshot of the CPU generator (saved in checkpoints)."""
    return {"seed": _seed, "cpu": get_rng("cpu").bit_generator.state}


def set_rng_state(state: dict) -> None:
    """Restore a snapshot from `rng_state`."""
    global _seed
    _seed = state.get("seed")
    get_rng("cpu").bit_generator.state = state["cpu"]


def scatter_add(target, index, values) -> None:
    """In place: target[index] += values, adding repeated indices up (numpy.add.at semantics)."""
    if is_cupy_array(target):
        import cupyx  # noqa: PLC0415

        cupyx.scatter_add(target, index, values)
    else:
        np.add.at(target, index, values)


# --------------------------------------------------------------------------- fused kernels


class KernelSource(NamedTuple):
    """The source of one elementwise GPU kernel, in CuPy's ElementwiseKernel terms.

    in_params / out_params: comma-separated "T name" lists (T is the one type placeholder: the
    dtype of the array arguments; a Python float passed for a T parameter is cast to T).
    body: CUDA C run once per element, with each input bound as a const T and each output as
    a T reference to its element. Kept as plain data so that a CPU test can compile exactly the
    text the GPU compiles (tests/test_kernels.py).
    """

    in_params: str
    out_params: str
    body: str
    name: str


# No fused multiply-add contraction: every product is rounded on its own, as NumPy rounds it,
# so a fused update gives the same numbers as the chain of NumPy operations it replaces. The
# kernels are memory-bound; FMA would save no time.
KERNEL_OPTIONS = ("--fmad=false",)


def elementwise_kernel(in_params: str, out_params: str, body: str, name: str):
    """The cupy.ElementwiseKernel of this source, built on first request and cached (CuPy
    compiles it on the first call, once per dtype and device). `elementwise_kernel(*source)`
    takes a KernelSource. Raises RuntimeError when CuPy is not importable."""
    key = (in_params, out_params, body, name)
    kernel = _kernels.get(key)
    if kernel is None:
        cp = _cupy()
        if cp is None:
            raise RuntimeError(
                f"GPU kernel {name!r} needs CuPy, which is not installed or fails to import "
                "(pip install 'minidl[gpu]')"
            )
        kernel = _kernels[key] = cp.ElementwiseKernel(in_params, out_params, body, name,
                                                      options=KERNEL_OPTIONS)
    return kernel


def synchronize(device: str = "cpu") -> None:
    """Wait until queued GPU work is done (for timing); nothing to do on the CPU."""
    if device == "cuda":
        _cupy().cuda.get_current_stream().synchronize()


def erf(a):
    """The error function elementwise, on a's device. NumPy has none, so the CPU applies
    math.erf per element (exact, and fast enough for activations of this size); the GPU uses
    cupyx.scipy.special.erf."""
    if is_cupy_array(a):
        import cupyx.scipy.special  # noqa: PLC0415  (lazy, like every CuPy import here)

        return cupyx.scipy.special.erf(a)
    return np.vectorize(math.erf, otypes=[a.dtype])(a)
