"""Module, Parameter, Sequential, Dense, activations and loss modules."""

import numpy as np
import pytest

import minidl as md
from minidl import backend, nn
from minidl.models import lenet, mlp
from minidl.nn.layers import (
    CrossEntropyLoss,
    Dense,
    Flatten,
    Identity,
    LeakyReLU,
    MSELoss,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)


def test_dense_forward_matches_numpy(device, xp):
    md.manual_seed(0)
    layer = Dense(5, 3).to(device)
    x = xp.asarray(np.random.default_rng(1).standard_normal((4, 5)), dtype=np.float32)
    y = layer(md.Tensor(x))
    w, b = backend.to_numpy(layer.weight.data), backend.to_numpy(layer.bias.data)
    np.testing.assert_allclose(y.numpy(), backend.to_numpy(x) @ w + b, rtol=1e-6)
    assert layer.weight.shape == (5, 3) and layer.weight.input_axes == (0,)
    assert layer.bias.input_axes == () and layer._parameters["weight"] is layer.weight


def test_dense_gradcheck_including_leading_axes(device):
    with md.default_dtype("float64"):
        layer = Dense(4, 3).to(device)
        x = md.Tensor(backend.to_device(np.random.default_rng(0).standard_normal((2, 3, 4)),
                                        device), requires_grad=True)

        def f(x, w, b):
            return md.ops.linear(x, w, b).tanh()

        assert md.gradcheck(f, [x, layer.weight, layer.bias])


def test_torch_default_init_bounds():
    md.manual_seed(0)
    layer = Dense(400, 50)
    bound = 1 / np.sqrt(400)
    w = layer.weight.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.02 * bound
    assert np.abs(layer.bias.numpy()).max() <= bound


def test_manual_seed_makes_models_reproducible():
    md.manual_seed(3)
    a = mlp().state_dict()
    md.manual_seed(3)
    b = mlp().state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_bad_sizes_and_init_names():
    with pytest.raises(ValueError, match="positive"):
        Dense(0, 3)
    with pytest.raises(ValueError, match=r"positive int sizes, got in_features=2\.5"):
        Dense(2.5, 3)  # not a TypeError from deep inside NumPy
    assert Dense(np.int64(2), 3).weight.shape == (2, 3)
    with pytest.raises(ValueError, match="unknown init 'nope'.*he_uniform"):
        Dense(3, 3, init="nope")
    with pytest.raises(ValueError, match="unknown activation"):
        mlp(activation="swish")


def test_named_parameters_order_and_modules():
    model = mlp(hidden=(8, 6), in_features=5, classes=3)
    names = [n for n, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    assert len(list(model.parameters())) == 6
    assert len(list(model.modules())) == 6  # Sequential + 3 Dense + 2 ReLU
    assert "Dense(5, 8, bias=True)" in repr(model) and "(1): ReLU()" in repr(model)


def test_shared_parameter_listed_once():
    layer = Dense(3, 3)
    model = nn.Sequential(layer, ReLU(), layer)
    assert len(list(model.parameters())) == 2


def test_state_dict_round_trip_and_strict_checks():
    md.manual_seed(0)
    a, b = mlp(hidden=(7,), in_features=4, classes=2), mlp(hidden=(7,), in_features=4,
                                                            classes=2)
    sd = a.state_dict()
    sd["0.weight"][0, 0] = 42.0  # a copy: the model is untouched
    assert a[0].weight.data[0, 0] != 42.0
    b.load_state_dict(sd)
    assert b[0].weight.data[0, 0] == 42.0
    with pytest.raises(KeyError, match=r"missing keys \['2.bias'\]"):
        b.load_state_dict({k: v for k, v in sd.items() if k != "2.bias"})
    with pytest.raises(KeyError, match=r"unexpected keys \['extra'\]"):
        b.load_state_dict({**sd, "extra": np.zeros(1)})
    with pytest.raises(ValueError, match=r"0.weight.*shape \(3, 7\).*\(4, 7\)"):
        b.load_state_dict({**sd, "0.weight": np.zeros((3, 7))})
    b.load_state_dict({"0.bias": np.ones(7)}, strict=False)
    assert np.all(b[0].bias.data == 1)


def test_train_eval_switches_the_whole_tree():
    model = mlp()
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_activation_modules(device, xp):
    x = md.Tensor(xp.asarray([[-2.0, -0.5, 0.0, 1.5]], dtype=np.float32))
    v = backend.to_numpy(x.data)
    np.testing.assert_allclose(ReLU()(x).numpy(), np.maximum(v, 0))
    np.testing.assert_allclose(LeakyReLU(0.1)(x).numpy(), np.where(v > 0, v, 0.1 * v), rtol=1e-6)
    np.testing.assert_allclose(Sigmoid()(x).numpy(), 1 / (1 + np.exp(-v)), rtol=1e-6)
    np.testing.assert_allclose(Tanh()(x).numpy(), np.tanh(v), rtol=1e-6)
    e = np.exp(v - v.max())
    np.testing.assert_allclose(Softmax()(x).numpy(), e / e.sum(), rtol=1e-6)
    assert Flatten()(md.Tensor(xp.zeros((2, 3, 4)))).shape == (2, 12)
    assert Identity()(x) is x


def test_loss_modules(device, xp):
    logits = md.Tensor(xp.asarray([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]]), requires_grad=True)
    target = xp.asarray([0, 2])
    z = backend.to_numpy(logits.data)
    lse = np.log(np.exp(z).sum(1))
    expected = np.mean(lse - z[[0, 1], [0, 2]])
    assert CrossEntropyLoss()(logits, target).item() == pytest.approx(expected, rel=1e-12)
    pred = md.Tensor(xp.asarray([1.0, 2.0, 4.0]))
    assert MSELoss()(pred, xp.asarray([1.0, 0.0, 0.0])).item() == pytest.approx(20 / 3)
    assert MSELoss("sum")(pred, xp.asarray([1.0, 0.0, 0.0])).item() == pytest.approx(20)


