"""Functional forms of every layer and loss, as torch.nn.functional (import as F).

    import minidl.nn.functional as F
    x = F.relu(F.conv2d(x, w, b, padding="same"))
    loss = F.nll_loss(F.log_softmax(x, dim=1), target)

Layers own parameters and call these; the math lives in minidl.ops. Names, argument names
(dim/keepdim accepted beside axis/keepdims) and defaults follow torch. Two layouts to know:
`linear` takes PyTorch's (out_features, in_features) weight; `minidl.ops.linear` takes the
(in, out) weight of minidl.nn.Dense.
"""

from __future__ import annotations

from minidl import ops
from minidl.naming import torch_names
from minidl.ops import (  # noqa: F401  (re-exported under torch's names)
    avg_pool2d,
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    elu,
    gelu,
    hardtanh,
    l1_loss,
    leaky_relu,
    logsigmoid,
    max_pool2d,
    mse_loss,
    nll_loss,
    one_hot,
    relu,
    relu6,
    sigmoid,
    silu,
    smooth_l1_loss,
    softplus,
    tanh,
)
from minidl.ops.conv_ext import conv2d_full as conv2d  # noqa: F401
from minidl.ops.criteria import cross_entropy  # noqa: F401
from minidl.ops.stats import var


@torch_names
def softmax(input, axis: int = -1):  # noqa: A002  (torch's argument name)
    """Softmax along dim (torch warns when dim is omitted; here it defaults to the last)."""
    return ops.softmax(input, axis)


@torch_names
def log_softmax(input, axis: int = -1):  # noqa: A002
    """log(softmax) along dim, stable."""
    return ops.log_softmax(input, axis)


def linear(input, weight, bias=None):  # noqa: A002
    """input @ weight^T + bias, weight in PyTorch's (out_features, in_features) layout."""
    return ops.linear(input, ops.transpose(weight), bias)


def dropout(input, p: float = 0.5, training: bool = True):  # noqa: A002
    """Inverted dropout (see minidl.ops.dropout); training=True by default, as torch."""
    return ops.dropout(input, p, training)


@torch_names
def flatten(input, start_axis: int = 0):  # noqa: A002
    """Merge the dims from start_dim on (torch.flatten(x, 1): (N, ...) -> (N, prod))."""
    return ops.flatten(input, start_axis)


def batch_norm(input, running_mean, running_var, weight=None, bias=None,  # noqa: A002
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5):
    """Batch normalisation with torch's argument order (see minidl.ops.batch_norm)."""
    return ops.batch_norm(input, weight, bias, running_mean, running_var, training, momentum,
                          eps)


def layer_norm(input, normalized_shape, weight=None, bias=None,  # noqa: A002
               eps: float = 1e-5):
    """Layer normalisation (Ba et al. 2016, arXiv:1607.06450) over the trailing dims given by
    normalized_shape:  y = (x - mean) / sqrt(var + eps) * weight + bias, var biased."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(input.shape[input.ndim - len(shape):]) != shape:
        raise ValueError(f"layer_norm: input of shape {input.shape} does not end in "
                         f"normalized_shape {shape}")
    axes = tuple(range(input.ndim - len(shape), input.ndim))
    centred = input - ops.mean(input, axes, keepdims=True)
    out = centred / ops.sqrt(var(input, axes, correction=0, keepdims=True) + eps)
    if weight is not None:
        out = out * weight
    return out if bias is None else out + bias
