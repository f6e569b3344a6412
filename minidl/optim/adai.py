"""Adai: momentum SGD whose inertia (beta1) adapts per element to the local curvature estimate,
with no adaptive learning rate (Xie, Wang, Zhang, Sato & Sugiyama, arXiv:2006.15815)."""

from __future__ import annotations

from minidl.backend import xp_of
from minidl.optim.optimizer import Optimizer, check_flag, check_range


class Adai(Optimizer):
    """Adai (Adaptive Inertia): Z. Xie, X. Wang, H. Zhang, I. Sato, M. Sugiyama, "Adaptive
    Inertia: Disentangling the Effects of Adaptive Learning Rate and Momentum", ICML 2022,
    arXiv:2006.15815 (v1 2020: "Adai: Separating the Effects of Adaptive Learning Rate and
    Momentum Inertia"). As the official code (zeke-xie/adaptive-inertia-adai `Adai`).

    Per step t (per parameter; g includes coupled L2 weight decay unless decoupled):

        v <- b2*v + (1-b2)*g^2            v_hat = v / (1-b2^t)
        v_bar = mean of v_hat over every element of every parameter that has a gradient,
                in all groups (one scalar: a global quantity, as the official code)
        b1 = clip(1 - b0 * v_hat / v_bar, 0, 1 - eps)        (element-wise)
        prod <- prod * b1                 (element-wise, starts at 1)
        m <- b1*m + (1-b1)*g
        p <- p - lr * m / (1 - prod)

    There is no division by sqrt(v): the adaptivity is in the inertia b1, not in the step size.
    So a step makes two passes: `before_update` updates every v and the global mean,
    `update_group` then m and p. Where every v_hat is 0 (no nonzero gradient yet) v_bar is 0
    and v_hat/v_bar is taken as 0 (b1 = 1 - eps, m stays 0): the official code gives NaN.

    Hyperparameters:
        lr (1e-3): learning rate; the authors advise the lr of plain SGD, about 10x that of
            momentum SGD with momentum 0.9 (the official code has no default); >= 0.
        betas ((0.1, 0.99)): b0, the inertia gain, and b2, the decay of v; each in [0, 1).
        eps (1e-3): bounds the inertia, b1 <= 1 - eps; in (0, 1].
        weight_decay (0): >= 0; coupled L2 (g + weight_decay*p) unless decoupled.
        decoupled (False): AdaiW, p <- p * (1 - lr*weight_decay) before the update.
    State per parameter: step, exp_avg (m), exp_avg_sq (v), beta1_prod (prod).
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.1, 0.99), eps: float = 1e-3,
                 weight_decay: float = 0.0, decoupled: bool = False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      decoupled=decoupled))

    def validate(self, group: dict) -> None:
        super().validate(group)
        # eps > 0 keeps b1 < 1, so the bias correction 1 - prod never reaches 0
        check_range("eps", group["eps"], 0.0, 1.0, lo_open=True)
        check_flag("decoupled", group["decoupled"])

    def init_state(self, p, group: dict) -> dict:
        xp = xp_of(p.data)
        return {"step": 0, "exp_avg": xp.zeros_like(p.data), "exp_avg_sq": xp.zeros_like(p.data),
                "beta1_prod": xp.ones_like(p.data)}

    def before_update(self, loss, batches: list) -> None:
        """Pass 1: v of every parameter with a gradient, in every group, and their mean."""
        total, count = 0.0, 0
        for group, params, grads, states in batches:
            beta2 = group["betas"][1]
            for p, grad, state in zip(params, grads, states):
                state["step"] += 1
                v = state["exp_avg_sq"]
                v *= beta2
                v += (1 - beta2) * grad * grad
                total = total + v.sum() / (1 - beta2 ** state["step"])
                count += p.size
        if count:
            mean = total / count
            xp = xp_of(batches[0][1][0].data)
            self._mean = xp.where(mean > 0, mean, 1)  # mean 0: every v_hat is 0, ratio 0

    def update_group(self, group: dict, params: list, grads: list, states: list) -> None:
        """Pass 2: inertia, momentum and parameter (decoupled decay first)."""
        beta0, beta2 = group["betas"]
        wd, mean = group["weight_decay"], self._mean
        for p, grad, state in zip(params, grads, states):
            xp = xp_of(p.data)
            if wd and group["decoupled"]:
                p.data *= 1 - group["lr"] * wd
            # b1 = 1 - b0 * v_hat / v_bar, with v_hat = v / (1 - b2^t)
            beta1 = state["exp_avg_sq"] * (-beta0 / ((1 - beta2 ** state["step"]) * mean))
            beta1 += 1
            xp.clip(beta1, 0.0, 1 - group["eps"], out=beta1)
            prod, m = state["beta1_prod"], state["exp_avg"]
            prod *= beta1
            m *= beta1
            beta1 -= 1   # now b1 - 1
            beta1 *= grad
            m -= beta1   # m = b1*m + (1-b1)*g
            step = 1 - prod
            xp.divide(m, step, out=step)
            step *= group["lr"]
            p.data -= step