def test_module_to_moves_parameters(device):
    model = mlp(hidden=(4,), in_features=3, classes=2).to(device)
    assert all(p.device == device for p in model.parameters())


def test_sequential_rejects_non_modules():
    with pytest.raises(TypeError, match="Sequential takes Modules"):
        nn.Sequential(Dense(2, 2), lambda x: x)


def test_lenet_shapes(device, xp):
    md.manual_seed(0)
    model = lenet().to(device)
    out = model(md.Tensor(xp.zeros((2, 1, 28, 28), dtype=np.float32)))
    assert out.shape == (2, 10)
    assert sum(p.size for p in model.parameters()) == 61706


def test_reassigned_buffer_stays_in_state_dict():
    class Counter(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("count", np.zeros(()))

    m = Counter()
    m.count = m.count + 1  # a new array under the same name
    assert list(m.state_dict()) == ["count"] and m.state_dict()["count"] == 1


def test_load_state_dict_that_does_not_fit_leaves_the_model_untouched():
    # the first key fits, the last does not: nothing may be copied before the shape error
    md.manual_seed(0)
    model = mlp(hidden=(7,), in_features=4, classes=2)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    bad = {k: np.full_like(v, 42.0) for k, v in before.items()}
    bad["2.bias"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"2\.bias.*shape \(3,\).*\(2,\)"):
        model.load_state_dict(bad)
    assert all(np.array_equal(model.state_dict()[k], v) for k, v in before.items())
    bn = nn.BatchNorm1d(3)
    with pytest.raises(ValueError, match=r"running_mean.*buffer has shape \(3,\)"):
        bn.load_state_dict({**{k: v + 1 for k, v in bn.state_dict().items()},
                            "running_mean": np.zeros(4)})
    assert np.all(bn.weight.data == 1) and np.all(bn.running_var == 1)


# ------------------------------------------------------------------- every layer, gradchecked


def _distinct(*shape):
    """Values at least 0.1 apart (max pooling has one winner per window), shuffled."""
    n = int(np.prod(shape))
    return (np.random.default_rng(5).permutation(n).reshape(shape) - n / 2) * 0.1


def _away_from_zero(*shape):
    x = np.random.default_rng(6).uniform(-2, 2, shape)
    return np.where(np.abs(x) < 0.2, np.sign(x) * 0.5 + x, x)  # no kink for relu / leaky_relu


LABELS = np.array([0, 2, 1, 2, 0])
LAYERS = {  # name: (module factory, input maker)
    "dense_leading_axes": (lambda: Dense(4, 3), lambda: np.random.default_rng(0).normal(
        size=(2, 3, 4))),
    "dense_he_no_bias": (lambda: Dense(4, 2, bias=False, init="he_normal"),
                         lambda: np.random.default_rng(1).normal(size=(5, 4))),
    "conv2d_stride2_pad1": (lambda: nn.Conv2d(2, 3, 3, stride=2, padding=1),
                            lambda: np.random.default_rng(2).normal(size=(2, 2, 5, 6))),
    "conv2d_rect_stride_pad": (lambda: nn.Conv2d(2, 2, (2, 3), stride=(1, 2), padding=(1, 0)),
                               lambda: np.random.default_rng(3).normal(size=(1, 2, 4, 7))),
    "maxpool2": (lambda: nn.MaxPool2d(2), lambda: _distinct(2, 2, 4, 6)),
    "maxpool3_stride2_pad1": (lambda: nn.MaxPool2d(3, 2, 1), lambda: _distinct(1, 2, 5, 5)),
    "avgpool2": (lambda: nn.AvgPool2d(2), lambda: _distinct(2, 2, 4, 6)),
    "avgpool3_stride1_pad1": (lambda: nn.AvgPool2d(3, 1, 1), lambda: _distinct(1, 2, 4, 5)),
    "flatten": (lambda: Flatten(), lambda: _distinct(2, 3, 4)),
    "batchnorm1d_train": (lambda: nn.BatchNorm1d(3), lambda: _distinct(5, 3)),
    "batchnorm1d_eval": (lambda: _eval(nn.BatchNorm1d(3)), lambda: _distinct(5, 3)),
    "batchnorm1d_ncl": (lambda: nn.BatchNorm1d(2), lambda: _distinct(3, 2, 4)),
    "batchnorm2d_train": (lambda: nn.BatchNorm2d(2), lambda: _distinct(3, 2, 2, 3)),
    "batchnorm2d_eval": (lambda: _eval(nn.BatchNorm2d(2)), lambda: _distinct(3, 2, 2, 3)),
    "dropout": (lambda: nn.Dropout(0.3), lambda: _distinct(4, 5)),
    "relu": (lambda: ReLU(), lambda: _away_from_zero(3, 4)),
    "leaky_relu": (lambda: LeakyReLU(0.1), lambda: _away_from_zero(3, 4)),
    "sigmoid": (lambda: Sigmoid(), lambda: _distinct(3, 4)),
    "tanh": (lambda: Tanh(), lambda: _distinct(3, 4)),
    "softmax_axis0": (lambda: Softmax(axis=0), lambda: _distinct(3, 4)),
    "small_lenet": (lambda: nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), Tanh(),
                                          nn.MaxPool2d(2), Flatten(), Dense(8, 3)),
                    lambda: _distinct(2, 1, 4, 4)),
    "cross_entropy_mean": (lambda: _WithTarget(CrossEntropyLoss(), LABELS),
                           lambda: _distinct(5, 3)),
    "cross_entropy_sum_one_hot": (lambda: _WithTarget(CrossEntropyLoss("sum"), np.eye(3)[LABELS]),
                                  lambda: _distinct(5, 3)),
    "mse": (lambda: _WithTarget(MSELoss(), np.linspace(-1, 1, 12).reshape(3, 4)),
            lambda: _distinct(3, 4)),
    "mse_sum": (lambda: _WithTarget(MSELoss("sum"), np.ones((3, 4))), lambda: _distinct(3, 4)),
}


