"""More reductions: var, std, prod, cumsum, and the gradient-free any, all, argmax, argmin.

var and std are composites of mean and elementwise ops (their gradients come for free):

    var(x) = sum((x - mean(x))^2) / (n - correction),   std = sqrt(var)

with PyTorch's default correction=1 (Bessel's unbiased estimate; NumPy's default ddof=0).
"""

from __future__ import annotations

from minidl.autograd import Function, Tensor
from minidl.backend import xp_of
from minidl.naming import torch_names
from minidl.ops.elementwise import sqrt
from minidl.ops.reduce import _axes, _expand, mean, sum


@torch_names
def var(a, axis=None, correction: int = 1, keepdims: bool = False, unbiased=None) -> Tensor:
    """Variance over `axis`, dividing by n - correction (torch's default 1; `unbiased=False`
    is correction=0, the older spelling)."""
    if unbiased is not None:
        correction = 1 if unbiased else 0
    axes = _axes(axis, a.ndim)
    n = 1
    for ax in axes:
        n *= a.shape[ax]
    d = a - mean(a, axes, keepdims=True)
    # n - correction <= 0 gives inf/nan, as torch does (with a warning there)
    return sum(d * d, axes, keepdims) / max(n - correction, 0)


@torch_names
def std(a, axis=None, correction: int = 1, keepdims: bool = False, unbiased=None) -> Tensor:
    """Standard deviation: sqrt(var) (see var)."""
    return sqrt(var(a, axis, correction, keepdims, unbiased))


class Prod(Function):
    """z = product of a over one axis (or all: a flattened).

    dL/da_i = g * prod_{j != i} a_j, taken as (exclusive cumprod from the left) * (exclusive
    cumprod from the right): exact with zeros in a, where the shortcut z / a_i divides by 0.
    """

    def forward(self, a, axis=None, keepdims=False):
        xp = xp_of(a)
        self.shape, self.keepdims, self.all = a.shape, keepdims, axis is None
        if self.all:
            a = a.reshape(-1)
            axis = 0
        (self.axis,) = _axes(axis, a.ndim) or (0,)
        self.save_for_backward(a)
        out = xp.prod(a, axis=self.axis, keepdims=keepdims and not self.all)
        return out.reshape((1,) * len(self.shape)) if self.all and keepdims else out

    def backward(self, g):
        (a,) = self.saved
        xp = xp_of(a)
        if a.ndim == 0:
            return (g,)
        ax = self.axis
        ones = xp.ones_like(xp.take(a, [0], axis=ax))
        left = xp.cumprod(xp.concatenate([ones, xp.take(a, range(a.shape[ax] - 1), axis=ax)],
                                         axis=ax), axis=ax)
        rev = xp.flip(a, axis=ax)
        right = xp.flip(xp.cumprod(xp.concatenate(
            [ones, xp.take(rev, range(a.shape[ax] - 1), axis=ax)], axis=ax), axis=ax), axis=ax)
        if self.all:
            g = g.reshape(1)
        else:
            g = _expand(g, a.shape, (ax,), self.keepdims)
        return ((g * left * right).reshape(self.shape),)


@torch_names
def prod(a, axis=None, keepdims: bool = False) -> Tensor:
    """Product over one axis, or over everything when axis is None (see Prod)."""
    if isinstance(axis, (tuple, list)):
        raise ValueError("prod: reduce over one dim at a time (as torch.prod)")
    return Prod.apply(a, axis=axis, keepdims=keepdims)


class CumSum(Function):
    """z_i = a_0 + ... + a_i along `axis`.   dL/da_i = g_i + ... + g_last (reversed cumsum)."""

    def forward(self, a, axis=0):
        (self.axis,) = _axes(axis, a.ndim) or (0,)
        return xp_of(a).cumsum(a, axis=self.axis) if a.ndim else a.copy()

    def backward(self, g):
        if g.ndim == 0:
            return (g,)
        xp = xp_of(g)
        return (xp.flip(xp.cumsum(xp.flip(g, axis=self.axis), axis=self.axis), axis=self.axis),)


@torch_names
def cumsum(a, axis: int) -> Tensor:
    """Cumulative sum along `axis` (see CumSum)."""
    return CumSum.apply(a, axis=axis)


def _no_grad_reduce(name: str, a, axis, keepdims: bool) -> Tensor:
    data = a.data if isinstance(a, Tensor) else a
    axes = _axes(axis, data.ndim)
    out = getattr(data, name)(axis=axes, keepdims=keepdims)
    return Tensor._make(xp_of(data).asarray(out), False, None)


@torch_names
def any(a, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001  (torch's name)
    """Whether any element is nonzero over `axis` (a bool tensor, no gradient)."""
    return _no_grad_reduce("any", a, axis, keepdims)


@torch_names
def all(a, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Whether every element is nonzero over `axis` (a bool tensor, no gradient)."""
    return _no_grad_reduce("all", a, axis, keepdims)


def _arg(name: str, a, axis, keepdims: bool) -> Tensor:
    data = a.data if isinstance(a, Tensor) else a
    xp = xp_of(data)
    if axis is None:  # index into the flattened tensor, as torch
        out = getattr(data.reshape(-1), name)()
        return Tensor._make(xp.asarray(out).reshape((1,) * data.ndim if keepdims else ()),
                            False, None)
    (ax,) = _axes(axis, data.ndim) or (0,)
    out = xp.asarray(getattr(data, name)(axis=ax)) if data.ndim else xp.asarray(0)
    return Tensor._make(xp.expand_dims(out, ax) if keepdims and data.ndim else out, False, None)


@torch_names
def argmax(a, axis=None, keepdims: bool = False) -> Tensor:
    """Index of the maximum along `axis` (of the flattened tensor when None); int64, no grad."""
    return _arg("argmax", a, axis, keepdims)


@torch_names
def argmin(a, axis=None, keepdims: bool = False) -> Tensor:
    """Index of the minimum along `axis` (of the flattened tensor when None); int64, no grad."""
    return _arg("argmin", a, axis, keepdims)
