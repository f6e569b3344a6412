"""Module forms of the newer activations, LayerNorm and losses (torch.nn's names); each
layer calls its minidl.nn.functional form."""

from __future__ import annotations

from minidl import backend
from minidl.naming import torch_names
from minidl.nn import functional as F
from minidl.nn.module import Module, Parameter


class _Activation(Module):
    """An elementwise activation with keyword settings fixed at construction."""

    fn = None

    def __init__(self, **settings):
        super().__init__()
        self.settings = settings

    def forward(self, x):
        return type(self).fn(x, **self.settings)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.settings.items())


class SiLU(_Activation):
    """x * sigmoid(x)."""
    fn = F.silu


class GELU(_Activation):
    """x * Phi(x); GELU(approximate='tanh') for the tanh approximation."""
    fn = F.gelu

    def __init__(self, approximate: str = "none"):
        super().__init__(approximate=approximate)


class ELU(_Activation):
    """x if x > 0 else alpha * (exp(x) - 1)."""
    fn = F.elu

    def __init__(self, alpha: float = 1.0):
        super().__init__(alpha=alpha)


class Softplus(_Activation):
    """log(1 + exp(beta x)) / beta (x itself past threshold)."""
    fn = F.softplus

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__(beta=beta, threshold=threshold)


class LogSigmoid(_Activation):
    """log(sigmoid(x))."""
    fn = F.logsigmoid


class Hardtanh(_Activation):
    """clamp(x, min_val, max_val)."""
    fn = F.hardtanh

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0):
        super().__init__(min_val=min_val, max_val=max_val)


class ReLU6(_Activation):
    """clamp(x, 0, 6)."""
    fn = F.relu6


class LogSoftmax(Module):
    """log(softmax(x)) along dim (pair with NLLLoss)."""

    @torch_names
    def __init__(self, axis: int = -1):
        super().__init__()
        self.axis = axis

    def forward(self, x):
        return F.log_softmax(x, self.axis)

    def extra_repr(self) -> str:
        return f"dim={self.axis}"


class LayerNorm(Module):
    """Layer normalisation over the trailing `normalized_shape` dims (see F.layer_norm);
    weight (ones) and bias (zeros) of that shape when elementwise_affine."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 device: str = "cpu", dtype=None):
        super().__init__()
        shape = ((normalized_shape,) if isinstance(normalized_shape, int)
                 else tuple(normalized_shape))
        self.normalized_shape, self.eps = shape, eps
        xp, dtype = backend.xp_for(device), dtype or backend.get_default_dtype()
        self.weight = Parameter(xp.ones(shape, dtype)) if elementwise_affine else None
        self.bias = Parameter(xp.zeros(shape, dtype)) if elementwise_affine else None

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"


class _Loss(Module):
    """A loss with settings fixed at construction, called as loss(input, target)."""

    fn = None

    def __init__(self, **settings):
        super().__init__()
        self.settings = settings

    def forward(self, input, target):  # noqa: A002
        return type(self).fn(input, target, **self.settings)


class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities at class targets (F.nll_loss)."""
    fn = F.nll_loss

    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)


class BCELoss(_Loss):
    """Binary cross-entropy of probabilities (F.binary_cross_entropy)."""
    fn = F.binary_cross_entropy

    def __init__(self, weight=None, reduction: str = "mean"):
        super().__init__(weight=weight, reduction=reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy of logits (F.binary_cross_entropy_with_logits)."""
    fn = F.binary_cross_entropy_with_logits

    def __init__(self, weight=None, reduction: str = "mean", pos_weight=None):
        super().__init__(weight=weight, reduction=reduction, pos_weight=pos_weight)


class L1Loss(_Loss):
    """Mean absolute error (F.l1_loss)."""
    fn = F.l1_loss

    def __init__(self, reduction: str = "mean"):
        super().__init__(reduction=reduction)


class SmoothL1Loss(_Loss):
    """Huber-like loss (F.smooth_l1_loss)."""
    fn = F.smooth_l1_loss

    def __init__(self, reduction: str = "mean", beta: float = 1.0):
        super().__init__(reduction=reduction, beta=beta)
