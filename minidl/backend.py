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
import sys
import types
from typing import Iterator, NamedTuple

import numpy as np

DEVICES = ("cpu", "cuda")

_cupy_module: types.ModuleType | None = None
_cupyx_module: types.ModuleType | None = None
_cupy_tried = False
_default_dtype = np.dtype(np.float32)
_transfers = 0  # device-to-host copies since start (see to_numpy)
_kernels: dict[tuple, object] = {}  # built ElementwiseKernels, keyed by their source


# --------------------------------------------------------------------------- array modules


def _cupy() -> types.ModuleType | None:
    """Import CuPy once, on first need; None when it is not installed or fails to import."""
    global _cupy_module, _cupyx_module, _cupy_tried
    if not _cupy_tried:
        _cupy_tried = True
        try:
            import cupy  # noqa: PLC0415  (lazy on purpose: importing minidl starts no device)
            import cupyx  # noqa: PLC0415

            _cupy_module, _cupyx_module = cupy, cupyx
        except Exception:  # ImportError, or a CUDA library that fails to load
            _cupy_module = None
    return _cupy_module


def set_cuda_backend(cupy_module: types.ModuleType | None,
                     cupyx_module: types.ModuleType | None = None) -> None:
    """Serve device 'cuda' with the given modules instead of importing CuPy.

    `cupy_module` must present CuPy's array API (its `ndarray` type, array functions, `random`,
    `cuda`, `ElementwiseKernel`) and `cupyx_module` cupyx's `scatter_add`. minidl's test suite
    uses this to run its GPU half on a strict CuPy emulation (tests/cupy_standin) when no GPU is
    usable. None restores the default: CuPy, imported lazily on first need.
    """
    global _cupy_module, _cupyx_module, _cupy_tried
    _cupy_module, _cupyx_module = cupy_module, cupyx_module
    _cupy_tried = cupy_module is not None
    _kernels.clear()


def is_cupy_array(a) -> bool:
    """True when `a` is an array of the 'cuda' module (CuPy's ndarray), checked without
    importing CuPy: an array of a module nobody imported cannot exist."""
    cp = _cupy_module if _cupy_tried else sys.modules.get("cupy")
    return cp is not None and isinstance(a, cp.ndarray)


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

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15  # 2^64 / golden ratio, odd: splitmix64's increment


def _mix64(z: int) -> int:
    """splitmix64's output function (Steele, Lea & Flood 2014, "Fast splittable pseudorandom
    number generators", OOPSLA; constants of Stafford's Mix13) on a Python int: a bijection of
    the 64-bit integers whose every output bit depends on every input bit."""
    z &= _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def _mix64_array(xp, z):
    """_mix64 elementwise on a uint64 array, in place. Integer multiplication wraps modulo
    2^64 and shifts are logical on both NumPy and CuPy, so the bits are the same on both."""
    u64 = np.uint64
    z ^= z >> u64(30)
    z *= u64(0xBF58476D1CE4E5B9)
    z ^= z >> u64(27)
    z *= u64(0x94D049BB133111EB)
    z ^= z >> u64(31)
    return z


