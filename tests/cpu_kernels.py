"""CPU builds of the fused GPU kernels: each KernelSource (exactly the text CuPy compiles) is
wrapped in a C++ loop over elements and built with g++, inputs bound as `const T& x = x_arr[i]`,
outputs as `T& x = x_arr[i]`, scalars passed by value, as CuPy binds them; a `raw T x` input is
the whole array, indexed by the body (`x[j]`), and an `int32 x` one is bound as a const int. No
FMA contraction
(as backend.KERNEL_OPTIONS on the GPU) and -Wdouble-promotion -Werror, so a double constant
that would turn float32 math into float64 math fails the build.

Used by tests/test_kernels.py and by the CuPy stand-in's ElementwiseKernel.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess

import numpy as np

from minidl.backend import KernelSource

GXX = shutil.which("g++")
C_TYPES = {np.dtype(np.float32): ("float", ctypes.c_float),
           np.dtype(np.float64): ("double", ctypes.c_double)}


def param_specs(params: str) -> list[tuple[str, str, bool]]:
    """(type, name, raw) of each parameter of an ElementwiseKernel list; the kernels use
    "T name", "raw T name" (an input read by index) and "int32 name"."""
    specs = []
    for item in params.split(","):
        words = item.split()
        raw = words[:1] == ["raw"]
        words = words[1:] if raw else words
        assert len(words) == 2 and words[0] in ("T", "int32") and not (raw and words[0] != "T"), \
            f"unsupported kernel parameter {item!r}"
        specs.append((words[0], words[1], raw))
    return specs


def param_names(params: str) -> list[str]:
    """Parameter names of an ElementwiseKernel list."""
    return [name for _, name, _ in param_specs(params)]


def _is_scalar(a) -> bool:
    # a 0-d array broadcasts one value to every element: the same as passing it by value
    return not isinstance(a, np.ndarray) or a.ndim == 0


class CpuKernel:
    """A KernelSource built by g++ into `void name(long n, params...)`, looping over elements,
    and called as a cupy.ElementwiseKernel is: kernel(*inputs, *outputs), array arguments
    broadcast together, outputs (arrays of the broadcast shape) updated in place."""

    def __init__(self, source: KernelSource, workdir):
        self.source = source
        self.in_specs = param_specs(source.in_params)
        self.ins, self.outs = param_names(source.in_params), param_names(source.out_params)
        assert all(t == "T" and not raw for t, _, raw in param_specs(source.out_params)), \
            "outputs must be T arrays"
        self.workdir = workdir
        self._built: dict = {}

    def _code(self, ctype: str, scalars: tuple) -> str:
        params, binds = [], []
        for (kind, name, raw), scalar in zip(self.in_specs, scalars):
            ctype_ = "int" if kind == "int32" else "T"
            if raw:
                params.append(f"const T* {name}")
            elif scalar:
                params.append(f"const {ctype_} {name}")
            else:
                params.append(f"const {ctype_}* {name}_arr")
                binds.append(f"const {ctype_}& {name} = {name}_arr[i];")
        for name in self.outs:
            params.append(f"T* {name}_arr")
            binds.append(f"T& {name} = {name}_arr[i];")
        return "\n".join([
            "#include <cmath>",
            "using std::sqrt;",
            "using std::erf;",
            f"typedef {ctype} T;",
            f'extern "C" void {self.source.name}(long n, {", ".join(params)}) {{',
            "    for (long i = 0; i < n; ++i) {",
            *(f"        {b}" for b in binds),
            self.source.body,
            "    }",
            "}",
        ])

    def _build(self, dtype: np.dtype, scalars: tuple):
        key = (dtype, scalars)
        if key not in self._built:
            ctype, c_scalar = C_TYPES[dtype]
            stem = f"{self.source.name}_{ctype}_{len(self._built)}"
            src, lib = self.workdir / f"{stem}.cpp", self.workdir / f"{stem}.so"
            src.write_text(self._code(ctype, scalars))
            result = subprocess.run(
                [GXX, "-O1", "-shared", "-fPIC", "-ffp-contract=off", "-Wall",
                 "-Wdouble-promotion", "-Werror", "-o", str(lib), str(src)],
                capture_output=True, text=True)
            assert result.returncode == 0, f"g++ failed on {self.source.name}:\n{result.stderr}"
            fn = getattr(ctypes.CDLL(str(lib)), self.source.name)
            fn.restype = None
            fn.argtypes = [ctypes.c_long] + [
                (ctypes.c_int if kind == "int32" else c_scalar) if s and not raw
                else ctypes.c_void_p for (kind, _, raw), s in zip(self.in_specs, scalars)]
            fn.argtypes += [ctypes.c_void_p] * len(self.outs)
            self._built[key] = (fn, c_scalar)
        return self._built[key]

    def __call__(self, *args):
        assert len(args) == len(self.ins) + len(self.outs), "kernel called with wrong arity"
        inputs, outputs = args[:len(self.ins)], args[len(self.ins):]
        assert all(isinstance(o, np.ndarray) for o in outputs), "outputs must be arrays"
        dtype = outputs[0].dtype
        kinds = [kind for kind, _, _ in self.in_specs] + ["T"] * len(outputs)
        raws = [raw for _, _, raw in self.in_specs] + [False] * len(outputs)
        # CuPy's rule: every array bound to T has the one dtype T, an int32 one is int32
        for a, kind in zip(args, kinds):
            if isinstance(a, np.ndarray):
                assert a.dtype == (np.int32 if kind == "int32" else dtype), (kind, a.dtype)
        # a raw array takes no part in the broadcast: the body indexes it
        shape = np.broadcast_shapes(*(a.shape for a, raw in zip(args, raws)
                                      if isinstance(a, np.ndarray) and not raw))
        assert all(o.shape == shape for o in outputs), "output shape is not the broadcast shape"
        for a, raw in zip(inputs, raws):
            assert not raw or isinstance(a, np.ndarray), "a raw argument must be an array"
        scalars = tuple(_is_scalar(a) and not raw for a, raw in zip(inputs, raws))
        fn, c_scalar = self._build(dtype, scalars)
        keep = []  # contiguous copies, alive until the call returns
        c_args = [int(np.prod(shape))]
        for a, scalar, kind, raw in zip(inputs, scalars, kinds, raws):
            if raw:
                keep.append(np.ascontiguousarray(a))
                c_args.append(keep[-1].ctypes.data)
            elif scalar:
                c_args.append(ctypes.c_int(int(a)) if kind == "int32" else c_scalar(float(a)))
            else:
                keep.append(np.ascontiguousarray(np.broadcast_to(a, shape)))
                c_args.append(keep[-1].ctypes.data)
        bufs = [o if o.flags.c_contiguous else np.ascontiguousarray(o) for o in outputs]
        c_args += [b.ctypes.data for b in bufs]
        fn(*c_args)
        for o, b in zip(outputs, bufs):
            if b is not o:
                o[...] = b
