"""Tests of the optimizers torch.optim lacks: Eve, SantaE/SantaSSS, AdaBound/AMSBound, AdaShift,
CProp and Adai.

Every optimizer, on every device: (a) its first steps equal the paper's (or the reference
code's) equations, written out below as plain-Python loops over the elements, to rtol 1e-12 in
float64; (b) it minimises a quadratic bowl and the Rosenbrock function (tuned lr stated in the
table); (c) a state_dict round trip mid-run continues bit-identically; (d) bad
hyperparameters raise naming the hyperparameter; (e) all-zero gradients stay finite.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from minidl import backend
from minidl.autograd import Tensor
from minidl.optim.adai import Adai
from minidl.optim.adashift import AdaShift
from minidl.optim.bounded import AdaBound, AMSBound
from minidl.optim.cprop import CProp
from minidl.optim.eve import Eve
from minidl.optim.optimizer import Optimizer
from minidl.optim.santa import SantaE, SantaSSS
from tests.optim_harness import (
    param,
    quadratic,
    rosenbrock,
    roundtrip_continues_identically,
    run,
    zero_gradient_stays_finite,
)
from tests.rng_reference import reference_normals

P0 = [1.0, -0.5, 0.25]
# hand-chosen: mixed signs and sizes; the third element's gradient shrinks, so v decreases
GRADS = [[0.5, -1.2, 3.0], [-0.3, -0.8, 0.05], [0.9, 0.4, 0.02]]


class PlainSGD(Optimizer):
    """p <- p - lr * g: a base for CProp that keeps these tests independent of minidl's SGD."""

    def __init__(self, params, lr=0.01):
        super().__init__(params, dict(lr=lr))

    def init_state(self, p, group):
        return {}

    def update(self, p, grad, state, group):
        p.data -= group["lr"] * grad


def drive(opt, p, grads, device, losses=None) -> np.ndarray:
    """Step `opt` once per gradient in `grads` (and loss, for Eve); the parameter after each."""
    out = []
    for i, g in enumerate(grads):
        p.grad = backend.to_device(np.asarray(g, dtype=np.float64), device)
        if losses is None:
            opt.step()
        else:
            opt.step(lambda: losses[i])
        out.append(backend.to_numpy(p.data).copy())
    return np.array(out)


def check(got, want):
    np.testing.assert_allclose(got, np.array(want), rtol=1e-12, atol=0)


# --------------------------------------------------------------------------- (a) oracles

def adam_like_moments(m, v, g, b1, b2):
    for i in range(len(g)):
        m[i] = b1 * m[i] + (1 - b1) * g[i]
        v[i] = b2 * v[i] + (1 - b2) * g[i] ** 2


def eve_oracle(grads, losses, lr=1e-3, betas=(0.9, 0.999, 0.999), c=10.0, eps=1e-8,
               f_star=0.0, weight_decay=0.0):
    """alg.tex of rooa/eve, with |min(f_t, f_{t-1}) - f*| as the official code."""
    b1, b2, b3 = betas
    p, m, v, d, f_prev, out = list(P0), [0.0] * 3, [0.0] * 3, 1.0, None, []
    for t, (g, f) in enumerate(zip(grads, losses), start=1):
        g = [gi + weight_decay * pi for gi, pi in zip(g, p)]
        if t > 1:
            r = abs(f - f_prev) / abs(min(f, f_prev) - f_star)
            d = b3 * d + (1 - b3) * min(max(r, 1 / c), c)
        f_prev = f
        adam_like_moments(m, v, g, b1, b2)
        for i in range(3):
            m_hat, v_hat = m[i] / (1 - b1**t), v[i] / (1 - b2**t)
            p[i] -= lr / d * m_hat / (math.sqrt(v_hat) + eps)
        out.append(list(p))
    return out


