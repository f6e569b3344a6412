"""Elementwise operations with NumPy broadcasting, and activation functions.

Each Function returns its gradients reduced to its inputs' shapes (`unbroadcast`). Python
scalars mix with tensors without changing their dtype (NumPy 2, NEP 50).
"""

from __future__ import annotations

import operator

import numpy as np

from minidl.autograd import Function, Tensor
from minidl import backend
from minidl.backend import xp_of


_ONES: dict = {}  # (array module, length, dtype) -> read-only use vector of ones


def ones_vector(xp, n: int, dtype):
    """A vector of n ones on xp's device, built once per (module, n, dtype) and shared by
    every column sum written as a matrix-vector product (ones @ g: one BLAS call, far faster
    than g.sum(axis=0) on a tall matrix); a fresh vector would cost an allocation and, on the
    GPU, a fill launch per backward. Read it, never write to it."""
    key = (xp.__name__, n, np.dtype(dtype))  # str(dtype) would cost microseconds a call
    ones = _ONES.get(key)
    if ones is None:
        if len(_ONES) >= 64:  # batch shapes vary little; bound the cache anyway
            _ONES.clear()
        ones = _ONES[key] = xp.ones(n, dtype=dtype)
    return ones


def unbroadcast(grad, shape: tuple):
    """Sum `grad` over the axes that broadcasting added or stretched, giving it `shape`.

    Broadcasting prepends axes and stretches size-1 axes; the gradient of a broadcast input is
    the sum of the output gradient over exactly those axes.
    """
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1
    )
    if axes == (0,) and grad.ndim == 2:
        # column sums of a tall matrix: a matrix-vector product is far faster than sum()
        return (ones_vector(xp_of(grad), grad.shape[0], grad.dtype) @ grad).reshape(shape)
    return grad.sum(axis=axes).reshape(shape)


def _shape(x) -> tuple:
    return np.shape(x) if not hasattr(x, "shape") else x.shape


def _binary_broadcast_check(name, a, b):
    try:
        np.broadcast_shapes(_shape(a), _shape(b))
    except ValueError:
        raise ValueError(
            f"{name}: shapes {tuple(_shape(a))} and {tuple(_shape(b))} cannot be broadcast together"
        ) from None


class Add(Function):
    """z = a + b.   dL/da = unbroadcast(g), dL/db = unbroadcast(g)."""

    def forward(self, a, b):
        _binary_broadcast_check("add", a, b)
        self.shapes = (_shape(a), _shape(b))
        return a + b

    def backward(self, g):
        sa, sb = self.shapes
        return unbroadcast(g, sa), unbroadcast(g, sb)


class Sub(Function):
    """z = a - b.   dL/da = unbroadcast(g), dL/db = -unbroadcast(g)."""

    def forward(self, a, b):
        _binary_broadcast_check("sub", a, b)
        self.shapes = (_shape(a), _shape(b))
        return a - b

    def backward(self, g):
        sa, sb = self.shapes
        gb = -unbroadcast(g, sb) if self.needs_input_grad[1] else None
        return unbroadcast(g, sa), gb


class Mul(Function):
    """z = a * b.   dL/da = unbroadcast(g * b), dL/db = unbroadcast(g * a)."""

    def forward(self, a, b):
        _binary_broadcast_check("mul", a, b)
        self.save_for_backward(a, b)
        return a * b

    def backward(self, g):
        a, b = self.saved
        ga = unbroadcast(g * b, _shape(a)) if self.needs_input_grad[0] else None
        gb = unbroadcast(g * a, _shape(b)) if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    """z = a / b.   dL/da = unbroadcast(g / b), dL/db = unbroadcast(-g * a / b^2)."""

    def forward(self, a, b):
        _binary_broadcast_check("div", a, b)
        self.save_for_backward(a, b)
        return a / b

    def backward(self, g):
        a, b = self.saved
        ga = unbroadcast(g / b, _shape(a)) if self.needs_input_grad[0] else None
        gb = unbroadcast(-g * a / (b * b), _shape(b)) if self.needs_input_grad[1] else None
        return ga, gb


class Neg(Function):
    """z = -a.   dL/da = -g."""

    def forward(self, a):
        return -a

    def backward(self, g):
        return (-g,)


