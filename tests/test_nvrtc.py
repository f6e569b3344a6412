"""Every fused GPU kernel compiles with NVRTC, as CuPy compiles it, for the GPUs CuPy's CUDA 12
wheels support, with backend.KERNEL_OPTIONS (no FMA contraction) and CuPy's own -ftz=true. No GPU is needed: NVRTC is a
library (`pip install 'minidl[nvrtc]'` brings CuPy and NVRTC; .ci/run installs it). Skipped,
with the reason, where CuPy or NVRTC cannot be loaded.

CuPy's ElementwiseKernel turns `in_params`, `out_params` and the body into one __global__
function of its own headers (cupy/carray.cuh): `typedef <dtype> T;`, every array argument a
`CArray<T, ndim, c_contiguous, use_32bit_indexing> _raw_x` bound per element as
`const T &x = _raw_x[_ind.get()];` (an output without const), every Python scalar passed by
value as `T x`, and the body run inside `CUPY_FOR(i, _ind.size()) { _ind.set(i); ... }`. A
`raw T x` argument is the CArray itself, named x, which the body indexes; an `int32 x` one is
bound as `const int &x` (or passed as `int x`). Each kernel is generated here for float32 and
float64, with every input an array (1-d contiguous and 2-d strided, as a broadcast step-size
column gives) and with every input but the raw ones a scalar.
"""

from __future__ import annotations

import os
import re

import pytest

from minidl import backend
from minidl.backend import KernelSource
from minidl.optim import adam, adas
from tests.cpu_kernels import param_names, param_specs

FUSED = (*adam.KERNELS.values(), *adas.KERNELS.values())  # updates that must match NumPy
# every GPU kernel minidl builds; erf is CUDA's library function, whose own polynomial uses
# fma on purpose, so only the fused updates are checked for contraction
SOURCES = (*FUSED, backend.ERF_KERNEL)
# Compute capabilities of the cupy-cuda12x wheels of CuPy 12.x/13.x (Maxwell sm_50 to Hopper
# sm_90; CuPy 13.4+ adds Blackwell, compiled for where the installed NVRTC knows it)
CUPY12_ARCHS = (50, 52, 60, 61, 70, 75, 80, 86, 89, 90)
BLACKWELL = (100, 120)


def _nvrtc():
    """(CuPy's NVRTC binding, CuPy's include folder, the archs NVRTC supports), else skip."""
    try:
        from cupy_backends.cuda.libs import nvrtc  # noqa: PLC0415

        supported = set(nvrtc.getSupportedArchs())
    except Exception as e:  # ImportError, or NVRTC's shared library missing
        pytest.skip(f"NVRTC not usable ({type(e).__name__}: {e}); "
                    "pip install 'minidl[nvrtc]' (cupy-cuda12x and nvidia-cuda-nvrtc-cu12)")
    import cupy  # noqa: PLC0415

    include = os.path.join(os.path.dirname(cupy.__file__), "_core", "include")
    return nvrtc, include, supported


def cupy_kernel_code(source: KernelSource, fn_name: str, ctype: str, arrays: bool,
                     ndim: int = 1) -> str:
    """The __global__ function CuPy's ElementwiseKernel generates for `source` (see above)."""
    contiguous = "true" if ndim == 1 else "false"
    params, binds = [], []
    for kind, name, raw in param_specs(source.in_params):
        ctype_ = "int" if kind == "int32" else "T"
        if raw:  # any layout; the body indexes it
            params.append(f"CArray<T, 1, true, true> {name}")
        elif arrays:
            params.append(f"CArray<{ctype_}, {ndim}, {contiguous}, true> _raw_{name}")
            binds.append(f"const {ctype_} &{name} = _raw_{name}[_ind.get()];")
        else:
            params.append(f"{ctype_} {name}")
    for name in param_names(source.out_params):
        params.append(f"CArray<T, {ndim}, {contiguous}, true> _raw_{name}")
        binds.append(f"T &{name} = _raw_{name}[_ind.get()];")
    params.append(f"CIndexer<{ndim}> _ind")
    body = "\n".join(binds) + "\n" + source.body
    return (f"namespace {fn_name}_ns {{\ntypedef {ctype} T;\n"
            f'extern "C" __global__ void {fn_name}({", ".join(params)}) {{\n'
            f"CUPY_FOR(i, _ind.size()) {{\n_ind.set(i);\n{body}\n;}}\n}}\n}}\n")


def translation_unit() -> str:
    """Every kernel in every binding, one translation unit (one NVRTC call per arch)."""
    parts = ["#include <cupy/complex.cuh>", "#include <cupy/carray.cuh>"]
    for source in SOURCES:
        for ctype in ("float", "double"):
            for tag, arrays, ndim in (("a1", True, 1), ("a2", True, 2), ("s", False, 1)):
                parts.append(cupy_kernel_code(source, f"{source.name}_{ctype}_{tag}", ctype,
                                              arrays, ndim))
    return "\n".join(parts)


def test_kernel_code_binds_every_parameter():
    code = cupy_kernel_code(adas.KERNELS["adas_lr"], "k", "float", True)
    for name in param_names(adas.KERNELS["adas_lr"].in_params):
        assert f"const T &{name} = _raw_{name}[_ind.get()];" in code
    assert "T &lr = _raw_lr[_ind.get()];" in code and "typedef float T;" in code
    code = cupy_kernel_code(adas.KERNELS["adas_weight"], "k", "float", False)
    assert "CArray<T, 1, true, true> lr," in code and "int lr_index," in code
    code = cupy_kernel_code(adas.KERNELS["adas_weight"], "k", "float", True)
    assert "const int &lr_index = _raw_lr_index[_ind.get()];" in code


@pytest.mark.parametrize("cc", CUPY12_ARCHS + BLACKWELL)
def test_every_fused_kernel_compiles_with_nvrtc(cc):
    nvrtc, include, supported = _nvrtc()
    if cc not in supported:
        if cc in CUPY12_ARCHS and cc >= 70:
            pytest.fail(f"the installed NVRTC cannot target sm_{cc}, which CuPy's wheels do")
        pytest.skip(f"the installed NVRTC does not know sm_{cc}")
    program = nvrtc.createProgram(translation_unit(), "minidl_kernels.cu", (), ())
    cccl = os.path.join(include, "cupy", "_cccl")  # CuPy's bundled thrust, as CuPy passes it
    # -ftz=true: CuPy adds it to every kernel it compiles (float32 denormals flush to zero)
    options = (*backend.KERNEL_OPTIONS, "-ftz=true", f"-I{include}", f"-I{cccl}/thrust",
               f"-I{cccl}/cub", f"-I{cccl}/libcudacxx", "--std=c++17", f"-arch=compute_{cc}")
    try:
        nvrtc.compileProgram(program, options)
    except nvrtc.NVRTCError as e:
        pytest.fail(f"NVRTC, sm_{cc}: {e}\n{nvrtc.getProgramLog(program)}")
    ptx = nvrtc.getPTX(program)
    ptx = ptx.decode() if isinstance(ptx, bytes) else ptx
    nvrtc.destroyProgram(program)
    for source in SOURCES:
        for ctype in ("float", "double"):
            assert f".entry {source.name}_{ctype}_a1(" in ptx
    # --fmad=false: no product of an update is fused into an addition (every step rounds as
    # NumPy does); each kernel's PTX runs from its .entry to the next one
    fused = tuple(source.name for source in FUSED)
    for chunk in ptx.split(".entry ")[1:]:
        if chunk.startswith(fused):
            assert not re.search(r"\bfma\.rn\.f(32|64)", chunk), chunk.split("(")[0]
