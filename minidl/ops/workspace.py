"""Scratch arrays that live from one training step to the next.

A training loop repeats the same shapes every step, so an op that needs a large scratch array
(the im2col columns of a convolution: 42 MB for the second layer of PyTorch's MNIST example
at batch 64) can use the one it used last step instead of asking for a new one. On the CPU
this matters for arrays over glibc's mmap threshold (at most 32 MiB): each such request
maps fresh pages from the kernel, and touching them costs about as much as the copy that
fills them. CuPy's memory pool already reuses device memory; the pool does no harm there.

    buf = WORKSPACE.take(xp, shape, dtype)   # uninitialised: write every element
    ...                                      # keep it while a graph node needs it
    WORKSPACE.give(buf)                      # nobody else may hold it or a view of it

An op holds its buffer in its graph node and gives it back from `Function.release`, which
autograd calls once the node's backward has run and the graph is freed. A buffer whose node
is never freed (retain_graph=True, a graph that is dropped without backward) is simply
collected with the node; the pool hands out a new one then.
"""

from __future__ import annotations

import numpy as np

from minidl.backend import xp_of


class Workspace:
    """Free arrays keyed by (array module, dtype, shape), at most `per_key` of each."""

    def __init__(self, per_key: int = 2):
        self.per_key = per_key
        self._free: dict[tuple, list] = {}

    def take(self, xp, shape, dtype):
        """An array of this shape and dtype: a free one if there is one, else a new one."""
        free = self._free.get((xp.__name__, np.dtype(dtype), tuple(shape)))
        return free.pop() if free else xp.empty(shape, dtype=dtype)

    def give(self, array) -> None:
        """Return `array` to the pool (dropped when its key already holds `per_key`)."""
        key = (xp_of(array).__name__, array.dtype, array.shape)
        if key not in self._free and len(self._free) >= 64:
            self._free.clear()  # shapes that keep changing: start over rather than grow
        free = self._free.setdefault(key, [])
        if len(free) < self.per_key and all(a is not array for a in free):
            free.append(array)

    def clear(self) -> None:
        """Drop every free array (their memory goes back to the allocator)."""
        self._free.clear()


WORKSPACE = Workspace()
