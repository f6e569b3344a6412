"""Per-sample transforms with torchvision's names: Compose, ToTensor, Normalize.

Normalize is exactly (x - mean) / std per channel (no eps), as minidl.data.standardize with
its default eps=0.
"""

from __future__ import annotations

import numpy as np

from minidl import backend
from minidl.autograd import Tensor
from minidl.data.mnist import scale


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x


class ToTensor:
    """An (H, W) or (H, W, C) uint8 image -> float Tensor (C, H, W) in [0, 1] (x / 255), in the
    default dtype; float images are only moved to channels-first."""

    def __call__(self, image):
        a = image.data if isinstance(image, Tensor) else np.asarray(image)
        a = a[:, :, None] if a.ndim == 2 else a
        a = a.transpose(2, 0, 1)
        if a.dtype == np.uint8:
            return Tensor(scale(a))
        return Tensor(a.astype(backend.get_default_dtype()))


class Normalize:
    """(x - mean[c]) / std[c] per channel c of a (C, H, W) Tensor."""

    def __init__(self, mean, std):
        self.mean, self.std = tuple(mean), tuple(std)
        if len(self.mean) != len(self.std) or 0 in self.std:
            raise ValueError(f"Normalize: mean {self.mean} and std {self.std} need one nonzero "
                             f"std per mean")

    def __call__(self, x):
        a = x.data if isinstance(x, Tensor) else x
        xp = backend.xp_of(a)
        mean = xp.asarray(self.mean, dtype=a.dtype).reshape(-1, 1, 1)
        std = xp.asarray(self.std, dtype=a.dtype).reshape(-1, 1, 1)
        return Tensor((a - mean) / std)
