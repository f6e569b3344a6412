"""Shape operations: reshape, transpose, broadcast, indexing, concatenate, stack, pad, device moves.

None of these computes anything; their backward passes move gradients back into place.
"""

from __future__ import annotations

import numpy as np

from minidl import backend
from minidl.autograd import Function, Tensor
from minidl.backend import xp_of
from minidl.naming import torch_names


class Reshape(Function):
    """z = a viewed with a new shape.   dL/da = g reshaped back."""

    def forward(self, a, shape=()):
        self.shape = a.shape
        try:
            return a.reshape(shape)
        except ValueError:
            raise ValueError(
                f"cannot reshape array of shape {a.shape} into {tuple(shape)}") from None

    def backward(self, g):
        return (g.reshape(self.shape),)


class Transpose(Function):
    """z = a with axes permuted (reversed when axes is None).   dL/da = g, inverse permutation."""

    def forward(self, a, axes=None):
        self.axes = (tuple(range(a.ndim))[::-1] if axes is None
                     else tuple(ax % a.ndim for ax in axes))
        if sorted(self.axes) != list(range(a.ndim)):
            raise ValueError(f"axes {axes} are not a permutation of {a.ndim} axes")
        return a.transpose(self.axes)

    def backward(self, g):
        return (g.transpose(np.argsort(self.axes).tolist()),)


class BroadcastTo(Function):
    """z = a broadcast to `shape`.   dL/da = g summed over the broadcast axes."""

    def forward(self, a, shape=()):
        self.shape = a.shape
        try:
            return xp_of(a).broadcast_to(a, shape)
        except ValueError:
            raise ValueError(f"cannot broadcast shape {a.shape} to {tuple(shape)}") from None

    def backward(self, g):
        from minidl.ops.elementwise import unbroadcast

        return (unbroadcast(g, self.shape),)


def _is_advanced(index) -> bool:
    """Whether an index uses integer or boolean arrays (then repeated entries are possible)."""
    items = index if isinstance(index, tuple) else (index,)
    # a tuple inside the index tuple is a sequence of integers too: x[((0, 0),)] is x[[0, 0]]
    advanced = (list, tuple, np.ndarray)
    return any(isinstance(i, advanced) or backend.is_cupy_array(i) for i in items)


class GetItem(Function):
    """z = a[index], with basic slicing or integer/boolean array indexing.

    dL/da = zeros with g placed at `index`; repeated integer indices add up (numpy.add.at).
    """

    def forward(self, a, index=None):
        self.shape, self.dtype, self.index = a.shape, a.dtype, index
        return a[index]

    def backward(self, g):
        xp = xp_of(g)
        grad = xp.zeros(self.shape, dtype=self.dtype)
        if _is_advanced(self.index):
            backend.scatter_add(grad, self.index, g)
        else:
            grad[self.index] = g
        return (grad,)


class Concatenate(Function):
    """z = concatenation of the inputs along `axis`.   Each input gets its slice of g."""

    def forward(self, *arrays, axis=0):
        xp = xp_of(*arrays)
        self.axis = axis
        self.bounds = np.cumsum([x.shape[axis] for x in arrays])[:-1].tolist()
        try:
            return xp.concatenate(arrays, axis=axis)
        except ValueError:
            shapes = ", ".join(str(x.shape) for x in arrays)
            raise ValueError(
                f"concatenate along axis {axis}: incompatible shapes {shapes}") from None

    def backward(self, g):
        return tuple(xp_of(g).split(g, self.bounds, axis=self.axis))


class Stack(Function):
    """z = the inputs stacked along a new `axis`.   Each input gets its slice of g."""

    def forward(self, *arrays, axis=0):
        xp = xp_of(*arrays)
        self.axis = axis
        if len({x.shape for x in arrays}) > 1:
            shapes = ", ".join(str(x.shape) for x in arrays)
            raise ValueError(f"stack needs equal shapes, got {shapes}")
        return xp.stack(arrays, axis=axis)

    def backward(self, g):
        xp = xp_of(g)
        return tuple(xp.take(g, i, axis=self.axis) for i in range(g.shape[self.axis]))


class Pad(Function):
    """z = a padded with a constant.   dL/da = the centre of g (the padding gets no gradient)."""

    def forward(self, a, pad_width=0, value=0.0):
        xp = xp_of(a)
        widths = np.broadcast_to(np.asarray(pad_width, dtype=int), (a.ndim, 2))
        self.slices = tuple(slice(lo, lo + n) for (lo, _), n in zip(widths, a.shape))
        return xp.pad(a, [tuple(w) for w in widths.tolist()], constant_values=value)

    def backward(self, g):
        return (g[self.slices],)


class ToDevice(Function):
    """z = a copied to another device.   dL/da = g copied back."""

    def forward(self, a, device="cpu"):
        self.source = backend.device_of(a)
        return backend.to_device(a, device)

    def backward(self, g):
        return (backend.to_device(g, self.source),)


def reshape(a, shape) -> Tensor:
    """a with a new shape (one entry may be -1) (see Reshape)."""
    return Reshape.apply(a, shape=tuple(shape) if not isinstance(shape, int) else (shape,))


@torch_names
def flatten(a, start_axis: int = 0) -> Tensor:
    """Merge the axes from `start_axis` on into one (flatten(x, 1): (N, ...) -> (N, prod))."""
    shape = a.shape[:start_axis] + (-1,)
    return reshape(a, shape)


def transpose(a, axes=None) -> Tensor:
    """Permute axes; reverse them when axes is None (see Transpose)."""
    return Transpose.apply(a, axes=axes)


def swapaxes(a, axis1: int, axis2: int) -> Tensor:
    """Exchange two axes (a transpose)."""
    axes = list(range(a.ndim))
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return transpose(a, axes)


def broadcast_to(a, shape) -> Tensor:
    """a broadcast to `shape` (see BroadcastTo)."""
    return BroadcastTo.apply(a, shape=tuple(shape))


def getitem(a, index) -> Tensor:
    """a[index] (see GetItem). Tensor indices are used through their arrays."""
    if isinstance(index, Tensor):
        index = index.data
    elif isinstance(index, tuple):
        index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return GetItem.apply(a, index=index)


@torch_names
def concatenate(tensors, axis: int = 0) -> Tensor:
    """Join tensors along an existing axis (see Concatenate)."""
    return Concatenate.apply(*tensors, axis=axis)


@torch_names
def stack(tensors, axis: int = 0) -> Tensor:
    """Join equal-shaped tensors along a new axis (see Stack)."""
    return Stack.apply(*tensors, axis=axis)


def pad(a, pad_width, value: float = 0.0) -> Tensor:
    """Pad with a constant; pad_width as numpy.pad: int, (before, after) or one pair per axis."""
    return Pad.apply(a, pad_width=pad_width, value=value)


def to_device_op(a, device: str) -> Tensor:
    """a on `device`, differentiable (see ToDevice)."""
    return ToDevice.apply(a, device=device)
