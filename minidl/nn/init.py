"""Weight initialisers: fill a Parameter (or a raw array) in place from minidl's generator.

Each draws from minidl's counter-based stream (`minidl.backend.get_rng()`) on the array's
device, in the array's dtype, so `minidl.manual_seed` makes initialisation reproducible and
the same on 'cpu' and 'cuda'. Fans come from the Parameter's
`input_axes` (see `fan_in_fan_out`), never from guessing at shapes:

    Dense weight (in, out), input_axes (0,):          fan_in = in,          fan_out = out
    Conv2d weight (out, in, kh, kw), input_axes (1, 2, 3): fan_in = in*kh*kw, fan_out = out*kh*kw

Variance-preserving choices (n = fan_in unless stated):
    he_*      Var = 2/n             He, Zhang, Ren & Sun 2015, "Delving Deep into Rectifiers",
                                    arXiv:1502.01852 (ReLU: gain sqrt(2))
    glorot_*  Var = 2/(fan_in + fan_out)   Glorot & Bengio 2010, "Understanding the difficulty
                                    of training deep feedforward neural networks", AISTATS
    lecun_*   Var = 1/n             LeCun, Bottou, Orr & Mueller 1998, "Efficient BackProp"
A normal variant draws N(0, Var) (not truncated, as torch.nn.init); a uniform one draws
U(-a, a) with a = sqrt(3 Var).
"""

from __future__ import annotations

import math

import numpy as np

from minidl import backend
from minidl.autograd import Tensor


def fan_in_fan_out(shape: tuple, input_axes: tuple) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of `shape` whose `input_axes` index the layer's inputs.

    fan_in is the product of the input axes. The first input axis counts input units; any
    further input axes form the receptive field (a conv kernel's kh, kw), which every output
    unit sees as well: fan_out = (product of the other axes) * receptive field.
    """
    input_axes = tuple(a % len(shape) for a in input_axes)
    if not input_axes:
        raise ValueError(f"a weight of shape {tuple(shape)} with no input axes has no fan_in "
                         "(a bias? initialise it together with its weight)")
    fan_in = math.prod(shape[a] for a in input_axes)
    receptive = math.prod(shape[a] for a in input_axes[1:])
    fan_out = math.prod(n for a, n in enumerate(shape) if a not in input_axes) * receptive
    return fan_in, fan_out


def _fans(p, input_axes):
    axes = getattr(p, "input_axes", None) if input_axes is None else input_axes
    if axes is None:
        raise ValueError("pass input_axes for a raw array (a Parameter carries its own)")
    return fan_in_fan_out(p.shape, axes)


def _array(p):
    return p.data if isinstance(p, Tensor) else p


def _fill_normal(p, std: float):
    a = _array(p)
    a[...] = backend.get_rng().standard_normal(a.shape, a.dtype, backend.device_of(a)) * std
    return p


def uniform(p, bound: float):
    """U(-bound, bound), in p's own dtype and from the generator of p's device."""
    a = _array(p)
    u = backend.get_rng().random(a.shape, a.dtype, backend.device_of(a))  # [0, 1), a's dtype
    a[...] = (u * 2.0 - 1.0) * bound
    return p


def he_normal(p, input_axes=None):
    """N(0, 2/fan_in) (He et al. 2015, arXiv:1502.01852; torch's kaiming_normal_)."""
    fan_in, _ = _fans(p, input_axes)
    return _fill_normal(p, math.sqrt(2.0 / fan_in))


def he_uniform(p, input_axes=None):
    """U(-a, a), a = sqrt(6/fan_in) (He et al. 2015; torch's kaiming_uniform_)."""
    fan_in, _ = _fans(p, input_axes)
    return uniform(p, math.sqrt(6.0 / fan_in))


def glorot_normal(p, input_axes=None):
    """N(0, 2/(fan_in + fan_out)) (Glorot & Bengio 2010; torch's xavier_normal_)."""
    fan_in, fan_out = _fans(p, input_axes)
    return _fill_normal(p, math.sqrt(2.0 / (fan_in + fan_out)))


def glorot_uniform(p, input_axes=None):
    """U(-a, a), a = sqrt(6/(fan_in + fan_out)) (Glorot & Bengio 2010; xavier_uniform_)."""
    fan_in, fan_out = _fans(p, input_axes)
    return uniform(p, math.sqrt(6.0 / (fan_in + fan_out)))


def lecun_normal(p, input_axes=None):
    """N(0, 1/fan_in) (LeCun et al. 1998, "Efficient BackProp")."""
    fan_in, _ = _fans(p, input_axes)
    return _fill_normal(p, math.sqrt(1.0 / fan_in))


def lecun_uniform(p, input_axes=None):
    """U(-a, a), a = sqrt(3/fan_in) (LeCun et al. 1998)."""
    fan_in, _ = _fans(p, input_axes)
    return uniform(p, math.sqrt(3.0 / fan_in))


def torch_default_uniform(weight, bias=None, input_axes=None):
    """PyTorch's default for Linear and Conv layers: weight and bias ~ U(-a, a), a = 1/sqrt(fan_in).

    For the weight this is kaiming_uniform_ with a = sqrt(5): gain sqrt(2 / (1 + 5)), bound
    gain * sqrt(3 / fan_in) = 1/sqrt(fan_in). The bias uses the weight's fan_in.
    Dense, Linear and Conv2d all initialise through this function. It draws 53-bit uniforms in
    float64 and rounds (2u - 1) * a once to the parameter's dtype, so a float32 and a float64
    model start from the same numbers up to that one rounding (and the MNIST reproductions'
    float32 MLP starts exactly where it did when they were measured). Returns the weight.
    """
    fan_in, _ = _fans(weight, input_axes)
    bound = 1.0 / math.sqrt(fan_in)
    for p in (weight, bias):
        if p is not None:
            a = _array(p)
            u = backend.get_rng().random(a.shape, np.float64, backend.device_of(a))
            a[...] = ((u * 2.0 - 1.0) * bound).astype(a.dtype)
    return weight


def zeros(p):
    """Fill with 0."""
    _array(p)[...] = 0
    return p


def ones(p):
    """Fill with 1."""
    _array(p)[...] = 1
    return p


# the weight initialisers a layer's `init` argument can name
WEIGHT_INITS = {f.__name__: f for f in (he_normal, he_uniform, glorot_normal, glorot_uniform,
                                        lecun_normal, lecun_uniform)}


def initialize(init: str, weight, bias=None):
    """Apply a layer's `init` option: 'torch' fills weight and bias with torch_default_uniform;
    a name in WEIGHT_INITS fills the weight with that initialiser and leaves the bias as it is
    (zeros for a new layer). Raises ValueError naming the valid options otherwise."""
    if init == "torch":
        return torch_default_uniform(weight, bias)
    if init not in WEIGHT_INITS:
        raise ValueError(f"unknown init {init!r}; valid: torch, {', '.join(WEIGHT_INITS)}")
    return WEIGHT_INITS[init](weight)
