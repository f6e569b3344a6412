"""CPU thread control for the BLAS/OpenMP pools NumPy uses (torch.set_num_threads' role).

Through threadpoolctl, which finds the pools actually loaded (OpenBLAS, MKL, BLIS, OpenMP)
and changes their sizes at run time, so this works after NumPy is imported (environment
variables such as OMP_NUM_THREADS only count before).
"""

from __future__ import annotations

import threadpoolctl

_limiter = None  # the active limit; kept referenced so it is not undone


def set_num_threads(n: int) -> None:
    """Use at most n threads in every BLAS/OpenMP pool of this process from now on."""
    global _limiter
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive int, got {n!r}")
    _limiter = threadpoolctl.threadpool_limits(limits=n)


def get_num_threads() -> int:
    """The largest thread count among the loaded BLAS/OpenMP pools (1 when none is loaded)."""
    return max((pool["num_threads"] for pool in threadpoolctl.threadpool_info()), default=1)
