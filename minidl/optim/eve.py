"""Eve: Adam with a global learning-rate feedback from the relative change of the objective
(Hayashi, Koushik & Neubig, arXiv:1611.01505). The only optimizer here that needs the loss."""

from __future__ import annotations

import copy
import math
import sys
from minidl.backend import xp_of
from minidl.optim.optimizer import Optimizer, check_range, update_moments

_TINY = sys.float_info.min  # keeps 0/0 defined when the loss sits exactly at f_star


class Eve(Optimizer):
    """Eve: H. Hayashi, J. Koushik, G. Neubig, "Eve: A Gradient Based Optimization Method with
    Locally and Globally Adaptive Learning Rates", arXiv:1611.01505 (v3, 2018; v1 2016 by
    Koushik & Hayashi). Algorithm of the paper (`paper/alg.tex` in rooa/eve).

    f_t is the objective at step t: one scalar for the whole model, returned by the closure
    given to `step` (`opt.step(lambda: loss)` when the loss is already computed). Per step t
    (g includes coupled L2 weight decay):

        m <- b1*m + (1-b1)*g      m_hat = m / (1-b1^t)
        v <- b2*v + (1-b2)*g^2    v_hat = v / (1-b2^t)
        t = 1:  d = 1
        t > 1:  r = |f_t - f_{t-1}| / |min(f_t, f_{t-1}) - f_star|
                d <- b3*d + (1-b3)*clip(r, 1/c, c)
        p <- p - (lr/d) * m_hat / (sqrt(v_hat) + eps)

    eps is outside the square root, added to sqrt of the bias-corrected v (the paper's box;
    the official Keras code adds it to sqrt of the uncorrected v). The denominator of r takes
    the absolute value, as the official code: a loss below f_star must not flip r negative
    (which would clip it to 1/c and make the step 10x larger). As in the official code the
    smallest positive float is added to numerator and denominator, so r = 1 when both are 0.
    d is global: the step counter t of the feedback counts calls to `step`; m and v keep
    torch's per-parameter step counts. d is kept per parameter group, with that group's b3,
    c and f_star (normally there is one group, hence one d).

    Hyperparameters:
        lr (1e-3): learning rate (the paper's alpha_1); >= 0.
        betas ((0.9, 0.999, 0.999)): decay rates b1 of m, b2 of v, b3 of d; each in [0, 1).
        c (10): clipping bound of the relative change r, to [1/c, c]; >= 1.
        eps (1e-8): added to sqrt(v_hat); >= 0.
        f_star (0): a lower bound of the objective (0 for cross-entropy and squared error).
        weight_decay (0): coupled L2 penalty; >= 0.
    State per parameter: step, exp_avg (m), exp_avg_sq (v). Global: the previous loss and d,
    saved by state_dict under 'feedback'.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999, 0.999),
                 c: float = 10.0, eps: float = 1e-8, f_star: float = 0.0,
                 weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, betas=betas, c=c, eps=eps, f_star=f_star,
                                      weight_decay=weight_decay))
        self.feedback = {"loss_prev": None, "d": []}  # f_{t-1}, and d of each group

    def validate(self, group: dict) -> None:
        super().validate(group)
        check_range("c", group["c"], 1.0, math.inf)
        check_range("f_star", group["f_star"], -math.inf, math.inf)

    def before_update(self, loss, batches: list) -> None:
        """The loss feedback d, from the objective the closure returned (a number or a
        one-element Tensor/array)."""
        if loss is None:
            raise ValueError(
                "Eve needs the objective value at every step: call step(closure) with a "
                "closure that returns the loss (e.g. step(lambda: loss))"
            )
        f = float(loss.item() if hasattr(loss, "item") else loss)
        if not math.isfinite(f):
            raise ValueError(f"Eve got a non-finite loss ({f})")
        self._update_feedback(f)

    def _update_feedback(self, f: float) -> None:
        f_prev, ds = self.feedback["loss_prev"], self.feedback["d"]
        ds.extend([1.0] * (len(self.param_groups) - len(ds)))  # groups added later start at 1
        if f_prev is not None:
            for i, group in enumerate(self.param_groups):
                beta3, c = group["betas"][2], group["c"]
                r = (abs(f - f_prev) + _TINY) / (abs(min(f, f_prev) - group["f_star"]) + _TINY)
                ds[i] = beta3 * ds[i] + (1 - beta3) * min(max(r, 1 / c), c)
        self.feedback["loss_prev"] = f

    def init_state(self, p, group: dict) -> dict:
        xp = xp_of(p.data)
        return {"step": 0, "exp_avg": xp.zeros_like(p.data), "exp_avg_sq": xp.zeros_like(p.data)}

    def update(self, p, grad, state: dict, group: dict) -> None:
        xp = xp_of(p.data)
        beta1, beta2, _ = group["betas"]
        d = self.feedback["d"][self._group_index(group)]
        state["step"] += 1
        t = state["step"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        update_moments(grad, m, v, beta1, beta2)
        denom = xp.sqrt(v)
        denom /= math.sqrt(1 - beta2**t)
        denom += group["eps"]
        xp.divide(m, denom, out=denom)
        denom *= group["lr"] / d / (1 - beta1**t)
        p.data -= denom

    def _group_index(self, group: dict) -> int:
        return next(i for i, g in enumerate(self.param_groups) if g is group)

    def state_dict(self) -> dict:
        """The base state_dict plus 'feedback': {'loss_prev': f_{t-1}, 'd': [d per group]}."""
        state = super().state_dict()
        state["feedback"] = copy.deepcopy(self.feedback)
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self.feedback = copy.deepcopy(state_dict["feedback"])
