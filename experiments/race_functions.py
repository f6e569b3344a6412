"""The test functions of experiments/optimizer_race.py, each written twice: as a minidl
computation (what the optimizers see, through autograd) and as plain NumPy (exact values for the
contour plots and for every iterate). tests/test_teach.py checks that the two agree, values and
gradients. The functions and their minima are listed in optimizer_race.py's docstring.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import minidl as md  # noqa: E402
from minidl.nn.layers import Dense  # noqa: E402
from minidl.nn.module import Module, Parameter  # noqa: E402


class Point(Module):
    """The coordinates being optimised: one Parameter of shape (d,), owned by a module that is
    not a layer (so it cannot take ADAS's input offsets)."""

    def __init__(self, start):
        super().__init__()
        self.w = Parameter(np.array(start, dtype=np.float64))

    def forward(self):
        return self.w


def coordinates(module: Module) -> np.ndarray:
    """The optimised values as one flat float64 vector (x, or (x, y))."""
    return np.concatenate([md.backend.to_numpy(p.data).ravel() for p in module.parameters()])


def _quartic(m, step, full):
    x = m()
    return (4 * (x**4 / 4 - x**3 / 6 - 17 * x**2 / 8 - 15 * x / 8)).sum()


def _quartic_np(p):
    x = p[..., 0]
    return x**4 - 2 * x**3 / 3 - 17 * x**2 / 2 - 15 * x / 2


def _beale(m, step, full):
    w = m()
    x, y = w[0], w[1]
    xy = x * y
    return (1.5 - x + xy) ** 2 + (2.25 - x + xy * y) ** 2 + (2.625 - x + xy * y * y) ** 2


def _beale_np(p):
    x, y = p[..., 0], p[..., 1]
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def _rosenbrock(m, step, full):
    w = m()
    x, y = w[0], w[1]
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


def _rosenbrock_np(p):
    x, y = p[..., 0], p[..., 1]
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


def _saddle(m, step, full):
    w = m()
    x, y = w[0], w[1]
    return x * x - y * y


def _saddle_np(p):
    return p[..., 0] ** 2 - p[..., 1] ** 2


_COS, _SIN = math.cos(math.pi / 6), math.sin(math.pi / 6)


def _valley(m, step, full):
    w = m()
    x, y = w[0], w[1]
    u = _COS * x + _SIN * y
    v = _COS * y - _SIN * x
    return 0.5 * (u * u + 100 * v * v)


def _valley_np(p):
    x, y = p[..., 0], p[..., 1]
    u, v = _COS * x + _SIN * y, _COS * y - _SIN * x
    return 0.5 * (u * u + 100 * v * v)


def two_moons(n: int = 400, noise: float = 0.25, seed: int = 0):
    """n noisy two-moons points (half per class) from a seeded generator, standardised
    features (float64, (n, 2)) and labels 0/1 (int64)."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.0, math.pi, n)
    upper = np.arange(n) < n // 2
    x = np.where(upper[:, None], np.c_[np.cos(t), np.sin(t)],
                 np.c_[1 - np.cos(t), 0.5 - np.sin(t)])
    x = x + noise * rng.standard_normal(x.shape)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    return x, (~upper).astype(np.int64)


MOONS_X, MOONS_Y = two_moons()
MOONS_BATCH = 40


def _moons_batch(step: int) -> np.ndarray:
    """Indices of minibatch `step`: epoch e visits default_rng([0, e]).permutation(n), as
    minidl's DataLoader orders its epochs."""
    per_epoch = len(MOONS_Y) // MOONS_BATCH
    epoch, pos = divmod(step, per_epoch)
    order = np.random.default_rng([0, epoch]).permutation(len(MOONS_Y))
    return order[pos * MOONS_BATCH:(pos + 1) * MOONS_BATCH]


def _moons(m, step, full):
    idx = slice(None) if full else _moons_batch(step)
    x, y = MOONS_X[idx], MOONS_Y[idx]
    z = m(md.Tensor(x))                                   # (B, 1) = x w
    logits = md.concatenate([md.zeros(len(y), 1, dtype="float64"), z], axis=1)
    return md.cross_entropy(logits, y)                    # mean of log(1 + e^z) - y z


def _moons_np(p):
    z = np.tensordot(p, MOONS_X.T, axes=1)                # (..., n)
    return np.mean(np.logaddexp(0.0, z) - MOONS_Y * z, axis=-1)


def _moons_module(start):
    layer = Dense(2, 1, bias=False, dtype="float64")
    layer.weight.data[:, 0] = start
    return layer


def _newton_moons(steps: int = 50) -> np.ndarray:
    """The minimiser of the moons loss by Newton's method (float64; the loss is convex)."""
    w = np.zeros(2)
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(MOONS_X @ w)))
        grad = MOONS_X.T @ (p - MOONS_Y) / len(p)
        hess = (MOONS_X * (p * (1 - p))[:, None]).T @ MOONS_X / len(p)
        w = w - np.linalg.solve(hess, grad)
    return w


