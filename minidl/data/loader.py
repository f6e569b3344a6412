"""DataLoader: mini-batches of in-memory arrays or of any dataset object, as Tensors,
reproducibly shuffled (data layer)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from minidl import backend
from minidl.autograd import Tensor
from minidl.backend import to_device


def _as_array(a, name: str):
    """A backend array from an array, a Tensor or an array-like, with at least one dimension."""
    if isinstance(a, Tensor):
        a = a.data
    elif not hasattr(a, "shape"):
        a = np.asarray(a)
    if a.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension (the samples), got a scalar")
    return a


class TensorDataset:
    """Arrays sharing their first dimension as a dataset: item i is (a[i], b[i], ...)."""

    def __init__(self, *arrays):
        if not arrays or len({len(a) for a in arrays}) != 1:
            raise ValueError("TensorDataset needs arrays with the same first dimension")
        self.arrays = arrays

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, i):
        items = tuple(a[i] for a in self.arrays)
        return items if len(items) > 1 else items[0]


def _is_dataset(x) -> bool:
    """An object indexed sample by sample (torch's map-style dataset), not an array."""
    return (not hasattr(x, "shape") and not isinstance(x, (list, tuple))
            and hasattr(x, "__getitem__") and hasattr(x, "__len__"))


def _collate(samples, device: str, dtype):
    """Stack a list of samples (arrays, Tensors, numbers, or tuples of them) into Tensors."""
    first = samples[0]
    if isinstance(first, tuple):
        return tuple(_collate([s[k] for s in samples], device, dtype if k == 0 else None)
                     for k in range(len(first)))
    arrays = [s.data if isinstance(s, Tensor) else s for s in samples]
    xp = backend.xp_of(arrays[0]) if hasattr(arrays[0], "shape") else np
    batch = to_device(xp.stack([xp.asarray(a) for a in arrays]), device)
    return Tensor(batch if dtype is None else batch.astype(dtype, copy=False))


class DataLoader:
    """Iterate over (x, y) in mini-batches, yielding `(Tensor(xb), Tensor(yb))`.

    DataLoader(x, y=None, batch_size=32, shuffle=False, seed=None, drop_last=False,
               device='cpu', dtype=None, num_workers=0, pin_memory=False)

    x, y: NumPy or CuPy arrays (or array-likes) with the same first dimension N; y may be None,
          then iteration yields `Tensor(xb)` alone.
       Or x is a dataset: any object with `__len__` and `__getitem__` (as torch's map-style
          datasets, e.g. minidl.data.datasets.MNIST), y None. Each batch is then read sample by
          sample and stacked (field by field when samples are tuples), so transforms run per
          sample, as in PyTorch; arrays are faster (moved to the device once, sliced per batch).
    `dataset` is x (arrays: a TensorDataset of x and y), so len(loader.dataset) is N.
    batch_size: samples per batch; the last batch is smaller unless `drop_last` drops it.
    shuffle: visit samples in a new order each epoch. The order of epoch e is
             `np.random.default_rng([seed, e]).permutation(N)`, computed on the CPU, so CPU
             and GPU runs see the same batches and any epoch's order can be recomputed.
    seed: the shuffling seed; None (the default) draws one from minidl's global generator, so
          minidl.manual_seed(s) fixes the order as torch.manual_seed does.
    num_workers: accepted for PyTorch code; samples are always read in this process.
    pin_memory: accepted and ignored: page-locked host buffers would speed up CUDA copies,
          and arrays given to the loader are moved to the device once anyway.
    device: 'cpu' or 'cuda'. x and y are moved there once, at construction, not per batch.
    dtype: when given, x is cast to it once at construction (cast, not scaled: see `scale`).

    `epoch` counts the full passes made so far (0 at first); it is incremented when a pass
    ends, not when iteration is abandoned midway. Set it, or use `load_state_dict`, to resume:
    the next pass then has the order that epoch had in the original run. Resuming in the
    middle of an epoch is not supported: a resumed run restarts the interrupted epoch.

    `len(loader)` is the number of batches per epoch. Without shuffling, batches are slices
    (views, no copies); with it, each batch is gathered with a slice of the permutation.
    """

    def __init__(
        self,
        x,
        y=None,
        batch_size: int = 32,
        shuffle: bool = False,
        seed: int | None = None,
        drop_last: bool = False,
        device: str = "cpu",
        dtype=None,
        num_workers: int = 0,
        pin_memory: bool = False,
    ):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size}")
        if seed is None:
            seed = (backend.get_rng().randbits() >> 1) if shuffle else 0
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers must be a non-negative int, got {num_workers!r}")
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.device = device
        self.dtype = dtype
        self.epoch = 0
        if _is_dataset(x):
            if y is not None:
                raise ValueError("DataLoader: give a dataset alone (y=None); its items hold "
                                 "the targets")
            self.dataset, self.x, self.y = x, None, None
            return
        x, y = _as_array(x, "x"), None if y is None else _as_array(y, "y")
        if y is not None and x.shape[0] != y.shape[0]:
            raise ValueError(
                f"x and y must have the same first dimension: x has {x.shape[0]} samples "
                f"(shape {x.shape}), y has {y.shape[0]} (shape {y.shape})"
            )
        # Once here, not per batch: a host-to-device copy per batch would dominate a GPU step.
        self.x = to_device(x, device)
        if dtype is not None:
            self.x = self.x.astype(dtype, copy=False)
        self.y = None if y is None else to_device(y, device)
        self.dataset = TensorDataset(self.x) if y is None else TensorDataset(self.x, self.y)

    @property
    def num_samples(self) -> int:
        """N, the number of samples."""
        return len(self.dataset)

    def __len__(self) -> int:
        n, b = self.num_samples, self.batch_size
        return n // b if self.drop_last else math.ceil(n / b)

    def permutation(self, epoch: int | None = None) -> np.ndarray:
        """The sample order of `epoch` (default: the next pass) as a NumPy array."""
        epoch = self.epoch if epoch is None else epoch
        if not self.shuffle:
            return np.arange(self.num_samples)
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_samples)

    def __iter__(self) -> Iterator:
        x, y, b = self.x, self.y, self.batch_size
        stop = len(self) * b
        if x is None:  # a dataset: read and stack sample by sample
            order = self.permutation()
            for start in range(0, stop, b):
                samples = [self.dataset[int(i)] for i in order[start : start + b]]
                yield _collate(samples, self.device, self.dtype)
        elif self.shuffle:
            # One host-to-device copy of the order per epoch; its slices index on the device.
            order = to_device(self.permutation(), self.device)
            for start in range(0, stop, b):
                index = order[start : start + b]
                yield Tensor(x[index]) if y is None else (Tensor(x[index]), Tensor(y[index]))
        else:
            for start in range(0, stop, b):
                s = slice(start, start + b)
                yield Tensor(x[s]) if y is None else (Tensor(x[s]), Tensor(y[s]))
        self.epoch += 1

    def state_dict(self) -> dict:
        """{'epoch': ..., 'seed': ...}: what a checkpoint needs to resume the batch order."""
        return {"epoch": self.epoch, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        """Restore `epoch` and `seed` from `state_dict()`."""
        self.epoch = int(state["epoch"])
        self.seed = int(state["seed"])

    def __repr__(self) -> str:
        return (
            f"DataLoader(num_samples={self.num_samples}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last}, "
            f"device={self.device!r}, epoch={self.epoch})"
        )
