"""A strict CuPy stand-in for the tests: CuPy's API surface and rules, computed by NumPy.

The test suite runs its `cuda` half on this module when no GPU is usable (tests/conftest.py
registers it with `minidl.backend.set_cuda_backend`), so the GPU code path runs on every
change. It is as strict as CuPy, and stricter where CuPy would merely be slow:

* `ndarray` is its own type wrapping a NumPy array, not a NumPy subclass.
* Implicit conversion to NumPy raises TypeError (`np.asarray(a)`, `a.__array__()`), as
  CuPy's does; NumPy ufuncs and functions refuse device arrays (CuPy would dispatch them,
  but minidl's rule is "ask the data for its module").
* NumPy arrays are refused as operands of device operations (TypeError, as CuPy).
  `asarray`/`array` (host to device) and index arrays are accepted, as in CuPy.
* Reductions return 0-d device arrays, never Python or NumPy scalars.
* `flags` has c_contiguous, f_contiguous and owndata only (no `writeable`).
* Only names real CuPy has (`cupy_names.txt`, the public names of CuPy 14.2) exist.
* Every device-to-host read (`get`, `asnumpy`, `item`, `tolist`, `int`/`float`/`bool`/
  `complex` of a 0-d array, repr, pickling) is counted in `host_reads()` and raises
  `cupyx.DeviceSynchronized` inside `cupyx.allow_synchronize(False)`. Real CuPy allows
  `int(a)`, `float(a)` and `bool(a)` on a one-element array: a synchronizing read.
* `ElementwiseKernel` bodies are compiled by g++ (tests/cpu_kernels.py) and run per element.

Random streams of `cupy.random` differ from NumPy's (as real CuPy's do) and from real
CuPy's.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import types
from pathlib import Path

import numpy as np

_CUPY_NAMES = frozenset(Path(__file__).with_name("cupy_names.txt").read_text().split())
_reads = 0
_writes = 0
_sync_allowed = True


class DeviceSynchronized(RuntimeError):
    """Raised by a host read inside `allow_synchronize(False)` (cupyx.DeviceSynchronized)."""


def host_reads() -> int:
    """Device-to-host reads made so far."""
    return _reads


def host_writes() -> int:
    """Host-to-device copies (`asarray`/`array` of host data) made so far."""
    return _writes


def _from_host(a, **kwargs) -> ndarray:
    global _writes
    _writes += 1
    return ndarray(np.array(_operand_host(a), copy=True, **kwargs))


def _read(a: np.ndarray) -> np.ndarray:
    global _reads
    if not _sync_allowed:
        raise DeviceSynchronized("device synchronization (a host read) inside "
                                 "cupyx.allow_synchronize(False)")
    _reads += 1
    return a


@contextlib.contextmanager
def allow_synchronize(allow: bool):
    """cupyx.allow_synchronize: with False, any host read in the block raises."""
    global _sync_allowed
    old, _sync_allowed = _sync_allowed, bool(allow)
    try:
        yield
    finally:
        _sync_allowed = old


# --------------------------------------------------------------------------- operands


def _operand(x):
    """The NumPy value behind a device operand; NumPy arrays are refused, as CuPy does."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, np.ndarray):
        raise TypeError(f"Unsupported type {type(x)}: a NumPy array cannot be an operand of a "
                        "device operation (move it with cupy.asarray first)")
    if isinstance(x, (list, tuple)):
        return type(x)(_operand(v) for v in x)
    return x


def _index(key):
    """An index: device arrays unwrapped; NumPy index arrays accepted (CuPy copies them)."""
    if isinstance(key, ndarray):
        return key._a
    if isinstance(key, tuple):
        return tuple(_index(k) for k in key)
    return key


def _wrap(r):
    if isinstance(r, np.ndarray):
        return ndarray(r)
    if isinstance(r, np.generic):
        return ndarray(np.asarray(r))  # reductions and 0-d results stay on the device
    if isinstance(r, tuple):
        return tuple(_wrap(v) for v in r)
    if isinstance(r, list):
        return [_wrap(v) for v in r]
    return r


