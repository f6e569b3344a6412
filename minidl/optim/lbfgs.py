"""L-BFGS with an optional strong-Wolfe line search, as torch.optim.LBFGS.

Unlike the first-order optimizers, one `step(closure)` runs up to `max_iter` quasi-Newton
iterations and calls the closure several times, so LBFGS overrides `step` instead of `update`.
All parameters are treated as one flat vector; all state lives under the first parameter so
that `state_dict` / `load_state_dict` work unchanged.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

from minidl.autograd import Tensor, enable_grad, no_grad
from minidl.backend import device_of, xp_of
from minidl.optim.optimizer import Optimizer, check_range


class LBFGS(Optimizer):
    """Limited-memory BFGS: J. Nocedal, "Updating quasi-Newton matrices with limited storage",
    Math. Comp. 35(151):773-782, 1980; D. C. Liu, J. Nocedal, "On the limited memory BFGS
    method for large scale optimization", Math. Programming 45:503-528, 1989. Defaults, state
    and trajectory as torch.optim.LBFGS (itself modelled on minFunc).

    One step(closure) runs at most max_iter iterations on the flattened parameters x:
        g = grad f(x) (zeros for parameters whose grad is None)
        iteration 1 ever: d = -g, t = min(1, 1 / ||g||_1) * lr
        later:            s = t_prev d_prev, y = g - g_prev; if y's > 1e-10 the pair joins a
                          FIFO of history_size pairs (rho = 1 / y's, gamma = y's / y'y);
                          d = -H g by the two-loop recursion with H_0 = gamma * I:
                              q = -g;  for i newest..oldest:  a_i = rho_i s_i'q,  q -= a_i y_i
                              r = gamma q;  for i oldest..newest:  b = rho_i y_i'r,
                                                                  r += (a_i - b) s_i
                              d = r;  t = lr
        if g'd > -tolerance_change: stop (not a descent direction)
        line_search_fn None:           x <- x + t d (the closure is re-evaluated, except on
                                       the last iteration)
        line_search_fn 'strong_wolfe': t from a line search satisfying the strong Wolfe
                                       conditions, with c1 = 1e-4, c2 = 0.9,
                                       f(x + t d) <= f(x) + c1 t g'd,
                                       |g(x + t d)'d| <= c2 |g'd|,
                                       by cubic interpolation (Nocedal & Wright, Algorithms
                                       3.5 and 3.6); it gets the evaluations left of this
                                       step's max_eval: its first trial, then at most
                                       max_eval - (calls so far) more (as torch)
        stop when: max_iter iterations, max_eval closure calls, ||g||_inf <= tolerance_grad,
                   ||t d||_inf <= tolerance_change or |f - f_prev| < tolerance_change.

    The closure must clear the gradients, compute the loss, call backward() and return the loss;
    it is called with gradient recording enabled. step() returns the loss of its FIRST closure
    call. Memory: about 2 * history_size + 3 parameter-sized vectors (the s and y pairs, d, g,
    g_prev).

    Args:
        params: Parameters or a Module; exactly one parameter group, all on one device and of
            one dtype.
        lr: step length multiplier (default 1).
        max_iter: iterations per step() (default 20).
        max_eval: closure calls per step() (default max_iter * 5 // 4).
        tolerance_grad: first-order optimality tolerance on ||g||_inf (default 1e-7).
        tolerance_change: tolerance on the change of f and x (default 1e-9).
        history_size: number of stored (s, y) pairs, m (default 100; Nocedal & Wright suggest
            3 to 20).
        line_search_fn: None (fixed steps) or 'strong_wolfe' (default None).

    State (under the first parameter): func_evals, n_iter (totals over all steps), d, t,
    old_dirs (the y's), old_stps (the s's), ro (the rho's), H_diag (gamma), prev_flat_grad,
    prev_loss.
    """

    needs_closure = True  # step() re-evaluates the model; training loops must pass one

    def __init__(self, params, lr: float = 1, max_iter: int = 20, max_eval: int | None = None,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9,
                 history_size: int = 100, line_search_fn: str | None = None):
        if max_eval is None and _is_int(max_iter):
            max_eval = max_iter * 5 // 4
        super().__init__(params, dict(lr=lr, max_iter=max_iter, max_eval=max_eval,
                                      tolerance_grad=tolerance_grad,
                                      tolerance_change=tolerance_change,
                                      history_size=history_size, line_search_fn=line_search_fn))
        self._param_list = self.param_groups[0]["params"]
        first = self._param_list[0].data
        for p in self._param_list:
            if p.data.dtype != first.dtype or device_of(p.data) != device_of(first):
                raise ValueError("LBFGS needs all parameters on one device with one dtype")

    def add_param_group(self, group: dict) -> None:
        if self.param_groups:
            raise ValueError("LBFGS supports exactly one parameter group "
                             "(no per-parameter options)")
        super().add_param_group(group)

    def validate(self, group: dict) -> None:
        super().validate(group)
        for name in ("max_iter", "max_eval", "history_size"):
            if not _is_int(group[name]):
                raise TypeError(f"{name} must be an int, got {group[name]!r}")
            check_range(name, group[name], 1, float("inf"))
        check_range("tolerance_grad", group["tolerance_grad"], 0.0, float("inf"))
        check_range("tolerance_change", group["tolerance_change"], 0.0, float("inf"))
        if group["line_search_fn"] not in (None, "strong_wolfe"):
            raise ValueError(f"line_search_fn must be None or 'strong_wolfe', got "
                             f"{group['line_search_fn']!r}")

    def check_saved_state(self, p, state: dict, index: int) -> None:
        """L-BFGS keeps flat vectors over all parameters: their length must be the total size."""
        total = sum(q.data.size for q in self._param_list)
        for key in ("d", "prev_flat_grad"):
            value = state.get(key)
            if value is not None and value.size != total:
                raise ValueError(f"state_dict: '{key}' has {value.size} entries, the parameters "
                                 f"have {total}")

    # ------------------------------------------------------------------ flat views
    def _gather_flat_grad(self):
        xp = xp_of(self._param_list[0].data)
        return xp.concatenate([
            (p.grad if p.grad is not None else xp.zeros_like(p.data)).reshape(-1)
            for p in self._param_list
        ])

    def _add_step(self, t: float, d) -> None:
        """x <- x + t d, written into each parameter's array in place."""
        offset = 0
        for p in self._param_list:
            n = p.data.size
            p.data += t * d[offset:offset + n].reshape(p.data.shape)
            offset += n

    def _evaluate(self, closure: Callable) -> tuple[float, object]:
        with enable_grad():
            loss = _as_float(closure())
        return loss, self._gather_flat_grad()

    # ------------------------------------------------------------------ step
    def step(self, closure: Callable | None = None):
        """Run up to max_iter L-BFGS iterations; returns the loss of the first closure call."""
        if closure is None:
            raise TypeError("LBFGS.step needs a closure that clears the gradients, computes "
                            "the loss, calls backward() and returns the loss")
        group = self.param_groups[0]
        lr, max_iter, max_eval = float(group["lr"]), group["max_iter"], group["max_eval"]
        tolerance_grad = float(group["tolerance_grad"])
        tolerance_change = float(group["tolerance_change"])
        state = self.state.setdefault(self._param_list[0], {})
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        with enable_grad():
            orig_loss = closure()
        loss = _as_float(orig_loss)
        state["func_evals"] += 1
        current_evals = 1
        with no_grad():
            flat_grad = self._gather_flat_grad()
            xp = xp_of(flat_grad)
            if float(xp.abs(flat_grad).max()) <= tolerance_grad:
                return orig_loss

            d, t = state.get("d"), state.get("t")
            old_dirs, old_stps, ro = state.get("old_dirs"), state.get("old_stps"), state.get("ro")
            h_diag, prev_flat_grad = state.get("H_diag"), state.get("prev_flat_grad")
            prev_loss = state.get("prev_loss")
            n_iter, opt_cond = 0, False
            while n_iter < max_iter:
                n_iter += 1
                state["n_iter"] += 1
                if state["n_iter"] == 1:
                    d = -flat_grad
                    old_dirs, old_stps, ro, h_diag = [], [], [], 1.0
                else:
                    y = flat_grad - prev_flat_grad
                    s = d * t
                    ys = float(y @ s)
                    if ys > 1e-10:  # keep H positive definite: only pairs with curvature
                        while len(old_dirs) >= group["history_size"]:  # FIFO memory
                            old_dirs.pop(0), old_stps.pop(0), ro.pop(0)
                        old_dirs.append(y)
                        old_stps.append(s)
                        ro.append(1.0 / ys)
                        h_diag = ys / float(y @ y)
                    d = _two_loop(flat_grad, old_dirs, old_stps, ro, h_diag)
                prev_flat_grad = flat_grad  # a fresh array, never written in place
                prev_loss = loss

                if state["n_iter"] == 1:  # no curvature known yet: a short first step
                    t = min(1.0, 1.0 / float(xp.abs(flat_grad).sum())) * lr
                else:
                    t = lr
                gtd = float(flat_grad @ d)
                if gtd > -tolerance_change:
                    break

                evals = 0
                if group["line_search_fn"] == "strong_wolfe":
                    x0 = [p.data.copy() for p in self._param_list]

                    def phi(step_length: float):
                        """f and grad at x0 + step_length * d; the parameters are restored."""
                        self._add_step(step_length, d)
                        value = self._evaluate(closure)
                        for p, x in zip(self._param_list, x0):
                            xp.copyto(p.data, x)
                        return value

                    # the search may use what is left of max_eval after its first trial (torch
                    # passes the same budget): with max_eval = 1 it only compares x and x + t d
                    loss, flat_grad, t, evals = _strong_wolfe(
                        phi, t, d, loss, flat_grad, gtd, tolerance_change=tolerance_change,
                        max_ls=max_eval - current_evals)
                    self._add_step(t, d)
                    opt_cond = float(xp.abs(flat_grad).max()) <= tolerance_grad
                else:
                    self._add_step(t, d)
                    if n_iter != max_iter:
                        # the closure is not re-run on the last iteration: with stochastic
                        # losses the next step() evaluates the new point anyway
                        loss, flat_grad = self._evaluate(closure)
                        opt_cond = float(xp.abs(flat_grad).max()) <= tolerance_grad
                        evals = 1
                current_evals += evals
                state["func_evals"] += evals

                if n_iter == max_iter or current_evals >= max_eval or opt_cond:
                    break
                if float(xp.abs(d).max()) * abs(t) <= tolerance_change:  # no progress in x
                    break
                if abs(loss - prev_loss) < tolerance_change:  # no progress in f
                    break

        state.update(d=d, t=t, old_dirs=old_dirs, old_stps=old_stps, ro=ro, H_diag=h_diag,
                     prev_flat_grad=prev_flat_grad, prev_loss=prev_loss)
        return orig_loss


def _two_loop(g, old_dirs: list, old_stps: list, ro: list, h_diag: float):
    """d = -H g by the L-BFGS two-loop recursion (Nocedal & Wright, Alg. 7.4)."""
    q = -g
    alphas = [0.0] * len(old_dirs)
    for i in range(len(old_dirs) - 1, -1, -1):
        alphas[i] = float(old_stps[i] @ q) * ro[i]
        q -= alphas[i] * old_dirs[i]
    r = q
    r *= h_diag
    for i in range(len(old_dirs)):
        beta = float(old_dirs[i] @ r) * ro[i]
        r += (alphas[i] - beta) * old_stps[i]
    return r


class _Point(NamedTuple):
    """A trial step of the line search: step length, f, gradient, directional derivative."""
    t: float
    f: float
    g: object
    gtd: float


def _cubic_minimizer(a: _Point, b: _Point, lo: float, hi: float) -> float:
    """Minimiser of the cubic matching f and f' at a and b, clipped to [lo, hi]
    (Nocedal & Wright eq. 3.59); the midpoint of [lo, hi] when the cubic has no minimiser."""
    if a.t > b.t:
        a, b = b, a
    d1 = a.gtd + b.gtd - 3 * (a.f - b.f) / (a.t - b.t)
    d2_square = d1 * d1 - a.gtd * b.gtd
    if not d2_square >= 0:  # also catches NaN
        return (lo + hi) / 2.0
    d2 = math.sqrt(d2_square)
    numerator, denominator = b.gtd + d2 - d1, b.gtd - a.gtd + 2 * d2
    if denominator == 0:
        # the cubic degenerates (negative curvature along d, e.g. on a saddle): torch's tensor
        # division gives +-inf here, which the clipping turns into the bracket end it points to
        if numerator == 0:
            return (lo + hi) / 2.0
        return lo if numerator > 0 else hi
    t = b.t - (b.t - a.t) * (numerator / denominator)
    return min(max(t, lo), hi)


def _strong_wolfe(phi: Callable, t: float, d, f0: float, g0, gtd0: float, c1: float = 1e-4,
                  c2: float = 0.9, tolerance_change: float = 1e-9, max_ls: int = 25):
    """Line search for a step t satisfying the strong Wolfe conditions along d.

    Nocedal & Wright, "Numerical Optimization" (2nd ed.), Algorithm 3.5 (bracketing by
    extrapolation) and 3.6 (zoom), with cubic interpolation and torch's/minFunc's safeguards:
    extrapolated trials lie in [t + 0.01 (t - t_prev), 10 t], zoom trials stay 10 % of the
    bracket away from its ends, and the search stops when the bracket is shorter than
    tolerance_change / ||d||_inf. phi(t) returns (f, grad) at x + t d. After the first trial
    at most max_ls more; with max_ls = 0 the first trial is only compared with t = 0 and the
    one with the lower f is returned (no Wolfe test), which is also the fallback whenever
    extrapolation runs out of trials.

    Returns (f, grad, t, number of phi evaluations) of the accepted (or best) point.
    """
    d_norm = float(xp_of(d).abs(d).max())
    start = prev = _Point(0.0, f0, g0, gtd0)
    f, g = phi(t)
    new = _Point(t, f, g, float(g @ d))
    evals, ls_iter = 1, 0

    # Algorithm 3.5: extrapolate until [prev, new] brackets an acceptable step
    bracket = None
    while ls_iter < max_ls:
        if new.f > f0 + c1 * new.t * gtd0 or (ls_iter > 1 and new.f >= prev.f):
            bracket = [prev, new]  # sufficient decrease failed: a minimum lies before new
            break
        if abs(new.gtd) <= -c2 * gtd0:
            return new.f, new.g, new.t, evals  # both Wolfe conditions hold
        if new.gtd >= 0:
            bracket = [prev, new]  # the slope turned positive: a minimum lies before new
            break
        t = _cubic_minimizer(prev, new, new.t + 0.01 * (new.t - prev.t), new.t * 10)
        prev = new
        f, g = phi(t)
        new = _Point(t, f, g, float(g @ d))
        evals += 1
        ls_iter += 1
    if bracket is None:  # out of evaluations while extrapolating: keep the better end
        best = start if start.f <= new.f else new
        return best.f, best.g, best.t, evals

    # Algorithm 3.6: shrink the bracket; `low` indexes its end with the lower f
    low = 0 if bracket[0].f <= bracket[1].f else 1
    insufficient_progress = False
    while ls_iter < max_ls:
        if abs(bracket[1].t - bracket[0].t) * d_norm < tolerance_change:
            break
        lo, hi = sorted((bracket[0].t, bracket[1].t))
        t = _cubic_minimizer(bracket[0], bracket[1], lo, hi)
        # a trial next to an end shrinks the bracket little: move it 10 % inside, at once if
        # it is on the end itself, or when the previous trial was also too close
        margin = 0.1 * (hi - lo)
        if min(hi - t, t - lo) < margin:
            if insufficient_progress or t >= hi or t <= lo:
                t = hi - margin if abs(t - hi) < abs(t - lo) else lo + margin
                insufficient_progress = False
            else:
                insufficient_progress = True
        else:
            insufficient_progress = False
        f, g = phi(t)
        new = _Point(t, f, g, float(g @ d))
        evals += 1
        ls_iter += 1
        if new.f > f0 + c1 * t * gtd0 or new.f >= bracket[low].f:
            bracket[1 - low] = new
            low = 0 if bracket[0].f <= bracket[1].f else 1
        else:
            if abs(new.gtd) <= -c2 * gtd0:
                bracket[low] = new
                break
            if new.gtd * (bracket[1 - low].t - bracket[low].t) >= 0:
                bracket[1 - low] = bracket[low]
            bracket[low] = new
    best = bracket[low]
    return best.f, best.g, best.t, evals


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _as_float(loss) -> float:
    """The closure's loss as a Python float (a Tensor, an array or a number)."""
    if isinstance(loss, Tensor):
        return loss.item()
    return float(loss)
