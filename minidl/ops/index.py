"""Indexing with index tensors: gather, masked_fill, one_hot (PyTorch's semantics)."""

from __future__ import annotations

import numpy as np

from minidl import backend
from minidl.autograd import Function, Tensor
from minidl.backend import xp_of
from minidl.naming import torch_names
from minidl.ops.elementwise import where


def _array(x):
    return x.data if isinstance(x, Tensor) else x


def _along(index, axis: int) -> tuple:
    """The full advanced index picking a[..., index, ...] along `axis`, as torch.gather:
    position (i0, .., ik) of the output reads a at (i0, .., index[i0, .., ik], .., ik)."""
    xp = xp_of(index)
    grid = []
    for d, n in enumerate(index.shape):
        shape = [1] * index.ndim
        shape[d] = n
        grid.append(index if d == axis else xp.arange(n).reshape(shape))
    return tuple(grid)


class Gather(Function):
    """z[i][j] = a[index[i][j]][j] (axis 0), z[i][j] = a[i][index[i][j]] (axis 1), and so on.

    index has a's number of dims and sizes <= a's outside `axis`; z has index's shape.
    dL/da = zeros with g added at the gathered positions (repeated indices add up).
    """

    def forward(self, a, index, axis=0):
        if index.ndim != a.ndim or index.dtype.kind not in "iu":
            raise ValueError(f"gather: index must be an integer array with the input's "
                             f"{a.ndim} dims, got dtype {index.dtype} and shape {index.shape}")
        if any(i > n for d, (i, n) in enumerate(zip(index.shape, a.shape)) if d != axis):
            raise ValueError(f"gather: index of shape {index.shape} exceeds the input's shape "
                             f"{a.shape} outside dim {axis}")
        self.where, self.shape = _along(index, axis % a.ndim), a.shape
        return a[self.where]

    def backward(self, g):
        grad = xp_of(g).zeros(self.shape, dtype=g.dtype)
        backend.scatter_add(grad, self.where, g)
        return grad, None


@torch_names
def gather(a, axis: int, index) -> Tensor:
    """Pick values along `axis` by an index tensor (see Gather). torch.gather(input, dim, index).
    """
    return Gather.apply(a, xp_of(_array(a)).asarray(_array(index)), axis=axis)


def masked_fill(a, mask, value: float) -> Tensor:
    """a with `value` where mask is true (mask broadcasts to a); no gradient reaches the filled
    places."""
    data = _array(a)
    xp = xp_of(data)
    mask = xp.asarray(_array(mask), dtype=bool)
    fill = xp.asarray(value, dtype=data.dtype)
    return where(xp.broadcast_to(mask, data.shape), fill, a)


def one_hot(tensor, num_classes: int = -1) -> Tensor:
    """Integer classes of any shape -> int64 one-hot vectors in a new last dim (no gradient).

    num_classes=-1 takes max + 1 (a device-to-host read on the GPU; pass it to avoid that).
    """
    labels = _array(tensor)
    xp = xp_of(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"one_hot: classes must be integers, got {labels.dtype}")
    if num_classes == -1:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    if xp is np and labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"one_hot: classes must lie in [0, {num_classes}), got min "
                         f"{labels.min()}, max {labels.max()}")
    out = (labels[..., None] == xp.arange(num_classes)).astype(np.int64)
    return Tensor._make(out, False, None)
