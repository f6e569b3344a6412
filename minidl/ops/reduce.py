"""Reductions (sum, mean, max, min, logsumexp) and the softmax family.

`axis` is None (all axes), an int or a tuple of ints; negative axes count from the end.
Softmax, log_softmax and logsumexp subtract the maximum first: exp overflows past about 88 in
float32, and exp(x - max) <= 1 never does.
"""

from __future__ import annotations

from minidl.autograd import Function, Tensor
from minidl.backend import xp_of
from minidl.naming import torch_names


def _axes(axis, ndim: int) -> tuple:
    """Normalise `axis` to a sorted tuple of non-negative axes, checking the range.

    A 0-d tensor accepts axis 0 and -1 and reduces over nothing (as torch's dim: a scalar is
    treated as one value along one axis)."""
    if axis is None:
        return tuple(range(ndim))
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)  # int or NumPy integer
    if ndim == 0:
        if any(ax not in (0, -1) for ax in axes):
            raise ValueError(f"axis {axes} is out of range for a 0-d tensor (0 or -1 only)")
        return ()
    out = []
    for ax in axes:
        if not -ndim <= ax < ndim:
            raise ValueError(f"axis {ax} is out of range for an array with {ndim} dimensions")
        out.append(ax % ndim)
    return tuple(sorted(set(out)))


def _collapse(out, in_shape: tuple, axes: tuple, keepdims: bool):
    """Drop the size-1 axes a keepdims=True reduction left in `out`, unless keepdims (the
    inverse of _expand)."""
    return out if keepdims else out.reshape([n for i, n in enumerate(in_shape) if i not in axes])


def _expand(g, in_shape: tuple, axes: tuple, keepdims: bool):
    """Give a reduced gradient back its reduced axes as size 1, ready to broadcast."""
    if keepdims or not axes:
        return g
    shape = [1 if i in axes else n for i, n in enumerate(in_shape)]
    return g.reshape(shape)


class Sum(Function):
    """z = sum of a over `axis`.   dL/da = g broadcast back over the summed axes."""

    def forward(self, a, axis=None, keepdims=False):
        self.shape, self.axes, self.keepdims = a.shape, _axes(axis, a.ndim), keepdims
        return a.sum(axis=self.axes, keepdims=keepdims)

    def backward(self, g):
        g = _expand(g, self.shape, self.axes, self.keepdims)
        return (xp_of(g).broadcast_to(g, self.shape),)


class Mean(Function):
    """z = mean of a over `axis`.   dL/da = g / n broadcast back, n = number of values averaged."""

    def forward(self, a, axis=None, keepdims=False):
        self.shape, self.axes, self.keepdims = a.shape, _axes(axis, a.ndim), keepdims
        self.count = 1
        for ax in self.axes:
            self.count *= a.shape[ax]
        return a.mean(axis=self.axes, keepdims=keepdims)

    def backward(self, g):
        g = _expand(g, self.shape, self.axes, self.keepdims) / self.count
        return (xp_of(g).broadcast_to(g, self.shape),)


class _Extreme(Function):
    """Max or min over `axis`. The gradient goes to the extreme elements; ties share it evenly
    (like torch.amax), which is a valid subgradient and keeps the op symmetric."""

    reduce = "max"

    def forward(self, a, axis=None, keepdims=False):
        if a.size == 0:
            raise ValueError(f"{self.reduce}() of an empty array")
        self.axes, self.keepdims = _axes(axis, a.ndim), keepdims
        out = getattr(a, self.reduce)(axis=self.axes, keepdims=True)
        self.save_for_backward(a, out)
        return _collapse(out, a.shape, self.axes, keepdims)

    def backward(self, g):
        a, out = self.saved
        g = _expand(g, a.shape, self.axes, self.keepdims)
        hit = a == out
        # count in g's dtype: an integer count would promote float32 gradients to float64
        return (g * hit / hit.sum(axis=self.axes, keepdims=True, dtype=g.dtype),)


class Max(_Extreme):
    reduce = "max"


class Min(_Extreme):
    reduce = "min"


class LogSumExp(Function):
    """z = log(sum(exp(a))) over `axis`, computed as m + log(sum(exp(a - m))), m = max(a).

    dL/da = g * softmax(a) along the reduced axes.
    """

    def forward(self, a, axis=None, keepdims=False):
        xp = xp_of(a)
        self.axes, self.keepdims = _axes(axis, a.ndim), keepdims
        m = a.max(axis=self.axes, keepdims=True)
        out = xp.log(xp.exp(a - m).sum(axis=self.axes, keepdims=True)) + m
        self.save_for_backward(a, out)
        return _collapse(out, a.shape, self.axes, keepdims)

    def backward(self, g):
        a, out = self.saved
        g = _expand(g, a.shape, self.axes, self.keepdims)
        return (g * xp_of(a).exp(a - out),)


class Softmax(Function):
    """z = exp(a - m) / sum(exp(a - m)) along `axis`.

    dL/da = z * (g - sum(g * z))   (the Jacobian-vector product, never the Jacobian).
    """

    def forward(self, a, axis=-1):
        xp = xp_of(a)
        axis = _axes(axis, a.ndim)
        e = xp.exp(a - a.max(axis=axis, keepdims=True))
        out = e / e.sum(axis=axis, keepdims=True)
        self.axis = axis
        self.save_for_backward(out)
        return out

    def backward(self, g):
        (z,) = self.saved
        gz = g * z
        return (gz - z * gz.sum(axis=self.axis, keepdims=True),)


class LogSoftmax(Function):
    """z = a - logsumexp(a) along `axis`.   dL/da = g - softmax(a) * sum(g)."""

    def forward(self, a, axis=-1):
        xp = xp_of(a)
        axis = _axes(axis, a.ndim)
        shifted = a - a.max(axis=axis, keepdims=True)
        out = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
        self.axis = axis
        self.save_for_backward(out)
        return out

    def backward(self, g):
        (z,) = self.saved
        return (g - xp_of(z).exp(z) * g.sum(axis=self.axis, keepdims=True),)


@torch_names
def sum(a, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001  (NumPy's name)
    """Sum over `axis` (see Sum)."""
    return Sum.apply(a, axis=axis, keepdims=keepdims)


@torch_names
def mean(a, axis=None, keepdims: bool = False) -> Tensor:
    """Mean over `axis` (see Mean)."""
    return Mean.apply(a, axis=axis, keepdims=keepdims)


@torch_names
def max(a, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Maximum over `axis` (see Max)."""
    return Max.apply(a, axis=axis, keepdims=keepdims)


@torch_names
def min(a, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Minimum over `axis` (see Min)."""
    return Min.apply(a, axis=axis, keepdims=keepdims)


@torch_names
def logsumexp(a, axis=None, keepdims: bool = False) -> Tensor:
    """log(sum(exp(a))) over `axis`, stable (see LogSumExp)."""
    return LogSumExp.apply(a, axis=axis, keepdims=keepdims)


@torch_names
def softmax(a, axis: int = -1) -> Tensor:
    """Softmax along `axis`, stable (see Softmax)."""
    return Softmax.apply(a, axis=axis)


@torch_names
def log_softmax(a, axis: int = -1) -> Tensor:
    """Log of the softmax along `axis`, stable (see LogSoftmax)."""
    return LogSoftmax.apply(a, axis=axis)
