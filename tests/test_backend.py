"""minidl.backend: array modules, devices, the default dtype, seeded generators, transfers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minidl
from minidl import backend


def test_xp_of_and_device_of(device, xp):
    a = backend.to_device(np.zeros(3), device)
    assert backend.xp_of(a) is xp
    assert backend.xp_of(None, 2.0, 3, True, a) is xp  # Python scalars and None are ignored
    assert backend.xp_of() is np and backend.xp_of(1.0) is np
    assert backend.device_of(a) == device
    assert backend.is_cupy_array(a) == (device == "cuda")
    assert backend.xp_for(device) is xp


def test_xp_of_refuses_mixed_devices(device):
    if device == "cpu":
        pytest.skip("mixing devices needs a GPU")
    with pytest.raises(RuntimeError, match="different devices"):
        backend.xp_of(np.zeros(2), backend.to_device(np.zeros(2), device))


def test_to_device_round_trip(device):
    a = np.arange(6.0, dtype=np.float32).reshape(2, 3)
    d = backend.to_device(a, device)
    assert backend.device_of(d) == device and d.dtype == np.float32 and d.shape == (2, 3)
    assert backend.to_device(d, device) is d  # already there: no copy
    back = backend.to_device(d, "cpu")
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, a)
    np.testing.assert_array_equal(backend.to_numpy(d), a)


def test_transfer_count_counts_host_reads(device):
    t = minidl.tensor([1.0, 2.0], device=device)
    before = backend.transfer_count()
    backend.to_numpy(t.data)
    t.sum().item()
    t + 1.0  # arithmetic stays on the device: no read
    # counted on both backends (on the GPU each is a device-to-host copy), so a CPU test can
    # pin how often a loop reads back
    assert backend.transfer_count() - before == 2


def test_default_dtype_is_float32(device):
    assert backend.get_default_dtype() == np.float32
    assert minidl.get_default_dtype() == np.float32
    assert minidl.randn(2, device=device).dtype == np.float32
    assert minidl.tensor([0.5], device=device).dtype == np.float32


def test_default_dtype_context_manager_restores_even_after_an_exception(device):
    with minidl.default_dtype("float64"):
        assert backend.get_default_dtype() == np.float64
        assert minidl.zeros(2, device=device).dtype == np.float64
        with minidl.default_dtype(np.float32):
            assert backend.get_default_dtype() == np.float32
        assert backend.get_default_dtype() == np.float64
    assert backend.get_default_dtype() == np.float32
    with pytest.raises(KeyError), minidl.default_dtype("float64"):
        raise KeyError("inside the block")
    assert backend.get_default_dtype() == np.float32
    with pytest.raises(ValueError), minidl.default_dtype("int32"):
        pass  # pragma: no cover - never entered
    assert backend.get_default_dtype() == np.float32


def test_set_default_dtype_accepts_floats_and_rejects_the_rest():
    try:
        minidl.set_default_dtype("float64")
        assert backend.get_default_dtype() == np.float64
    finally:
        minidl.set_default_dtype(np.float32)
    for bad in (int, "int64", np.int32, bool, "float16"):
        with pytest.raises(ValueError, match="float32 or float64"):
            minidl.set_default_dtype(bad)
    assert backend.get_default_dtype() == np.float32


def test_manual_seed_makes_draws_reproducible(device):
    minidl.manual_seed(123)
    a, u = minidl.randn(3, 4, device=device), minidl.rand(5, device=device)
    minidl.manual_seed(123)
    b, v = minidl.randn(3, 4, device=device), minidl.rand(5, device=device)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(u.numpy(), v.numpy())
    minidl.manual_seed(124)
    assert not np.array_equal(minidl.randn(3, 4, device=device).numpy(), a.numpy())
    if device == "cpu":  # the CPU generator is NumPy's default_rng seeded with the seed
        minidl.manual_seed(7)
        expected = np.random.default_rng(7).standard_normal((2, 2), dtype=np.float32)
        np.testing.assert_array_equal(minidl.randn(2, 2).numpy(), expected)


def test_get_rng_one_generator_per_device(device, xp):
    minidl.manual_seed(0)
    rng = backend.get_rng(device)
    assert backend.get_rng(device) is rng  # one generator, drawn from in sequence
    assert isinstance(rng, xp.random.Generator)
    minidl.manual_seed(0)
    assert backend.get_rng(device) is not rng  # reseeding starts a fresh one
    with pytest.raises(ValueError):
        backend.get_rng("tpu")


def test_rng_state_round_trip():
    minidl.manual_seed(5)
    minidl.randn(3)
    state = backend.rng_state()
    a = minidl.randn(4).numpy()
    minidl.randn(10)
    backend.set_rng_state(state)
    np.testing.assert_array_equal(minidl.randn(4).numpy(), a)


def test_check_device_lists_valid_devices():
    assert backend.check_device("cpu") == "cpu"
    with pytest.raises(ValueError) as info:
        backend.check_device("tpu")
    assert "'tpu'" in str(info.value) and "cpu" in str(info.value) and "cuda" in str(info.value)
    with pytest.raises(ValueError, match="valid devices"):
        minidl.zeros(2, device="gpu")


@pytest.mark.skipif(backend.gpu_available(), reason="a GPU is present")
def test_cuda_without_gpu_gives_a_clear_error():
    for call in (lambda: backend.check_device("cuda"), lambda: backend.xp_for("cuda"),
                 lambda: backend.to_device(np.zeros(2), "cuda"),
                 lambda: minidl.tensor([1.0], device="cuda"),
                 lambda: minidl.zeros(2, device="cuda")):
        with pytest.raises(RuntimeError, match="no GPU"):
            call()
    assert backend.gpu_available() is False


def test_importing_minidl_does_not_import_cupy():
    code = "import minidl, sys; print('cupy' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).resolve().parents[1])
    assert result.stdout.strip() == "False"
    assert result.stderr == ""  # and prints nothing else


def test_scatter_add_adds_repeated_indices(device, xp):
    target = backend.to_device(np.zeros(4), device)
    backend.scatter_add(target, backend.to_device(np.array([1, 1, 3, 1]), device),
                        backend.to_device(np.array([1.0, 2.0, 3.0, 4.0]), device))
    np.testing.assert_array_equal(backend.to_numpy(target), [0.0, 7.0, 0.0, 3.0])