class Generator:
    """A counter-based random generator (Salmon, Moraes, Dror & Shaw 2011, "Parallel random
    numbers: as easy as 1, 2, 3", SC'11): element i of draw number c is a pure function of
    (seed, c, i), computed by the array module of the requested device, so

    * the same seed gives bit-identical uniforms on NumPy and CuPy (normals agree to the last
      bits of the device's log and cos), and
    * the whole state is two integers, {'seed', 'counter'}: saving and restoring it resumes the
      stream exactly, on either device.

    Each draw (one call of `random`, `standard_normal` or `randbits`) takes the next counter
    value c and the key k = mix(mix(seed) + (c + 1) * G); its element i is the 64-bit word
    w_i = mix(k + (i + 1) * G) (splitmix64: mix is `_mix64`, G = 0x9E3779B97F4A7C15, all
    arithmetic modulo 2^64). Uniforms on [0, 1) are the top 24 (float32) or 53 (float64) bits
    of w_i times 2^-24 or 2^-53, exact in the float type. Normals pair the words of one draw
    (Box & Muller 1958): for j = 0, 1, ..., with u = uniform(w_2j), v = uniform(w_2j+1),
        r = sqrt(-2 log(1 - u)),  z_2j = r cos(2 pi v),  z_2j+1 = r sin(2 pi v)
    (1 - u lies in (0, 1], so the log is finite; |z| stays below 5.8 in float32 and 8.6 in
    float64, a truncation of probability < 1e-8).
    """

    def __init__(self, seed: int | None = None):
        self.manual_seed(np.random.SeedSequence().entropy & _MASK64 if seed is None else seed)

    def manual_seed(self, seed: int) -> Generator:
        """Restart the stream at counter 0 from `seed` (a non-negative integer < 2^64)."""
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) \
                or not 0 <= seed <= _MASK64:
            raise ValueError(f"seed must be an integer in [0, 2^64), got {seed!r}")
        self.seed, self.counter = int(seed), 0
        return self

    def get_state(self) -> dict:
        """{'seed': int, 'counter': int}: everything the stream depends on (picklable)."""
        return {"seed": self.seed, "counter": self.counter}

    def set_state(self, state: dict) -> None:
        """Continue from a `get_state` snapshot."""
        if not isinstance(state, dict) or set(state) != {"seed", "counter"}:
            raise ValueError("a random state is {'seed': int, 'counter': int} (from "
                             f"Generator.get_state / rng_state), got {state!r:.80}: a "
                             "checkpoint of an older minidl (NumPy generator states) cannot "
                             "continue its random stream")
        self.manual_seed(state["seed"])
        self.counter = int(state["counter"])

    def _key(self) -> int:
        key = _mix64(_mix64(self.seed) + (self.counter + 1) * _GOLDEN)
        self.counter += 1
        return key

    def _words(self, n: int, device: str):
        """The n uint64 words of the next draw, on `device`."""
        xp = xp_for(device)
        z = xp.arange(1, n + 1, dtype=np.uint64)
        z *= np.uint64(_GOLDEN)
        z += np.uint64(self._key())
        return _mix64_array(xp, z)

    def randbits(self) -> int:
        """A 64-bit random integer, computed on the host (for seeding other generators)."""
        return _mix64(self._key() + _GOLDEN)

    def random(self, shape, dtype=None, device: str = "cpu"):
        """Uniform samples on [0, 1) of `shape` (default dtype unless given) on `device`."""
        return _uniform_of(self._words(math.prod(_shape(shape)), device), dtype, shape)

    def standard_normal(self, shape, dtype=None, device: str = "cpu"):
        """N(0, 1) samples of `shape` (default dtype unless given) on `device`."""
        shape = _shape(shape)
        n = math.prod(shape)
        words = self._words(n + n % 2, device)
        u = _uniform_of(words[0::2], dtype, -1)
        v = _uniform_of(words[1::2], dtype, -1)
        xp = xp_of(u)
        r = xp.sqrt(-2.0 * xp.log1p(-u))
        v *= 2.0 * math.pi
        z = xp.empty(words.shape, dtype=u.dtype)
        z[0::2] = r * xp.cos(v)
        z[1::2] = r * xp.sin(v)
        return z[:n].reshape(shape)


def _shape(shape) -> tuple:
    return (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)


def _uniform_of(words, dtype, shape):
    """Words to uniforms on [0, 1): their top 24 or 53 bits, scaled exactly."""
    dt = np.dtype(get_default_dtype() if dtype is None else dtype)
    if dt not in (np.float32, np.float64):
        raise ValueError(f"random floats are float32 or float64, got {dt}")
    bits = 24 if dt == np.float32 else 53
    u = (words >> np.uint64(64 - bits)).astype(dt)
    u *= dt.type(2.0 ** -bits)
    return u.reshape(shape)


_generator = Generator(0)
_seeded = False


def manual_seed(seed: int) -> None:
    """Seed minidl's random stream (one for every device) so that runs are reproducible."""
    global _seeded
    _generator.manual_seed(seed)
    _seeded = True


def get_rng() -> Generator:
    """The Generator minidl draws from (initialisers, dropout, randn/rand, Santa's seed), on
    every device. Until `manual_seed` is called it starts from a fresh random seed."""
    global _seeded
    if not _seeded:
        _generator.manual_seed(np.random.SeedSequence().entropy & _MASK64)
        _seeded = True
    return _generator


def rng_state() -> dict:
    """A picklable snapshot of minidl's random stream, {'seed', 'counter'} (saved in
    checkpoints; the same on every device)."""
    return get_rng().get_state()


def set_rng_state(state: dict) -> None:
    """Restore a snapshot from `rng_state`."""
    global _seeded
    _generator.set_state(state)
    _seeded = True


def scatter_add(target, index, values) -> None:
    """In place: target[index] += values, adding repeated indices up (numpy.add.at semantics)."""
    if is_cupy_array(target):
        _cupy()
        _cupyx_module.scatter_add(target, index, values)
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

# the error function on the GPU (erf-based GELU), without importing cupyx.scipy
ERF_KERNEL = KernelSource("T x", "T y", "y = erf(x);", "minidl_erf")


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
    math.erf per element (exact, and fast enough for activations of this size); the GPU runs
    the one-line kernel ERF_KERNEL (CUDA's erf)."""
    if is_cupy_array(a):
        out = _cupy().empty_like(a)
        elementwise_kernel(*ERF_KERNEL)(a, out)
        return out
    return np.vectorize(math.erf, otypes=[a.dtype])(a)
