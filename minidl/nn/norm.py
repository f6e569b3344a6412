"""Batch normalisation and dropout layers: the layers whose behaviour train()/eval() switches."""

from __future__ import annotations

import numpy as np

from minidl import backend
from minidl.autograd import Tensor
from minidl.nn.module import Module, Parameter
from minidl.ops.norm import batch_norm, dropout


class _BatchNorm(Module):
    """Batch normalisation (Ioffe & Szegedy 2015, arXiv:1502.03167), as torch.nn.BatchNorm*d:

        y = gamma * (x - mu) / sqrt(var + eps) + beta        (per channel; ops.batch_norm)

    training: mu, var from the batch (biased var), and the running statistics follow
        running <- (1 - momentum) running + momentum batch_stat   (unbiased var), or with
        momentum=None the cumulative average (factor 1 / num_batches_tracked);
    eval: mu, var = running_mean, running_var.
    Parameters weight (gamma, init 1) and bias (beta, init 0) when affine; buffers
    running_mean (0), running_var (1), num_batches_tracked (0, int64), all in state_dict.
    """

    input_ndim: tuple = ()
    input_shapes = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, device: str = "cpu", dtype=None):
        super().__init__()
        if num_features <= 0:
            raise ValueError(f"{type(self).__name__} needs num_features > 0, got {num_features}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1] or None, got {momentum}")
        if eps <= 0:
            raise ValueError(f"eps must be positive, got {eps}")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine = affine
        xp = backend.xp_for(device)
        dtype = dtype or backend.get_default_dtype()
        self.weight = Parameter(xp.ones(num_features, dtype)) if affine else None
        self.bias = Parameter(xp.zeros(num_features, dtype)) if affine else None
        self.register_buffer("running_mean", xp.zeros(num_features, dtype))
        self.register_buffer("running_var", xp.ones(num_features, dtype))
        self.register_buffer("num_batches_tracked", xp.zeros((), np.int64))

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in self.input_ndim or x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}) expects input of shape "
                             f"{self.input_shapes.format(C=self.num_features)}, got {x.shape}")
        momentum = self.momentum
        if self.training:
            self.num_batches_tracked[...] += 1  # in place: rebinding would drop the buffer
            if momentum is None:  # 1 / count as a device scalar: no host read per step
                momentum = (1.0 / self.num_batches_tracked).astype(self.running_mean.dtype)
        return batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var,
                          self.training, momentum, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) inputs, one statistic per channel C (see
    _BatchNorm for the equations, parameters and buffers)."""

    input_ndim, input_shapes = (2, 3), "(N, {C}) or (N, {C}, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) images, one statistic per channel C (see _BatchNorm
    for the equations, parameters and buffers)."""

    input_ndim, input_shapes = (4,), "(N, {C}, H, W)"


class Dropout(Module):
    """Inverted dropout (ops.dropout): in training zero each element with probability p and
    scale the rest by 1/(1 - p); the identity in eval mode. Masks come from
    minidl.backend.get_rng(), so manual_seed makes them reproducible on either device."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x):
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
