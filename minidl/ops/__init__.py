"""Differentiable operations, each a Function (forward + backward) and a lowercase wrapper."""

from minidl.ops.activation import elu, gelu, hardtanh, logsigmoid, relu6, silu, softplus
from minidl.ops.conv import avg_pool2d, conv2d, max_pool2d
from minidl.ops.creation import (
    arange,
    eye,
    full,
    full_like,
    linspace,
    ones_like,
    zeros_like,
)
from minidl.ops.criteria import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    l1_loss,
    nll_loss,
    smooth_l1_loss,
)
from minidl.ops.dims import (
    chunk,
    expand,
    flip,
    permute,
    repeat,
    split,
    squeeze,
    swapdims,
    tril,
    triu,
    unsqueeze,
    view,
)
from minidl.ops.elementwise import (
    abs,
    add,
    astype,
    clip,
    div,
    exp,
    leaky_relu,
    log,
    maximum,
    minimum,
    mul,
    neg,
    pow,
    relu,
    sigmoid,
    sqrt,
    sub,
    tanh,
    unbroadcast,
    where,
)
from minidl.ops.index import gather, masked_fill, one_hot
from minidl.ops.linalg import linear, matmul
from minidl.ops.loss import cross_entropy, mse_loss
from minidl.ops.math import (
    ceil,
    cos,
    expm1,
    floor,
    isfinite,
    isinf,
    isnan,
    log1p,
    round,
    sign,
    sin,
)
from minidl.ops.norm import batch_norm, dropout
from minidl.ops.reduce import log_softmax, logsumexp, max, mean, min, softmax, sum
from minidl.ops.shape import (
    broadcast_to,
    concatenate,
    flatten,
    getitem,
    pad,
    reshape,
    stack,
    swapaxes,
    transpose,
)
from minidl.ops.stats import all, any, argmax, argmin, cumsum, prod, std, var

__all__ = [
    "abs", "add", "all", "any", "arange", "argmax", "argmin", "astype", "avg_pool2d", "batch_norm",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "broadcast_to", "ceil", "chunk",
    "clip", "concatenate", "conv2d", "cos", "cross_entropy", "cumsum", "div", "dropout", "elu",
    "exp", "expand", "expm1", "eye", "flatten", "flip", "floor", "full", "full_like", "gather",
    "gelu", "getitem", "hardtanh", "isfinite", "isinf", "isnan", "l1_loss", "leaky_relu", "linear",
    "linspace", "log", "log1p", "log_softmax", "logsigmoid", "logsumexp", "masked_fill", "matmul",
    "max", "max_pool2d", "maximum", "mean", "min", "minimum", "mse_loss", "mul", "neg", "nll_loss",
    "one_hot", "ones_like", "pad", "permute", "pow", "prod", "relu", "relu6", "repeat", "reshape",
    "round", "sigmoid", "sign", "silu", "sin", "smooth_l1_loss", "softmax", "softplus", "split",
    "sqrt", "squeeze", "stack", "std", "sub", "sum", "swapaxes", "swapdims", "tanh", "transpose",
    "tril", "triu", "unbroadcast", "unsqueeze", "var", "view", "where", "zeros_like",
]
