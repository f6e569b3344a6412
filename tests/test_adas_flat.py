"""ADAS's multi-tensor step (minidl/optim/adas_flat.py) against the per-tensor step it replaced.

The oracle is tests/adas_reference.py, the per-tensor ADAS of before, frozen. On the CPU every
trajectory must agree bit for bit (the bytes of every parameter and of every state entry, in
float32 and float64) for every variant, every weight layout (Dense (in, out), Linear
(out, in), Conv2d, bias-less layers, unusual input axes) and any block size: small blocks cut
weights between rows, so the sums h carry over from block to block. On 'cuda' (a GPU, or the
CuPy stand-in whose kernels g++ builds) the fused kernels follow the CPU path to rounding,
with one launch of each kernel per group and step and no read back to the host.
"""

from __future__ import annotations

import numpy as np
import pytest

import minidl as md
from minidl import backend, nn
from minidl.data import load_mnist
from minidl.models import mlp
from minidl.nn.conv import Conv2d
from minidl.nn.layers import Dense, Flatten, Linear, ReLU
from minidl.nn.module import Parameter
from minidl.optim import flat
from minidl.optim.adas import Adas
from minidl.optim.adas_flat import COLS, ROWS, WHOLE, AdasLayout, plan_blocks
from tests.adas_reference import ReferenceAdas
from tests.conftest import cupyx_module, on_standin

STEPS = 25
VARIANTS = {
    "cpp": dict(),
    "cpp-tensor-sigma": dict(layer_sigma=False),
    "cpp-weight-decay": dict(weight_decay=1e-2),
    "cpp-no-offsets": dict(offsets=False),
    "pytorch": dict(variant="pytorch"),
    "pytorch-offsets-layer-sigma": dict(variant="pytorch", offsets=True, layer_sigma=True),
    "pytorch-weight-decay-lr": dict(variant="pytorch", weight_decay=1e-3, lr=0.5),
}
# bytes per array: every row a block of its own, a few rows per block, the default
BLOCKS = [4, 320, None]


def layers_model():
    """Conv2d (out, C, kh, kw), Dense (in, out) and Linear (out, in): every layout ADAS meets,
    with enough rows that small blocks cut every weight several times."""
    return nn.Sequential(Conv2d(2, 6, 2), ReLU(), Flatten(), Dense(24, 20), ReLU(),
                         Linear(20, 12), ReLU(), Linear(12, 3))


def bias_less_model():
    return nn.Sequential(Dense(6, 5, bias=False), ReLU(), Linear(5, 4), ReLU(),
                         Linear(4, 3, bias=False))


