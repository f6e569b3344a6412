"""minidl: a small deep-learning framework on NumPy (CPU) and CuPy (GPU), written to be read.

Layers, each importing only the ones before it: backend -> autograd -> ops -> nn -> optim ->
data / train. One intended exception: autograd's Tensor methods (x + y, x.sum(), x.to(...))
are thin calls into ops, which autograd imports at its end, once Tensor and Function exist.
`import minidl` makes minidl.nn, minidl.optim and minidl.data reachable; it prints nothing,
reads no environment variable and starts no GPU (CuPy is imported on first GPU use).
"""

from minidl import backend, ops
from minidl.autograd import (
    Function,
    Tensor,
    enable_grad,
    is_grad_enabled,
    no_grad,
    ones,
    rand,
    randn,
    tensor,
    zeros,
)
from minidl.backend import (
    default_dtype,
    get_default_dtype,
    gpu_available,
    manual_seed,
    set_default_dtype,
)
from minidl.gradcheck import GradcheckError, gradcheck
from minidl.ops import (
    concatenate,
    cross_entropy,
    log_softmax,
    logsumexp,
    matmul,
    maximum,
    minimum,
    mse_loss,
    pad,
    softmax,
    stack,
    where,
)

from minidl import data, nn, optim  # noqa: E402  (after the core: they build on it)

__version__ = "0.1.0"

__all__ = [
    "Function", "GradcheckError", "Tensor", "backend", "concatenate", "cross_entropy", "data",
    "default_dtype", "enable_grad", "get_default_dtype", "gpu_available", "gradcheck",
    "is_grad_enabled", "log_softmax", "logsumexp", "manual_seed", "matmul", "maximum", "minimum",
    "mse_loss", "nn", "no_grad", "ones", "ops", "optim", "pad", "rand", "randn",
    "set_default_dtype", "softmax",
    "stack", "tensor", "where", "zeros",
]
