"""minidl: a small deep-learning framework on NumPy (CPU) and CuPy (GPU), written to be read.

Layers, each importing only the ones before it: backend -> autograd -> ops -> nn -> optim ->
data / train. One intended exception: Tensor's operators and methods (x + y, x.sum(), x.to(...),
in minidl/tensor_methods.py, a mixin of autograd's Tensor) are thin calls into ops, looked up
when called; autograd imports ops at its end, once Tensor and Function exist.
`import minidl` makes minidl.nn, minidl.optim and minidl.data reachable; it prints nothing,
reads no environment variable and starts no GPU (CuPy is imported on first GPU use).
"""

from minidl import backend, cuda, ops
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
    all,
    any,
    arange,
    argmax,
    argmin,
    ceil,
    chunk,
    concatenate,
    cos,
    cross_entropy,
    cumsum,
    exp,
    expm1,
    eye,
    flip,
    floor,
    full,
    full_like,
    gather,
    isfinite,
    isinf,
    isnan,
    linspace,
    log,
    log1p,
    log_softmax,
    logsumexp,
    masked_fill,
    max,
    mean,
    min,
    matmul,
    maximum,
    minimum,
    mse_loss,
    ones_like,
    pad,
    permute,
    prod,
    round,
    sign,
    sin,
    softmax,
    split,
    sqrt,
    squeeze,
    stack,
    std,
    sum,
    swapdims,
    tril,
    triu,
    unsqueeze,
    var,
    where,
    zeros_like,
)
from minidl.ops.dims import swapdims as transpose
from minidl.serialize import load, save
from minidl.threads import get_num_threads, set_num_threads
from minidl.nn.functional import flatten
from minidl import data, nn, optim  # noqa: E402  (after the core, which they build on)

__version__ = "0.1.0"


def device(name: str) -> str:
    """torch.device's role: the device string itself ('cpu' or 'cuda'), checked."""
    return backend.check_device(str(name))


__all__ = [
    "Function", "GradcheckError", "Tensor", "all", "any", "arange", "argmax", "argmin", "backend",
    "ceil", "chunk", "concatenate", "cos", "cross_entropy", "cuda", "cumsum", "data",
    "default_dtype", "device", "enable_grad", "exp", "expm1", "eye", "flatten", "flip", "floor",
    "full", "full_like", "gather", "get_default_dtype", "get_num_threads", "gpu_available",
    "gradcheck", "is_grad_enabled", "isfinite", "isinf", "isnan", "linspace", "load", "log",
    "log1p", "log_softmax", "logsumexp", "manual_seed", "masked_fill", "matmul", "max",
    "maximum", "mean", "min", "minimum", "mse_loss", "nn", "no_grad", "ones", "ones_like", "ops",
    "optim", "pad", "permute", "prod", "rand", "randn", "round", "save", "set_default_dtype", "set_num_threads",
    "sign", "sin", "softmax", "split", "sqrt", "squeeze", "stack", "std", "sum", "swapdims",
    "tensor", "transpose", "tril", "triu", "unsqueeze", "var", "where", "zeros", "zeros_like",
]
