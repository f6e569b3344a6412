"""The torch.optim-matching optimizers: SGD, Adagrad, RMSprop, Adadelta, RMSpropGraves, SMORMS3,
Adam, AMSGrad, AdamW, Adamax, NAdam, RAdam and LBFGS.

The oracles are the update equations of OPTIMIZERS.md written out here in plain NumPy float64;
they never call minidl. Checked: (a) the first steps against the oracles (rtol 1e-12) and the
analytic first steps of OPTIMIZERS.md section 1; (b) minimisation of an ill-conditioned
quadratic and of Rosenbrock; (c) state_dict round trips; (d) invalid hyperparameters;
(e) all-zero gradients; and torch.optim's conventions (grad None, param groups, maximize,
dtype, p.grad never written).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from minidl import backend
from minidl.optim.adagrad import SMORMS3, Adadelta, Adagrad, RMSprop, RMSpropGraves
from minidl.optim.adam import AMSGrad, Adam, Adamax, AdamW, NAdam, RAdam
from minidl.optim.lbfgs import LBFGS
from minidl.optim.sgd import SGD
from tests.optim_harness import (
    param,
    quadratic,
    rosenbrock,
    roundtrip_continues_identically,
    zero_gradient_stays_finite,
)

P0 = np.array([0.5, -1.0, 2.0])
GRADS = [np.array(g) for g in (
    [0.1, -0.2, 0.3], [-0.4, 0.5, 0.05], [0.2, 0.0, -0.6], [0.3, -0.1, 0.2],
    [-0.05, 0.25, -0.1], [0.15, 0.3, 0.4], [-0.2, -0.35, 0.1], [0.05, 0.2, -0.3],
)]
for _a in (P0, *GRADS):
    _a.flags.writeable = False  # param() keeps a NumPy array without copying: pass copies


# --------------------------------------------------------------------------- oracles
# Each returns the parameter after every step, for gradients `grads` (coupled weight decay
# adds weight_decay * p to them, as every one of these optimizers does).


def sgd_oracle(p, grads, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
               maximize=False):
    out, b = [], None
    for g in grads:
        g = (-g if maximize else g) + weight_decay * p
        if momentum:
            b = g if b is None else momentum * b + (1 - dampening) * g
            g = g + momentum * b if nesterov else b
        p = p - lr * g
        out.append(p)
    return out


def adagrad_oracle(p, grads, lr, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                   eps=1e-10):
    out, s = [], np.full(3, initial_accumulator_value)
    for t, g in enumerate(grads, 1):
        g = g + weight_decay * p
        s = s + g * g
        p = p - lr / (1 + (t - 1) * lr_decay) * g / (np.sqrt(s) + eps)
        out.append(p)
    return out


def rmsprop_oracle(p, grads, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                   centered=False):
    out, v, gbar, b = [], 0.0, 0.0, 0.0
    for g in grads:
        g = g + weight_decay * p
        v = alpha * v + (1 - alpha) * g * g
        gbar = alpha * gbar + (1 - alpha) * g
        d = np.sqrt(v - gbar * gbar if centered else v) + eps
        if momentum:
            b = momentum * b + g / d
            p = p - lr * b
        else:
            p = p - lr * g / d
        out.append(p)
    return out


def adadelta_oracle(p, grads, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0):
    out, v, u = [], 0.0, 0.0
    for g in grads:
        g = g + weight_decay * p
        v = rho * v + (1 - rho) * g * g
        delta = np.sqrt(u + eps) / np.sqrt(v + eps) * g
        u = rho * u + (1 - rho) * delta * delta
        p = p - lr * delta
        out.append(p)
    return out


def graves_oracle(p, grads, lr=1e-4, alpha=0.95, momentum=0.9, eps=1e-4, weight_decay=0.0):
    out, n, gbar, delta = [], 0.0, 0.0, 0.0   # Graves 2013, eqs (38)-(41)
    for g in grads:
        g = g + weight_decay * p
        n = alpha * n + (1 - alpha) * g * g
        gbar = alpha * gbar + (1 - alpha) * g
        delta = momentum * delta - lr * g / np.sqrt(n - gbar * gbar + eps)
        p = p + delta
        out.append(p)
    return out


def smorms3_oracle(p, grads, lr=1e-3, eps=1e-16, weight_decay=0.0):
    out = []
    mem, m, m2 = np.ones(3), np.zeros(3), np.zeros(3)   # Funk 2015, element by element
    for g in grads:
        g = g + weight_decay * p
        p = p.copy()
        for i in range(3):
            r = 1 / (mem[i] + 1)
            m[i] = (1 - r) * m[i] + r * g[i]
            m2[i] = (1 - r) * m2[i] + r * g[i] ** 2
            x = m[i] ** 2 / (m2[i] + eps)
            p[i] -= g[i] * min(lr, x) / (np.sqrt(m2[i]) + eps)
            mem[i] = 1 + mem[i] * (1 - x)
        out.append(p)
    return out


def adam_oracle(p, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                amsgrad=False, decoupled=False):
    (b1, b2), out, m, v, vmax = betas, [], 0.0, 0.0, 0.0
    for t, g in enumerate(grads, 1):
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = np.maximum(vmax, v)
        vhat = (vmax if amsgrad else v) / (1 - b2 ** t)
        p = p - lr * (m / (1 - b1 ** t)) / (np.sqrt(vhat) + eps)
        out.append(p)
    return out


def adamax_oracle(p, grads, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    (b1, b2), out, m, u = betas, [], 0.0, 0.0
    for t, g in enumerate(grads, 1):
        g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        u = np.maximum(b2 * u, np.abs(g) + eps)
        p = p - lr / (1 - b1 ** t) * m / u
        out.append(p)
    return out


def nadam_oracle(p, grads, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 momentum_decay=4e-3):
    (b1, b2), out, m, v, prod = betas, [], 0.0, 0.0, 1.0
    for t, g in enumerate(grads, 1):
        g = g + weight_decay * p
        mu = b1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
        mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
        prod *= mu
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        d = np.sqrt(v / (1 - b2 ** t)) + eps
        p = p - lr * (1 - mu) / (1 - prod) * g / d - lr * mu_next / (1 - prod * mu_next) * m / d
        out.append(p)
    return out


def radam_oracle(p, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    (b1, b2), out, m, v = betas, [], 0.0, 0.0
    rho_inf = 2 / (1 - b2) - 1
    for t, g in enumerate(grads, 1):
        g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        mhat = m / (1 - b1 ** t)
        rho = rho_inf - 2 * t * b2 ** t / (1 - b2 ** t)
        if rho > 5:
            r = np.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
            p = p - lr * mhat * np.sqrt(1 - b2 ** t) / (np.sqrt(v) + eps) * r
        else:
            p = p - lr * mhat
        out.append(p)
    return out


# (id, factory, oracle, steps): a plain case and one with weight decay and the options
CASES = [
    ("sgd", lambda ps: SGD(ps, lr=0.1), partial(sgd_oracle, lr=0.1), 3),
    ("sgd-wd", lambda ps: SGD(ps, lr=0.1, weight_decay=0.1),
     partial(sgd_oracle, lr=0.1, weight_decay=0.1), 3),
    ("sgd-momentum", lambda ps: SGD(ps, lr=0.1, momentum=0.9),
     partial(sgd_oracle, lr=0.1, momentum=0.9), 3),
    ("sgd-momentum-dampening-wd",
     lambda ps: SGD(ps, lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.05),
     partial(sgd_oracle, lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.05), 3),
    ("sgd-nesterov-wd", lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.05),
     partial(sgd_oracle, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.05), 3),
    ("sgd-maximize-momentum-wd",
     lambda ps: SGD(ps, lr=0.1, momentum=0.5, weight_decay=0.1, maximize=True),
     partial(sgd_oracle, lr=0.1, momentum=0.5, weight_decay=0.1, maximize=True), 3),
    ("adagrad", lambda ps: Adagrad(ps, lr=0.1), partial(adagrad_oracle, lr=0.1), 3),
    ("adagrad-decay-init-wd",
     lambda ps: Adagrad(ps, lr=0.1, lr_decay=0.5, weight_decay=0.1,
                        initial_accumulator_value=0.2, eps=1e-3),
     partial(adagrad_oracle, lr=0.1, lr_decay=0.5, weight_decay=0.1,
             initial_accumulator_value=0.2, eps=1e-3), 3),
    ("rmsprop", lambda ps: RMSprop(ps, lr=0.01), partial(rmsprop_oracle, lr=0.01), 3),
    ("rmsprop-momentum", lambda ps: RMSprop(ps, lr=0.01, momentum=0.9),
     partial(rmsprop_oracle, lr=0.01, momentum=0.9), 3),
    ("rmsprop-centered", lambda ps: RMSprop(ps, lr=0.01, centered=True),
     partial(rmsprop_oracle, lr=0.01, centered=True), 3),
    ("rmsprop-centered-momentum-wd",
     lambda ps: RMSprop(ps, lr=0.01, alpha=0.9, eps=1e-3, weight_decay=0.1, momentum=0.8,
                        centered=True),
     partial(rmsprop_oracle, lr=0.01, alpha=0.9, eps=1e-3, weight_decay=0.1, momentum=0.8,
             centered=True), 3),
    ("adadelta", lambda ps: Adadelta(ps), adadelta_oracle, 3),
    ("adadelta-wd", lambda ps: Adadelta(ps, lr=0.5, rho=0.95, eps=1e-4, weight_decay=0.1),
     partial(adadelta_oracle, lr=0.5, rho=0.95, eps=1e-4, weight_decay=0.1), 3),
    ("rmsprop-graves", lambda ps: RMSpropGraves(ps, lr=0.01), partial(graves_oracle, lr=0.01), 3),
    ("rmsprop-graves-wd",
     lambda ps: RMSpropGraves(ps, lr=0.01, alpha=0.9, momentum=0.5, eps=1e-3, weight_decay=0.1),
     partial(graves_oracle, lr=0.01, alpha=0.9, momentum=0.5, eps=1e-3, weight_decay=0.1), 3),
    ("smorms3", lambda ps: SMORMS3(ps), smorms3_oracle, 3),
    # lr 0.3: min(lr, x) takes both branches over these 8 noisy gradients
    ("smorms3-wd", lambda ps: SMORMS3(ps, lr=0.3, eps=1e-8, weight_decay=0.1),
     partial(smorms3_oracle, lr=0.3, eps=1e-8, weight_decay=0.1), 8),
    ("adam", lambda ps: Adam(ps, lr=0.01), partial(adam_oracle, lr=0.01), 3),
    ("adam-wd", lambda ps: Adam(ps, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
     partial(adam_oracle, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1), 3),
    # 8 steps: the gradients shrink after step 2, so the running maximum of v matters
    ("adam-amsgrad", lambda ps: Adam(ps, lr=0.01, amsgrad=True),
     partial(adam_oracle, lr=0.01, amsgrad=True), 8),
    ("amsgrad-wd", lambda ps: AMSGrad(ps, lr=0.01, weight_decay=0.1),
     partial(adam_oracle, lr=0.01, weight_decay=0.1, amsgrad=True), 8),
    ("adamw", lambda ps: AdamW(ps, lr=0.01, weight_decay=0.1),
     partial(adam_oracle, lr=0.01, weight_decay=0.1, decoupled=True), 3),
    ("adamw-amsgrad", lambda ps: AdamW(ps, lr=0.01, amsgrad=True),
     partial(adam_oracle, lr=0.01, weight_decay=1e-2, amsgrad=True, decoupled=True), 8),
    ("adamax", lambda ps: Adamax(ps), adamax_oracle, 3),
    ("adamax-wd", lambda ps: Adamax(ps, lr=0.01, betas=(0.8, 0.99), eps=1e-3, weight_decay=0.1),
     partial(adamax_oracle, lr=0.01, betas=(0.8, 0.99), eps=1e-3, weight_decay=0.1), 3),
    ("nadam", lambda ps: NAdam(ps), nadam_oracle, 3),
    ("nadam-wd",
     lambda ps: NAdam(ps, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1,
                      momentum_decay=0.05),
     partial(nadam_oracle, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1,
             momentum_decay=0.05), 3),
    # 8 steps: rho_t > 5 from step 6 on, so both branches of RAdam run
    ("radam", lambda ps: RAdam(ps, lr=0.01), partial(radam_oracle, lr=0.01), 8),
    ("radam-wd", lambda ps: RAdam(ps, lr=0.01, betas=(0.9, 0.99), weight_decay=0.1),
     partial(radam_oracle, lr=0.01, betas=(0.9, 0.99), weight_decay=0.1), 8),
]
FIRST_ORDER = [(name, make) for name, make, _, _ in CASES]
ALL = FIRST_ORDER + [
    ("lbfgs", lambda ps: LBFGS(ps, max_iter=2, history_size=3)),
    ("lbfgs-strong-wolfe", lambda ps: LBFGS(ps, max_iter=2, line_search_fn="strong_wolfe")),
]


def run_steps(make, device, grads, p0=P0, dtype=np.float64):
    """Step `make([p])` once per gradient; returns p after each step (as NumPy arrays)."""
    p = param(np.array(p0), device, dtype)
    opt = make([p])
    out = []
    for g in grads:
        g = g.astype(dtype)
        p.grad = backend.to_device(g.copy(), device)
        opt.step()
        np.testing.assert_array_equal(backend.to_numpy(p.grad), g)  # p.grad is never written
        out.append(backend.to_numpy(p.data).copy())
    return out, opt, p


# --------------------------------------------------------------------------- (a) first steps
@pytest.mark.parametrize("name, make, oracle, steps", CASES, ids=[c[0] for c in CASES])
def test_steps_match_equations(device, name, make, oracle, steps):
    got, _, _ = run_steps(make, device, GRADS[:steps])
    for t, (g, e) in enumerate(zip(got, oracle(P0, GRADS[:steps])), 1):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=0, err_msg=f"{name}, step {t}")


@pytest.mark.parametrize("name, make", [(c[0], c[1]) for c in CASES], ids=[c[0] for c in CASES])
def test_gradient_array_reused_across_steps(device, name, make):
    """A gradient left in p.grad over several steps (no zero_grad) is read, never written: state
    must not alias it (e.g. SGD's first momentum buffer is a copy of g_1)."""
    g = GRADS[1]
    p = param(P0.copy(), device)
    opt = make([p])
    p.grad = backend.to_device(g.copy(), device)
    for _ in range(3):
        opt.step()
    np.testing.assert_array_equal(backend.to_numpy(p.grad), g)
    fresh, _, _ = run_steps(make, device, [g] * 3)
    np.testing.assert_array_equal(backend.to_numpy(p.data), fresh[-1])


def test_amsgrad_and_smorms3_cases_exercise_their_branches():
    """The 8-step cases above would not catch a missing max / min if these were equal."""
    assert not np.allclose(adam_oracle(P0, GRADS, lr=0.01, amsgrad=True)[-1],
                           adam_oracle(P0, GRADS, lr=0.01)[-1], rtol=1e-9)
    assert not np.allclose(smorms3_oracle(P0, GRADS, lr=0.3, eps=1e-8)[-1],
                           smorms3_oracle(P0, GRADS, lr=np.inf, eps=1e-8)[-1], rtol=1e-9)
    assert not np.allclose(smorms3_oracle(P0, GRADS, lr=0.3, eps=1e-8)[-1],
                           smorms3_oracle(P0, GRADS, lr=0.0, eps=1e-8)[-1], rtol=1e-9)


G = np.array([0.5, -1.0, 2.0])
# OPTIMIZERS.md section 1: the first step with one gradient g, in units of lr
FIRST_STEPS = [
    ("sgd", SGD, -G, 1e-15),
    ("adam", Adam, -np.sign(G), 1e-7),
    ("amsgrad", AMSGrad, -np.sign(G), 1e-7),
    ("adagrad", Adagrad, -np.sign(G), 1e-9),
    ("adamax", Adamax, -np.sign(G), 1e-7),
    ("rmsprop", RMSprop, -10 * np.sign(G), 1e-6),    # 1 / sqrt(1 - 0.99) = 10
    ("nadam", NAdam, -1.0565 * np.sign(G), 1e-4),
    ("radam", RAdam, -G, 1e-15),                    # unrectified: the raw gradient
    ("smorms3", SMORMS3, -np.sqrt(2) * np.sign(G), 1e-12),  # r = 1/2: m2 = g^2/2, x = 1/2 > lr
]


@pytest.mark.parametrize("name, cls, expected, rtol", FIRST_STEPS, ids=[f[0] for f in FIRST_STEPS])
def test_analytic_first_step(device, name, cls, expected, rtol):
    (p1,), opt, _ = run_steps(cls, device, [G])
    np.testing.assert_allclose((p1 - P0) / opt.defaults["lr"], expected, rtol=rtol)


@pytest.mark.parametrize("rho, expected", [(0.9, 3.16e-3), (0.95, 4.47e-3)])
def test_adadelta_first_step_is_small(device, rho, expected):
    """|g| = 1, eps = 1e-6: the step is sqrt(eps / (1 - rho)), why Adadelta starts slowly."""
    g = np.array([1.0, -1.0, 1.0])
    (p1,), _, _ = run_steps(lambda ps: Adadelta(ps, rho=rho), device, [g])
    np.testing.assert_allclose(p1 - P0, -expected * g, rtol=2e-3)


def test_adamw_decay_is_decoupled(device):
    """Weight decay alone moves AdamW by -lr * wd * p on top of the Adam step; Adam's coupled
    decay instead enters m and v (first step then still ~ -lr sign(g + wd p))."""
    (pw,), _, _ = run_steps(lambda ps: AdamW(ps, lr=0.01, weight_decay=0.5), device, [G])
    (pa,), _, _ = run_steps(lambda ps: Adam(ps, lr=0.01), device, [G])
    np.testing.assert_allclose(pw - pa, -0.01 * 0.5 * P0, rtol=1e-12)


# --------------------------------------------------------------------------- (b) minimisation
SCALES = np.logspace(0, 2, 4)  # f(x) = 0.5 sum(SCALES x^2): condition number 100, minimum 0

# (id, factory with the tuned lr, steps, bound on max|x|) on the quadratic from x = (1, 1, 1, 1)
QUADRATIC = [
    ("sgd", lambda ps: SGD(ps, lr=0.019), 1000, 1e-7),          # lr just under 2 / 100
    ("sgd-momentum", lambda ps: SGD(ps, lr=0.01, momentum=0.9), 500, 1e-9),
    ("sgd-nesterov", lambda ps: SGD(ps, lr=0.01, momentum=0.9, nesterov=True), 500, 1e-9),
    ("adagrad", lambda ps: Adagrad(ps, lr=0.1), 1000, 1e-10),
    ("rmsprop", lambda ps: RMSprop(ps, lr=3e-3), 1000, 1e-10),
    ("rmsprop-centered", lambda ps: RMSprop(ps, lr=3e-3, momentum=0.5, centered=True), 1000,
     1e-10),
    # Adadelta stalls at ~lr * sqrt(eps) steps (a limit cycle): only 2e-2 is reachable
    ("adadelta", lambda ps: Adadelta(ps, lr=0.5), 1000, 2e-2),
    ("rmsprop-graves", lambda ps: RMSpropGraves(ps), 1000, 1e-10),   # defaults
    ("smorms3", lambda ps: SMORMS3(ps, lr=3e-3), 500, 1e-10),
    ("adam", lambda ps: Adam(ps, lr=0.01), 1000, 1e-10),
    ("amsgrad", lambda ps: AMSGrad(ps, lr=0.01), 1000, 1e-10),
    ("adamw", lambda ps: AdamW(ps, lr=0.01), 1000, 1e-10),   # decay also pulls toward 0
    ("adamax", lambda ps: Adamax(ps, lr=0.03), 1000, 1e-10),
    ("nadam", lambda ps: NAdam(ps, lr=0.01), 1000, 1e-10),
    ("radam", lambda ps: RAdam(ps, lr=0.02), 1000, 1e-10),
]

# the same from (-1.5, 2) on Rosenbrock, bound on max|x - (1, 1)|
ROSENBROCK = [
    ("sgd", lambda ps: SGD(ps, lr=2e-3), 10000, 1e-4),
    ("sgd-momentum", lambda ps: SGD(ps, lr=1e-3, momentum=0.9), 3000, 1e-4),
    ("sgd-nesterov", lambda ps: SGD(ps, lr=1e-3, momentum=0.9, nesterov=True), 3000, 1e-4),
    ("adagrad", lambda ps: Adagrad(ps, lr=0.5), 10000, 2e-2),
    ("rmsprop", lambda ps: RMSprop(ps, lr=1e-3), 10000, 5e-3),
    ("rmsprop-centered", lambda ps: RMSprop(ps, lr=1e-3, momentum=0.5, centered=True), 5000,
     5e-3),
    ("adadelta", lambda ps: Adadelta(ps, lr=0.05), 10000, 5e-2),
    ("rmsprop-graves", lambda ps: RMSpropGraves(ps), 2000, 1e-4),    # defaults
    ("smorms3", lambda ps: SMORMS3(ps, lr=5e-3), 5000, 5e-3),
    ("adam", lambda ps: Adam(ps, lr=5e-3), 10000, 1e-4),
    ("amsgrad", lambda ps: AMSGrad(ps, lr=0.1), 3000, 1e-6),
    ("adamw", lambda ps: AdamW(ps, lr=5e-3, weight_decay=1e-4), 10000, 1e-3),
    ("adamax", lambda ps: Adamax(ps, lr=1e-3), 10000, 1e-6),
    ("nadam", lambda ps: NAdam(ps, lr=2e-3), 10000, 1e-3),
    # RAdam's unrectified first steps are lr * g: lr >= 2e-2 diverges from (-1.5, 2)
    ("radam", lambda ps: RAdam(ps, lr=2e-3), 10000, 1e-6),
]


@pytest.mark.parametrize("name, make, steps, tol", QUADRATIC, ids=[q[0] for q in QUADRATIC])
def test_minimises_ill_conditioned_quadratic(device, name, make, steps, tol):
    p = param(np.ones(4), device)
    scales = backend.to_device(SCALES, device)
    opt = make([p])
    for _ in range(steps):
        quadratic(p, scales)
        opt.step()
    assert np.abs(backend.to_numpy(p.data)).max() < tol


@pytest.mark.parametrize("name, make, steps, tol", ROSENBROCK, ids=[r[0] for r in ROSENBROCK])
def test_minimises_rosenbrock(device, name, make, steps, tol):
    p = param([-1.5, 2.0], device)
    opt = make([p])
    for _ in range(steps):
        rosenbrock(p)
        opt.step()
    assert np.abs(backend.to_numpy(p.data) - 1).max() < tol


# --------------------------------------------------------------------------- (c), (e)
@pytest.mark.parametrize("name, make", ALL, ids=[a[0] for a in ALL])
def test_state_dict_round_trip_continues_identically(device, name, make):
    scales = backend.to_device(np.array([1.0, 10.0, 100.0]), device)
    a, c = roundtrip_continues_identically(make, P0.tolist(), lambda p: quadratic(p, scales),
                                           device=device)
    assert not np.array_equal(a, P0)
    np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("name, make", ALL, ids=[a[0] for a in ALL])
def test_zero_gradients_stay_finite(device, name, make):
    assert np.isfinite(zero_gradient_stays_finite(make, device=device)).all()


# --------------------------------------------------------------------------- (d) bad values
INVALID = [
    (lambda ps: SGD(ps, lr=-0.1), ValueError, "lr"),
    (lambda ps: SGD(ps, lr=float("nan")), ValueError, "lr"),
    (lambda ps: SGD(ps, lr="0.1"), TypeError, "lr"),
    (lambda ps: SGD(ps, momentum=-0.9), ValueError, "momentum"),
    (lambda ps: SGD(ps, dampening=1.5), ValueError, "dampening"),
    (lambda ps: SGD(ps, weight_decay=-1e-4), ValueError, "weight_decay"),
    (lambda ps: SGD(ps, nesterov=True), ValueError, "nesterov"),
    (lambda ps: SGD(ps, momentum=0.9, dampening=0.1, nesterov=True), ValueError, "nesterov"),
    (lambda ps: SGD(ps, maximize=1), TypeError, "maximize"),
    (lambda ps: SGD([{"params": ps, "lr": -1.0}]), ValueError, "lr"),
    (lambda ps: SGD(ps, betas=(0.9, 0.999)), TypeError, "betas"),
    (lambda ps: Adagrad(ps, lr_decay=-0.1), ValueError, "lr_decay"),
    (lambda ps: Adagrad(ps, initial_accumulator_value=-0.1), ValueError,
     "initial_accumulator_value"),
    (lambda ps: Adagrad(ps, eps=-1e-10), ValueError, "eps"),
    (lambda ps: RMSprop(ps, alpha=1.5), ValueError, "alpha"),
    (lambda ps: RMSprop(ps, momentum=-0.1), ValueError, "momentum"),
    (lambda ps: RMSprop(ps, centered="yes"), TypeError, "centered"),
    (lambda ps: Adadelta(ps, rho=1.1), ValueError, "rho"),
    (lambda ps: Adadelta(ps, rho=-0.1), ValueError, "rho"),
    (lambda ps: RMSpropGraves(ps, alpha=-0.5), ValueError, "alpha"),
    (lambda ps: RMSpropGraves(ps, eps=-1e-4), ValueError, "eps"),
    (lambda ps: SMORMS3(ps, lr=-1e-3), ValueError, "lr"),
    (lambda ps: SMORMS3(ps, eps=-1.0), ValueError, "eps"),
    (lambda ps: Adam(ps, betas=(1.0, 0.999)), ValueError, "betas"),
    (lambda ps: Adam(ps, betas=(0.9, -0.1)), ValueError, "betas"),
    (lambda ps: Adam(ps, betas=0.9), TypeError, "betas"),
    (lambda ps: Adam(ps, eps=-1e-8), ValueError, "eps"),
    (lambda ps: Adam(ps, amsgrad=None), TypeError, "amsgrad"),
    (lambda ps: AMSGrad(ps, betas=(0.9, 1.0)), ValueError, "betas"),
    (lambda ps: AdamW(ps, weight_decay=-1e-2), ValueError, "weight_decay"),
    (lambda ps: Adamax(ps, betas=(0.9, 1.5)), ValueError, "betas"),
    (lambda ps: NAdam(ps, momentum_decay=-4e-3), ValueError, "momentum_decay"),
    (lambda ps: RAdam(ps, betas=(-0.1, 0.999)), ValueError, "betas"),
    (lambda ps: LBFGS(ps, lr=-1.0), ValueError, "lr"),
    (lambda ps: LBFGS(ps, max_iter=0), ValueError, "max_iter"),
    (lambda ps: LBFGS(ps, max_iter=2.5), TypeError, "max_iter"),
    (lambda ps: LBFGS(ps, max_eval=0), ValueError, "max_eval"),
    (lambda ps: LBFGS(ps, history_size=0), ValueError, "history_size"),
    (lambda ps: LBFGS(ps, tolerance_grad=-1e-7), ValueError, "tolerance_grad"),
    (lambda ps: LBFGS(ps, tolerance_change=-1e-9), ValueError, "tolerance_change"),
    (lambda ps: LBFGS(ps, line_search_fn="armijo"), ValueError, "line_search_fn"),
    (lambda ps: LBFGS([{"params": ps[:1]}, {"params": ps[1:]}]), ValueError, "parameter group"),
]


@pytest.mark.parametrize("make, error, name", INVALID,
                         ids=[f"{i}-{name}" for i, (_, _, name) in enumerate(INVALID)])
def test_invalid_hyperparameters_raise(device, make, error, name):
    with pytest.raises(error, match=name):
        make([param(P0.copy(), device), param([1.0], device)])


def test_lbfgs_needs_a_closure(device):
    p = param(P0.copy(), device)
    p.grad = backend.to_device(G.copy(), device)
    with pytest.raises(TypeError, match="closure"):
        LBFGS([p]).step()


# --------------------------------------------------------------------------- conventions
@pytest.mark.parametrize("name, make", FIRST_ORDER, ids=[a[0] for a in FIRST_ORDER])
def test_parameter_without_grad_is_skipped(device, name, make):
    p, frozen = param(P0.copy(), device), param([1.0, 2.0], device)
    opt = make([p, frozen])
    for g in GRADS[:3]:
        p.grad = backend.to_device(g.copy(), device)
        opt.step()
    np.testing.assert_array_equal(backend.to_numpy(frozen.data), [1.0, 2.0])
    assert frozen not in opt.state and p in opt.state


@pytest.mark.parametrize("name, make", FIRST_ORDER, ids=[a[0] for a in FIRST_ORDER])
def test_param_groups_use_their_own_lr(device, name, make):
    """Two groups, the second's lr halved (as a scheduler would) == two separate optimizers."""
    pa, pb = param(P0.copy(), device), param(P0.copy(), device)
    opt = make([{"params": [pa]}, {"params": [pb]}])
    opt.param_groups[1]["lr"] *= 0.5
    for g in GRADS[:3]:
        pa.grad, pb.grad = backend.to_device(g.copy(), device), backend.to_device(g.copy(), device)
        opt.step()
    ref_a, _, _ = run_steps(make, device, GRADS[:3])

    def halved(ps):
        ref = make(ps)
        ref.param_groups[0]["lr"] *= 0.5
        return ref
    ref_b, _, _ = run_steps(halved, device, GRADS[:3])
    np.testing.assert_array_equal(backend.to_numpy(pa.data), ref_a[-1])
    np.testing.assert_array_equal(backend.to_numpy(pb.data), ref_b[-1])
    assert not np.array_equal(ref_a[-1], ref_b[-1])


def test_constructor_param_groups_override_defaults(device):
    pa, pb = param(P0.copy(), device), param(P0.copy(), device)
    opt = SGD([{"params": [pa]}, {"params": [pb], "lr": 0.5, "momentum": 0.9}], lr=0.1)
    assert opt.param_groups[1]["dampening"] == 0.0
    pa.grad, pb.grad = backend.to_device(G.copy(), device), backend.to_device(G.copy(), device)
    opt.step()
    np.testing.assert_allclose(backend.to_numpy(pa.data), P0 - 0.1 * G, rtol=1e-15)
    np.testing.assert_allclose(backend.to_numpy(pb.data), P0 - 0.5 * G, rtol=1e-15)
    assert "momentum_buffer" in opt.state[pb] and "momentum_buffer" not in opt.state[pa]


def test_sgd_maximize_ascends(device):
    """f(x) = -sum((x - 1)^2) has its maximum at 1: maximize=True climbs to it."""
    p = param(P0.copy(), device)
    opt = SGD([p], lr=0.1, momentum=0.5, maximize=True)
    values = []
    for _ in range(100):
        x = p.data
        p.grad = -2 * (x - 1)
        values.append(-float(backend.to_numpy(((x - 1) ** 2).sum())))
        opt.step()
    assert values[1] > values[0]
    np.testing.assert_allclose(backend.to_numpy(p.data), 1.0, atol=1e-6)


@pytest.mark.parametrize("name, make", ALL, ids=[a[0] for a in ALL])
def test_float32_stays_float32(device, name, make):
    """No silent upcast: float32 parameters and all array state stay float32, and the float32
    trajectory follows the float64 one."""
    final = {}
    for dtype in (np.float32, np.float64):
        scales = backend.to_device(np.array([1.0, 2.0, 3.0], dtype=dtype), device)
        p = param(P0.copy(), device, dtype)
        opt = make([p])
        for _ in range(3):
            opt.step(lambda: quadratic(p, scales))
        assert p.data.dtype == dtype
        assert all(a.dtype == dtype for s in opt.state.values() for a in _arrays(s))
        final[dtype] = backend.to_numpy(p.data)
    np.testing.assert_allclose(final[np.float32], final[np.float64], rtol=2e-4, atol=1e-5)


def _arrays(value):
    if isinstance(value, dict):
        return [a for v in value.values() for a in _arrays(v)]
    if isinstance(value, (list, tuple)):
        return [a for v in value for a in _arrays(v)]
    return [value] if hasattr(value, "dtype") and getattr(value, "ndim", 0) > 0 else []


def test_adam_rounds_as_torchs_single_tensor_path_bit_for_bit():
    """Adam's operation order is torch's (lerp_, addcmul_, sqrt(v) / sqrt(bc2) + eps,
    addcdiv_ with -lr / bc1): written out here in NumPy, float64 agrees to the last bit, so a
    reordering that is equal only "within a rounding" (e.g. folding sqrt(bc2) into eps) fails."""
    import minidl as md
    from minidl import optim

    rng = np.random.default_rng(4)
    w0 = rng.standard_normal((5, 3))
    grads = [rng.standard_normal((5, 3)) for _ in range(6)]
    p = md.tensor(w0.copy(), requires_grad=True)
    opt = optim.Adam([p], lr=0.01, betas=(0.9, 0.999), eps=1e-8)
    w, m, v = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
    for t, g in enumerate(grads, start=1):
        p.grad = g.copy()
        opt.step()
        m = m + (1 - 0.9) * (g - m)
        v = v * 0.999 + ((1 - 0.999) * g) * g
        denom = np.sqrt(v) / (1 - 0.999 ** t) ** 0.5 + 1e-8
        w = w + (m * -(0.01 / (1 - 0.9 ** t))) / denom
        np.testing.assert_array_equal(p.data, w)
