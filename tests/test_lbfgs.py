"""L-BFGS: iterates against a two-loop oracle, the strong-Wolfe line search, minimisation."""

from __future__ import annotations

import numpy as np
import pytest

from minidl import backend
from minidl.autograd import Tensor
from minidl.optim.lbfgs import LBFGS
from tests.optim_harness import param, quadratic, rosenbrock
from tests.test_optim_torchlike import P0, SCALES

# --------------------------------------------------------------------------- L-BFGS
A = np.array([[3.0, 1.0, 0.0], [1.0, 4.0, 1.0], [0.0, 1.0, 2.0]])  # SPD
B = np.array([1.0, -2.0, 0.5])


def quadratic_closure(p, device):
    """f(x) = 0.5 x'Ax - b'x; sets p.grad = Ax - b and returns f."""
    a, b = backend.to_device(A, device), backend.to_device(B, device)

    def closure():
        x = p.data
        p.grad = a @ x - b
        return float(backend.to_numpy(0.5 * x @ (a @ x) - b @ x))
    return closure


def lbfgs_oracle(x, lr, iterations, history):
    """L-BFGS with fixed steps on 0.5 x'Ax - b'x, with the inverse Hessian approximation built
    as a matrix by the BFGS update H <- (I - rho s y') H (I - rho y s') + rho s s' over the
    stored pairs (oldest first) from H_0 = (s'y / y'y) I of the newest pair."""
    pairs, out, eye = [], [], np.eye(len(x))
    g = A @ x - B
    x_prev = g_prev = None
    for k in range(iterations):
        if k == 0:
            d, t = -g, min(1.0, 1.0 / np.abs(g).sum()) * lr
        else:
            s, y = x - x_prev, g - g_prev
            assert y @ s > 1e-10
            pairs = (pairs + [(s, y)])[-history:]
            h = (pairs[-1][0] @ pairs[-1][1]) / (pairs[-1][1] @ pairs[-1][1]) * eye
            for s_i, y_i in pairs:
                rho = 1.0 / (y_i @ s_i)
                v = eye - rho * np.outer(y_i, s_i)
                h = v.T @ h @ v + rho * np.outer(s_i, s_i)
            d, t = -h @ g, lr
        x_prev, g_prev = x, g
        x = x + t * d
        g = A @ x - B
        out.append(x)
    return out


def test_lbfgs_iterates_match_two_loop_oracle(device):
    expected = lbfgs_oracle(P0, lr=0.8, iterations=4, history=2)
    p = param(P0.copy(), device)
    opt = LBFGS([p], lr=0.8, max_iter=1, history_size=2)
    closure = quadratic_closure(p, device)
    for k in range(4):  # one iteration per step(): the closure is not re-run after the move
        opt.step(closure)
        np.testing.assert_allclose(backend.to_numpy(p.data), expected[k], rtol=1e-12)
    # the same four iterations inside one step()
    q = param(P0.copy(), device)
    LBFGS([q], lr=0.8, max_iter=4, history_size=2).step(quadratic_closure(q, device))
    np.testing.assert_allclose(backend.to_numpy(q.data), expected[-1], rtol=1e-12)


def test_lbfgs_state_lives_under_first_parameter_and_loss_is_first_closure_value(device):
    p, other = param(P0.copy(), device), param([0.0], device)
    calls = []

    def closure():
        value = quadratic_closure(p, device)()
        calls.append(value)
        return value
    opt = LBFGS([p, other], max_iter=5)  # other's grad stays None: treated as zero, not moved
    assert opt.step(closure) == calls[0] and len(calls) == 5
    assert list(opt.state) == [p]
    assert {"func_evals", "n_iter", "d", "t", "old_dirs", "old_stps", "ro", "H_diag",
            "prev_flat_grad", "prev_loss"} <= set(opt.state[p])
    assert opt.state[p]["n_iter"] == 5 and opt.state[p]["func_evals"] == 5
    np.testing.assert_array_equal(backend.to_numpy(other.data), [0.0])


