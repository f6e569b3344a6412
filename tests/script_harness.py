"""Shared by the tests of experiments/: import a script as a module, or run it as a user does."""

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_experiment(name: str):
    """Import experiments/NAME.py as a module (experiments/ is not a package), once."""
    key = f"experiments_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, ROOT / "experiments" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules[key]


def run_experiment(script: str, *args: str) -> subprocess.CompletedProcess:
    """`python experiments/SCRIPT ARGS` from the repository root, output captured."""
    return subprocess.run([sys.executable, str(ROOT / "experiments" / script), *args],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