def _call(fn, args, kwargs):
    out = kwargs.get("out")
    kwargs = {k: (v._a if isinstance(v, ndarray) else _operand(v)) for k, v in kwargs.items()}
    r = fn(*(_operand(a) for a in args), **kwargs)
    return out if isinstance(out, ndarray) else _wrap(r)


class Flags:
    """CuPy's flags: c_contiguous, f_contiguous, owndata (and no `writeable`)."""

    __slots__ = ("c_contiguous", "f_contiguous", "owndata")

    def __init__(self, a: np.ndarray):
        self.c_contiguous = a.flags.c_contiguous
        self.f_contiguous = a.flags.f_contiguous
        self.owndata = a.flags.owndata


class Device:
    """cupy.cuda.Device: one device, id 0."""

    def __init__(self, device=0):
        self.id = int(device)

    def use(self):
        return None

    def synchronize(self):
        return None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __repr__(self):
        return f"<CUDA Device {self.id}>"


# --------------------------------------------------------------------------- ndarray


def _method(name):
    def method(self, *args, **kwargs):
        return _call(getattr(self._a, name), args, kwargs)

    method.__name__ = name
    return method


def _binary(name):
    def op(self, other):
        if isinstance(other, np.ndarray):
            raise TypeError(f"Unsupported type {type(other)}: NumPy array operand of a "
                            f"device {name}")
        if not isinstance(other, (ndarray, int, float, complex, bool, np.generic)):
            return NotImplemented
        r = getattr(self._a, name)(_operand(other))
        if r is NotImplemented:
            return r
        return self if name.startswith("__i") else _wrap(r)

    op.__name__ = name
    return op


def _unary(name):
    def op(self):
        return _wrap(getattr(self._a, name)())

    op.__name__ = name
    return op


class ndarray:  # noqa: N801  (CuPy's name)
    """A device array: a NumPy array behind CuPy's interface and rules."""

    __slots__ = ("_a",)
    __array_ufunc__ = None  # NumPy ufuncs refuse device arrays; NumPy operators defer to ours
    __hash__ = None

    def __init__(self, a: np.ndarray):
        if not isinstance(a, np.ndarray):
            raise TypeError("cupy stand-in ndarray wraps a numpy array")
        self._a = a

    def __array__(self, *args, **kwargs):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use "
                        "`.get()` to construct a NumPy array explicitly.")

    def __array_function__(self, func, types, args, kwargs):
        raise TypeError(f"numpy.{func.__name__} called on a device array; use the array "
                        "module of the data (cupy)")

    # attributes
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    strides = property(lambda self: self._a.strides)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    T = property(lambda self: ndarray(self._a.T))
    mT = property(lambda self: ndarray(np.swapaxes(self._a, -1, -2)))
    flags = property(lambda self: Flags(self._a))
    device = property(lambda self: Device(0))

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (_wrap(v) for v in self._a)

    def __getitem__(self, key):
        return _wrap(self._a[_index(key)])

    def __setitem__(self, key, value):
        self._a[_index(key)] = value._a if isinstance(value, ndarray) else value

    # host reads
    def get(self, stream=None, order="C", out=None):
        """Device-to-host copy (a counted read)."""
        return np.array(_read(self._a), order=order)

    def item(self, *args):
        return _read(self._a).item(*args)

    def tolist(self):
        return _read(self._a).tolist()

    def _scalar(self, kind):
        if self._a.size != 1:
            raise TypeError(f"only size-1 arrays can be converted to Python {kind.__name__}")
        return kind(_read(self._a).reshape(()).item())

    def __int__(self):
        return self._scalar(int)

    def __float__(self):
        return self._scalar(float)

    def __complex__(self):
        return self._scalar(complex)

    def __bool__(self):
        if self._a.size != 1:
            raise ValueError("The truth value of an array with more than one element is "
                             "ambiguous.")
        return self._scalar(bool)

    def __repr__(self):
        return repr(_read(self._a)).replace("array(", "array(", 1)

    __str__ = __repr__

    def __reduce__(self):
        return (asarray, (self.get(),))

    def __copy__(self):
        return ndarray(self._a.copy())

    def __deepcopy__(self, memo):
        return ndarray(self._a.copy())

    def set(self, arr, stream=None):
        """Host-to-device copy into this array."""
        self._a[...] = arr

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        return ndarray(self._a.astype(dtype, order=order, copy=copy))

    def view(self, dtype=None):
        return ndarray(self._a.view() if dtype is None else self._a.view(dtype))


