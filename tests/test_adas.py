"""ADAS and the input-offset protocol: equations by hand, the centred gradient, attach/detach,
eval mode, checkpoints, errors."""

import math

import numpy as np
import pytest

import minidl as md
from minidl import backend, nn
from minidl.optim.input_offsets import InputStats
from minidl.nn.layers import Dense, ReLU
from minidl.optim.adas import Adas
from tests.optim_harness import rosenbrock

IN, OUT, B = 3, 2, 2
X = [np.array([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5]]),
     np.array([[-0.3, 0.8, 1.0], [0.2, 0.4, -1.2]]),
     np.array([[1.0, 1.0, 0.0], [-2.0, 0.5, 0.3]]),
     np.array([[0.4, -0.6, 0.9], [-1.1, 0.7, 0.2]]),
     np.array([[-0.8, 0.3, -0.4], [0.6, -1.5, 1.1]])]
C = [np.array([[0.7, -0.2], [0.1, 0.4]]),  # upstream gradients dL/dy of L = sum(C * y)
     np.array([[-0.5, 0.3], [0.6, -0.1]]),
     np.array([[0.2, 0.2], [-0.4, 0.9]]),
     np.array([[-0.3, 0.8], [0.5, 0.1]]),
     np.array([[0.9, -0.6], [-0.2, 0.4]])]
W0 = np.array([[0.1, -0.2], [0.3, 0.05], [-0.15, 0.25]])
B0 = np.array([0.01, -0.02])


def _layer(device):
    with md.default_dtype("float64"):
        layer = Dense(IN, OUT).to(device)
    layer.weight.data[...] = backend.to_device(W0, device)
    layer.bias.data[...] = backend.to_device(B0, device)
    return layer


def _train_steps(layer, opt, device, steps=3):
    for t in range(steps):
        layer.zero_grad()
        y = layer(md.Tensor(backend.to_device(X[t], device)))
        (y * md.Tensor(backend.to_device(C[t], device))).sum().backward()
        opt.step()


def _oracle(steps, offsets, s0, sigma0=5e-3, kappa=5e-4, b1=0.999, b2=0.9999, b3=0.99999,
            eps=0.0, m=0.99999):
    """The C++ layer, written out element by element: one step-size per input (+ bias), one
    sigma, plain Python loops. Returns W, b, the step sizes s (inputs, then the bias) and
    sigma after `steps` steps."""
    W, bias = W0.copy(), B0.copy()
    n_in = IN + 1                                   # inputs + the bias "input"
    s = [s0] * n_in
    sigma, a_sigma = sigma0, 0.0
    mu = [0.0] * IN
    aW = [[0.0] * OUT for _ in range(n_in)]
    D = [[0.0] * OUT for _ in range(n_in)]
    a_s, E = [0.0] * n_in, [0.0] * n_in

    def norm(d, a, t):
        a = b1 * a + (1 - b1) * d * d
        den = math.sqrt(a) + eps
        return (d * math.sqrt(1 - b1**t) / den if den > 0 else 0.0), a

    for t in range(1, steps + 1):
        x, g = X[t - 1], C[t - 1]
        if offsets:  # the batch joins the running mean first (B samples of decay m)
            keep = m**B
            mu = [keep * mu[i] + (1 - keep) * x[:, i].mean() for i in range(IN)]
        G = [[sum((x[n, i] - (mu[i] if offsets else 0.0)) * g[n, o] for n in range(B))
              for o in range(OUT)] for i in range(IN)]
        G.append([sum(g[n, o] for n in range(B)) for o in range(OUT)])  # bias row
        h = [0.0] * n_in
        for i in range(n_in):
            for o in range(OUT):
                n, aW[i][o] = norm(G[i][o], aW[i][o], t)
                if i < IN:
                    W[i, o] -= s[i] * n
                else:
                    bias[o] -= s[i] * n
                h[i] += D[i][o] * G[i][o]
                D[i][o] = b3 * D[i][o] + (1 - b3) * n
        k = 0.0
        for i in range(n_in):
            n_s, a_s[i] = norm(h[i], a_s[i], t)
            k += E[i] * h[i]
            s[i] *= 1 + sigma * n_s
            E[i] = b2 * E[i] + (1 - b2) * n_s
        n_k, a_sigma = norm(k, a_sigma, t)
        sigma *= 1 + kappa * n_k
    return W, bias, s, sigma


