"""minidl.backend: array modules, devices, the default dtype, seeded generators, transfers."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minidl
from minidl import backend
from tests.rng_reference import reference_normals, reference_uniforms, reference_words


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


def test_random_streams_follow_the_counter_based_scheme(device):
    """Draw c of seed s is splitmix64 keyed by (s, c): uniforms bit for bit (top 24/53 bits,
    exact), normals by Box-Muller to the rounding of float32/float64 log, cos and sin."""
    minidl.manual_seed(7)
    u32 = minidl.rand(2, 3, device=device).numpy()  # draw 0
    z32 = minidl.randn(5, device=device).numpy()  # draw 1 (odd length: one sine unused)
    u64 = minidl.rand(4, dtype="float64", device=device).numpy()  # draw 2
    z64 = minidl.randn(2, 2, dtype="float64", device=device).numpy()  # draw 3
    assert u32.dtype == np.float32 and z64.dtype == np.float64 and z64.shape == (2, 2)
    np.testing.assert_array_equal(u32.ravel(), np.float32(reference_uniforms(7, 0, 6, 24)))
    np.testing.assert_array_equal(u64, reference_uniforms(7, 2, 4, 53))
    np.testing.assert_allclose(z32, reference_normals(7, 1, 5, 24), rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(z64.ravel(), reference_normals(7, 3, 4, 53), rtol=1e-13)
    assert backend.rng_state() == {"seed": 7, "counter": 4}
    assert backend.get_rng().randbits() == reference_words(7, 4, 1)[0]


def test_random_streams_are_the_same_on_both_devices(device):
    minidl.manual_seed(11)
    u = minidl.rand(300, device=device).numpy()
    z = minidl.randn(301, dtype="float64", device=device).numpy()
    minidl.manual_seed(11)
    np.testing.assert_array_equal(u, minidl.rand(300).numpy())
    np.testing.assert_allclose(z, minidl.randn(301, dtype="float64").numpy(), rtol=1e-14)


def test_random_stream_statistics():
    """Moments of 10^6 draws within about 4 standard errors; uniforms fill [0, 1)."""
    minidl.manual_seed(2)
    u = minidl.rand(10**6, dtype="float64").numpy()
    z = minidl.randn(10**6, dtype="float64").numpy()
    assert 0 <= u.min() < 1e-5 and 1 - 1e-5 < u.max() < 1
    assert abs(u.mean() - 0.5) < 4 * 0.2887e-3 and abs(u.var() - 1 / 12) < 4 * 0.0745e-3
    assert abs(z.mean()) < 4e-3 and abs(z.var() - 1) < 4 * 1.414e-3
    assert abs(np.mean(np.abs(z) > 2) - 0.0455) < 4 * 0.21e-3  # normal tails
    assert abs(np.corrcoef(z[:-1], z[1:])[0, 1]) < 4e-3  # cos/sin pairs uncorrelated


def test_generator_validates_its_seed():
    for bad in (-1, 2**64, 1.5, True, "3"):
        with pytest.raises(ValueError, match="seed"):
            backend.Generator(bad)
    with pytest.raises(ValueError, match="float32 or float64"):
        backend.Generator(0).random(3, dtype="int32")
    with pytest.raises(ValueError, match="tpu"):
        backend.Generator(0).random(3, device="tpu")
    assert backend.get_rng() is backend.get_rng()  # one stream, drawn from in sequence
    with pytest.raises(ValueError, match="older minidl"):
        backend.set_rng_state({"seed": 0, "cpu": {"bit_generator": "PCG64"}})


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