for _name in ("all any argmax argmin argsort clip copy cumprod cumsum diagonal dot fill flatten "
              "max mean min nonzero prod ravel repeat reshape round sort squeeze std sum "
              "swapaxes take trace transpose var conj").split():
    setattr(ndarray, _name, _method(_name))
for _name in ("add sub mul truediv floordiv mod pow matmul and or xor lshift rshift").split():
    for _form in ("__{}__", "__r{}__", "__i{}__"):
        setattr(ndarray, _form.format(_name), _binary(_form.format(_name)))
for _name in ("lt le gt ge eq ne").split():
    setattr(ndarray, f"__{_name}__", _binary(f"__{_name}__"))
for _name in ("__neg__", "__pos__", "__abs__", "__invert__"):
    setattr(ndarray, _name, _unary(_name))


# --------------------------------------------------------------------------- creation, transfer


def asarray(a, dtype=None, order=None, *, blocking=False):
    """Host (or device) data as a device array; a NumPy array is copied to the device."""
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == dtype else a.astype(dtype)
    return _from_host(a, dtype=dtype, order=order or "K")


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    if isinstance(obj, ndarray):
        return ndarray(np.array(obj._a, dtype=dtype, copy=copy, order=order, ndmin=ndmin))
    return _from_host(obj, dtype=dtype, order=order, ndmin=ndmin)


def _operand_host(a):
    if isinstance(a, (list, tuple)):
        return type(a)(v._a if isinstance(v, ndarray) else v for v in a)
    return a


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    """Device to host (a counted read); NumPy input passes through, as in CuPy."""
    if isinstance(a, ndarray):
        return a.get(order=order)
    return np.asarray(a, order=order)


def ascontiguousarray(a, dtype=None):
    if not isinstance(a, ndarray):
        raise TypeError(f"Unsupported type {type(a)}")
    return ndarray(np.ascontiguousarray(a._a, dtype=dtype))


def copyto(dst, src, casting="same_kind", where=True):
    np.copyto(dst._a, _operand(src), casting=casting, where=_operand(where))


def get_array_module(*args):
    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in args) else np


# --------------------------------------------------------------------------- submodules


class _Generator:
    """cupy.random.Generator: the methods minidl may call, drawn by NumPy. From the same seed
    its streams differ from NumPy's, as real CuPy's do (another bit generator)."""

    def __init__(self, seed=None):
        self._g = np.random.default_rng(None if seed is None else [0xC0FE, seed])

    def random(self, size=None, dtype=np.float64, out=None):
        return ndarray(np.asarray(self._g.random(size, dtype=dtype)))

    def standard_normal(self, size=None, dtype=np.float64, out=None):
        return ndarray(np.asarray(self._g.standard_normal(size, dtype=dtype)))

    def uniform(self, low=0.0, high=1.0, size=None, dtype=np.float64):
        return ndarray(np.asarray(self._g.uniform(low, high, size)).astype(dtype))

    def integers(self, low, high=None, size=None, dtype=np.int64, endpoint=False):
        return ndarray(np.asarray(self._g.integers(low, high, size, dtype, endpoint)))