@pytest.mark.parametrize("steps", [3, 5])
@pytest.mark.parametrize("offsets", [True, False])
def test_steps_match_the_equations(device, offsets, steps):
    """W and b, and also the step sizes and sigma: D and E start at 0, so h = 0 at step 1 and
    k = 0 at steps 1-2; a change of sigma (E's update order, kappa, the bias's share of k)
    first reaches s after step 3 and W after step 4, invisible in W after three steps."""
    layer = _layer(device)
    opt = Adas(layer, offsets=offsets, init_lr=0.02, batch_size=4)
    _train_steps(layer, opt, device, steps)
    W, b, s, sigma = _oracle(steps, offsets, s0=0.02)
    assert sigma != 5e-3 and len(set(s)) == IN + 1  # sigma and every s have moved
    np.testing.assert_allclose(layer.weight.numpy(), W, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(layer.bias.numpy(), b, rtol=1e-12, atol=1e-15)
    w_state, b_state = opt.state[layer.weight], opt.state[layer.bias]
    np.testing.assert_allclose(backend.to_numpy(w_state["lr"]), s[:IN], rtol=1e-12)
    np.testing.assert_allclose(float(backend.to_numpy(b_state["lr"])), s[IN], rtol=1e-12)
    # one sigma per layer (kept under its first tensor, the weight), shared with the bias
    assert "sigma" not in b_state
    np.testing.assert_allclose(float(backend.to_numpy(w_state["sigma"])), sigma, rtol=1e-12)


def test_default_initial_step_size_follows_the_cpp_rule(device):
    layer = _layer(device)
    opt = Adas(layer, batch_size=4)  # the C++ batch: its decays exactly
    _train_steps(layer, opt, device, steps=1)
    s = backend.to_numpy(opt.state[layer.weight]["lr"])
    s_b = float(backend.to_numpy(opt.state[layer.bias]["lr"]))
    # after one step s = s0 (1 + sigma0 * N(h)) with h = 0 (D starts at 0): still s0
    np.testing.assert_allclose(s, 0.1 * math.sqrt(4) / (IN + 1), rtol=1e-12)
    assert s_b == pytest.approx(0.1 * 2 / (IN + 1), rel=1e-12)


@pytest.mark.parametrize("steps", [3, 5])
def test_pytorch_variant_steps(device, steps):
    """adasopt_pytorch.py: no offsets, one sigma per tensor, eps 1e-8, beta_2 .999, beta_3 .9999.
    Checks s and sigma too (see test_steps_match_the_equations)."""
    layer = _layer(device)
    opt = Adas(layer, variant="pytorch")
    _train_steps(layer, opt, device, steps)
    # per-tensor sigma: run the oracle's weight and bias parts as separate units
    for p, is_bias in ((layer.weight, False), (layer.bias, True)):
        want, s, sigma = _oracle_tensor(is_bias, steps=steps)
        assert sigma != 5e-3
        np.testing.assert_allclose(p.numpy(), want, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(backend.to_numpy(opt.state[p]["lr"]), s, rtol=1e-12)
        np.testing.assert_allclose(float(backend.to_numpy(opt.state[p]["sigma"])), sigma,
                                   rtol=1e-12)


def _oracle_tensor(is_bias, lr=1e-3, sigma=5e-3, kappa=5e-4, b1=0.999, b2=0.999, b3=0.9999,
                   eps=1e-8, steps=3):
    """The PyTorch file's update for one tensor (bias: a scalar step size), vectorised.
    Returns the tensor, its step sizes s and its sigma after `steps` steps."""
    W, bias = W0.copy(), B0.copy()
    p = bias if is_bias else W
    s = np.array(lr) if is_bias else np.full(IN, lr)
    a1, M, a2, M2, a3 = np.zeros_like(p), np.zeros_like(p), np.zeros_like(s), np.zeros_like(s), 0.0
    for t in range(1, steps + 1):
        G = C[t - 1].sum(0) if is_bias else X[t - 1].T @ C[t - 1]
        a1 = b1 * a1 + (1 - b1) * G**2
        n = G * math.sqrt(1 - b1**t) / (np.sqrt(a1) + eps)
        p -= (s * n) if is_bias else s[:, None] * n
        h = (M * G).sum() if is_bias else (M * G).sum(axis=1)
        M = b3 * M + (1 - b3) * n
        a2 = b1 * a2 + (1 - b1) * h**2
        n_s = h * math.sqrt(1 - b1**t) / (np.sqrt(a2) + eps)
        k = float((M2 * h).sum())
        s = s + sigma * s * n_s
        M2 = b2 * M2 + (1 - b2) * n_s
        a3 = b1 * a3 + (1 - b1) * k**2
        sigma = sigma + kappa * sigma * k * math.sqrt(1 - b1**t) / (math.sqrt(a3) + eps)
    return p, s, sigma


def test_centred_weight_gradient_is_x_minus_mean_times_g(device, xp):
    """The pre-hook folds the batch in BEFORE the forward (the reference's order), and the
    step's weight gradient is (x - mu)^T g with that mu; .grad stays the plain x^T g."""
    layer = _layer(device)
    opt = Adas(layer, offset_momentum=0.9)
    stats = opt.input_stats[0]
    stats.mean = xp.asarray([0.2, -0.1, 0.4])
    x = backend.to_device(X[0], device)
    y = layer(md.Tensor(x))
    (y * md.Tensor(backend.to_device(C[0], device))).sum().backward()
    mu = 0.9**B * np.array([0.2, -0.1, 0.4]) + (1 - 0.9**B) * X[0].mean(0)  # batch joins first
    np.testing.assert_allclose(backend.to_numpy(stats.mean), mu, rtol=1e-12)
    group = opt.param_groups[0]
    np.testing.assert_allclose(backend.to_numpy(opt.gradient(layer.weight, group)),
                               (X[0] - mu).T @ C[0], rtol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(layer.weight.grad), X[0].T @ C[0], rtol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(opt.gradient(layer.bias, group)), C[0].sum(0),
                               rtol=1e-12)
    assert stats.count == B


def test_attach_then_detach_restores_plain_gradient(device):
    layer = _layer(device)
    with Adas(layer) as opt:
        assert len(layer._forward_pre_hooks) == 1
        _train_steps(layer, opt, device, steps=1)
    assert not layer._forward_pre_hooks  # close() removed the hook: the mean stops moving
    count = opt.input_stats[0].count
    layer.zero_grad()
    y = layer(md.Tensor(backend.to_device(X[1], device)))
    (y * md.Tensor(backend.to_device(C[1], device))).sum().backward()
    np.testing.assert_allclose(backend.to_numpy(layer.weight.grad), X[1].T @ C[1], rtol=1e-12)
    assert opt.input_stats[0].count == count
    opt.load_state_dict(opt.state_dict())  # registers the hook again
    assert len(layer._forward_pre_hooks) == 1


def test_eval_mode_leaves_offsets_alone(device):
    layer = _layer(device)
    opt = Adas(layer)
    _train_steps(layer, opt, device, steps=1)
    before = backend.to_numpy(opt.input_stats[0].mean).copy()
    layer.eval()
    layer(md.Tensor(backend.to_device(X[2], device)))
    assert np.array_equal(backend.to_numpy(opt.input_stats[0].mean), before)
    assert opt.input_stats[0].count == B


def _mlp(device):
    md.manual_seed(0)
    with md.default_dtype("float64"):
        return nn.Sequential(Dense(4, 5), ReLU(), Dense(5, 3)).to(device)


def _batches(n=10):
    rng = np.random.default_rng(0)
    return [(rng.standard_normal((6, 4)), rng.integers(0, 3, 6)) for _ in range(n)]


def _fit(model, opt, batches, device):
    for x, y in batches:
        opt.zero_grad()
        loss = md.cross_entropy(model(md.Tensor(backend.to_device(x, device))),
                                backend.to_device(y, device))
        loss.backward()
        opt.step()


def test_checkpoint_round_trip_continues_bit_identically(device, tmp_path):
    batches = _batches()
    a = _mlp(device)
    _fit(a, Adas(a), batches, device)

    b = _mlp(device)
    opt_b = Adas(b)
    _fit(b, opt_b, batches[:4], device)
    from minidl import serialize
    serialize.save({"model": dict(b.state_dict()), "opt": opt_b.state_dict()},
                   tmp_path / "ck.npz")
    ck = serialize.load(tmp_path / "ck.npz")
    c = _mlp(device)
    c.load_state_dict(ck["model"])
    opt_c = Adas(c)
    opt_c.load_state_dict(ck["opt"])
    assert opt_c.input_stats[0].count == 4 * 6
    _fit(c, opt_c, batches[4:], device)
    for p, q in zip(a.parameters(), c.parameters()):
        assert np.array_equal(backend.to_numpy(p.data), backend.to_numpy(q.data))


def test_param_group_added_later_is_trained(device):
    """add_param_group after construction (e.g. unfreezing a layer): the new tensors must get
    their sigma-unit and their layer its input statistics, and train exactly as a group given
    to the constructor would."""
    batches = _batches()
    a, b = _mlp(device), _mlp(device)
    opt_a = Adas([{"params": a[0]}, {"params": a[2]}])
    opt_b = Adas(b[0])
    opt_b.add_param_group({"params": b[2]})
    assert len(opt_b.input_stats) == 2 and len(b[2]._forward_pre_hooks) == 1
    _fit(a, opt_a, batches, device)
    _fit(b, opt_b, batches, device)
    for p, q in zip(a.parameters(), b.parameters()):
        assert np.array_equal(backend.to_numpy(p.data), backend.to_numpy(q.data))
    assert not np.array_equal(b[2].weight.numpy(), _mlp(device)[2].weight.numpy())


def test_unsupported_layer_raises_unless_plain():
    from minidl.nn.module import Module, Parameter

    class Scale(Module):
        def __init__(self):
            super().__init__()
            self.gain = Parameter(np.ones(3))

    model = nn.Sequential(Dense(3, 3), Scale())
    with pytest.raises(ValueError, match=r"Scale holding 1\.gain has no weight with input "
                       r"axes.*offsets=False"):
        Adas(model)
    Adas(model, offsets=False)  # the plain variant takes any parameter
    with pytest.raises(ValueError, match="unknown Adas variant"):
        Adas(model, variant="tf")


@pytest.mark.parametrize("bad", [dict(lr=-1.0), dict(init_lr=-1.0), dict(lr2=-1e-3), dict(beta_1=1.0),
                                 dict(beta_3=1.5), dict(offset_momentum=-0.1),
                                 dict(batch_size=0)])
def test_invalid_hyperparameters(bad):
    name = next(iter(bad))
    with pytest.raises((ValueError, TypeError), match=name):
        Adas(Dense(2, 2), **bad)


def test_zero_gradients_stay_finite(device):
    layer = _layer(device)
    opt = Adas(layer)
    xp = backend.xp_of(layer.weight.data)
    for _ in range(3):
        layer.weight.grad = xp.zeros_like(layer.weight.data)
        layer.bias.grad = xp.zeros_like(layer.bias.data)
        opt.step()
    assert np.array_equal(layer.weight.numpy(), W0) and np.array_equal(layer.bias.numpy(), B0)


@pytest.mark.parametrize("variant", ["cpp", "pytorch"])
def test_real_minimisation_without_offsets(variant):
    """A quadratic bowl (condition number 100) to 1e-20 in 2000 steps; Rosenbrock from
    (-1.5, 2), f = 12.5, below 0.5 in 5000 steps (sign-like steps crawl along its valley)."""
    from tests.optim_harness import param, quadratic
    q = param(np.linspace(-1, 1, 10))
    q.input_axes = (0,)  # one step size per coordinate
    opt = Adas([q], variant=variant, init_lr=1e-2, offsets=False)
    scales = np.logspace(0, 2, 10)
    for _ in range(2000):
        f = quadratic(q, scales)
        opt.step()
    assert f < 1e-20
    p = param([-1.5, 2.0])
    p.input_axes = (0,)
    opt = Adas([p], variant=variant, init_lr=1e-2, offsets=False)
    for _ in range(5000):
        f = rosenbrock(p)
        opt.step()
    assert f < 0.5


def test_cpp_decays_keep_the_reference_horizon_in_samples():
    """C++ decays once per batch of 4; a batch of 32 decays by the same amount per sample."""
    g = Adas(Dense(2, 2), batch_size=32).param_groups[0]
    assert g["beta_3"] == pytest.approx(0.99999**8, rel=1e-15)
    assert g["beta_2"] == pytest.approx(0.9999**8, rel=1e-15)
    g = Adas(Dense(2, 2), batch_size=32, beta_3=0.9999).param_groups[0]
    assert g["beta_3"] == 0.9999  # an explicit value wins
    g = Adas(Dense(2, 2), variant="pytorch", offsets=False).param_groups[0]
    assert (g["beta_2"], g["beta_3"], g["eps"], g["init_lr"]) == (0.999, 0.9999, 1e-8, 1e-3)


def test_param_group_that_cannot_take_offsets_is_not_added():
    from minidl.nn.module import Module, Parameter

    class Scale(Module):
        def __init__(self):
            super().__init__()
            self.gain = Parameter(np.ones(3))

    opt = Adas(Dense(3, 3))
    with pytest.raises(ValueError, match="no weight with input axes"):
        opt.add_param_group({"params": Scale()})
    assert len(opt.param_groups) == 1


def test_same_shaped_offset_layers_keep_their_own_centred_gradients(device):
    """The centred weight gradients of all layers are formed before any update; two layers
    whose weights share a shape must not share the array they are written to."""
    md.manual_seed(0)
    model = nn.Sequential(Dense(4, 4, device=device), ReLU(), Dense(4, 4, device=device))
    opt = Adas(model)
    x = backend.to_device(np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32),
                          device)
    model(md.Tensor(x)).sum().backward()
    group = opt.param_groups[0]
    weights = [model[0].weight, model[2].weight]
    got = [opt.gradient(w, group) for w in weights]  # both first, as step() does
    for w, g, (_, _, b, stats) in zip(weights, got, opt._offsets):
        mu = backend.to_numpy(stats.center())
        expected = backend.to_numpy(w.grad) - np.outer(mu, backend.to_numpy(b.grad))
        np.testing.assert_allclose(backend.to_numpy(g), expected, rtol=1e-6, atol=1e-7)
