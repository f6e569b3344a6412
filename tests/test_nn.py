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
    assert layer.bias.input_axes == () and layer.weight.owner is layer


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