def adabound_oracle(grads, lr=1e-3, betas=(0.9, 0.999), final_lr=0.1, gamma=1e-3, eps=1e-8,
                    weight_decay=0.0, amsbound=False):
    """Luolc/AdaBound's step, element by element."""
    b1, b2 = betas
    p, m, v, v_max, out = list(P0), [0.0] * 3, [0.0] * 3, [0.0] * 3, []
    for t, g in enumerate(grads, start=1):
        g = [gi + weight_decay * pi for gi, pi in zip(g, p)]
        adam_like_moments(m, v, g, b1, b2)
        lower = final_lr * (1 - 1 / (gamma * t + 1))
        upper = final_lr * (1 + 1 / (gamma * t))
        for i in range(3):
            v_max[i] = max(v_max[i], v[i])
            second = v_max[i] if amsbound else v[i]
            size = lr * math.sqrt(1 - b2**t) / (1 - b1**t) / (math.sqrt(second) + eps)
            p[i] -= min(max(size, lower), upper) * m[i]
        out.append(list(p))
    return out


def adashift_oracle(grads, lr=1e-3, keep_num=10, betas=(0.9, 0.999), eps=1e-10, reduce="max"):
    """The authors' TF AdaShift: v from g_{t-n} (zeros before g_1), m the b1-weighted window
    average, updates masked until v > 0, bias correction counted from then."""
    b1, b2 = betas
    n = keep_num
    p, v, k, history, out = list(P0), [0.0] * 3, [0] * 3, [], []
    zero = [0.0] * 3
    for t, g in enumerate(grads, start=1):
        oldest = history[t - 1 - n] if t - 1 - n >= 0 else zero
        squares = [x * x for x in oldest]
        history.append(g)
        window = [history[t - 1 - j] if t - 1 - j >= 0 else zero for j in range(n)]
        norm = sum(b1**j for j in range(n))
        for i in range(3):
            phi = {"max": max(squares), "mean": sum(squares) / 3, "none": squares[i]}[reduce]
            v[i] = b2 * v[i] + (1 - b2) * phi
            if v[i] > 0 or k[i] > 0:
                k[i] += 1
                m = sum(b1**j * window[j][i] for j in range(n)) / norm
                p[i] -= lr * m / (math.sqrt(v[i] / max(1e-8, 1 - b2 ** k[i])) + eps)
        out.append(list(p))
    return out


def logistic(x):
    """1/(1 + e^-x) without overflow in math.exp."""
    return 1.0 / (1.0 + math.exp(-x)) if x > -700 else 0.0


def cprop_sgd_oracle(grads, lr, beta=0.999, c=1.0, eps=1e-8, cdf="bft"):
    """phizaz/cprop: the base step (SGD) scaled by s = min(2c|P(X < 0) - 1/2|, 1)."""
    p, m, v, out = list(P0), [0.0] * 3, [0.0] * 3, []
    for t, g in enumerate(grads, start=1):
        for i in range(3):
            m[i] = beta * m[i] + (1 - beta) * g[i]
            v[i] = beta * v[i] + (1 - beta) * g[i] ** 2
            b = 1 - beta**t
            m_hat, v_hat, n = m[i] / b, v[i] / b, b / (1 - beta)
            se = math.sqrt(max(v_hat - m_hat**2, 0) / (n - 1 + eps)) + eps
            z = -m_hat / se
            if cdf == "bft":
                prob = logistic(0.07056 * z**3 + 1.5976 * z)
            elif cdf == "bfo":
                prob = logistic(1.702 * z)
            else:
                prob = logistic(-m_hat / (se * math.sqrt(3) / math.pi))
            s = min(2 * c * abs(prob - 0.5), 1.0)
            after = p[i] - lr * g[i]
            p[i] = p[i] + (after - p[i]) * s
        out.append(list(p))
    return out


