"""PyTorch's shape operations, composed from reshape, transpose, broadcast and indexing.

squeeze, unsqueeze, view, permute, expand, flip, split, chunk, repeat, tril, triu. Each is a
composite of the primitives in minidl.ops.shape (and one multiply for tril/triu), so their
gradients are those of the primitives: nothing new to get wrong.

Where NumPy and PyTorch disagree, these follow PyTorch: `squeeze(x, dim)` of a dimension that
is not 1 returns x unchanged (NumPy raises); `repeat` tiles like numpy.tile (NumPy's repeat
repeats elements instead); `transpose(x, dim0, dim1)` swaps two dims (NumPy's transpose
permutes all of them: that is `permute` here, and `minidl.ops.transpose` keeps NumPy's form).
"""

from __future__ import annotations

import math

from minidl.autograd import Tensor
from minidl.backend import xp_of
from minidl.naming import torch_names
from minidl.ops.elementwise import mul
from minidl.ops.shape import broadcast_to, getitem, reshape, transpose


def _dims(dim, ndim: int) -> tuple:
    """`dim` (int, tuple or None = all) as sorted non-negative dims, range-checked."""
    if dim is None:
        return tuple(range(ndim))
    dims = tuple(dim) if isinstance(dim, (tuple, list)) else (dim,)
    for d in dims:
        if not -max(ndim, 1) <= d < max(ndim, 1):
            raise IndexError(f"dim {d} is out of range for a tensor with {ndim} dimensions")
    return tuple(sorted({d % max(ndim, 1) for d in dims}))


def _shape_args(shape) -> tuple:
    """view(2, 3) and view((2, 3)) alike."""
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


@torch_names
def squeeze(a, axis=None) -> Tensor:
    """Drop dims of size 1: all of them (axis None) or those listed; others stay (as torch)."""
    drop = {d for d in _dims(axis, a.ndim) if a.ndim and a.shape[d] == 1}
    return reshape(a, tuple(n for i, n in enumerate(a.shape) if i not in drop))


@torch_names
def unsqueeze(a, axis: int) -> Tensor:
    """Insert a dim of size 1 at `axis` (in -ndim-1 .. ndim, as torch)."""
    if not -a.ndim - 1 <= axis <= a.ndim:
        raise IndexError(f"unsqueeze: dim {axis} is out of range for {a.ndim} dimensions")
    axis %= a.ndim + 1
    return reshape(a, a.shape[:axis] + (1,) + a.shape[axis:])


def view(a, *shape) -> Tensor:
    """a with a new shape (one entry may be -1): reshape, under PyTorch's name."""
    return reshape(a, _shape_args(shape))


def permute(a, *dims) -> Tensor:
    """Reorder all dims: permute(x, 2, 0, 1) is NumPy's transpose(x, (2, 0, 1))."""
    return transpose(a, _shape_args(dims))


def swapdims(a, dim0: int, dim1: int) -> Tensor:
    """PyTorch's transpose(x, dim0, dim1): exchange two dims."""
    order = list(range(a.ndim))
    order[dim0], order[dim1] = order[dim1], order[dim0]
    return transpose(a, order)


def expand(a, *sizes) -> Tensor:
    """Broadcast to `sizes`; -1 keeps a dim's size (new leading dims may not be -1)."""
    sizes = _shape_args(sizes)
    lead = len(sizes) - a.ndim
    if lead < 0:
        raise ValueError(f"expand: {len(sizes)} sizes for a tensor with {a.ndim} dimensions")
    shape = tuple(a.shape[i - lead] if n == -1 and i >= lead else n for i, n in enumerate(sizes))
    if any(n < 0 for n in shape):
        raise ValueError(f"expand: -1 is not allowed for a new leading dim, got {sizes}")
    return broadcast_to(a, shape)


@torch_names
def flip(a, axis) -> Tensor:
    """Reverse the order of elements along the given dim(s)."""
    flipped = set(_dims(axis, a.ndim))
    return getitem(a, tuple(slice(None, None, -1) if i in flipped else slice(None)
                            for i in range(a.ndim)))


@torch_names
def split(a, split_size_or_sections, axis: int = 0) -> list:
    """Pieces along `axis`: of size `split_size` (the last may be smaller) or of the listed sizes.
    """
    n = a.shape[axis]
    if isinstance(split_size_or_sections, int):
        if split_size_or_sections <= 0:
            raise ValueError(f"split: split_size must be positive, got {split_size_or_sections}")
        sizes = [split_size_or_sections] * (n // split_size_or_sections)
        if n % split_size_or_sections:
            sizes.append(n % split_size_or_sections)
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise ValueError(f"split: sections {sizes} do not add up to the dim's size {n}")
    lead = (slice(None),) * (axis % a.ndim)
    out, start = [], 0
    for size in sizes:
        out.append(getitem(a, lead + (slice(start, start + size),)))
        start += size
    return out


@torch_names
def chunk(a, chunks: int, axis: int = 0) -> list:
    """`chunks` pieces along `axis` of size ceil(n / chunks) (fewer when they run out, as torch).
    """
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    return split(a, max(math.ceil(a.shape[axis] / chunks), 1), axis)


def repeat(a, *repeats) -> Tensor:
    """Tile a: repeat(x, 2, 3) on (m, n) gives (2m, 3n), as torch.Tensor.repeat / numpy.tile.

    Built as reshape (r_i, d_i pairs) -> broadcast -> reshape, so its gradient sums the tiles.
    """
    repeats = _shape_args(repeats)
    if len(repeats) < a.ndim:
        raise ValueError(f"repeat: {len(repeats)} repeats for a tensor with {a.ndim} dims")
    shape = (1,) * (len(repeats) - a.ndim) + tuple(a.shape)
    paired = reshape(a, tuple(x for n in shape for x in (1, n)))
    tiled = broadcast_to(paired, tuple(x for r, n in zip(repeats, shape) for x in (r, n)))
    return reshape(tiled, tuple(r * n for r, n in zip(repeats, shape)))


def _triangle(a, diagonal: int, lower: bool) -> Tensor:
    if a.ndim < 2:
        raise ValueError(f"{'tril' if lower else 'triu'}: needs at least 2 dims, got {a.shape}")
    data = a.data if isinstance(a, Tensor) else a
    xp = xp_of(data)
    rows, cols = a.shape[-2:]
    keep = xp.tri(rows, cols, diagonal if lower else diagonal - 1, dtype=bool)
    mask = (keep if lower else ~keep).astype(data.dtype)
    return mul(a, mask)


def tril(a, diagonal: int = 0) -> Tensor:
    """Lower triangle of the last two dims: entries with col - row <= diagonal kept, others 0."""
    return _triangle(a, diagonal, True)


def triu(a, diagonal: int = 0) -> Tensor:
    """Upper triangle of the last two dims: entries with col - row >= diagonal kept, others 0."""
    return _triangle(a, diagonal, False)
