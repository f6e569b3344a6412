"""Tensor's operators and PyTorch-style methods (t.sum(), t.reshape(), t.exp(), ...), kept out
of minidl/autograd.py as a mixin so that autograd.py holds only the engine: Function, the graph
walk and Tensor's data, properties and backward.

Each method is a one-line call into minidl.ops (`Tensor.__mul__` calls `ops.mul` explicitly, so
every name stays greppable). This is the one place where a lower layer calls a higher one: ops
builds on Tensor and Function, so `minidl.ops` and `minidl.autograd.Tensor` are looked up when
a method runs, never when this module is imported.
"""

from __future__ import annotations

import numpy as np

import minidl  # ops and Tensor resolved at call time (see the docstring)
from minidl.naming import torch_names


class TensorMethods:
    """Operators and methods of minidl.autograd.Tensor (a mixin; it holds no state)."""

    __slots__ = ()  # Tensor declares its own slots; an empty tuple keeps instances dict-free

    # ------------------------------------------------------------------ operators
    def __add__(self, other):
        return minidl.ops.add(self, other)

    def __radd__(self, other):
        return minidl.ops.add(other, self)

    def __sub__(self, other):
        return minidl.ops.sub(self, other)

    def __rsub__(self, other):
        return minidl.ops.sub(other, self)

    def __mul__(self, other):
        return minidl.ops.mul(self, other)

    def __rmul__(self, other):
        return minidl.ops.mul(other, self)

    def __truediv__(self, other):
        return minidl.ops.div(self, other)

    def __rtruediv__(self, other):
        return minidl.ops.div(other, self)

    def __neg__(self):
        return minidl.ops.neg(self)

    def __pow__(self, exponent):
        return minidl.ops.pow(self, exponent)

    def __rpow__(self, base):
        return minidl.ops.pow(base, self)

    def __matmul__(self, other):
        return minidl.ops.matmul(self, other)

    def __rmatmul__(self, other):
        return minidl.ops.matmul(other, self)

    def __abs__(self):
        return minidl.ops.abs(self)

    def __getitem__(self, index):
        return minidl.ops.getitem(self, index)

    # comparisons give boolean tensors without gradient
    def _compare(self, other, name):
        other = other.data if isinstance(other, minidl.autograd.Tensor) else other
        return minidl.autograd.Tensor._make(getattr(self.data, name)(other), False, None)

    def __lt__(self, other):
        return self._compare(other, "__lt__")

    def __le__(self, other):
        return self._compare(other, "__le__")

    def __gt__(self, other):
        return self._compare(other, "__gt__")

    def __ge__(self, other):
        return self._compare(other, "__ge__")

    def __eq__(self, other):
        return self._compare(other, "__eq__")

    def __ne__(self, other):
        return self._compare(other, "__ne__")

    __hash__ = object.__hash__  # identity, so tensors can key optimizer state

    def __bool__(self) -> bool:
        return bool(self.item())

    # ------------------------------------------------------------------ methods
    @torch_names
    def sum(self, axis=None, keepdims=False):
        return minidl.ops.sum(self, axis, keepdims)

    @torch_names
    def mean(self, axis=None, keepdims=False):
        return minidl.ops.mean(self, axis, keepdims)

    @torch_names
    def max(self, axis=None, keepdims=False):
        return minidl.ops.max(self, axis, keepdims)

    @torch_names
    def min(self, axis=None, keepdims=False):
        return minidl.ops.min(self, axis, keepdims)

    @torch_names
    def var(self, axis=None, correction=1, keepdims=False, unbiased=None):
        return minidl.ops.var(self, axis, correction, keepdims, unbiased)

    @torch_names
    def std(self, axis=None, correction=1, keepdims=False, unbiased=None):
        return minidl.ops.std(self, axis, correction, keepdims, unbiased)

    @torch_names
    def prod(self, axis=None, keepdims=False):
        return minidl.ops.prod(self, axis, keepdims)

    @torch_names
    def cumsum(self, axis):
        return minidl.ops.cumsum(self, axis)

    @torch_names
    def any(self, axis=None, keepdims=False):
        return minidl.ops.any(self, axis, keepdims)

    @torch_names
    def all(self, axis=None, keepdims=False):
        return minidl.ops.all(self, axis, keepdims)

    @torch_names
    def argmax(self, axis=None, keepdims=False) -> "Tensor":
        return minidl.ops.argmax(self, axis, keepdims)

    @torch_names
    def argmin(self, axis=None, keepdims=False) -> "Tensor":
        return minidl.ops.argmin(self, axis, keepdims)

    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return minidl.ops.reshape(self, shape)

    def view(self, *shape):
        """reshape under PyTorch's name (the result may or may not share memory, as NumPy)."""
        return minidl.ops.view(self, *shape)

    def view_as(self, other):
        return minidl.ops.reshape(self, other.shape)

    @torch_names
    def flatten(self, start_axis: int = 0):
        return minidl.ops.flatten(self, start_axis)

    @torch_names
    def squeeze(self, axis=None):
        return minidl.ops.squeeze(self, axis)

    @torch_names
    def unsqueeze(self, axis: int):
        return minidl.ops.unsqueeze(self, axis)

    def permute(self, *dims):
        """Reorder all dims (NumPy's transpose(axes))."""
        return minidl.ops.permute(self, *dims)

    def transpose(self, dim0: int, dim1: int):
        """Swap two dims, as torch.Tensor.transpose. This differs from NumPy's transpose(*axes),
        which permutes all axes: use permute(*axes) for that, or .T to reverse them all."""
        return minidl.ops.swapdims(self, dim0, dim1)

    @property
    def T(self):
        return minidl.ops.transpose(self, None)

    def swapaxes(self, axis1: int, axis2: int):
        return minidl.ops.swapaxes(self, axis1, axis2)

    def broadcast_to(self, shape):
        return minidl.ops.broadcast_to(self, shape)

    def expand(self, *sizes):
        return minidl.ops.expand(self, *sizes)

    def expand_as(self, other):
        return minidl.ops.broadcast_to(self, other.shape)

    @torch_names
    def flip(self, axis):
        return minidl.ops.flip(self, axis)

    @torch_names
    def split(self, split_size_or_sections, axis: int = 0):
        return minidl.ops.split(self, split_size_or_sections, axis)

    @torch_names
    def chunk(self, chunks: int, axis: int = 0):
        return minidl.ops.chunk(self, chunks, axis)

    def repeat(self, *repeats):
        return minidl.ops.repeat(self, *repeats)

    def tril(self, diagonal: int = 0):
        return minidl.ops.tril(self, diagonal)

    def triu(self, diagonal: int = 0):
        return minidl.ops.triu(self, diagonal)

    def gather(self, dim: int, index):
        return minidl.ops.gather(self, dim, index)

    def masked_fill(self, mask, value):
        return minidl.ops.masked_fill(self, mask, value)

    def exp(self):
        return minidl.ops.exp(self)

    def log(self):
        return minidl.ops.log(self)

    def sqrt(self):
        return minidl.ops.sqrt(self)

    def abs(self):
        return minidl.ops.abs(self)

    def neg(self):
        return minidl.ops.neg(self)

    def pow(self, exponent):
        return minidl.ops.pow(self, exponent)

    def matmul(self, other):
        return minidl.ops.matmul(self, other)

    def sin(self):
        return minidl.ops.sin(self)

    def cos(self):
        return minidl.ops.cos(self)

    def log1p(self):
        return minidl.ops.log1p(self)

    def expm1(self):
        return minidl.ops.expm1(self)

    def sign(self):
        return minidl.ops.sign(self)

    def floor(self):
        return minidl.ops.floor(self)

    def ceil(self):
        return minidl.ops.ceil(self)

    def round(self):
        return minidl.ops.round(self)

    def isnan(self):
        return minidl.ops.isnan(self)

    def isinf(self):
        return minidl.ops.isinf(self)

    def isfinite(self):
        return minidl.ops.isfinite(self)

    def clip(self, min=None, max=None):
        return minidl.ops.clip(self, min, max)

    clamp = clip  # PyTorch's name

    def relu(self):
        return minidl.ops.relu(self)

    def sigmoid(self):
        return minidl.ops.sigmoid(self)

    def tanh(self):
        return minidl.ops.tanh(self)

    @torch_names
    def softmax(self, axis=-1):
        return minidl.ops.softmax(self, axis)

    @torch_names
    def log_softmax(self, axis=-1):
        return minidl.ops.log_softmax(self, axis)

    @torch_names
    def logsumexp(self, axis=None, keepdims=False):
        return minidl.ops.logsumexp(self, axis, keepdims)

    def eq(self, other) -> "Tensor":
        """Elementwise ==, a bool tensor (the == operator does the same)."""
        return self._compare(other, "__eq__")

    def ne(self, other) -> "Tensor":
        return self._compare(other, "__ne__")

    def numel(self) -> int:
        """Number of elements (the `size` property; `size()` is the shape, as torch)."""
        return int(self.data.size)

    def dim(self) -> int:
        """Number of dimensions (ndim)."""
        return self.data.ndim

    def float(self) -> "Tensor":
        """float32 copy (differentiable between floating dtypes, as astype)."""
        return self if self.dtype == np.float32 else self.astype(np.float32)

    def double(self) -> "Tensor":
        """float64 copy (see float)."""
        return self if self.dtype == np.float64 else self.astype(np.float64)

    def long(self) -> "Tensor":
        """int64 copy, without gradient."""
        return minidl.autograd.Tensor._make(self.data.astype(np.int64), False, None)
