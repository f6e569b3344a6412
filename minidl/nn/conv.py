"""Convolution and pooling layers for (N, C, H, W) images; the math lives in minidl.ops.conv."""

from __future__ import annotations

from minidl import backend
from minidl.autograd import Tensor
from minidl.nn import init as initializers
from minidl.nn.module import Module, Parameter
from minidl.ops.conv import (
    as_pair,
    avg_pool2d,
    conv2d,
    max_pool2d,
)
from minidl.ops.conv_ext import conv2d_full


class Conv2d(Module):
    """2-D convolution (PyTorch's Conv2d):

        y[n, o, p, q] = b[o] + sum_{c,i,j} w[o, c, i, j] * xpad[n, c, p*sh + i, q*sw + j]

    x: (N, in_channels, H, W) -> y: (N, out_channels, OH, OW), OH = (H + 2 ph - kh) // sh + 1.
    weight: (out_channels, in_channels, kh, kw), input_axes=(1, 2, 3); bias: (out_channels,).
    padding: int, pair, 'valid' or 'same' (stride 1). dilation d spreads the kernel taps d apart
    and groups g splits the channels into g independent convolutions (weight (out, in/g, kh,
    kw)), both as torch (minidl.ops.conv_ext); input statistics need the default 1 for both.
    init: 'torch' (PyTorch's default: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
        fan_in = in_channels*kh*kw) or a weight initialiser of minidl.nn.init (bias zero).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, init: str = "torch",
                 device: str = "cpu", dtype=None):
        super().__init__()
        if in_channels <= 0 or out_channels <= 0:
            raise ValueError(f"Conv2d needs positive channel counts, got in_channels="
                             f"{in_channels}, out_channels={out_channels}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = as_pair(kernel_size, "kernel_size", 1)
        self.stride = as_pair(stride, "stride", 1)
        self.padding = padding if isinstance(padding, str) else as_pair(padding, "padding")
        self.dilation, self.groups = as_pair(dilation, "dilation", 1), groups
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: groups={groups} must divide in_channels={in_channels} "
                             f"and out_channels={out_channels}")
        xp = backend.xp_for(device)
        dtype = dtype or backend.get_default_dtype()
        self.weight = Parameter(xp.empty((out_channels, in_channels // groups)
                                         + self.kernel_size, dtype),
                                input_axes=(1, 2, 3))
        self.bias = Parameter(xp.zeros(out_channels, dtype)) if bias else None
        self.init = init
        initializers.initialize(init, self.weight, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        if isinstance(self.padding, str) or self.dilation != (1, 1) or self.groups != 1:
            return conv2d_full(x, self.weight, self.bias, self.stride, self.padding,
                               self.dilation, self.groups)
        return conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        extra = "" if self.dilation == (1, 1) else f", dilation={self.dilation}"  # as torch
        extra += "" if self.groups == 1 else f", groups={self.groups}"
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}{extra}, "
                f"bias={self.bias is not None}")


class _Pool2d(Module):
    """Shared constructor of the pooling layers; stride defaults to kernel_size."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = as_pair(kernel_size, "kernel_size", 1)
        self.stride = self.kernel_size if stride is None else as_pair(stride, "stride", 1)
        self.padding = as_pair(padding, "padding")

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Max over (kh, kw) windows (ops.max_pool2d); stride defaults to kernel_size. Each window's
    gradient goes to its first maximum, as in PyTorch."""

    def forward(self, x):
        return max_pool2d(x, self.kernel_size, self.stride, self.padding)


class AvgPool2d(_Pool2d):
    """Mean over (kh, kw) windows, zero padding counted (ops.avg_pool2d, count_include_pad)."""

    def forward(self, x):
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding)