class Pow(Function):
    """z = a ** b.   dL/da = g * b * a^(b-1),  dL/db = g * z * log(a)  (a > 0 where needed).

    As torch: dL/da = 0 wherever b = 0 (also at a = 0 or +-inf, where b * a^(b-1) would be
    0 * inf), and dL/db = 0 where a = 0 and b >= 0 (z * log(a) would be 0 * -inf; the one-sided
    derivative of 0^b is 0 there). An integer tensor to a float power gives the default float
    dtype, not NumPy's float64.
    """

    def forward(self, a, b):
        _binary_broadcast_check("pow", a, b)
        out = a**b
        if out.dtype.kind == "f" and not (_is_float_array(a) or _is_float_array(b)):
            out = out.astype(backend.get_default_dtype(), copy=False)
        self.save_for_backward(a, b, out)
        return out

    def backward(self, g):
        a, b, out = self.saved
        xp = xp_of(a, b)
        with np.errstate(divide="ignore", invalid="ignore"):  # the masked-out 0 * inf
            return self._grads(g, a, b, out, xp)

    def _grads(self, g, a, b, out, xp):
        ga = gb = None
        if self.needs_input_grad[0]:
            if isinstance(b, (int, float)):
                local = b * a ** (b - 1) if b != 0 else xp.zeros_like(a)
            else:
                local = xp.where(b == 0, 0, b * a ** (b - 1))
            ga = unbroadcast(g * local, _shape(a))
        if self.needs_input_grad[1]:
            # asarray: log of a Python base would be a float64 NumPy scalar, upcasting float32
            base = xp.asarray(a, dtype=out.dtype)
            local = xp.where((base == 0) & (b >= 0), 0, out * xp.log(base))
            gb = unbroadcast(g * local.astype(out.dtype, copy=False), _shape(b))
        return ga, gb


def _is_float_array(x) -> bool:
    return getattr(x, "dtype", None) is not None and x.dtype.kind == "f"


class Exp(Function):
    """z = exp(a).   dL/da = g * z."""

    def forward(self, a):
        out = xp_of(a).exp(a)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        return (g * self.saved[0],)


class Log(Function):
    """z = log(a).   dL/da = g / a."""

    def forward(self, a):
        self.save_for_backward(a)
        return xp_of(a).log(a)

    def backward(self, g):
        return (g / self.saved[0],)


class Sqrt(Function):
    """z = sqrt(a).   dL/da = g / (2 z)."""

    def forward(self, a):
        out = xp_of(a).sqrt(a)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        return (g / (2 * self.saved[0]),)


class Abs(Function):
    """z = |a|.   dL/da = g * sign(a)  (0 at a = 0)."""

    def forward(self, a):
        self.save_for_backward(a)
        return xp_of(a).abs(a)

    def backward(self, g):
        return (g * xp_of(g).sign(self.saved[0]),)


class Clip(Function):
    """z = min(max(a, lo), hi).   dL/da = g where lo <= a <= hi, else 0 (as torch.clamp)."""

    def forward(self, a, lo=None, hi=None):
        if lo is None and hi is None:
            raise ValueError("clip: give at least one of min and max")
        self.save_for_backward(a)
        self.lo, self.hi = lo, hi
        return xp_of(a).clip(a, lo, hi)

    def backward(self, g):
        (a,) = self.saved
        mask = True
        if self.lo is not None:
            mask = a >= self.lo
        if self.hi is not None:
            mask = mask & (a <= self.hi)
        return (g * mask,)


class _PairwiseExtreme(Function):
    """z = max(a, b) (Maximum) or min(a, b) (Minimum) elementwise, as reduce.py's _Extreme does
    for one input: the input that wins (`wins(a, b)`: a > b for max, a < b for min) gets g,
    ties split it evenly (as torch)."""

    reduce = "maximum"
    wins = staticmethod(operator.gt)

    def forward(self, a, b):
        _binary_broadcast_check(self.reduce, a, b)
        self.save_for_backward(a, b)
        return getattr(xp_of(a, b), self.reduce)(a, b)

    def backward(self, g):
        a, b = self.saved
        # 0.5 * bool is float64: cast, or float32 inputs would get float64 gradients
        wa = (self.wins(a, b) + 0.5 * (a == b)).astype(g.dtype, copy=False)
        ga = unbroadcast(g * wa, _shape(a)) if self.needs_input_grad[0] else None
        gb = unbroadcast(g * (1 - wa), _shape(b)) if self.needs_input_grad[1] else None
        return ga, gb


class Maximum(_PairwiseExtreme):
    reduce = "maximum"
    wins = staticmethod(operator.gt)


class Minimum(_PairwiseExtreme):
    reduce = "minimum"
    wins = staticmethod(operator.lt)


class Where(Function):
    """z = a where cond else b.  dL/da = g where cond, dL/db = g elsewhere (cond: no grad)."""

    def forward(self, cond, a, b):
        xp = xp_of(cond, a, b)
        self.cond = xp.asarray(cond, dtype=bool)
        self.shapes = (_shape(a), _shape(b))
        return xp.where(self.cond, a, b)

    def backward(self, g):
        cond, (sa, sb) = self.cond, self.shapes
        ga = unbroadcast(g * cond, sa) if self.needs_input_grad[1] else None
        gb = unbroadcast(g * ~cond, sb) if self.needs_input_grad[2] else None
        return None, ga, gb


