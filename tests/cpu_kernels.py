"""CPU builds of the fused GPU kernels: each KernelSource (exactly the text CuPy compiles) is
wrapped in a C++ loop over elements and built with g++, inputs bound as `const T& x = x_arr[i]`,
outputs as `T& x = x_arr[i]`, scalars passed by value, as CuPy binds them. No FMA contraction
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


def param_names(params: str) -> list[str]:
    """Parameter names of an ElementwiseKernel list; the kernels only use "T name"."""
    names = []
    for item in params.split(","):
        words = item.split()
        assert len(words) == 2 and words[0] == "T", f"unsupported kernel parameter {item!r}"
        names.append(words[1])
    return names


def _is_scalar(a) -> bool:
    # a 0-d array broadcasts one value to every element: the same as passing it by value
    return not isinstance(a, np.ndarray) or a.ndim == 0


class CpuKernel:
    """A KernelSource built by g++ into `void name(long n, params...)`, looping over elements,
    and called as a cupy.ElementwiseKernel is: kernel(*inputs, *outputs), array arguments
    broadcast together, outputs (arrays of the broadcast shape) updated in place."""

    def __init__(self, source: KernelSource, workdir):
        self.source = source
        self.ins, self.outs = param_names(source.in_params), param_names(source.out_params)
        self.workdir = workdir
        self._built: dict = {}

    def _code(self, ctype: str, scalars: tuple) -> str:
        params, binds = [], []
        for name, scalar in zip(self.ins, scalars):
            if scalar:
                params.append(f"const T {name}")
            else:
                params.append(f"const T* {name}_arr")
                binds.append(f"const T& {name} = {name}_arr[i];")
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
            fn.argtypes = [ctypes.c_long] + [c_scalar if s else ctypes.c_void_p for s in scalars]
            fn.argtypes += [ctypes.c_void_p] * len(self.outs)
            self._built[key] = (fn, c_scalar)
        return self._built[key]

    def __call__(self, *args):
        assert len(args) == len(self.ins) + len(self.outs), "kernel called with wrong arity"
        inputs, outputs = args[:len(self.ins)], args[len(self.ins):]
        assert all(isinstance(o, np.ndarray) for o in outputs), "outputs must be arrays"
        dtype = outputs[0].dtype
        arrays = [a for a in args if isinstance(a, np.ndarray)]
        # CuPy's rule: every array bound to T has the one dtype T
        assert all(a.dtype == dtype for a in arrays), [a.dtype for a in arrays]
        shape = np.broadcast_shapes(*(a.shape for a in arrays))
        assert all(o.shape == shape for o in outputs), "output shape is not the broadcast shape"
        scalars = tuple(_is_scalar(a) for a in inputs)
        fn, c_scalar = self._build(dtype, scalars)
        keep = []  # contiguous copies, alive until the call returns
        c_args = [int(np.prod(shape))]
        for a, scalar in zip(inputs, scalars):
            if scalar:
                c_args.append(c_scalar(float(a)))
            else:
                keep.append(np.ascontiguousarray(np.broadcast_to(a, shape)))
                c_args.append(keep[-1].ctypes.data)
        bufs = [o if o.flags.c_contiguous else np.ascontiguousarray(o) for o in outputs]
        c_args += [b.ctypes.data for b in bufs]
        fn(*c_args)
        for o, b in zip(outputs, bufs):
            if b is not o:
                o[...] = b