def _eval(module):
    module.running_mean[...] = np.linspace(-0.5, 0.5, module.num_features)
    module.running_var[...] = np.linspace(0.5, 2.0, module.num_features)
    return module.eval()


class _WithTarget(nn.Module):
    """A loss module with its target fixed, so that it is a function of the prediction only."""

    def __init__(self, loss, target):
        super().__init__()
        self.loss, self.target = loss, target

    def forward(self, x):
        return self.loss(x, backend.to_device(self.target, x.device))


@pytest.mark.parametrize("name", LAYERS)
def test_every_layer_and_loss_gradchecks_through_its_module(device, name):
    """gradcheck of module(x) with respect to x and every parameter, calling the module itself:
    the gradient must reach every parameter through the layer as it is used (no detached or
    bypassed path), in the configurations the layers set up (stride, padding, mode, a fixed
    dropout mask). For each evaluation the float64 copies that gradcheck perturbs are swapped
    in for the parameters."""
    make_layer, make_x = LAYERS[name]
    with md.default_dtype("float64"):
        md.manual_seed(0)
        layer = make_layer().to(device)
    named = list(layer.named_parameters())
    holders = {id(p): m for m in layer.modules() for p in m._parameters.values()}
    slots = [(holders[id(p)], n.rsplit(".", 1)[-1]) for n, p in named]

    def f(x, *params):
        try:
            for (owner, attr), q in zip(slots, params):
                object.__setattr__(owner, attr, q)
            md.manual_seed(1)  # the same dropout mask for every evaluation
            return layer(x)
        finally:
            for (owner, attr), (_, p) in zip(slots, named):
                object.__setattr__(owner, attr, p)

    x = md.Tensor(backend.to_device(make_x(), device), requires_grad=True)
    assert x.dtype == np.float64 and all(p.dtype == np.float64 for _, p in named)
    assert md.gradcheck(f, [x, *(p for _, p in named)])


@pytest.mark.parametrize("make", [lambda: nn.Dense(7, 5), lambda: nn.Linear(7, 5),
                                  lambda: nn.Conv2d(3, 4, 3)])
def test_default_init_float32_is_float64_rounded_once(make):
    """PyTorch's default init draws in float64 and rounds once: a float32 layer starts from the
    float64 layer's numbers rounded to float32 (the MNIST reproductions rely on this)."""
    weights = {}
    for dtype in ("float64", "float32"):
        with md.default_dtype(dtype):
            md.manual_seed(3)
            layer = make()
        weights[dtype] = [p.data for p in layer.parameters()]
    for w64, w32 in zip(weights["float64"], weights["float32"]):
        assert w32.dtype == np.float32
        np.testing.assert_array_equal(w32, w64.astype(np.float32))