class Gained(nn.Module):
    """A layer of three tensors, (x W + b) * gain: with layer_sigma one unit whose k adds
    three shares, in order."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        dtype = backend.get_default_dtype()
        w = np.random.default_rng(n_in).standard_normal((n_in, n_out)) * 0.3
        self.weight = Parameter(w.astype(dtype), input_axes=(0,))
        self.bias = Parameter(np.zeros(n_out, dtype))
        self.gain = Parameter(np.ones(n_out, dtype))

    def forward(self, x):
        return (x @ self.weight + self.bias) * self.gain


def gained_model():
    return nn.Sequential(Gained(6, 5), ReLU(), Gained(5, 3))


def edge_model():
    """One output (a Dense row of one element), then one input (a Linear column: h sums it
    pairwise, the whole tensor in one block)."""
    return nn.Sequential(Dense(6, 4), ReLU(), Dense(4, 1), Linear(1, 3))


def build(make, dtype, device="cpu", seed=0):
    md.manual_seed(seed)
    with md.default_dtype(dtype):
        return make().to(device)


def bits(a) -> bytes:
    """The exact bytes of an array or scalar (so -0.0 differs from 0.0), with its dtype."""
    a = np.ascontiguousarray(backend.to_numpy(a) if not isinstance(a, np.generic) else a)
    return a.dtype.str.encode() + str(a.shape).encode() + a.tobytes()


def assert_bit_identical(params_a, params_b, opt_a, opt_b, where=""):
    assert len(params_a) == len(params_b)
    for i, (pa, pb) in enumerate(zip(params_a, params_b)):
        assert bits(pa.data) == bits(pb.data), f"{where}: parameter {i}"
        sa, sb = opt_a.state[pa], opt_b.state[pb]
        assert sorted(sa) == sorted(sb), f"{where}: state keys of parameter {i}"
        for key, value in sb.items():
            if isinstance(value, int):
                assert sa[key] == value, f"{where}: {key} of parameter {i}"
            else:
                assert bits(sa[key]) == bits(value), f"{where}: {key} of parameter {i}"
    for sa, sb in zip(opt_a.input_stats, opt_b.input_stats):
        assert bits(sa.mean) == bits(sb.mean) and sa.count == sb.count


def layout_of(opt, group=0):
    return opt._flat.get(id(opt.param_groups[group]))


def twin_run(make, kwargs, dtype, steps=STEPS, batches=None, check_every=False, between=None):
    """The same model trained by Adas (multi-tensor) and by ReferenceAdas (per tensor) on the
    same random batches (or `batches`); returns both models and optimizers."""
    models = [build(make, dtype) for _ in range(2)]
    opts = [Adas(models[0], **kwargs), ReferenceAdas(models[1], **kwargs)]
    rng = np.random.default_rng(1)
    first = next(iter(models[0].parameters()))
    for t in range(steps):
        if batches is not None:
            x, y = batches[t]
        else:
            in_shape = (4, 2, 3, 3) if isinstance(models[0][0], Conv2d) else (4, first.shape[0])
            x = rng.standard_normal(in_shape).astype(dtype)
            y = rng.integers(0, 3, 4)
        if between is not None:
            between(t, models, opts)
        for model, opt in zip(models, opts):
            opt.zero_grad()
            md.cross_entropy(model(md.Tensor(x)), y).backward()
            opt.step()
        if check_every:
            assert_bit_identical(*(list(m.parameters()) for m in models), *opts, f"step {t}")
    return models, opts


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_trajectory_is_bit_identical(variant, dtype, block, monkeypatch):
    if block is not None:
        monkeypatch.setattr(flat, "BLOCK_BYTES", block)
    models, opts = twin_run(layers_model, VARIANTS[variant], dtype, check_every=block == 4)
    assert isinstance(layout_of(opts[0]), AdasLayout) and layout_of(opts[1]) is None
    assert_bit_identical(*(list(m.parameters()) for m in models), *opts, "end")
    for opt in opts:
        opt.close()


@pytest.mark.parametrize("block", [4, None])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kwargs", [dict(offsets=False), dict(offsets=False, layer_sigma=False),
                                    dict(variant="pytorch", weight_decay=1e-2)],
                         ids=["cpp", "cpp-tensor-sigma", "pytorch-wd"])
def test_bias_less_layers_and_edge_shapes(kwargs, dtype, block, monkeypatch):
    if block is not None:
        monkeypatch.setattr(flat, "BLOCK_BYTES", block)
    for make in (bias_less_model, edge_model, gained_model):
        models, opts = twin_run(make, kwargs, dtype)
        assert isinstance(layout_of(opts[0]), AdasLayout)
        assert_bit_identical(*(list(m.parameters()) for m in models), *opts, make.__name__)


# (shape, input_axes): leading and trailing input axes over several dimensions, one row, one
# column, all axes inputs, a middle axis, 0-d and 1-d
LAYOUTS = [((4, 3, 5), (0,)), ((4, 3, 5), (0, 1)), ((6, 2, 3), (1, 2)), ((5, 1), (1,)),
           ((7, 1), (0,)), ((), ()), ((3,), (0,)), ((4, 6), (1,)), ((2, 3, 4), (1,)), ((9,), ()),
           ((1, 8), (0,)), ((8, 1, 1), (1, 2))]


@pytest.mark.parametrize("block", [4, 64, None])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_layout_with_random_gradients(dtype, block, monkeypatch):
    """Parameters without layers (each its own sigma-unit), gradients with exact zeros."""
    if block is not None:
        monkeypatch.setattr(flat, "BLOCK_BYTES", block)
    rng = np.random.default_rng(0)
    init = [rng.standard_normal(shape) for shape, _ in LAYOUTS]
    params = []
    for _ in range(2):
        ps = [Parameter(x.astype(dtype), input_axes=axes) for x, (_, axes) in zip(init, LAYOUTS)]
        params.append(ps)
    opts = [Adas(params[0], offsets=False, init_lr=1e-2),
            ReferenceAdas(params[1], offsets=False, init_lr=1e-2)]
    for t in range(STEPS):
        gs = [np.asarray(rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 3))
              for shape, _ in LAYOUTS]
        for g in gs:
            g.reshape(-1)[:: 3 + t % 4] = 0.0
        for ps, opt in zip(params, opts):
            for p, g in zip(ps, gs):
                p.grad = g.astype(dtype)
            opt.step()
    assert isinstance(layout_of(opts[0]), AdasLayout)
    assert_bit_identical(*params, *opts)


def test_small_blocks_cut_weights_between_rows():
    """The block plan the bit-identity tests rely on: blocks of whole rows that split Dense
    (ROWS) and Linear/Conv2d (COLS) weights, so both the per-row sums and the carried ones
    run."""
    model = build(layers_model, "float32")
    opt = Adas(model)
    model(md.Tensor(np.ones((1, 2, 3, 3), np.float32))).sum().backward()
    opt.step()
    tensors = layout_of(opt).tensors
    # (Linear lists its bias first: it rebinds its weight after Dense.__init__)
    assert [t.kind for t in tensors] == [COLS, WHOLE, ROWS, WHOLE] + [WHOLE, COLS] * 2
    blocks = plan_blocks(tensors, 50)
    assert {t.kind for b in blocks for t, r0, _, _ in b.parts if r0 > 0} == {ROWS, COLS}
    assert blocks[0].start == 0 and blocks[-1].stop == tensors[-1].sl.stop
    assert all(a.stop == b.start for a, b in zip(blocks, blocks[1:]))
    assert all(b.stop - b.start <= 50 or len(b.parts) == 1 for b in blocks)
    # several rows in some block of every weight (a carry over a one-row block proves little)
    assert all(any(t is u and r1 - r0 > 1 for b in blocks for u, r0, r1, _ in b.parts)
               for t in tensors if t.kind in (ROWS, COLS))


def test_sigma_derivative_adds_a_units_shares_in_order():
    """k = ((0 + k_1) + k_2) + k_3 per unit, in the unit's order, as the per-tensor loop adds
    them: the trajectories hardly show it (a last bit of k rarely survives into sigma), so
    the sums are checked where the order decides them (and where 0 + -0 gives +0)."""
    model = build(gained_model, "float32")
    opt = Adas(model, offsets=False)
    model(md.Tensor(np.ones((2, 6), np.float32))).sum().backward()
    opt.step()
    layout = layout_of(opt)
    assert layout.unit_members == [[0, 1, 2], [3, 4, 5]]
    layout.kt[...] = np.array([1e8, -1e8, 1.0, -0.0, -0.0, -0.0], np.float32)
    layout._step_sigma(opt.param_groups[0], 1e-8, 2)
    assert bits(layout.k) == bits(np.array([1.0, 0.0], np.float32))


@pytest.fixture(scope="module")
def mnist_batches():
    (x, y), _ = load_mnist()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))[:STEPS * 32]
    xs = (x[order].reshape(len(order), -1) / 255.0).astype(np.float32)
    return [(xs[i * 32:(i + 1) * 32], y[order[i * 32:(i + 1) * 32]]) for i in range(STEPS)]


@pytest.mark.parametrize("variant", ["cpp", "pytorch"])
@pytest.mark.parametrize("net", ["dense", "linear"])
def test_real_mnist_batches_bit_identical(net, variant, mnist_batches):
    """The benchmark's 784-256-10 MLP (Dense) and its Linear twin, on MNIST batches, float32
    with the default blocks (W1 of the Dense net spans several in float64, not here)."""
    make = mlp if net == "dense" else (
        lambda: nn.Sequential(Linear(784, 64), ReLU(), Linear(64, 10)))
    models, opts = twin_run(make, dict(variant=variant), "float32", batches=mnist_batches)
    assert_bit_identical(*(list(m.parameters()) for m in models), *opts)


def test_state_dict_keys_shapes_and_resume(tmp_path):
    """Same keys and shapes as the per-tensor form; the per-tensor form's checkpoint resumes in
    the multi-tensor step and the reverse, bit for bit (the layout is rebuilt around the loaded
    arrays)."""
    from minidl import serialize

    models, opts = twin_run(layers_model, {}, "float32", steps=6)
    saved = {"flat": opts[0].state_dict(), "ref": opts[1].state_dict()}
    assert sorted(saved["flat"]["state"]) == sorted(saved["ref"]["state"])
    for i, ref in saved["ref"]["state"].items():
        mine = saved["flat"]["state"][i]
        assert sorted(mine) == sorted(ref)
        for key, value in ref.items():
            assert np.shape(mine[key]) == np.shape(value), key
            if isinstance(value, int):
                assert mine[key] == value, key
            else:
                assert bits(mine[key]) == bits(value), key
    serialize.save({"opt": saved["ref"]}, tmp_path / "ref.npz")
    resumed = [build(layers_model, "float32") for _ in range(2)]
    for m in resumed:
        m.load_state_dict(models[1].state_dict())
    r_opts = [Adas(resumed[0]), ReferenceAdas(resumed[1])]
    r_opts[0].load_state_dict(serialize.load(tmp_path / "ref.npz")["opt"])
    r_opts[1].load_state_dict(saved["flat"])
    pairs = list(zip(models, opts)) + list(zip(resumed, r_opts))
    rng = np.random.default_rng(7)
    for _ in range(6):
        x, y = rng.standard_normal((4, 2, 3, 3)).astype(np.float32), rng.integers(0, 3, 4)
        for model, opt in pairs:
            opt.zero_grad()
            md.cross_entropy(model(md.Tensor(x)), y).backward()
            opt.step()
    ref_params = list(models[1].parameters())
    for model, opt in pairs[:1] + pairs[2:]:
        assert_bit_identical(list(model.parameters()), ref_params, opt, opts[1])
    layout = layout_of(r_opts[0])
    for i, p in enumerate(resumed[0].parameters()):  # the loaded state: views of the buffers
        assert r_opts[0].state[p]["lr"] is layout.buffers["lr"][1][i]


def test_rebinding_loading_and_a_missing_gradient_mid_run():
    """p.data rebound by the user, a state loaded mid-run, a step where a tensor has no
    gradient (its steps fall behind, and the group steps per tensor from then on): all
    noticed, all exact."""
    def between(t, models, opts):
        params = [list(m.parameters()) for m in models]
        if t == 3:
            for ps in params:
                ps[0].data = ps[0].data * 0.5  # a new array
        if t == 6:
            opts[0].load_state_dict(opts[1].state_dict())
        if t == 10:  # no gradient for the last bias at this step
            for opt, ps in zip(opts, params):
                opt.step = _without(opt.step, ps[-1])
        if t == 11:
            for opt in opts:
                del opt.step

    models, opts = twin_run(layers_model, {}, "float64", between=between, check_every=True)
    params = list(models[0].parameters())
    assert opts[0].state[params[-1]]["step"] == STEPS - 1
    assert layout_of(opts[0]) is None  # one tensor is a step behind: per tensor


def _without(step, p):
    """`step` run with p.grad hidden (as if p had not been used in the forward)."""
    def run(closure=None):
        grad, p.grad = p.grad, None
        try:
            return step(closure)
        finally:
            p.grad = grad
    return run


# --------------------------------------------------------------------------- 'cuda'

TOLERANCE = {"float64": dict(rtol=1e-12, atol=1e-15), "float32": dict(rtol=4e-6, atol=1e-7)}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("variant", ["cpp", "pytorch", "cpp-weight-decay"])
def test_fused_kernels_on_cuda_follow_the_cpu(variant, dtype):
    """Per group and step: one launch of the weight kernel, one of the step-size kernel; the
    trajectory within rounding of the CPU's multi-tensor (= per-tensor) one; fused=False on
    'cuda' is the same xp chain as the CPU's."""
    kwargs = VARIANTS[variant]
    models = {k: build(layers_model, dtype, "cuda" if k != "cpu" else "cpu")
              for k in ("cpu", "fused", "xp")}
    opts = {"cpu": Adas(models["cpu"], **kwargs),
            "fused": Adas(models["fused"], fused=True, **kwargs),
            "xp": Adas(models["xp"], fused=False, **kwargs)}
    launches = []
    kernel = opts["fused"].kernel
    opts["fused"].kernel = lambda source: (launches.append(source.name), kernel(source))[1]
    rng = np.random.default_rng(3)
    for t in range(12):
        x, y = rng.standard_normal((4, 2, 3, 3)).astype(dtype), rng.integers(0, 3, 4)
        for key, opt in opts.items():
            device = "cpu" if key == "cpu" else "cuda"
            opt.zero_grad()
            out = models[key](md.Tensor(backend.to_device(x, device)))
            md.cross_entropy(out, backend.to_device(y, device)).backward()
            if key == "fused":
                with cupyx_module().allow_synchronize(False):  # no read back to the host
                    opt.step()
            else:
                opt.step()
        assert launches == ["minidl_adas_weight", "minidl_adas_lr"] * (t + 1)
    cpu = list(models["cpu"].parameters())
    for key in ("fused", "xp"):
        tol = dict(rtol=0, atol=0) if key == "xp" and on_standin() else TOLERANCE[dtype]
        for i, (p, q) in enumerate(zip(models[key].parameters(), cpu)):
            np.testing.assert_allclose(backend.to_numpy(p.data), q.data, **tol,
                                       err_msg=f"{key}: parameter {i}")
            for name, value in opts["cpu"].state[q].items():
                if not isinstance(value, int):
                    np.testing.assert_allclose(
                        backend.to_numpy(opts[key].state[p][name]), np.asarray(value), **tol,
                        err_msg=f"{key}: {name} of parameter {i}")
        assert isinstance(layout_of(opts[key]), AdasLayout)
