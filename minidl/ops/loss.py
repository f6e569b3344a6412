"""Loss functions: softmax cross-entropy from logits (one fused node) and mean squared error."""

from __future__ import annotations

import numpy as np

from minidl.autograd import Function, Tensor
from minidl.backend import xp_of

REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: str) -> None:
    """Raise early, before any computation, unless reduction is 'mean', 'sum' or 'none'."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def reduce_loss(losses, reduction: str):
    """The per-element losses reduced as torch's `reduction`: 'mean' -> losses.mean(), 'sum' ->
    losses.sum(), 'none' -> losses. Works on raw arrays (inside a Function's forward) and on
    Tensors (composite losses, differentiably through their mean and sum methods)."""
    check_reduction(reduction)
    if reduction == "mean":
        return losses.mean()
    return losses.sum() if reduction == "sum" else losses


class CrossEntropy(Function):
    """Softmax cross-entropy of logits z (N, C) against targets, in one node.

    Targets are class indices t (N,) or a probability / one-hot matrix y (N, C):
        loss_n = logsumexp(z_n) - z_n[t_n]      or      -sum_c y_nc * log_softmax(z_n)_c
    dL/dz_n = softmax(z_n) * sum_c y_nc - y_n, which is softmax(z_n) - y_n when the row sums
    to 1 (always for class indices)   (times 1/N for reduction='mean'; times g_n for 'none').
    logsumexp subtracts the row maximum, so float32 logits of any size are safe.
    """

    def forward(self, z, target, reduction="mean"):
        xp = xp_of(z)
        if z.ndim != 2:
            raise ValueError(f"cross_entropy: logits must be (N, C), got shape {z.shape}")
        n = z.shape[0]
        shifted = z - z.max(axis=1, keepdims=True)
        e = xp.exp(shifted)
        s = e.sum(axis=1, keepdims=True)
        log_z = xp.log(s)
        if target.ndim == 1:
            if target.dtype.kind not in "iu":
                raise TypeError(
                    f"cross_entropy: class targets must be integers, got {target.dtype}")
            if target.shape[0] != n:
                raise ValueError(f"cross_entropy: {n} logits rows but {target.shape[0]} targets")
            # a negative index would silently pick a class from the end; on the GPU the check
            # would cost a device-to-host read every step, so it runs on the CPU only
            if xp is np and n and (target.min() < 0 or target.max() >= z.shape[1]):
                raise ValueError(
                    f"cross_entropy: class targets must lie in [0, {z.shape[1]}) for "
                    f"{z.shape[1]} classes, got min {target.min()}, max {target.max()}"
                )
            rows = xp.arange(n)
            losses = log_z[:, 0] - shifted[rows, target]
            self.rows = rows
        elif target.shape == z.shape:
            losses = -(target * (shifted - log_z)).sum(axis=1)
        else:
            raise ValueError(
                f"cross_entropy: targets of shape {target.shape} fit neither class indices "
                f"({n},) nor probabilities {z.shape}"
            )
        e /= s  # softmax, kept for backward
        self.save_for_backward(e, target)
        self.reduction = reduction
        return reduce_loss(losses, reduction)

    def backward(self, g):
        p, target = self.saved
        if target.ndim == 1:
            grad = p.copy()  # never p itself: backward(retain_graph=True) may run again
            grad[self.rows, target] -= 1
        else:
            grad = p * target.sum(axis=1, keepdims=True) - target
        if self.reduction == "mean":
            grad *= g / p.shape[0]
        elif self.reduction == "sum":
            grad *= g
        else:
            grad *= g[:, None]
        return grad, None


class MSE(Function):
    """Mean squared error: loss = mean((a - b)^2) (or sum / per element).

    dL/da = 2 (a - b) * g / n,  dL/db = -dL/da  (n = number of elements for 'mean').
    """

    def forward(self, a, b, reduction="mean"):
        if a.shape != b.shape:
            raise ValueError(f"mse_loss: prediction shape {a.shape} != target shape {b.shape}")
        d = a - b
        self.save_for_backward(d)
        self.reduction = reduction
        return reduce_loss(d * d, reduction)

    def backward(self, g):
        (d,) = self.saved
        scale = 2.0 / d.size if self.reduction == "mean" else 2.0
        ga = d * (g * scale)
        return ga, (-ga if self.needs_input_grad[1] else None)


def cross_entropy(logits, target, reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy from logits; integer or one-hot/probability targets (see CrossEntropy).

    Floating targets take the logits' dtype (they get no gradient), so a float64 one-hot matrix
    such as numpy.eye(C)[labels] works with float32 logits.
    """
    check_reduction(reduction)
    z = logits.data if isinstance(logits, Tensor) else logits
    target = xp_of(z).asarray(target.data if isinstance(target, Tensor) else target)
    if target.dtype.kind == "f" and z.dtype.kind == "f" and target.dtype != z.dtype:
        target = target.astype(z.dtype)
    return CrossEntropy.apply(logits, target, reduction=reduction)


def mse_loss(pred, target, reduction: str = "mean") -> Tensor:
    """Mean squared error (see MSE)."""
    check_reduction(reduction)
    return MSE.apply(pred, target, reduction=reduction)
