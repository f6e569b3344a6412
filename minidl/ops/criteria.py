"""More losses, with torch.nn.functional's names, arguments and formulas: nll_loss,
cross_entropy with class weights / ignore_index / label_smoothing, binary_cross_entropy (with
and without logits), l1_loss, smooth_l1_loss. (minidl.ops.loss holds the fused softmax
cross-entropy and mse_loss.) Each but nll_loss is a composite of differentiable ops.

reduction: 'mean' (over elements; for class losses a weighted mean, divided by the summed
weights of the counted targets as torch), 'sum' or 'none'.
"""

from __future__ import annotations

import numpy as np

from minidl.autograd import Function, Tensor
from minidl.backend import xp_of
from minidl.ops.activation import logsigmoid
from minidl.ops.elementwise import abs, clip, log, where
from minidl.ops.loss import check_reduction, reduce_loss
from minidl.ops.reduce import log_softmax, sum


def _array(x):
    return x.data if isinstance(x, Tensor) else x


class NLL(Function):
    """Negative log-likelihood of log-probabilities x (N, C) at class targets t (N,):

        loss_n = -w[t_n] * x[n, t_n]   (0 where t_n == ignore_index; w = 1 without weights)
        'mean' = sum_n loss_n / sum_n w[t_n] over the counted n
    dL/dx[n, t_n] = -w[t_n] * g_n (times 1 / sum w for 'mean'); every other entry gets 0.
    """

    def forward(self, x, target, weight=None, ignore_index=-100, reduction="mean"):
        xp = xp_of(x)
        if x.ndim != 2 or target.shape != (x.shape[0],):
            raise ValueError(f"nll_loss: input must be (N, C) and target (N,), got shapes "
                             f"{x.shape} and {target.shape}")
        if target.dtype.kind not in "iu":
            raise TypeError(f"nll_loss: class targets must be integers, got {target.dtype}")
        counted = target != ignore_index
        t = xp.where(counted, target, 0)
        # as cross_entropy: a bad index would pick a wrong class silently; checked on the CPU
        if xp is np and t.size and (t.min() < 0 or t.max() >= x.shape[1]):
            raise ValueError(f"nll_loss: class targets must lie in [0, {x.shape[1]}) or equal "
                             f"ignore_index, got min {t.min()}, max {t.max()}")
        w = counted.astype(x.dtype) if weight is None else weight[t] * counted
        self.rows, self.t, self.w, self.reduction = xp.arange(x.shape[0]), t, w, reduction
        self.shape = x.shape
        losses = -w * x[self.rows, t]
        if reduction == "none":
            return losses
        self.total = w.sum() if reduction == "mean" else 1
        return losses.sum() / self.total

    def backward(self, g):
        xp = xp_of(g)
        grad = xp.zeros(self.shape, dtype=self.w.dtype)
        scale = g if self.reduction == "none" else g / self.total
        grad[self.rows, self.t] = -self.w * scale
        return grad, None