def adai_oracle(params, grads, lr=1e-3, betas=(0.1, 0.99), eps=1e-3, weight_decay=0.0,
                decoupled=False):
    """zeke-xie/adaptive-inertia-adai: params and grads are lists of parameters (lists of
    floats); v_bar is the mean over every element of every parameter."""
    b0, b2 = betas
    p = [list(x) for x in params]
    m, v, prod = ([[z] * len(x) for x in params] for z in (0.0, 0.0, 1.0))
    out = []
    for t, gs in enumerate(grads, start=1):
        gs = [list(g) for g in gs]
        for j in range(len(p)):
            for i in range(len(p[j])):
                if weight_decay and decoupled:
                    p[j][i] *= 1 - lr * weight_decay
                elif weight_decay:
                    gs[j][i] += weight_decay * p[j][i]
                v[j][i] = b2 * v[j][i] + (1 - b2) * gs[j][i] ** 2
        v_hat = [[x / (1 - b2**t) for x in vj] for vj in v]
        v_bar = sum(map(sum, v_hat)) / sum(map(len, v_hat))
        for j in range(len(p)):
            for i in range(len(p[j])):
                b1 = min(max(1 - b0 * v_hat[j][i] / v_bar, 0.0), 1 - eps)
                prod[j][i] *= b1
                m[j][i] = b1 * m[j][i] + (1 - b1) * gs[j][i]
                p[j][i] -= lr * m[j][i] / (1 - prod[j][i])
        out.append([list(x) for x in p])
    return out


def santa_oracle(grads, sss, lr, N, burnin, C, sigma, lambd, gamma, seed, weight_decay=0.0,
                 preconditioner_drift=True):
    """Santa (Alg. 1 / SSS of Chen et al. 2016) with f = N * grad, g_0 = g_1, noise
    sqrt(2 eta^(3/2) g_{t-1}/beta_t) zeta from minidl's counter-based stream seeded as the
    optimizer's (tests/rng_reference.py): u_0 from draw 0, then zeta from the next draw at
    each exploring step. preconditioner_drift=False drops the
    (eta/beta)(1 - g_{t-1}/g_t)/u_{t-1} term, as the authors' MATLAB code does."""
    draws = iter(range(len(grads) + 1))

    def normals():
        return reference_normals(seed, next(draws), 3, 53)

    p = list(P0)
    u = [math.sqrt(lr) * z for z in normals()]
    alpha, v, g_prev, out = [math.sqrt(lr) * C] * 3, [0.0] * 3, None, []
    for t, grad in enumerate(grads, start=1):
        beta = t**gamma
        explore = t < burnin
        zeta = normals() if explore else None
        g_new = []
        for i in range(3):
            f = N * (grad[i] + weight_decay * p[i])
            v[i] = sigma * v[i] + (1 - sigma) / N**2 * f * f
            g = 1 / math.sqrt(lambd + math.sqrt(v[i]))
            gp = g if t == 1 else g_prev[i]
            g_new.append(g)
            drift = lr / beta * (1 - gp / g) / u[i] if explore and preconditioner_drift else 0.0
            noise = math.sqrt(2 * lr**1.5 * gp / beta) * zeta[i] if explore else 0.0
            if not sss:
                if explore:
                    alpha[i] += u[i] ** 2 - lr / beta
                u_new = drift + noise + (1 - alpha[i]) * u[i] - lr * g * f
                p[i] += g * u_new
            else:
                p[i] += g * u[i] / 2
                if explore:
                    alpha[i] += (u[i] ** 2 - lr / beta) / 2
                    decay = math.exp(-alpha[i] / 2)
                    u_new = decay * (decay * u[i] - lr * g * f + noise + drift)
                    alpha[i] += (u_new**2 - lr / beta) / 2
                else:
                    decay = math.exp(-alpha[i] / 2)
                    u_new = decay * (decay * u[i] - lr * g * f)
                p[i] += g * u_new / 2
            u[i] = u_new
        g_prev = g_new
        out.append(list(p))
    return out


# --------------------------------------------------------------------------- (a) tests

EVE_CASES = [
    (dict(), [2.0, 1.7, 1.9]),
    (dict(betas=(0.9, 0.999, 0.5), c=2.0, weight_decay=0.1), [1.0, 1.0, 5.0]),  # both clips
    (dict(betas=(0.8, 0.99, 0.5), f_star=0.0), [-1.0, -2.0, -1.5]),  # loss below f*: |.|
    (dict(lr=0.01, eps=1e-3, f_star=-3.0), [0.5, 0.4, 0.45]),
]


