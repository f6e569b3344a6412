"""Shared fixtures: the `device` fixture runs a test on NumPy and, when a GPU is usable, CuPy.

MINIDL_DATA points at the real datasets in ../shared/data when it is not set already.
"""

import os
from pathlib import Path

import numpy as np
import pytest

from minidl import backend

_SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if "MINIDL_DATA" not in os.environ and _SHARED_DATA.is_dir():
    os.environ["MINIDL_DATA"] = str(_SHARED_DATA)


@pytest.fixture(params=["cpu", "cuda"])
def device(request):
    """'cpu', and 'cuda' when CuPy sees a GPU (skipped cleanly otherwise)."""
    if request.param == "cuda" and not backend.gpu_available():
        pytest.skip("no GPU: CuPy is not installed or sees no CUDA device")
    return request.param


@pytest.fixture
def xp(device):
    """The array module of `device`."""
    return backend.xp_for(device)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
