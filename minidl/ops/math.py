"""Elementwise math beyond arithmetic: sin, cos, log1p, expm1 (differentiable); sign, floor,
ceil, round (piecewise constant: a gradient of zero almost everywhere, so they return tensors
cut from the graph); isnan, isinf, isfinite (bool tensors)."""

from __future__ import annotations

from minidl.autograd import Function, Tensor
from minidl.backend import xp_of


class Sin(Function):
    """z = sin(a).   dL/da = g * cos(a)."""

    def forward(self, a):
        self.save_for_backward(a)
        return xp_of(a).sin(a)

    def backward(self, g):
        (a,) = self.saved
        return (g * xp_of(a).cos(a),)


class Cos(Function):
    """z = cos(a).   dL/da = -g * sin(a)."""

    def forward(self, a):
        self.save_for_backward(a)
        return xp_of(a).cos(a)

    def backward(self, g):
        (a,) = self.saved
        return (-g * xp_of(a).sin(a),)


class Log1p(Function):
    """z = log(1 + a), accurate for tiny a.   dL/da = g / (1 + a)."""

    def forward(self, a):
        self.save_for_backward(a)
        return xp_of(a).log1p(a)

    def backward(self, g):
        (a,) = self.saved
        return (g / (1 + a),)


class Expm1(Function):
    """z = exp(a) - 1, accurate for tiny a.   dL/da = g * (z + 1)."""

    def forward(self, a):
        out = xp_of(a).expm1(a)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        (z,) = self.saved
        return (g * (z + 1),)


def sin(a) -> Tensor:
    """sin(a) elementwise (see Sin)."""
    return Sin.apply(a)


def cos(a) -> Tensor:
    """cos(a) elementwise (see Cos)."""
    return Cos.apply(a)


def log1p(a) -> Tensor:
    """log(1 + a) elementwise (see Log1p)."""
    return Log1p.apply(a)


def expm1(a) -> Tensor:
    """exp(a) - 1 elementwise (see Expm1)."""
    return Expm1.apply(a)


def _constant(name: str, a) -> Tensor:
    data = a.data if isinstance(a, Tensor) else a
    return Tensor._make(getattr(xp_of(data), name)(data), False, None)


def sign(a) -> Tensor:
    """-1, 0 or 1 by the sign of each element (no gradient: it is zero almost everywhere)."""
    return _constant("sign", a)


def floor(a) -> Tensor:
    """Largest integer <= a, in a's dtype (no gradient)."""
    return _constant("floor", a)


def ceil(a) -> Tensor:
    """Smallest integer >= a, in a's dtype (no gradient)."""
    return _constant("ceil", a)


def round(a) -> Tensor:  # noqa: A001  (torch's name)
    """Nearest integer, halves to even (as torch and NumPy), in a's dtype (no gradient)."""
    return _constant("round", a)


def isnan(a) -> Tensor:
    """Elementwise a != a (bool tensor)."""
    return _constant("isnan", a)


def isinf(a) -> Tensor:
    """Elementwise |a| == inf (bool tensor)."""
    return _constant("isinf", a)


def isfinite(a) -> Tensor:
    """Elementwise: neither nan nor +-inf (bool tensor)."""
    return _constant("isfinite", a)