@pytest.mark.parametrize("hyper, losses", EVE_CASES)
def test_eve_first_steps(device, hyper, losses):
    p = param(P0, device)
    check(drive(Eve([p], **hyper), p, GRADS, device, losses), eve_oracle(GRADS, losses, **hyper))


def test_eve_takes_the_loss_from_the_closure(device):
    p = param(P0, device)
    opt = Eve([p])
    p.grad = backend.to_device(np.ones(3), device)
    with pytest.raises(ValueError, match="loss"):
        opt.step()
    with pytest.raises(ValueError, match="non-finite"):
        opt.step(lambda: float("nan"))
    assert opt.step(lambda: Tensor(np.array(2.0))).item() == 2.0  # a one-element Tensor is fine
    assert opt.step(lambda: 1.5) == 1.5
    assert opt.feedback["loss_prev"] == 1.5


@pytest.mark.parametrize("hyper", [
    dict(),
    dict(lr=0.05, gamma=0.5),  # the upper bound clips elements 0 and 1
    dict(lr=0.05, gamma=0.5, final_lr=0.2, betas=(0.8, 0.9), eps=1e-3, weight_decay=0.1),  # lower
])
@pytest.mark.parametrize("cls", [AdaBound, AMSBound])
def test_bounded_first_steps(device, cls, hyper):
    p = param(P0, device)
    want = adabound_oracle(GRADS, amsbound=cls is AMSBound, **hyper)
    check(drive(cls([p], **hyper), p, GRADS, device), want)


def test_amsbound_differs_from_adabound_when_v_shrinks():
    a, b = adabound_oracle(GRADS, lr=0.05, gamma=0.5), adabound_oracle(GRADS, lr=0.05,
                                                                        gamma=0.5, amsbound=True)
    assert a[2][2] != b[2][2] and a[0] == b[0]


ADASHIFT_LONG = np.random.default_rng(3).normal(size=(14, 3)).tolist()


@pytest.mark.parametrize("grads, hyper", [
    (GRADS, dict(keep_num=1)),
    (GRADS, dict(keep_num=2, lr=0.1, betas=(0.5, 0.9))),
    (GRADS, dict(keep_num=1, reduce="mean", betas=(0.0, 0.9))),
    (GRADS, dict(keep_num=1, reduce="none", eps=1e-3)),
    (ADASHIFT_LONG, dict()),  # keep_num = 10: first update at step 11
    (ADASHIFT_LONG, dict(keep_num=4, reduce="none")),
    # eps = 0 is allowed: the masked steps before the start must not be 0/0 or x/0 = NaN
    (GRADS, dict(keep_num=2, eps=0.0)),
    (ADASHIFT_LONG, dict(keep_num=4, reduce="none", eps=0.0)),
])
def test_adashift_first_steps(device, grads, hyper):
    p = param(P0, device)
    got = drive(AdaShift([p], **hyper), p, grads, device)
    check(got, adashift_oracle(grads, **hyper))
    n = hyper.get("keep_num", 10)
    assert np.all(got[:n] == np.array(P0)) and np.any(got[n] != np.array(P0))


@pytest.mark.parametrize("hyper", [
    dict(beta=0.9),
    dict(beta=0.9, c=3.0, cdf="bfo"),
    dict(beta=0.5, cdf="logistic"),
    dict(),  # defaults: beta = 0.999
])
def test_cprop_first_steps(device, hyper):
    p = param(P0, device)
    got = drive(CProp(PlainSGD([p], lr=0.1), **hyper), p, GRADS, device)
    check(got, cprop_sgd_oracle(GRADS, lr=0.1, **hyper))


