"""AdaShift: Adam whose second moment is taken from a gradient n steps old, decorrelating the
step size from the current gradient (Zhou, Zhang, Lu, Wang, Zhang & Yu, ICLR 2019,
arXiv:1810.00143). Follows the authors' TensorFlow code (`AdaShift` in optimizer_all.py)."""

from __future__ import annotations

import numpy as np

from minidl.backend import xp_of
from minidl.optim.optimizer import Optimizer

_REDUCTIONS = ("max", "mean", "none")


class AdaShift(Optimizer):
    """AdaShift: Z. Zhou, Q. Zhang, G. Lu, H. Wang, W. Zhang, Y. Yu, "AdaShift: Decorrelation
    and Convergence of Adaptive Learning Rate Methods", ICLR 2019, arXiv:1810.00143. Logic and
    defaults of the authors' TensorFlow code (`AdaShift(learning_rate=0.001, keep_num=10,
    beta1=0.9, beta2=0.999, epsilon=1e-10, pred_g_op='max')`).

    Keeps the last n = keep_num gradients (zeros before there are n). At step t, with
    g_{t-k} = 0 for t-k < 1, phi the reduction over the parameter tensor (one block):

        v <- b2*v + (1-b2) * phi(g_{t-n}^2)            (square first, then reduce)
        m = sum_{k=0}^{n-1} b1^k g_{t-k} / sum_{k=0}^{n-1} b1^k
        started once v > 0 (then for good); k = steps since it started, counting this one
        p <- p - lr * m / (sqrt(v / max(1e-8, 1 - b2^k)) + eps)     only once started

    phi = 'max' (default: the largest squared element of the tensor), 'mean', or 'none'
    (element-wise, no reduction; then "started" and k are per element). The first applied
    update is at t = n + 1 (v first sees g_1 there), or later while the old gradients are 0;
    before it nothing moves, and an all-zero gradient history never starts, so nothing is
    ever divided by zero. eps is outside the square root. The PyTorch ports deviate: one builds
    m incrementally from 0 at the first applied step, another reads the window off by one and
    gets a negative bias correction (NaN) with keep_num = 10.

    Hyperparameters:
        lr (1e-3): learning rate (1e-2 was used for max-AdaShift in the reproducibility
            report); >= 0.
        keep_num (10): n, how many gradients are kept; integer >= 1.
        betas ((0.9, 0.999)): b1 weights the window average, b2 decays v; each in [0, 1).
        eps (1e-10): added to the square root; >= 0.
        reduce ('max'): phi, one of 'max', 'mean', 'none'.
        weight_decay (0): coupled L2 penalty (not in the TF code); >= 0.
    State per parameter: step, grad_queue (n gradients, a ring: g_{t-k} at slot (t-1-k) mod n),
    exp_avg_sq (v: 0-d for 'max'/'mean', shaped as p for 'none'), beta2_power (b2^k, 1 until
    started).
    """

    def __init__(self, params, lr: float = 1e-3, keep_num: int = 10,
                 betas: tuple = (0.9, 0.999), eps: float = 1e-10, reduce: str = "max",
                 weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, keep_num=keep_num, betas=betas, eps=eps,
                                      reduce=reduce, weight_decay=weight_decay))

    def validate(self, group: dict) -> None:
        super().validate(group)
        n = group["keep_num"]
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"invalid keep_num: {n!r} (must be an integer >= 1)")
        if group["reduce"] not in _REDUCTIONS:
            raise ValueError(f"invalid reduce: {group['reduce']!r} (valid: {_REDUCTIONS})")

    def init_state(self, p, group: dict) -> dict:
        xp = xp_of(p.data)
        shape = p.shape if group["reduce"] == "none" else ()
        return {
            "step": 0,
            "grad_queue": xp.zeros((group["keep_num"],) + p.shape, dtype=p.data.dtype),
            "exp_avg_sq": xp.zeros(shape, dtype=p.data.dtype),
            "beta2_power": xp.ones(shape, dtype=p.data.dtype),
        }

    def update(self, p, grad, state: dict, group: dict) -> None:
        xp = xp_of(p.data)
        beta1, beta2 = group["betas"]
        queue, v, b2p = state["grad_queue"], state["exp_avg_sq"], state["beta2_power"]
        n = queue.shape[0]
        state["step"] += 1
        slot = (state["step"] - 1) % n  # holds g_{t-n}; g_t replaces it

        oldest_sq = queue[slot] * queue[slot]
        if group["reduce"] == "max":
            oldest_sq = oldest_sq.max()
        elif group["reduce"] == "mean":
            oldest_sq = oldest_sq.mean()
        v *= beta2
        v += (1 - beta2) * oldest_sq
        queue[slot] = grad

        # weights b1^k / sum_k b1^k, k = age of the gradient in each slot
        ages = (slot - np.arange(n)) % n
        weights = beta1 ** ages.astype(np.float64)
        m = xp.tensordot(xp.asarray(weights / weights.sum(), dtype=p.data.dtype), queue, axes=1)

        # b2^k counts from the first step with v > 0 (b2p < 1 afterwards: "started" persists)
        started = (v > 0) | (b2p < 1)
        b2p[...] = xp.where(started, b2p * beta2, 1.0)
        bias_correction = xp.maximum(1 - b2p, 1e-8)
        denom = xp.sqrt(v / bias_correction) + group["eps"]
        # before the start v = 0: with eps = 0 a masked product (m / 0) * 0 would be NaN
        step = xp.where(started, m / xp.where(started, denom, 1.0), 0.0)
        step *= group["lr"]
        p.data -= step