def nll_loss(input, target, weight=None, ignore_index: int = -100,  # noqa: A002 (torch's name)
             reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities (e.g. log_softmax output) (see NLL)."""
    check_reduction(reduction)
    xp = xp_of(_array(input))
    target = xp.asarray(_array(target))
    if weight is not None:
        weight = xp.asarray(_array(weight), dtype=_array(input).dtype)
    return NLL.apply(input, target, weight=weight, ignore_index=ignore_index,
                     reduction=reduction)


def cross_entropy(input, target, weight=None, ignore_index: int = -100,  # noqa: A002
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy of logits (N, C), as torch.nn.functional.cross_entropy.

    Class targets t (N,):  loss_n = (1 - e) * nll_n + e * smooth_n, with e = label_smoothing,
        nll_n = -w[t_n] * logp[n, t_n],  smooth_n = -sum_c w[c] * logp[n, c] / C,
        logp = log_softmax(input); rows with t_n == ignore_index count for nothing, and 'mean'
        divides both terms by sum_n w[t_n] over the counted rows.
    Probability targets y (N, C):  loss_n = -sum_c w[c] * y'[n, c] * logp[n, c] with
        y' = (1 - e) y + e / C, and 'mean' divides by N.
    Built as log_softmax then nll_loss (two nodes); minidl.ops.cross_entropy is the fused
    one-node form without weights, ignore_index or smoothing.
    """
    check_reduction(reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must lie in [0, 1], "
                         f"got {label_smoothing}")
    z = _array(input)
    xp = xp_of(z)
    t = xp.asarray(_array(target))
    classes = t.dtype.kind in "iu"
    if z.ndim != 2:
        raise ValueError(f"cross_entropy: logits must be (N, C), got shape {z.shape}")
    n, c = z.shape
    w = xp.ones(c, dtype=z.dtype) if weight is None else xp.asarray(_array(weight), z.dtype)
    logp = log_softmax(input, 1)
    if not classes:
        y = t.astype(z.dtype) * (1 - label_smoothing) + label_smoothing / c
        return reduce_loss(-sum(logp * (w * y), 1), reduction)
    loss = nll_loss(logp, t, w, ignore_index, "none")
    if label_smoothing:
        counted = (t != ignore_index).astype(z.dtype)
        smooth = -sum(logp * w, 1) * (counted / c)
        loss = loss * (1 - label_smoothing) + smooth * label_smoothing
    if reduction == "mean":
        counted_w = w[xp.where(t != ignore_index, t, 0)] * (t != ignore_index)
        return sum(loss) / counted_w.sum()
    return reduce_loss(loss, reduction)


def binary_cross_entropy(input, target, weight=None,  # noqa: A002
                         reduction: str = "mean") -> Tensor:
    """-w * (y log p + (1 - y) log(1 - p)) for probabilities p; each log is clamped at -100
    as torch, so p = 0 or 1 gives a finite loss."""
    check_reduction(reduction)
    y = xp_of(_array(input)).asarray(_array(target), dtype=_array(input).dtype)
    loss = -(y * clip(log(input), -100.0) + (1 - y) * clip(log(1 - input), -100.0))
    return reduce_loss(loss if weight is None else loss * _array(weight), reduction)


def binary_cross_entropy_with_logits(input, target, weight=None,  # noqa: A002
                                     reduction: str = "mean", pos_weight=None) -> Tensor:
    """binary_cross_entropy(sigmoid(z), y) computed stably from logits z:

        loss = -w * (pw * y * logsigmoid(z) + (1 - y) * logsigmoid(-z)),  pw = pos_weight or 1.
    """
    check_reduction(reduction)
    y = xp_of(_array(input)).asarray(_array(target), dtype=_array(input).dtype)
    positive = y if pos_weight is None else y * _array(pos_weight)
    loss = -(positive * logsigmoid(input) + (1 - y) * logsigmoid(-input))
    return reduce_loss(loss if weight is None else loss * _array(weight), reduction)


def l1_loss(input, target, reduction: str = "mean") -> Tensor:  # noqa: A002
    """|input - target| elementwise, reduced."""
    check_reduction(reduction)
    return reduce_loss(abs(input - target), reduction)


def smooth_l1_loss(input, target, reduction: str = "mean",  # noqa: A002
                   beta: float = 1.0) -> Tensor:
    """Huber-like loss (Girshick 2015, Fast R-CNN), with d = input - target:
    0.5 d^2 / beta where |d| < beta, |d| - 0.5 beta elsewhere (beta = 0: l1_loss)."""
    check_reduction(reduction)
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be >= 0, got {beta}")
    d = input - target
    if beta == 0:
        return reduce_loss(abs(d), reduction)
    near = xp_of(d.data).abs(d.data) < beta
    return reduce_loss(where(near, d * d * (0.5 / beta), abs(d) - 0.5 * beta), reduction)