@pytest.mark.parametrize("hyper", [
    dict(),
    dict(lr=0.1, betas=(0.5, 0.9), eps=0.05, weight_decay=0.1),  # b1 clipped at 0 and 1-eps
    dict(lr=0.1, weight_decay=0.2, decoupled=True),
])
def test_adai_first_steps_mean_over_all_groups(device, hyper):
    """Two parameters in two groups: v_bar is one mean over all six elements."""
    q0 = [0.3, -2.0, 0.7]
    q_grads = [[0.01, 2.5, -0.2], [0.02, -1.0, 0.1], [-0.05, 4.0, 0.3]]
    p, q = param(P0, device), param(q0, device)
    opt = Adai([{"params": [p]}, {"params": [q]}], **hyper)
    got_p, got_q = [], []
    for g, h in zip(GRADS, q_grads):
        p.grad = backend.to_device(np.array(g), device)
        q.grad = backend.to_device(np.array(h), device)
        opt.step()
        got_p.append(backend.to_numpy(p.data).copy())
        got_q.append(backend.to_numpy(q.data).copy())
    want = adai_oracle([P0, q0], list(zip(GRADS, q_grads)), **hyper)
    check(np.array(got_p), [w[0] for w in want])
    check(np.array(got_q), [w[1] for w in want])


def test_adai_excludes_parameters_without_gradient(device):
    p, q = param(P0, device), param([5.0, 5.0], device)
    opt = Adai([p, q], lr=0.1)
    check(drive(opt, p, GRADS, device), [w[0] for w in adai_oracle([P0], [[g] for g in GRADS],
                                                                    lr=0.1)])
    assert q not in opt.state


SANTA_HYPER = dict(lr=1e-3, N=10.0, C=5.0, sigma=0.9, lambd=1e-3, seed=7)


@pytest.mark.parametrize("burnin, gamma, weight_decay, drift", [
    (3, 0.5, 0.0, True),    # explores at t = 1, 2, refines at t = 3
    (10, 2.0, 0.1, True),   # explores throughout
    (10, 2.0, 0.1, False),  # the same without the preconditioner-drift term
    (0, 0.5, 0.0, True),    # the deterministic limit: preconditioned momentum with friction
])
@pytest.mark.parametrize("cls", [SantaE, SantaSSS])
def test_santa_first_steps(device, cls, burnin, gamma, weight_decay, drift):
    hyper = dict(SANTA_HYPER, burnin=burnin, gamma=gamma, weight_decay=weight_decay,
                 preconditioner_drift=drift)
    p = param(P0, device)
    got = drive(cls([p], **hyper), p, GRADS, device)
    check(got, santa_oracle(GRADS, cls is SantaSSS, **hyper))


def test_santa_seed_decides_the_noise(device):
    def final(seed):
        p = param(P0, device)
        return drive(SantaE([p], **dict(SANTA_HYPER, seed=seed, burnin=5)), p, GRADS, device)

    assert np.array_equal(final(1), final(1)) and not np.array_equal(final(1), final(2))
    backend.manual_seed(11)
    a = SantaSSS([param(P0, device)], lr=1e-3, N=1).seed
    backend.manual_seed(11)
    assert SantaSSS([param(P0, device)], lr=1e-3, N=1).seed == a  # seed=None follows minidl


# --------------------------------------------------------------------------- (b) minimisation

def msgd_cprop(params):
    return CProp(AdaBound(params, lr=0.03, final_lr=1.5e-3, gamma=1e-4), beta=0.9)


