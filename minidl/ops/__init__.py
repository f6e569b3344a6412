"""Differentiable operations, each a Function (forward + backward) and a lowercase wrapper."""

from minidl.ops.conv import avg_pool2d, batch_norm, conv2d, dropout, max_pool2d
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
from minidl.ops.linalg import linear, matmul
from minidl.ops.loss import cross_entropy, mse_loss
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

__all__ = [
    "abs", "add", "astype", "avg_pool2d", "batch_norm", "broadcast_to", "clip", "concatenate",
    "conv2d", "cross_entropy", "div", "dropout", "exp", "flatten", "getitem", "leaky_relu",
    "linear", "log", "log_softmax", "logsumexp", "matmul", "max", "max_pool2d", "maximum", "mean",
    "min", "minimum", "mse_loss", "mul", "neg", "pad", "pow", "relu", "reshape", "sigmoid",
    "softmax", "sqrt", "stack", "sub", "sum", "swapaxes", "tanh", "transpose", "unbroadcast",
    "where",
]