random = types.ModuleType(f"{__name__}.random", "cupy.random (stand-in)")
random.default_rng = lambda seed=None: _Generator(seed)
random.Generator = _Generator

_stride_tricks = types.ModuleType(f"{__name__}.lib.stride_tricks")
_stride_tricks.as_strided = lambda x, shape=None, strides=None: ndarray(
    np.lib.stride_tricks.as_strided(x._a, shape, strides))
lib = types.ModuleType(f"{__name__}.lib")
lib.stride_tricks = _stride_tricks


class _Stream:
    def synchronize(self):
        return None


cuda = types.ModuleType(f"{__name__}.cuda", "cupy.cuda (stand-in: one device)")
cuda.Device = Device
cuda.runtime = types.SimpleNamespace(getDeviceCount=lambda: 1)
cuda.get_current_stream = lambda: _Stream()
cuda.is_available = lambda: True
cuda.Stream = _Stream


# --------------------------------------------------------------------------- kernels


class ElementwiseKernel:
    """cupy.ElementwiseKernel, its body compiled by g++ (tests/cpu_kernels.py): called as
    kernel(*inputs, *outputs), device arrays and Python scalars only; returns the output(s)."""

    _workdir = None

    def __init__(self, in_params, out_params, operation, name="kernel", options=(), **kwargs):
        from minidl.backend import KernelSource  # noqa: PLC0415
        from tests.cpu_kernels import GXX, CpuKernel  # noqa: PLC0415

        if GXX is None:
            raise RuntimeError("the CuPy stand-in builds ElementwiseKernel bodies with g++, "
                               "which is not installed")
        if ElementwiseKernel._workdir is None:
            ElementwiseKernel._workdir = Path(tempfile.mkdtemp(prefix="cupy_standin_"))
        self.options = tuple(options)
        self._kernel = CpuKernel(KernelSource(in_params, out_params, operation, name),
                                 ElementwiseKernel._workdir)

    def __call__(self, *args, **kwargs):
        n_in = len(self._kernel.ins)
        if len(args) != n_in + len(self._kernel.outs):
            raise TypeError(f"kernel {self._kernel.source.name} takes "
                            f"{n_in + len(self._kernel.outs)} arguments (outputs given)")
        outputs = args[n_in:]
        if not all(isinstance(o, ndarray) for o in outputs):
            raise TypeError("kernel outputs must be device arrays")
        self._kernel(*(_operand(a) for a in args))
        return outputs[0] if len(outputs) == 1 else tuple(outputs)


# --------------------------------------------------------------------------- the module surface

_OWN = {"ndarray", "asarray", "array", "asnumpy", "ascontiguousarray", "copyto",
        "get_array_module", "random", "lib", "cuda", "ElementwiseKernel"}


def __getattr__(name: str):
    if name not in _CUPY_NAMES:
        raise AttributeError(f"module 'cupy' has no attribute {name!r}")
    obj = getattr(np, name, None)
    if obj is None:
        raise AttributeError(f"cupy.{name} is not emulated by the test stand-in")
    if isinstance(obj, type) or not callable(obj):  # dtypes, finfo, constants
        return obj

    def function(*args, **kwargs):
        return _call(obj, args, kwargs)

    function.__name__ = name
    globals()[name] = function  # built once
    return function


assert _OWN <= _CUPY_NAMES | {"lib", "cuda", "random"}

cupyx = types.ModuleType("cupyx", "cupyx (stand-in)")
cupyx.allow_synchronize = allow_synchronize
cupyx.DeviceSynchronized = DeviceSynchronized
cupyx.scatter_add = lambda a, slices, value: np.add.at(a._a, _index(slices), _operand(value))


def install() -> None:
    """Serve minidl's 'cuda' device with this stand-in."""
    from minidl import backend  # noqa: PLC0415

    backend.set_cuda_backend(sys.modules[__name__], cupyx)