# name: (factory for the quadratic, steps, tolerance; factory for Rosenbrock, steps, tolerance)
MINIMISE = {
    "Eve": (lambda ps: Eve(ps, lr=0.03), 500, 1e-10, lambda ps: Eve(ps, lr=0.03), 2000, 1e-10),
    "AdaBound": (lambda ps: AdaBound(ps, lr=0.01), 500, 1e-10,
                 lambda ps: AdaBound(ps, lr=0.03, final_lr=1.5e-3, gamma=1e-4), 3000, 1e-6),
    "AMSBound": (lambda ps: AMSBound(ps, lr=0.01), 500, 1e-10,
                 lambda ps: AMSBound(ps, lr=0.03, final_lr=1.5e-3, gamma=1e-4), 3000, 1e-4),
    "AdaShift": (lambda ps: AdaShift(ps, lr=0.2), 500, 1e-10,
                 lambda ps: AdaShift(ps, lr=0.02), 3000, 1e-2),
    "CProp": (lambda ps: CProp(PlainSGD(ps, lr=0.05)), 500, 1e-10, msgd_cprop, 3000, 1e-4),
    "Adai": (lambda ps: Adai(ps, lr=0.1), 1000, 1e-5, lambda ps: Adai(ps, lr=5e-3), 3000, 1e-5),
    # 99 exploring steps, then refinement
    "SantaE": (lambda ps: SantaE(ps, lr=3e-3, N=1, burnin=100, C=1, seed=0), 500, 1e-6,
               lambda ps: SantaE(ps, lr=3e-3, N=1, burnin=100, C=1, seed=0), 3000, 1e-4),
    "SantaSSS": (lambda ps: SantaSSS(ps, lr=3e-3, N=1, burnin=100, C=1, seed=0), 500, 1e-6,
                 lambda ps: SantaSSS(ps, lr=3e-3, N=1, burnin=100, C=1, seed=0), 3000, 2e-2),
}


@pytest.mark.parametrize("name", list(MINIMISE))
def test_minimises_quadratic_and_rosenbrock(device, name):
    make_q, steps_q, tol_q, make_r, steps_r, tol_r = MINIMISE[name]
    scales = backend.to_device(np.array([1.0, 3.0, 10.0]), device)
    p = param([1.0, -2.0, 3.0], device)  # f = 51.5
    run(make_q, p, lambda q: quadratic(q, scales), steps_q)
    assert quadratic(p, scales) < tol_q
    p = param([-1.2, 1.0], device)  # f = 24.2
    run(make_r, p, rosenbrock, steps_r)
    assert rosenbrock(p) < tol_r


# --------------------------------------------------------------------------- (c), (e)

FACTORIES = {
    "Eve": lambda ps: Eve(ps, lr=0.05, betas=(0.9, 0.999, 0.5)),
    "AdaBound": lambda ps: AdaBound(ps, lr=0.05, gamma=0.5),
    "AMSBound": lambda ps: AMSBound(ps, lr=0.05, gamma=0.5),
    "AdaShift": lambda ps: AdaShift(ps, lr=0.1, keep_num=3),
    "AdaShift-none": lambda ps: AdaShift(ps, lr=0.1, keep_num=3, reduce="none"),
    "AdaShift-eps0": lambda ps: AdaShift(ps, lr=0.1, keep_num=3, reduce="none", eps=0.0),
    "CProp": lambda ps: CProp(AdaBound(ps, lr=0.1), beta=0.9),
    "Adai": lambda ps: Adai(ps, lr=0.1),
    # exploring across the save point; sqrt(lr/lambd) < 2 keeps SantaE's Euler step stable
    "SantaE": lambda ps: SantaE(ps, lr=1e-3, N=10, burnin=8, C=5, lambd=1e-2, seed=3),
    "SantaSSS": lambda ps: SantaSSS(ps, lr=1e-3, N=10, burnin=8, C=5, seed=3),
}


@pytest.mark.parametrize("name", list(FACTORIES))
def test_state_dict_round_trip_continues_identically(device, name):
    scales = backend.to_device(np.array([1.0, 3.0, 10.0]), device)
    a, b = roundtrip_continues_identically(FACTORIES[name], [1.0, -2.0, 3.0],
                                           lambda q: quadratic(q, scales), device=device)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("name", list(FACTORIES))
def test_zero_gradients_stay_finite(device, name):
    p = zero_gradient_stays_finite(FACTORIES[name], steps=12, device=device)
    assert np.all(np.isfinite(p))
    if not name.startswith("Santa"):  # Santa's thermostat noise moves it even then
        assert np.array_equal(p, np.linspace(-1.0, 1.0, 6))


