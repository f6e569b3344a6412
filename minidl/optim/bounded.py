"""AdaBound and AMSBound: Adam whose per-element step size is clipped into bounds that close in
on a final SGD learning rate (Luo, Xiong, Liu & Sun, ICLR 2019, arXiv:1902.09843).

Written as the authors' official code (Luolc/AdaBound), which is what users compare with; the
differences from the paper's Algorithm 2 are listed in AdaBound's docstring.
"""

from __future__ import annotations

import math

from minidl.backend import xp_of
from minidl.optim.optimizer import Optimizer, check_range, update_moments


class AdaBound(Optimizer):
    """AdaBound: Luo, Xiong, Liu & Sun, "Adaptive Gradient Methods with Dynamic Bound of
    Learning Rate", ICLR 2019, arXiv:1902.09843. Formulation and defaults of the official code
    (Luolc/AdaBound, `AdaBound(lr=1e-3, final_lr=0.1, gamma=1e-3, eps=1e-8)`).

    Per step t = 1, 2, ... (g includes coupled L2 weight decay g + weight_decay * p):

        m <- b1*m + (1-b1)*g                   v <- b2*v + (1-b2)*g^2
        final = final_lr * lr / initial_lr     (the bounds follow any lr schedule)
        lower = final * (1 - 1/(gamma*t + 1))  upper = final * (1 + 1/(gamma*t))
        step  = clip(lr * sqrt(1-b2^t) / (1-b1^t) / (sqrt(v) + eps), lower, upper)
        p <- p - step * m                      (clip and products element-wise)

    eps is outside the square root, added to sqrt of the *uncorrected* v (the bias correction
    sits in the step size, as in the official code). At t = 1 the bounds are [final*gamma/(1 +
    gamma), final*(1 + 1/gamma)] = [~1e-4, ~100] with the defaults, so AdaBound starts as Adam;
    as t grows both bounds tend to `final`, so it ends as SGD with learning rate `final`.

    Differences from the paper's Algorithm 2 (all as the official code): Adam's bias
    correction; eps; no extra 1/sqrt(t) decay; bound speed `gamma` instead of 1-b2 (the paper's
    experiments use lower = 0.1 - 0.1/((1-b2)t + 1), upper = 0.1 + 0.1/((1-b2)t)); and the final
    lr scaled by lr / initial_lr so that schedulers move the bounds (Luolc/AdaBound#9).
    `initial_lr` is the group's lr when the group is added (schedulers keep it).

    Hyperparameters:
        lr (1e-3): Adam learning rate; > 0.
        betas ((0.9, 0.999)): decay rates of m and v, each in [0, 1).
        final_lr (0.1): the SGD learning rate both bounds converge to; >= 0.
        gamma (1e-3): convergence speed of the bounds; in (0, 1).
        eps (1e-8): added to sqrt(v); >= 0.
        weight_decay (0): coupled L2 penalty; >= 0.
    State per parameter: step, exp_avg (m), exp_avg_sq (v).
    """

    amsbound = False  # AMSBound: normalise by the running maximum of v

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999),
                 final_lr: float = 0.1, gamma: float = 1e-3, eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, betas=betas, final_lr=final_lr, gamma=gamma,
                                      eps=eps, weight_decay=weight_decay))

    def add_param_group(self, group: dict) -> None:
        super().add_param_group(group)
        # the lr the bounds are scaled against; a scheduler created later keeps this value
        self.param_groups[-1].setdefault("initial_lr", self.param_groups[-1]["lr"])

    def validate(self, group: dict) -> None:
        super().validate(group)
        check_range("lr", group["lr"], 0.0, math.inf, lo_open=True)  # divides the final lr
        check_range("final_lr", group["final_lr"], 0.0, math.inf)
        check_range("gamma", group["gamma"], 0.0, 1.0, lo_open=True, hi_open=True)

    def init_state(self, p, group: dict) -> dict:
        xp = xp_of(p.data)
        state = {"step": 0, "exp_avg": xp.zeros_like(p.data), "exp_avg_sq": xp.zeros_like(p.data)}
        if self.amsbound:
            state["max_exp_avg_sq"] = xp.zeros_like(p.data)
        return state

    def update(self, p, grad, state: dict, group: dict) -> None:
        xp = xp_of(p.data)
        beta1, beta2 = group["betas"]
        lr, gamma = group["lr"], group["gamma"]
        state["step"] += 1
        t = state["step"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        update_moments(grad, m, v, beta1, beta2)
        if self.amsbound:
            v = xp.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])

        final = group["final_lr"] * lr / group["initial_lr"]
        lower = final * (1 - 1 / (gamma * t + 1))
        upper = final * (1 + 1 / (gamma * t))
        step = xp.sqrt(v)
        step += group["eps"]
        xp.divide(lr * math.sqrt(1 - beta2**t) / (1 - beta1**t), step, out=step)
        xp.clip(step, lower, upper, out=step)
        step *= m
        p.data -= step


class AMSBound(AdaBound):
    """AMSBound: AdaBound normalised by the running maximum of v (Luo et al., ICLR 2019,
    arXiv:1902.09843, Algorithm 3; official code `AdaBound(amsbound=True)`).

    As AdaBound, with v_max <- max(v_max, v) (element-wise, of the uncorrected v) in place of v:

        step = clip(lr * sqrt(1-b2^t) / (1-b1^t) / (sqrt(v_max) + eps), lower, upper)
        p <- p - step * m

    Hyperparameters and defaults as AdaBound. State per parameter: step, exp_avg,
    exp_avg_sq, max_exp_avg_sq.
    """

    amsbound = True
