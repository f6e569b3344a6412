"""PyTorch's argument names beside NumPy's, through one decorator (no layer below autograd).

minidl's ops take NumPy's `axis` / `keepdims` (and `start_axis`); PyTorch users write `dim` /
`keepdim` (and `start_dim`). `torch_names` lets a function accept either spelling of each pair
and rejects a call that gives both, so every function and Tensor method that takes an axis
understands both languages without per-function code.
"""

from __future__ import annotations

import functools

# PyTorch's name -> NumPy's name (the one the functions are written with)
ALIASES = {"dim": "axis", "keepdim": "keepdims", "start_dim": "start_axis"}


def torch_names(fn):
    """Decorator: map dim -> axis, keepdim -> keepdims, start_dim -> start_axis in keywords.

    Giving both names of one pair (dim=1, axis=1) raises TypeError naming them.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        for torch_name, numpy_name in ALIASES.items():
            if torch_name in kwargs:
                if numpy_name in kwargs:
                    raise TypeError(f"{fn.__name__}() got both {torch_name!r} and "
                                    f"{numpy_name!r}; they are the same argument, give one")
                kwargs[numpy_name] = kwargs.pop(torch_name)
        return fn(*args, **kwargs)

    return wrapper
