"""The GPU code path end to end, on a real GPU or the CuPy stand-in (tests/cupy_standin).

Each of the first tests pins a defect the stand-in found in code the per-op tests never ran on
'cuda': evaluation inside fit, host inputs to evaluate, broadcast-view gradients, host reads in
BatchNorm, Santa's host-drawn noise, and random streams that differed between devices.
tests/test_gpu_training.py trains end to end on 'cuda'.
"""

import numpy as np
import pytest

import minidl as md
from minidl import backend, nn
from minidl.models import mlp
from minidl.optim.adam import Adam
from minidl.optim.santa import SantaE
from minidl.train import evaluate, fit
from tests.conftest import cupyx_module, on_standin


def _data(n=120, d=784, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, d), dtype=np.float32), rng.integers(0, 10, n)


def test_fit_evaluates_device_test_arrays():
    x, y = _data()
    md.manual_seed(0)
    model = mlp(hidden=(8,)).to("cuda")
    test = (backend.to_device(x, "cuda"), backend.to_device(y, "cuda"))
    hist = fit(model, Adam(model), (x, y), 1, batch_size=40, test=test, progress=False,
               device="cuda")
    assert 0.0 <= hist.records[-1]["test_acc"] <= 1.0


def test_evaluate_accepts_host_arrays_for_a_gpu_model():
    x, y = _data()
    md.manual_seed(0)
    model = mlp(hidden=(8,))
    on_cpu = evaluate(model, x, y)
    on_gpu = evaluate(model.to("cuda"), x, y)
    assert on_gpu["errors"] == on_cpu["errors"]
    np.testing.assert_allclose(on_gpu["loss"], on_cpu["loss"], rtol=1e-6)


def test_grad_of_a_broadcast_backward_is_an_owned_contiguous_array(device):
    w = nn.Parameter(backend.to_device(np.ones((3, 4), np.float32), device))
    w.sum().backward()
    g = w.grad
    assert g.flags.c_contiguous and g.flags.owndata and 0 not in g.strides
    g[0, 0] = 5.0  # an in-place edit touches one element only
    assert backend.to_numpy(g).sum() == 5.0 + 11.0


def test_batchnorm_cumulative_average_reads_nothing_back():
    bn = nn.BatchNorm1d(3, momentum=None).to("cuda")
    x = md.Tensor(backend.to_device(np.random.default_rng(0).random((8, 3), np.float32), "cuda"))
    with cupyx_module().allow_synchronize(False):
        for _ in range(3):
            bn(x)
    xs = backend.to_numpy(x.data)
    # the cumulative average of three equal batch means is that mean
    np.testing.assert_allclose(backend.to_numpy(bn.running_mean), xs.mean(0), rtol=1e-6)


def test_santa_draws_its_noise_on_the_device():
    if not on_standin():
        pytest.skip("counts host-to-device copies through the stand-in")
    from tests import cupy_standin

    md.manual_seed(0)
    p = nn.Parameter(backend.to_device(np.ones((50, 50), np.float32), "cuda"))
    opt = SantaE([p], lr=1e-3, N=100, burnin=10)
    p.grad = backend.to_device(np.ones((50, 50), np.float32), "cuda")
    opt.step()
    before = cupy_standin.host_writes()
    for _ in range(3):
        opt.step()
    assert cupy_standin.host_writes() == before
    # the noise generator's whole state: its seed and how many draws it made (u_0 and 4 steps)
    assert opt.state_dict()["rng"] == {"seed": opt.seed, "counter": 5}


@pytest.mark.parametrize("init", ["torch", "he_normal", "glorot_uniform"])
def test_initial_weights_are_the_same_on_both_devices(init):
    """Built directly on 'cuda' from the same seed: the CPU's weights (uniform draws bit for bit;
    normal ones to rounding, cos and log being the device's own)."""
    weights = {}
    for device in ("cpu", "cuda"):
        md.manual_seed(3)
        layer = nn.Dense(30, 20, init=init, device=device)
        weights[device] = backend.to_numpy(layer.weight.data)
    np.testing.assert_allclose(weights["cuda"], weights["cpu"], rtol=1e-6, atol=0)


def test_dropout_masks_are_the_same_on_both_devices():
    x = np.ones((64, 32), np.float32)
    masks = {}
    for device in ("cpu", "cuda"):
        md.manual_seed(5)
        out = md.ops.dropout(md.Tensor(backend.to_device(x, device)), 0.5, True)
        masks[device] = backend.to_numpy(out.data)
    np.testing.assert_array_equal(masks["cuda"], masks["cpu"])


def test_adas_without_eps_stays_bounded_where_squared_gradients_underflow(device):
    """eps = 0 (ADAS's C++ default) where g^2 underflows: below about 1e-19 in float32, and on
    a GPU, whose float32 kernels flush denormals to zero, wherever g^2 is denormal. Then sqrt(a)
    is 0 while g is not; N(g) = g * corr / sqrt(a) is +-1 at the first step in exact arithmetic,
    so no weight may move by more than its step size s, on the NumPy path and in the kernel."""
    from minidl.optim.adas import Adas

    layer = nn.Dense(4, 3, device=device)
    before = [backend.to_numpy(p.data).copy() for p in layer.parameters()]
    opt = Adas(layer, eps=0.0, lr=0.01, offsets=False, batch_size=4)
    for g in (1e-30, 3e-21, 1e-40):  # the last is a float32 denormal itself
        for p in layer.parameters():
            p.grad = backend.to_device(np.full(p.shape, g, np.float32), device)
        opt.step()
    for p, p0 in zip(layer.parameters(), before):
        moved = np.abs(backend.to_numpy(p.data) - p0)
        assert np.all(np.isfinite(moved)) and moved.max() <= 3 * 0.01 * 1.01