def test_lbfgs_closure_may_return_a_tensor(device):
    """The usual closure: zero_grad, loss Tensor, backward, return the loss."""
    target = backend.to_device(np.array([1.0, -2.0, 3.0]), device)
    p = param(P0.copy(), device)
    opt = LBFGS([p], line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = ((p - Tensor(target)) ** 2).sum()
        loss.backward()
        return loss
    first = opt.step(closure)
    assert isinstance(first, Tensor)
    np.testing.assert_allclose(backend.to_numpy(p.data), [1.0, -2.0, 3.0], atol=1e-9)


def test_lbfgs_strong_wolfe_steps_satisfy_wolfe_conditions(device):
    """Every accepted step dx = t d satisfies f(x + dx) <= f(x) + c1 g'dx and
    |g(x + dx)'dx| <= c2 |g'dx| (c1 = 1e-4, c2 = 0.9): scale-free forms of the conditions."""
    for lr in (1e-3, 1.0, 100.0):  # initial trials too short (extrapolate), ~right, too long
        p = param([-1.5, 2.0], device)
        # max_eval 25: the line search gets 24 trials (with max_iter=1 alone it would get none)
        opt = LBFGS([p], lr=lr, max_iter=1, max_eval=25, line_search_fn="strong_wolfe")
        for _ in range(15):
            x0 = backend.to_numpy(p.data).copy()
            f0, g0 = rosenbrock(p), backend.to_numpy(p.grad).copy()
            opt.step(lambda: rosenbrock(p))
            dx = backend.to_numpy(p.data) - x0
            f1, g1 = rosenbrock(p), backend.to_numpy(p.grad)
            assert g0 @ dx < 0, lr
            assert f1 <= f0 + 1e-4 * (g0 @ dx), lr
            assert abs(g1 @ dx) <= 0.9 * abs(g0 @ dx), lr


@pytest.mark.parametrize("lr, x1, evaluations", [(2e-3, 0.8, 4), (100.0, 0.0, 3)])
def test_strong_wolfe_trials_on_a_1d_quadratic(device, lr, x1, evaluations):
    """f(x) = 2 x^2 from x = 1 along d = -4: the first trial is t = lr / |g|_1 = lr / 4, the
    exact minimiser t* = 1/4, and |f'| drops below 0.9 |f'(0)| once t >= 0.1 t*.
    lr 2e-3: the cubic (here the parabola itself) points at t*, but extrapolation is capped at
    10 t: trials 5e-4, 5e-3, 5e-2, the last accepted (x = 0.8);
    lr 100: trial 25 breaks sufficient decrease; the zoom interpolates t* exactly (x = 0)."""
    p = param([1.0], device)

    def closure():
        p.grad = 4 * p.data
        return float(backend.to_numpy(2 * p.data[0] ** 2))
    opt = LBFGS([p], lr=lr, max_iter=1, max_eval=25, line_search_fn="strong_wolfe")
    opt.step(closure)
    assert abs(float(backend.to_numpy(p.data[0])) - x1) < 1e-12
    assert opt.state[p]["func_evals"] == evaluations  # the first closure call + the trials


def test_strong_wolfe_gets_only_the_evaluations_left_of_max_eval(device):
    """Rosenbrock from (-1.5, 2), max_iter=1, so max_eval = 1 * 5 // 4 = 1 (torch's default).
    By hand: f0 = 2.5^2 + 100 (2 - 2.25)^2 = 12.5, g = (-155, -50), d = -g, and the first
    step t = min(1, 1 / |g|_1) = 1/205. After the first closure call the line search may use
    max_eval - 1 = 0 trials beyond its first, at x0 + t d = (-0.744, 2.244) where f = 288.8
    > f0: it keeps t = 0. So 2 closure calls in all (the search used to allow 25 and call 3
    times), one iteration, and x is unchanged."""
    p = param([-1.5, 2.0], device)
    calls = []

    def closure():
        calls.append(backend.to_numpy(p.data).copy())
        return rosenbrock(p)
    opt = LBFGS([p], max_iter=1, line_search_fn="strong_wolfe")
    opt.step(closure)
    state = opt.state[p]
    assert len(calls) == state["func_evals"] == 2
    assert state["n_iter"] == 1
    np.testing.assert_allclose(calls[1], [-1.5 + 155 / 205, 2 + 50 / 205], rtol=1e-14)
    assert state["t"] == 0.0
    np.testing.assert_array_equal(backend.to_numpy(p.data), [-1.5, 2.0])


@pytest.mark.parametrize("max_eval", [2, 3, 5, 8])
def test_one_step_never_calls_the_closure_more_than_max_eval_plus_one(device, max_eval):
    """The budget bounds every step: the first call, then iterations whose line search may
    use what is left plus its first trial, so at most max_eval + 1 calls (torch's bound)."""
    for lr in (1e-3, 100.0):  # many extrapolations, many zooms
        p = param([-1.5, 2.0], device)
        calls = []

        def closure():
            calls.append(1)
            return rosenbrock(p)
        opt = LBFGS([p], lr=lr, max_iter=20, max_eval=max_eval, line_search_fn="strong_wolfe")
        opt.step(closure)
        assert len(calls) == opt.state[p]["func_evals"] <= max_eval + 1


def test_lbfgs_minimises_quadratic(device):
    """The kappa = 100 bowl to 1e-10 within 25 iterations, with or without line search (the
    unit quasi-Newton steps satisfy the Wolfe conditions here, after a first step of
    1 / ||g||_1 = 0.008)."""
    for line_search_fn in ("strong_wolfe", None):
        p = param(np.ones(4), device)
        scales = backend.to_device(SCALES, device)
        opt = LBFGS([p], max_iter=100, tolerance_grad=1e-10, tolerance_change=0,
                    line_search_fn=line_search_fn)
        opt.step(lambda: quadratic(p, scales))
        assert np.abs(backend.to_numpy(p.data)).max() < 1e-10
        assert opt.state[p]["n_iter"] <= 25


def test_lbfgs_minimises_rosenbrock_like_scipy(device):
    """From (-1.5, 2) to within 1e-6 of (1, 1) in at most 50 iterations; the minimiser agrees
    with scipy's L-BFGS-B (a different line search, so only the end point is compared)."""
    scipy_optimize = pytest.importorskip("scipy.optimize")
    p = param([-1.5, 2.0], device)
    opt = LBFGS([p], max_iter=100, tolerance_change=1e-12, line_search_fn="strong_wolfe")
    opt.step(lambda: rosenbrock(p))
    assert opt.state[p]["n_iter"] <= 50
    x = backend.to_numpy(p.data)
    assert np.abs(x - 1).max() < 1e-6

    def f_and_grad(z):
        return ((1 - z[0]) ** 2 + 100 * (z[1] - z[0] ** 2) ** 2,
                np.array([-2 * (1 - z[0]) - 400 * z[0] * (z[1] - z[0] ** 2),
                          200 * (z[1] - z[0] ** 2)]))
    ref = scipy_optimize.minimize(f_and_grad, [-1.5, 2.0], jac=True, method="L-BFGS-B",
                                  options={"ftol": 1e-15, "gtol": 1e-12})
    np.testing.assert_allclose(x, ref.x, atol=1e-6)


def test_cubic_minimizer_exact_on_a_quadratic_and_safe_when_degenerate():
    """The cubic interpolating f and f' at two points of a parabola is that parabola, so its
    minimiser is exact; on a straight line downhill (f = -t) the cubic's denominator is zero
    and the trial goes to the bracket end the slope points to, as torch's inf does."""
    from minidl.optim.lbfgs import _cubic_minimizer, _Point
    a = _Point(0.0, 0.09, None, -0.6)          # f(t) = (t - 0.3)^2
    b = _Point(1.0, 0.49, None, 1.4)
    assert _cubic_minimizer(a, b, 0.0, 1.0) == pytest.approx(0.3, abs=1e-15)
    assert _cubic_minimizer(b, a, 0.0, 1.0) == pytest.approx(0.3, abs=1e-15)
    assert _cubic_minimizer(a, b, 0.5, 1.0) == 0.5                        # clipped
    line_a, line_b = _Point(0.0, 0.0, None, -1.0), _Point(1.0, -1.0, None, -1.0)
    assert _cubic_minimizer(line_a, line_b, 1.01, 10.0) == 10.0