@dataclass
class Problem:
    """A function to minimise: its minidl loss (what the optimizer sees) and its NumPy twin
    (exact values on the contour grid and at every iterate)."""

    title: str
    start: tuple
    box: tuple                      # plot region: (x0, x1) or (x0, x1, y0, y1)
    steps: int                      # default run length
    loss: Callable                  # (module, step, full_batch) -> scalar Tensor
    value: Callable                 # points (..., d) -> f
    f_star: float = 0.0
    argmin: tuple = ()
    n: int = 1                      # dataset size, Santa's N
    tol: float = 1e-6               # "reached" when the error is below this
    escape: bool = False            # error = |y|; reached when |y| > 1 (the saddle)
    limit: float = 1e3              # a run stops when a coordinate leaves [-limit, limit]
    make: Callable = field(default=Point)

    def error(self, points: np.ndarray, values: np.ndarray) -> np.ndarray:
        if self.escape:
            return np.abs(points[:, 1])
        return values - self.f_star

    def reached(self, errors: np.ndarray):
        """The step from which on the error stays below the tolerance (None if it is above
        at the end); on the saddle, the step at which |y| first exceeds 1."""
        if self.escape:
            hit = errors > 1.0
            return int(np.argmax(hit)) if hit.any() else None
        above = np.flatnonzero(errors > self.tol)
        if len(above) == 0:
            return 0
        return None if above[-1] == len(errors) - 1 else int(above[-1]) + 1


_W_MOONS = _newton_moons()
PROBLEMS = {
    "quartic": Problem("quartic 4(x^4/4 - x^3/6 - 17x^2/8 - 15x/8), from x = -3", (-3.0,),
                       (-3.5, 3.5), 200, _quartic, _quartic_np, f_star=-43.229166666666664,
                       argmin=(2.5,)),
    "beale": Problem("Beale, from (1, 1.5)", (1.0, 1.5), (-0.5, 4.0, -1.0, 2.5), 1000, _beale,
                     _beale_np, argmin=(3.0, 0.5)),
    "rosenbrock": Problem("Rosenbrock (1-x)^2 + 100(y-x^2)^2, from (-1.2, 1)", (-1.2, 1.0),
                          (-2.0, 2.0, -1.0, 3.0), 2000, _rosenbrock, _rosenbrock_np,
                          argmin=(1.0, 1.0)),
    "saddle": Problem("saddle x^2 - y^2, from (0.8, 0.001); error = |y|", (0.8, 1e-3),
                      (-1.5, 1.5, -1.5, 1.5), 200, _saddle, _saddle_np, f_star=-math.inf,
                      argmin=(0.0, 0.0), escape=True, limit=2.0),
    "valley": Problem("narrow valley 0.5(u^2 + 100v^2), rotated 30 deg, from (-4, -1)",
                      (-4.0, -1.0), (-5.0, 5.0, -5.0, 5.0), 500, _valley, _valley_np,
                      argmin=(0.0, 0.0)),
    "moons": Problem("logistic regression on noisy two moons (minibatch 40 of 400), from (-2, 2)",
                     (-2.0, 2.0), (-3.0, 4.0, -4.5, 3.0), 500, _moons, _moons_np,
                     f_star=float(_moons_np(_W_MOONS)), argmin=tuple(_W_MOONS), n=400,
                     tol=1e-4, make=_moons_module),
}
