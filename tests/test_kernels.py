"""The fused GPU kernels of the Adam family and ADAS, checked on the CPU and, with a GPU, on it.

No GPU here? The kernel bodies are plain C, so each KernelSource (exactly the text CuPy would
compile) is wrapped in a C++ loop over elements and built with g++: inputs bound as
`const T& x = x_arr[i]`, outputs as `T& x = x_arr[i]`, scalars passed by value, as CuPy binds
them. A subclass of each optimizer then runs its fused path on NumPy arrays through these
CPU builds, and every step is compared with the unchanged NumPy path: float64 to rtol 1e-12,
float32 to a few ulps (on x86-64 they agree bit for bit; the margin is for other compilers).
g++ compiles without FMA contraction (as the GPU build, see backend.KERNEL_OPTIONS) and
with -Wdouble-promotion -Werror, so a double constant that would
turn float32 math into float64 math fails the build. Skipped when g++ is missing.

With CuPy and a GPU, the `device` fixture also compares fused=True with fused=False on it.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import minidl as md
from minidl import backend, nn
from minidl.backend import KernelSource
from minidl.nn.conv import Conv2d
from minidl.nn.layers import Dense, Flatten
from minidl.optim import adam, adas
from minidl.optim.adam import Adam, AdamW, AMSGrad
from minidl.optim.adas import Adas
from tests.cpu_kernels import GXX, CpuKernel, param_names

STEPS = 6
TOLERANCE = {np.float64: dict(rtol=1e-12, atol=1e-15), np.float32: dict(rtol=2e-6, atol=1e-7)}
needs_gxx = pytest.mark.skipif(GXX is None, reason="g++ not found: cannot build kernels for CPU")


@pytest.fixture(scope="module")
def cpu_kernels(tmp_path_factory):
    """KernelSource -> its CpuKernel, built once per module."""
    workdir = tmp_path_factory.mktemp("kernels")
    cache: dict = {}

    def get(source: KernelSource) -> CpuKernel:
        if source not in cache:
            cache[source] = CpuKernel(source, workdir)
        return cache[source]

    return get


def cpu_fused(cls, kernels):
    """`cls` whose fused path runs on NumPy arrays, through the CPU builds; `used` records
    the kernels it called."""

    class CpuFused(cls):
        def use_fused(self, p, *arrays) -> bool:
            return True

        def kernel(self, source: KernelSource):
            self.used = getattr(self, "used", set()) | {source.name}
            return kernels(source)

    return CpuFused


# --------------------------------------------------------------------------- twin runs


def _assert_same_state(fused_opt, plain_opt, fused_params, plain_params, dtype, where: str):
    tol = TOLERANCE[dtype]
    assert len(fused_params) == len(plain_params) > 0
    for i, (pf, pp) in enumerate(zip(fused_params, plain_params)):
        np.testing.assert_allclose(pf.data, pp.data, **tol, err_msg=f"{where}: param {i}")
        sf, sp = fused_opt.state.get(pf, {}), plain_opt.state.get(pp, {})
        assert sorted(sf) == sorted(sp), f"{where}: state keys of param {i}"
        for key, value in sp.items():
            if isinstance(value, np.ndarray) and value.ndim > 0:
                assert sf[key].dtype == value.dtype
                np.testing.assert_allclose(sf[key], value, **tol,
                                           err_msg=f"{where}: {key} of param {i}")
            else:
                np.testing.assert_allclose(np.float64(sf[key]), np.float64(value), **tol,
                                           err_msg=f"{where}: {key} of param {i}")


def _grads(shapes, steps, seed=1):
    """Random gradients with a few exact zeros (they hit ADAS's eps = 0 guard)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        gs = [rng.standard_normal(s) for s in shapes]
        for g in gs:
            g.flat[::5] = 0.0
        out.append(gs)
    return out


ADAM_CASES = {
    "adam": (Adam, {}, {"minidl_adam"}),
    "adam-l2": (Adam, dict(lr=1e-2, weight_decay=0.1), {"minidl_adam"}),
    "adam-amsgrad": (Adam, dict(lr=1e-2, amsgrad=True), {"minidl_adam_amsgrad"}),
    "amsgrad": (AMSGrad, dict(betas=(0.8, 0.9)), {"minidl_adam_amsgrad"}),
    "adamw": (AdamW, dict(lr=1e-2, weight_decay=0.5), {"minidl_adam"}),
    "adamw-amsgrad": (AdamW, dict(lr=1e-2, amsgrad=True), {"minidl_adam_amsgrad"}),
}


@needs_gxx
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", sorted(ADAM_CASES))
def test_adam_kernels_follow_the_numpy_path(case, dtype, cpu_kernels):
    cls, kwargs, expected = ADAM_CASES[case]
    shapes = [(4, 3), (3,), ()]
    rng = np.random.default_rng(0)
    init = [rng.standard_normal(s) for s in shapes]
    params = {k: [nn.Parameter(x.astype(dtype)) for x in init] for k in ("fused", "plain")}
    fused = cpu_fused(cls, cpu_kernels)(params["fused"], **kwargs)
    plain = cls(params["plain"], **kwargs)
    grads = _grads(shapes, STEPS)
    for t, gs in enumerate(grads):
        if t == 3 and case == "adam":  # AMSGrad switched on mid-run, and a new lr
            for opt in (fused, plain):
                opt.param_groups[0].update(amsgrad=True, lr=3e-3)
            expected = expected | {"minidl_adam_amsgrad"}
        for key in params:
            for p, g in zip(params[key], gs):
                p.grad = g.astype(dtype)
        fused.step()
        plain.step()
        _assert_same_state(fused, plain, params["fused"], params["plain"], dtype, f"step {t+1}")
    assert fused.used == expected


def _adas_model(dtype, seed=0):
    """Conv2d (weight axes 1-3 are inputs) then Dense: every broadcast ADAS meets."""
    rng = np.random.default_rng(seed)
    with md.default_dtype(dtype):
        model = nn.Sequential(Conv2d(2, 3, 2), Flatten(), Dense(12, 4))
    for p in model.parameters():
        p.data[...] = rng.standard_normal(p.shape) * 0.3
    return model


ADAS_CASES = {
    "cpp": dict(),
    "cpp-tensor-sigma": dict(layer_sigma=False, weight_decay=1e-3),
    "pytorch": dict(variant="pytorch"),
}


@needs_gxx
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", sorted(ADAS_CASES))
def test_adas_kernels_follow_the_numpy_path(case, dtype, cpu_kernels):
    models = {k: _adas_model(dtype) for k in ("fused", "plain")}
    fused = cpu_fused(Adas, cpu_kernels)(models["fused"], **ADAS_CASES[case])
    plain = Adas(models["plain"], **ADAS_CASES[case])
    params = {k: list(m.parameters()) for k, m in models.items()}
    grads = _grads([p.shape for p in params["plain"]], STEPS)
    for t, gs in enumerate(grads):
        for key in params:
            for p, g in zip(params[key], gs):
                p.grad = g.astype(dtype)
        fused.step()
        plain.step()
        _assert_same_state(fused, plain, params["fused"], params["plain"], dtype, f"step {t+1}")
    assert fused.used == {"minidl_adas_weight", "minidl_adas_lr"}
    fused.close()
    plain.close()


def test_every_kernel_is_covered_and_well_formed():
    names = {s.name for s in (*adam.KERNELS.values(), *adas.KERNELS.values())}
    covered = set().union(*(c[2] for c in ADAM_CASES.values()))
    assert names == covered | {"minidl_adas_weight", "minidl_adas_lr"}
    for source in (*adam.KERNELS.values(), *adas.KERNELS.values()):
        assert isinstance(source, KernelSource)
        names = param_names(source.in_params) + param_names(source.out_params)
        assert len(set(names)) == len(names) and "i" not in names  # CuPy's loop index


@needs_gxx
def test_cpu_build_catches_double_constants(cpu_kernels):
    # the float32 promise: a bare double literal in a body fails the float build
    bad = KernelSource("T x", "T y", "y = x * 0.5;", "minidl_test_double")
    with pytest.raises(AssertionError, match="g\\+\\+ failed"):
        cpu_kernels(bad)(np.ones(2, np.float32), np.zeros(2, np.float32))
    good = KernelSource("T x, T c", "T y", "y = x * c;", "minidl_test_float")
    y = np.zeros((2, 3), np.float32)
    cpu_kernels(good)(np.arange(3, dtype=np.float32), 0.5, y)  # broadcast, scalar by value
    np.testing.assert_array_equal(y, np.tile(np.arange(3) * 0.5, (2, 1)))


# --------------------------------------------------------------------------- the switch


def test_fused_argument_is_validated_on_the_cpu():
    for make in (lambda ps, f: Adam(ps, fused=f), lambda ps, f: AdamW(ps, fused=f),
                 lambda ps, f: AMSGrad(ps, fused=f), lambda ps, f: Adas(ps, fused=f,
                                                                        offsets=False)):
        with pytest.raises(ValueError, match="fused=True"):
            make([nn.Parameter(np.zeros(3))], True)
        with pytest.raises(TypeError, match="fused must be"):
            make([nn.Parameter(np.zeros(3))], "yes")
        assert make([nn.Parameter(np.zeros(3))], None).fused is None


def test_elementwise_kernel_without_cupy_raises_clearly():
    if backend._cupy() is not None:
        pytest.skip("CuPy is importable here")
    with pytest.raises(RuntimeError, match="needs CuPy"):
        backend.elementwise_kernel(*adam.KERNELS["adam"])


def test_cpu_steps_import_no_cupy():
    code = ("import sys, numpy as np, minidl as md\n"
            "from minidl.optim import Adam, Adas\n"
            "p = md.nn.Parameter(np.ones(3, np.float32)); p.grad = np.ones(3, np.float32)\n"
            "Adam([p]).step(); Adas([p], offsets=False).step()\n"
            "print('cupy' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("make", [
    lambda ps, f: Adam(ps, lr=1e-2, fused=f),
    lambda ps, f: Adam(ps, lr=1e-2, amsgrad=True, fused=f),
    lambda ps, f: AdamW(ps, lr=1e-2, weight_decay=0.1, fused=f),
    lambda ps, f: Adas(ps, fused=f),
], ids=["adam", "amsgrad", "adamw", "adas"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_matches_unfused(device, make, dtype):
    """On the GPU: fused kernels against the xp operations. On the CPU: the automatic choice
    (fused=None) is the NumPy path, bit for bit."""
    on = True if device == "cuda" else None
    models = {f: _adas_model(dtype).to(device) for f in (on, False)}
    opts = {f: make(m, f) for f, m in models.items()}
    params = {f: list(m.parameters()) for f, m in models.items()}
    for gs in _grads([p.shape for p in params[False]], STEPS):
        for f in models:
            for p, g in zip(params[f], gs):
                p.grad = backend.to_device(g.astype(dtype), device)
            opts[f].step()
    tol = TOLERANCE[dtype] if device == "cuda" else dict(rtol=0, atol=0)
    assert len(params[on]) == 4
    for pf, pp in zip(params[on], params[False]):
        np.testing.assert_allclose(backend.to_numpy(pf.data), backend.to_numpy(pp.data), **tol)