class ReLU(Function):
    """z = max(a, 0).   dL/da = g where a > 0, else 0."""

    def forward(self, a):
        out = xp_of(a).maximum(a, 0)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        return (g * (self.saved[0] > 0),)


class LeakyReLU(Function):
    """z = a if a > 0 else slope * a.   dL/da = g * (1 if a > 0 else slope)."""

    def forward(self, a, slope=0.01):
        self.save_for_backward(a)
        self.slope = slope
        return xp_of(a).where(a > 0, a, a * slope)

    def backward(self, g):
        (a,) = self.saved
        return (xp_of(g).where(a > 0, g, g * self.slope),)


class Sigmoid(Function):
    """z = 1 / (1 + exp(-a)), computed from e = exp(-|a|) <= 1 so it never overflows:
    z = 1 / (1 + e) for a >= 0 and z = e / (1 + e) for a < 0.

    dL/da = g * z * (1 - z).
    """

    def forward(self, a):
        # not (1 + tanh(a/2)) / 2: for a << 0 that cancels to 0 (float32: sigmoid(-20) = 0,
        # 2e-4 relative error at -10); e / (1 + e) keeps full relative precision
        xp = xp_of(a)
        e = xp.exp(-xp.abs(a))
        out = xp.where(a >= 0, 1, e)
        out /= 1 + e
        self.save_for_backward(out)
        return out

    def backward(self, g):
        z = self.saved[0]
        return (g * z * (1 - z),)


class Tanh(Function):
    """z = tanh(a).   dL/da = g * (1 - z^2)."""

    def forward(self, a):
        out = xp_of(a).tanh(a)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        z = self.saved[0]
        return (g * (1 - z * z),)


class AsType(Function):
    """z = a converted to another dtype.  dL/da = g converted back (floating dtypes only)."""

    def forward(self, a, dtype=None):
        self.dtype = a.dtype
        return a.astype(dtype)

    def backward(self, g):
        return (g.astype(self.dtype),)


def add(a, b) -> Tensor:
    """a + b with broadcasting (see Add)."""
    return Add.apply(a, b)


def sub(a, b) -> Tensor:
    """a - b with broadcasting (see Sub)."""
    return Sub.apply(a, b)


def mul(a, b) -> Tensor:
    """a * b with broadcasting (see Mul)."""
    return Mul.apply(a, b)


def div(a, b) -> Tensor:
    """a / b with broadcasting (see Div)."""
    return Div.apply(a, b)


def neg(a) -> Tensor:
    """-a (see Neg)."""
    return Neg.apply(a)


def pow(a, b) -> Tensor:  # noqa: A001  (NumPy's name)
    """a ** b; either may be a tensor or a number (see Pow)."""
    return Pow.apply(a, b)


def exp(a) -> Tensor:
    """exp(a) (see Exp)."""
    return Exp.apply(a)


def log(a) -> Tensor:
    """Natural logarithm (see Log)."""
    return Log.apply(a)


def sqrt(a) -> Tensor:
    """Square root (see Sqrt)."""
    return Sqrt.apply(a)


def abs(a) -> Tensor:  # noqa: A001
    """|a| (see Abs)."""
    return Abs.apply(a)


def clip(a, min=None, max=None) -> Tensor:  # noqa: A002
    """Clamp a into [min, max]; either bound may be None (see Clip)."""
    return Clip.apply(a, lo=min, hi=max)


def maximum(a, b) -> Tensor:
    """Elementwise maximum (see Maximum)."""
    return Maximum.apply(a, b)


def minimum(a, b) -> Tensor:
    """Elementwise minimum (see Minimum)."""
    return Minimum.apply(a, b)


def where(cond, a, b) -> Tensor:
    """a where cond is true, else b (see Where); cond may be a boolean Tensor or array."""
    if isinstance(cond, Tensor):
        cond = cond.data
    return Where.apply(cond, a, b)


def relu(a) -> Tensor:
    """Rectified linear unit max(a, 0) (see ReLU)."""
    return ReLU.apply(a)


def leaky_relu(a, negative_slope: float = 0.01) -> Tensor:
    """Leaky ReLU with slope `negative_slope` for a < 0 (see LeakyReLU)."""
    return LeakyReLU.apply(a, slope=negative_slope)


def sigmoid(a) -> Tensor:
    """Logistic function, stable for any input (see Sigmoid)."""
    return Sigmoid.apply(a)


def tanh(a) -> Tensor:
    """Hyperbolic tangent (see Tanh)."""
    return Tanh.apply(a)


def astype(a, dtype) -> Tensor:
    """a converted to `dtype` (see AsType); integer results carry no gradient."""
    dtype = np.dtype(dtype)
    if isinstance(a, Tensor) and a.requires_grad and dtype.kind != "f":
        with_grad = AsType.apply(a.detach(), dtype=dtype)
        return with_grad
    return AsType.apply(a, dtype=dtype)