def test_float32_parameters_keep_float32_state(device):
    scales = backend.to_device(np.array([1.0, 3.0, 10.0], dtype=np.float32), device)
    for name, make in FACTORIES.items():
        p = param([1.0, -2.0, 3.0], device, dtype=np.float32)
        opt = make([p])
        for _ in range(5):
            opt.step(lambda p=p: quadratic(p, scales))
        arrays = [v for v in opt.state[p].values() if hasattr(v, "dtype")]
        assert p.data.dtype == np.float32 and arrays, name
        assert all(a.dtype == np.float32 for a in arrays), name


# --------------------------------------------------------------------------- (d)

SANTA = dict(lr=1e-3, N=10)
INVALID = [
    (Eve, dict(lr=-1.0), "invalid lr"),
    (Eve, dict(c=0.5), "invalid c"),
    (Eve, dict(betas=(0.9, 0.999)), "betas must be"),
    (Eve, dict(betas=(0.9, 0.999, 1.0)), r"invalid betas\[2\]"),
    (Eve, dict(f_star=float("nan")), "invalid f_star"),
    (AdaBound, dict(lr=0.0), "invalid lr"),
    (AdaBound, dict(final_lr=-0.1), "invalid final_lr"),
    (AdaBound, dict(gamma=0.0), "invalid gamma"),
    (AMSBound, dict(gamma=1.0), "invalid gamma"),
    (AMSBound, dict(eps=-1e-8), "invalid eps"),
    (AMSBound, dict(betas=(0.9,)), "betas must be"),
    (AdaShift, dict(keep_num=0), "invalid keep_num"),
    (AdaShift, dict(keep_num=2.5), "invalid keep_num"),
    (AdaShift, dict(reduce="min"), "invalid reduce"),
    (AdaShift, dict(betas=(1.0, 0.999)), r"invalid betas\[0\]"),
    (Adai, dict(eps=0.0), "invalid eps"),
    (Adai, dict(betas=(0.1, 1.0)), r"invalid betas\[1\]"),
    (Adai, dict(weight_decay=-0.1), "invalid weight_decay"),
    (Adai, dict(decoupled="yes"), "decoupled must be"),
    (SantaE, dict(SANTA, N=0), "invalid N"),
    (SantaE, dict(SANTA, burnin=-1), "invalid burnin"),
    (SantaE, dict(SANTA, C=-1.0), "invalid C"),
    (SantaE, dict(SANTA, sigma=1.0), "invalid sigma"),
    (SantaSSS, dict(SANTA, lambd=0.0), "invalid lambd"),
    (SantaSSS, dict(SANTA, gamma=-0.5), "invalid gamma"),
    (SantaSSS, dict(SANTA, seed=-3), "invalid seed"),
    (SantaSSS, dict(SANTA, lr=-1.0), "invalid lr"),
    (SantaE, dict(SANTA, preconditioner_drift=1), "invalid preconditioner_drift"),
]


@pytest.mark.parametrize("cls, hyper, message", INVALID,
                         ids=[f"{c.__name__}-{next(iter(h))}" for c, h, _ in INVALID])
def test_invalid_hyperparameters_raise(device, cls, hyper, message):
    with pytest.raises((ValueError, TypeError), match=message):
        cls([param(P0, device)], **hyper)


@pytest.mark.parametrize("hyper, message", [
    (dict(beta=1.0), "invalid beta"),
    (dict(c=-1.0), "invalid c"),
    (dict(eps=0.0), "invalid eps"),
    (dict(cdf="normal"), "invalid cdf"),
])
def test_cprop_invalid_hyperparameters_raise(device, hyper, message):
    with pytest.raises(ValueError, match=message):
        CProp(PlainSGD([param(P0, device)]), **hyper)
    with pytest.raises(TypeError, match="wraps an optimizer"):
        CProp([param(P0, device)])


def test_cprop_exposes_the_base_optimizer(device):
    p = param(P0, device)
    base = AdaBound([p], lr=0.1)
    opt = CProp(base)
    assert opt.param_groups is base.param_groups
    drive(opt, p, GRADS, device)
    saved = opt.state_dict()
    assert set(saved) == {"base", "state", "cprop"} and saved["state"][0]["step"] == 3
    assert saved["base"]["state"][0]["step"] == 3
    opt.zero_grad()
    assert p.grad is None
