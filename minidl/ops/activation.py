"""Activation functions beyond relu/sigmoid/tanh: silu, gelu, elu, softplus, logsigmoid,
hardtanh, relu6. Defaults and formulas as torch.nn.functional.

Sigmoids here are exp(-logaddexp(0, -a)): no overflow for any a and full relative precision
in both tails (1 / (1 + exp(-a)) overflows exp for a << 0 in float32).
"""

from __future__ import annotations

import math

from minidl import backend
from minidl.autograd import Function, Tensor
from minidl.backend import xp_of
from minidl.ops.elementwise import clip


def _sigmoid(xp, a):
    return xp.exp(-xp.logaddexp(0, -a))


class SiLU(Function):
    """z = a * sigmoid(a) (Elfwing et al. 2018; 'swish').   dL/da = g * s * (1 + a * (1 - s))."""

    def forward(self, a):
        s = _sigmoid(xp_of(a), a)
        self.save_for_backward(a, s)
        return a * s

    def backward(self, g):
        a, s = self.saved
        return (g * s * (1 + a * (1 - s)),)


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


class GELU(Function):
    """Gaussian error linear unit (Hendrycks & Gimpel 2016, arXiv:1606.08415).

    approximate='none':  z = a * Phi(a),  Phi(a) = (1 + erf(a / sqrt 2)) / 2
                         dL/da = g * (Phi(a) + a * exp(-a^2 / 2) / sqrt(2 pi))
    approximate='tanh':  z = a/2 * (1 + t),  t = tanh(u),  u = sqrt(2/pi) (a + 0.044715 a^3)
                         dL/da = g * ((1 + t)/2 + a/2 * (1 - t^2) * sqrt(2/pi) (1 + 3*0.044715 a^2))
    """

    def forward(self, a, approximate="none"):
        xp = xp_of(a)
        self.approximate = approximate
        if approximate == "tanh":
            t = xp.tanh(_SQRT_2_OVER_PI * (a + 0.044715 * a * a * a))
            self.save_for_backward(a, t)
            return 0.5 * a * (1 + t)
        phi = 0.5 * (1 + backend.erf(a * (1 / math.sqrt(2.0))))
        self.save_for_backward(a, phi)
        return a * phi

    def backward(self, g):
        a, c = self.saved
        xp = xp_of(a)
        if self.approximate == "tanh":
            du = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * a * a)
            return (g * (0.5 * (1 + c) + 0.5 * a * (1 - c * c) * du),)
        return (g * (c + a * xp.exp(-0.5 * a * a) * (1 / math.sqrt(2 * math.pi))),)


class ELU(Function):
    """z = a for a > 0, alpha * (exp(a) - 1) otherwise (Clevert et al. 2015).

    dL/da = g for a > 0, g * (z + alpha) otherwise.
    """

    def forward(self, a, alpha=1.0):
        xp = xp_of(a)
        out = xp.where(a > 0, a, alpha * xp.expm1(xp.minimum(a, 0)))
        self.alpha = alpha
        self.save_for_backward(a, out)
        return out

    def backward(self, g):
        a, z = self.saved
        return (g * xp_of(a).where(a > 0, 1, z + self.alpha),)


class Softplus(Function):
    """z = log(1 + exp(beta a)) / beta, and z = a where beta a > threshold (as torch).

    dL/da = g * sigmoid(beta a)  (g where beta a > threshold).
    """

    def forward(self, a, beta=1.0, threshold=20.0):
        xp = xp_of(a)
        self.save_for_backward(a)
        self.beta, self.threshold = beta, threshold
        return xp.where(a * beta > threshold, a, xp.logaddexp(0, a * beta) / beta)

    def backward(self, g):
        (a,) = self.saved
        xp = xp_of(a)
        return (g * xp.where(a * self.beta > self.threshold, 1, _sigmoid(xp, a * self.beta)),)


class LogSigmoid(Function):
    """z = log(sigmoid(a)) = -log(1 + exp(-a)).   dL/da = g * sigmoid(-a)."""

    def forward(self, a):
        self.save_for_backward(a)
        return -xp_of(a).logaddexp(0, -a)

    def backward(self, g):
        (a,) = self.saved
        return (g * _sigmoid(xp_of(a), -a),)


def silu(a) -> Tensor:
    """a * sigmoid(a) (see SiLU)."""
    return SiLU.apply(a)


def gelu(a, approximate: str = "none") -> Tensor:
    """GELU, exact (erf) by default as torch; approximate='tanh' for the tanh form (see GELU)."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELU.apply(a, approximate=approximate)


def elu(a, alpha: float = 1.0) -> Tensor:
    """ELU (see ELU)."""
    return ELU.apply(a, alpha=alpha)


def softplus(a, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """Smooth relu log(1 + exp(beta a)) / beta (see Softplus)."""
    return Softplus.apply(a, beta=beta, threshold=threshold)


def logsigmoid(a) -> Tensor:
    """log(sigmoid(a)), stable (see LogSigmoid)."""
    return LogSigmoid.apply(a)


def hardtanh(a, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    """clamp(a, min_val, max_val): the gradient passes inside [min_val, max_val]."""
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val {min_val} > max_val {max_val}")
    return clip(a, min_val, max_val)


def relu6(a) -> Tensor:
    """min(max(a, 0), 6) = hardtanh(a, 0, 6)."""
    return hardtanh(a, 0.0, 6.0)
