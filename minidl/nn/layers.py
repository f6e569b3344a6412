"""Dense layer, activation modules, Flatten and loss modules.

The math lives in minidl.ops; a layer owns its parameters and calls one op (Chainer's F/L split).
"""

from __future__ import annotations

import numpy as np

from minidl import backend, ops
from minidl.autograd import Tensor
from minidl.nn import init as initializers
from minidl.nn.module import Module, Parameter


class Dense(Module):
    """Fully connected layer (Keras's Dense, PyTorch's Linear):  y = x W + b.

    x: (..., in_features) -> y: (..., out_features).
    weight W: (in_features, out_features), so axis 0 indexes the inputs (input_axes=(0,));
    bias b: (out_features,).
    init: 'torch' (PyTorch's default: W and b ~ U(-1/sqrt(in), 1/sqrt(in)), as
        init.torch_default_uniform, shared with Conv2d), or one of he_uniform, he_normal,
        glorot_uniform, glorot_normal, lecun_uniform, lecun_normal (bias zero), all from
        minidl.nn.init and drawn in the parameter's dtype.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 init: str = "torch", device: str = "cpu", dtype=None):
        super().__init__()
        if not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0
                   for n in (in_features, out_features)):
            raise ValueError(
                f"Dense needs positive int sizes, got in_features={in_features!r}, "
                f"out_features={out_features!r}"
            )
        in_features, out_features = int(in_features), int(out_features)
        self.in_features, self.out_features, self.init = in_features, out_features, init
        xp = backend.xp_for(device)
        dtype = dtype or backend.get_default_dtype()
        self.weight = Parameter(xp.empty((in_features, out_features), dtype=dtype),
                                input_axes=(0,))
        self.bias = Parameter(xp.zeros(out_features, dtype=dtype)) if bias else None
        initializers.initialize(init, self.weight, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        return ops.linear(x, self._weight_in_out(), self.bias)

    def _weight_in_out(self):
        """The weight as ops.linear takes it: (in_features, out_features)."""
        return self.weight

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class ReLU(Module):
    """max(x, 0) elementwise."""

    def forward(self, x):
        return ops.relu(x)


class LeakyReLU(Module):
    """x if x > 0 else negative_slope * x."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return ops.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Sigmoid(Module):
    """1 / (1 + exp(-x)) elementwise."""

    def forward(self, x):
        return ops.sigmoid(x)


class Tanh(Module):
    """tanh(x) elementwise."""

    def forward(self, x):
        return ops.tanh(x)


class Softmax(Module):
    """Softmax along `axis` (for probabilities; train on logits with CrossEntropyLoss)."""

    def __init__(self, axis: int = -1):
        super().__init__()
        self.axis = axis

    def forward(self, x):
        return ops.softmax(x, self.axis)

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


class Flatten(Module):
    """(N, d1, d2, ...) -> (N, d1*d2*...), keeping the axes before `start_axis`."""

    def __init__(self, start_axis: int = 1):
        super().__init__()
        self.start_axis = start_axis

    def forward(self, x):
        return ops.flatten(x, self.start_axis)


class Identity(Module):
    """Returns its input."""

    def forward(self, x):
        return x


class Linear(Dense):
    """PyTorch's Linear:  y = x W^T + b, with W in PyTorch's (out_features, in_features)
    layout, so a PyTorch state dict loads unchanged (Dense keeps Keras's (in, out)).

    weight: (out_features, in_features), input_axes=(1,); bias: (out_features,).
    Same init options and input statistics as Dense; the forward pass hands ops.linear the
    transposed view (no copy), whose gradient transposes back.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 init: str = "torch", device: str = "cpu", dtype=None):
        super().__init__(in_features, out_features, bias, init, device, dtype)
        xp = backend.xp_of(self.weight.data)
        self.weight = Parameter(xp.ascontiguousarray(self.weight.data.T), input_axes=(1,))

    def _weight_in_out(self):
        return ops.transpose(self.weight)


class CrossEntropyLoss(Module):
    """Softmax cross-entropy from logits (N, C) and integer or one-hot targets (ops.cross_entropy).
    """

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, logits, target):
        return ops.cross_entropy(logits, target, self.reduction)


class MSELoss(Module):
    """Mean squared error (ops.mse_loss)."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, pred, target):
        return ops.mse_loss(pred, target, self.reduction)
