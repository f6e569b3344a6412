"""Shared fixtures: the `device` fixture runs a test on NumPy and on the 'cuda' backend.

'cuda' is CuPy on a real GPU when one is usable. Without one, it is the strict CuPy stand-in
(tests/cupy_standin): NumPy behind CuPy's API and rules, so the GPU code path runs in CI on
every change. Opt out with `pytest --no-cupy-standin` or MINIDL_TEST_CUPY=off (the 'cuda'
tests then skip, as without the stand-in). Tests that only a real GPU can check use the
`skip_on_standin(reason)` from this module.

MINIDL_DATA points at the real datasets in ../shared/data when it is not set already.
"""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from minidl import backend

_SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if "MINIDL_DATA" not in os.environ and _SHARED_DATA.is_dir():
    os.environ["MINIDL_DATA"] = str(_SHARED_DATA)

# which backend serves 'cuda' in this run: "gpu" (real CuPy), "standin" or None (skip)
CUDA = {"mode": None}


def pytest_addoption(parser):
    parser.addoption("--no-cupy-standin", action="store_true",
                     help="without a GPU, skip the 'cuda' tests instead of running them on "
                          "the CuPy stand-in (also: MINIDL_TEST_CUPY=off)")


def pytest_configure(config):
    if backend.gpu_available():
        CUDA["mode"] = "gpu"
    elif not (config.getoption("--no-cupy-standin")
              or os.environ.get("MINIDL_TEST_CUPY", "").lower() == "off"):
        from tests import cupy_standin

        cupy_standin.install()
        CUDA["mode"] = "standin"


def on_standin() -> bool:
    """Whether 'cuda' is the CuPy stand-in in this run."""
    return CUDA["mode"] == "standin"


def skip_on_standin(reason: str):
    """Skip a 'cuda' test that only a real GPU can check (timing, CuPy's own random streams)."""
    if on_standin():
        pytest.skip(f"needs a real GPU, not the CuPy stand-in: {reason}")


def cupyx_module():
    """cupyx of the backend serving 'cuda' (allow_synchronize, DeviceSynchronized)."""
    if on_standin():
        from tests import cupy_standin

        return cupy_standin.cupyx
    import cupyx

    return cupyx


def minidl_command() -> list:
    """The command line that runs `python -m minidl` with the current 'cuda' backend: under
    the stand-in, a launcher that installs it first (tests/cupy_standin/__main__.py)."""
    module = "tests.cupy_standin" if on_standin() else "minidl"
    return [sys.executable, "-m", module]


@pytest.fixture(params=["cpu", "cuda"])
def device(request):
    """'cpu', and 'cuda' (a real GPU, else the CuPy stand-in; skipped when opted out)."""
    if request.param == "cuda" and CUDA["mode"] is None:
        pytest.skip("no GPU (CuPy not installed or sees no CUDA device) and the CuPy stand-in "
                    "is switched off")
    return request.param


@pytest.fixture
def xp(device):
    """The array module of `device`."""
    return backend.xp_for(device)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
