"""gradcheck: compare autograd gradients with central finite differences, in float64.

The check is projected on a random upstream gradient u: with L(x) = sum(u * f(x)), autograd's
dL/dx (one backward pass with grad=u, i.e. the full vector-Jacobian product) is compared with

    dL/dx_i ~ (L(x + eps e_i) - L(x - eps e_i)) / (2 eps)

element by element. A random u tests every output's contribution, unlike summing the output.
"""

from __future__ import annotations

import numpy as np

from minidl.autograd import Tensor
from minidl.backend import to_numpy, xp_of


class GradcheckError(AssertionError):
    """Raised by gradcheck when an analytic gradient disagrees with the numeric one."""


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-6, rtol: float = 1e-4,
              seed: int = 0, raise_exception: bool = True) -> bool:
    """Check the gradients of `fn` at `inputs` against central finite differences.

    fn: a function of the input Tensors returning one Tensor (any shape).
    inputs: a sequence of Tensors; those with requires_grad=True are checked. They should be
        float64: float32 differences are too coarse to check anything, so float32 inputs are
        copied to float64 first (fn must then accept float64 tensors).
    eps: finite-difference step. atol, rtol: element passes when
        |analytic - numeric| <= atol + rtol * |numeric|.
    seed: for the random upstream gradient.
    Returns True, or raises GradcheckError naming the input, the element (index) and both values
    (returns False instead when raise_exception is False).
    """
    xs = []
    for x in inputs:
        if not isinstance(x, Tensor):
            raise TypeError(f"gradcheck inputs must be Tensors, got {type(x).__name__}")
        data = x.data.astype(np.float64) if x.dtype.kind == "f" else x.data
        xs.append(Tensor(data.copy(), requires_grad=x.requires_grad))
    checked = [i for i, x in enumerate(xs) if x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True")

    out = fn(*xs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__} (compute "
                        "it with minidl operations on the input Tensors so it has a graph)")
    xp = xp_of(out.data)
    rng = np.random.default_rng(seed)
    u = xp.asarray(rng.standard_normal(out.shape))
    out.backward(u)

    def loss() -> float:
        return float(to_numpy((fn(*xs).data * u).sum()))

    for i in checked:
        x = xs[i]
        analytic = to_numpy(x.grad) if x.grad is not None else np.zeros(x.shape)
        flat = x.data.reshape(-1)  # a view: x.data is a fresh contiguous copy
        for j in range(flat.size):
            orig = float(flat[j])
            flat[j] = orig + eps
            plus = loss()
            flat[j] = orig - eps
            minus = loss()
            flat[j] = orig
            numeric = (plus - minus) / (2 * eps)
            a = float(analytic.reshape(-1)[j])
            if not abs(a - numeric) <= atol + rtol * abs(numeric):
                if not raise_exception:
                    return False
                # plain ints: NumPy 2 would print (np.int64(1), np.int64(2))
                idx = tuple(int(k) for k in np.unravel_index(j, x.shape)) if x.shape else ()
                raise GradcheckError(
                    f"gradient mismatch for input {i} (shape {x.shape}) at element {idx}: "
                    f"analytic {a:.10g}, numeric {numeric:.10g}, difference {a - numeric:.3g}"
                )
    return True
