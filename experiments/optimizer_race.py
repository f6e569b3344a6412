"""Optimizer race on small test functions: every optimizer of minidl's registry (`python -m minidl
optimizers`) minimises six functions written as minidl computations (Tensors and autograd), and
the script draws where each one went.

    python experiments/optimizer_race.py                       # everything, default steps
    python experiments/optimizer_race.py --functions rosenbrock beale --optimizers adam lbfgs
    python experiments/optimizer_race.py --gif                 # + animated GIFs (needs Pillow)
    python experiments/optimizer_race.py --smoke               # 8 optimizers, 15 steps: seconds
    python experiments/optimizer_race.py --tune --functions valley  # re-run the lr grid search

The functions (f* the minimum; the error is f - f* unless noted):
    quartic     f(x) = 4 (x^4/4 - x^3/6 - 17 x^2/8 - 15 x/8), f'(x) = 4 (x - 5/2)(x + 1/2)(x + 3/2):
                a local minimum at x = -1.5 (f = -0.5625), a bump at x = -0.5,
                the global minimum at x = 2.5 (f* = -43.2292). Start x = -3, downhill into the
                local minimum: only an optimizer that carries speed over the bump escapes.
    beale       (1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2, min (3, 0.5),
                f* = 0; start (1, 1.5): a curved, flat-bottomed valley with steep walls.
    rosenbrock  (1 - x)^2 + 100 (y - x^2)^2, min (1, 1), f* = 0; start (-1.2, 1).
    saddle      x^2 - y^2 from (0.8, 0.001), near the attracting line y = 0 of the saddle at 0:
                unbounded below, so the "error" is |y|, the distance from that line; a run
                escapes when |y| > 1 and stops when |y| > 2.
    valley      0.5 (u^2 + 100 v^2) with (u, v) = (x, y) rotated by 30 degrees
                (u = x cos30 + y sin30, v = -x sin30 + y cos30): a long narrow valley
                (condition number 100) whose axes are not the coordinate axes, so per-coordinate
                scaling cannot undo it. Min (0, 0), f* = 0; start (-4, -1).
    moons       logistic regression on 400 noisy two-moons points (numpy generator seeded 0,
                noise 0.25, features standardised), weights w in R^2 (a Dense(2, 1) layer
                without bias: the data are centred), mean cross-entropy. Minibatches of 40 in
                a seeded order shared by all optimizers (L-BFGS alone gets the full batch: its
                line search and curvature pairs assume a deterministic function); the error is
                the full-data loss minus its minimum (found by Newton's method).

The hyperparameters of every optimizer on every function are the HYPER table below: the
learning rate picked by grid search (`--tune`: factors of sqrt(10) between 1e-6 and 3.2; the
fewest steps to reach the tolerance, or to escape the saddle; the smaller lr on ties), every
other hyperparameter at its default except where the table says why.

Writes to OUT (default results/race), per function: NAME_trajectories.png (the trajectory of
every optimizer over the contour lines, one panel each; for the 1-D quartic, the iterates on
the curve), NAME_error.png (error against step, log scale), NAME.gif with --gif, NAME.csv (every
iterate: optimizer, step, coordinates, f, error); and summary.csv / summary.md (final error,
steps to reach the tolerance, status, per optimizer and function). Without matplotlib it
writes the CSVs and says so.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import minidl as md  # noqa: E402
from minidl.__main__ import make_optimizer  # noqa: E402
from minidl.nn.layers import Dense  # noqa: E402
from minidl.nn.module import Module, Parameter  # noqa: E402
from minidl.optim import OPTIMIZERS  # noqa: E402

FUNCTIONS = ("quartic", "beale", "rosenbrock", "saddle", "valley", "moons")

# ----------------------------------------------------------------------------- the table
# HYPER[optimizer][function]: keyword arguments for make_optimizer (registry presets apply
# first). The lr of every first-order optimizer comes from `--tune` (time to solution within
# the step budget, which is why Adam-like methods get lrs of 0.3-3: their steps shrink with
# the gradients); everything else is the optimizer's default except:
#  * lbfgs: one iteration per step (max_iter=1), so its trajectory has one point per
#    iteration; the strong-Wolfe line search picks the step length, at the cost of a few
#    function evaluations per step (column `evals` of summary.csv). Nothing to tune.
#  * santa-e / santa-sss: N = 1 on the deterministic functions (p.grad is the full gradient),
#    the dataset size 400 on moons (filled in by make_optimizer). C = 0.1 instead of 1000:
#    an initial friction alpha_0 = sqrt(lr) * C of 1e-3 to 1e-2, as the paper's MNIST setting
#    (C = 1000 at lr 8e-12), and far below SantaE's Euler limit 2. Exploration (thermostat
#    noise) for the first half of the default run (burnin), then refinement.
#  * adabound / amsbound: final_lr, the SGD learning rate the bounds close on, is SGD's tuned
#    lr on the function (the default 0.1 makes both diverge on Rosenbrock after ~1100 steps).
#  * adas (the C++ reference variant): input offsets need a real layer; the test functions
#    optimise a bare Parameter, so offsets=False there; moons runs the reference, offsets on.
#  * eve: f_star must be a lower bound of f: -50 on the quartic (f* = -43.2), -10 on the
#    saddle (unbounded below; a run stops at f = -4 when it has escaped), 0 elsewhere.
HYPER = {
    "sgd": dict(quartic=dict(lr=0.032), beale=dict(lr=0.032), rosenbrock=dict(lr=0.001),
                saddle=dict(lr=0.32), valley=dict(lr=0.01), moons=dict(lr=0.32)),
    "momentum": dict(quartic=dict(lr=0.01), beale=dict(lr=0.0032), rosenbrock=dict(lr=0.0032),
                     saddle=dict(lr=0.01), valley=dict(lr=0.0032), moons=dict(lr=0.032)),
    "nesterov": dict(quartic=dict(lr=0.01), beale=dict(lr=0.0032), rosenbrock=dict(lr=0.001),
                     saddle=dict(lr=0.32), valley=dict(lr=0.0032), moons=dict(lr=0.032)),
    "adagrad": dict(quartic=dict(lr=3.2), beale=dict(lr=1.0), rosenbrock=dict(lr=1.0),
                    saddle=dict(lr=0.01), valley=dict(lr=3.2), moons=dict(lr=1.0)),
    "rmsprop": dict(quartic=dict(lr=0.32), beale=dict(lr=0.01), rosenbrock=dict(lr=0.0032),
                    saddle=dict(lr=0.001), valley=dict(lr=0.032), moons=dict(lr=0.032)),
    "adadelta": dict(quartic=dict(lr=3.2), beale=dict(lr=1.0), rosenbrock=dict(lr=0.32),
                     saddle=dict(lr=0.032), valley=dict(lr=3.2), moons=dict(lr=3.2)),
    "rmspropgraves": dict(quartic=dict(lr=0.032), beale=dict(lr=0.00032),
                          rosenbrock=dict(lr=3.2e-05), saddle=dict(lr=0.0032),
                          valley=dict(lr=0.001), moons=dict(lr=0.0032)),
    "smorms3": dict(quartic=dict(lr=0.01), beale=dict(lr=0.32), rosenbrock=dict(lr=0.032),
                    saddle=dict(lr=1.0), valley=dict(lr=0.1), moons=dict(lr=0.32)),
    "adam": dict(quartic=dict(lr=1.0), beale=dict(lr=3.2), rosenbrock=dict(lr=0.1),
                 saddle=dict(lr=0.032), valley=dict(lr=1.0), moons=dict(lr=0.1)),
    "amsgrad": dict(quartic=dict(lr=1.0), beale=dict(lr=3.2), rosenbrock=dict(lr=0.32),
                    saddle=dict(lr=0.032), valley=dict(lr=1.0), moons=dict(lr=0.1)),
    "adamw": dict(quartic=dict(lr=1.0), beale=dict(lr=0.32), rosenbrock=dict(lr=0.1),
                  saddle=dict(lr=0.032), valley=dict(lr=3.2), moons=dict(lr=0.1)),
    "adamax": dict(quartic=dict(lr=3.2), beale=dict(lr=1.0), rosenbrock=dict(lr=1.0),
                   saddle=dict(lr=0.1), valley=dict(lr=3.2), moons=dict(lr=0.32)),
    "nadam": dict(quartic=dict(lr=0.1), beale=dict(lr=0.1), rosenbrock=dict(lr=0.032),
                  saddle=dict(lr=0.001), valley=dict(lr=0.32), moons=dict(lr=0.1)),
    "radam": dict(quartic=dict(lr=0.032), beale=dict(lr=0.01), rosenbrock=dict(lr=0.0032),
                  saddle=dict(lr=1.0), valley=dict(lr=0.032), moons=dict(lr=0.32)),
    "eve": dict(quartic=dict(lr=1.0, f_star=-50.0), beale=dict(lr=0.32), rosenbrock=dict(lr=0.032),
                saddle=dict(lr=0.032, f_star=-10.0), valley=dict(lr=1.0), moons=dict(lr=0.1)),
    "santa-e": dict(quartic=dict(lr=0.01, C=0.1, burnin=100),
                    beale=dict(lr=0.01, C=0.1, burnin=500),
                    rosenbrock=dict(lr=0.01, C=0.1, burnin=1000),
                    saddle=dict(lr=1e-06, C=0.1, burnin=100),
                    valley=dict(lr=0.01, C=0.1, burnin=250),
                    moons=dict(lr=1e-05, C=0.1, burnin=250)),
    "santa-sss": dict(quartic=dict(lr=0.1, C=0.1, burnin=100),
                      beale=dict(lr=0.032, C=0.1, burnin=500),
                      rosenbrock=dict(lr=0.01, C=0.1, burnin=1000),
                      saddle=dict(lr=1e-06, C=0.1, burnin=100),
                      valley=dict(lr=0.032, C=0.1, burnin=250),
                      moons=dict(lr=1e-05, C=0.1, burnin=250)),
    "adabound": dict(quartic=dict(lr=1.0, final_lr=0.032), beale=dict(lr=3.2, final_lr=0.032),
                     rosenbrock=dict(lr=1.0, final_lr=0.001), saddle=dict(lr=0.032, final_lr=0.32),
                     valley=dict(lr=1.0, final_lr=0.01), moons=dict(lr=0.1, final_lr=0.32)),
    "amsbound": dict(quartic=dict(lr=1.0, final_lr=0.032), beale=dict(lr=3.2, final_lr=0.032),
                     rosenbrock=dict(lr=1.0, final_lr=0.001), saddle=dict(lr=0.032, final_lr=0.32),
                     valley=dict(lr=1.0, final_lr=0.01), moons=dict(lr=0.1, final_lr=0.32)),
    "adashift": dict(quartic=dict(lr=1.0), beale=dict(lr=0.32), rosenbrock=dict(lr=0.032),
                     saddle=dict(lr=0.32), valley=dict(lr=0.1), moons=dict(lr=0.1)),
    "cprop-sgd": dict(quartic=dict(lr=0.032), beale=dict(lr=0.032), rosenbrock=dict(lr=0.0032),
                      saddle=dict(lr=1.0), valley=dict(lr=0.032), moons=dict(lr=0.32)),
    "cprop-adam": dict(quartic=dict(lr=0.32), beale=dict(lr=0.32), rosenbrock=dict(lr=0.32),
                       saddle=dict(lr=0.032), valley=dict(lr=1.0), moons=dict(lr=0.1)),
    "adai": dict(quartic=dict(lr=0.032), beale=dict(lr=0.01), rosenbrock=dict(lr=0.0032),
                 saddle=dict(lr=0.32), valley=dict(lr=0.032), moons=dict(lr=0.32)),
    "lbfgs": dict(quartic=dict(max_iter=1, history_size=10, line_search_fn="strong_wolfe"),
                  beale=dict(max_iter=1, history_size=10, line_search_fn="strong_wolfe"),
                  rosenbrock=dict(max_iter=1, history_size=10, line_search_fn="strong_wolfe"),
                  saddle=dict(max_iter=1, history_size=10, line_search_fn="strong_wolfe"),
                  valley=dict(max_iter=1, history_size=10, line_search_fn="strong_wolfe"),
                  moons=dict(max_iter=1, history_size=10, line_search_fn="strong_wolfe")),
    "adas": dict(quartic=dict(lr=3.2, offsets=False), beale=dict(lr=0.1, offsets=False),
                 rosenbrock=dict(lr=0.0032, offsets=False), saddle=dict(lr=0.00032, offsets=False),
                 valley=dict(lr=0.32, offsets=False), moons=dict(lr=0.032)),
    "adas-pytorch": dict(quartic=dict(lr=3.2), beale=dict(lr=0.1), rosenbrock=dict(lr=0.0032),
                         saddle=dict(lr=0.00032), valley=dict(lr=0.32), moons=dict(lr=0.032)),
}
NOT_TUNED = {"lbfgs"}   # no learning rate to search: the line search picks the step
FULL_BATCH = {"lbfgs"}  # on moons: a line search needs the same function at every trial
LR_GRID = tuple(float(f"{v:.2g}") for v in 10.0 ** np.arange(-6.0, 0.75, 0.5))  # 1e-6 .. 3.2

# families for the error plots (one panel each); names missing here go to "other"
FAMILIES = {
    "SGD, momentum and friends": ("sgd", "momentum", "nesterov", "cprop-sgd", "adai", "lbfgs",
                                  "santa-e", "santa-sss"),
    "RMS scaling": ("adagrad", "rmsprop", "rmspropgraves", "adadelta", "smorms3", "adas",
                    "adas-pytorch"),
    "Adam family": ("adam", "amsgrad", "adamw", "adamax", "nadam", "radam"),
    "Adam variants": ("eve", "adabound", "amsbound", "adashift", "cprop-adam"),
}


# ----------------------------------------------------------------------------- the functions
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


# ----------------------------------------------------------------------------- racing
@dataclass
class Run:
    """One optimizer on one function: every iterate, and how it ended."""

    optimizer: str
    function: str
    hyper: dict
    points: np.ndarray              # (steps + 1, d), the start first
    values: np.ndarray              # f at each point
    errors: np.ndarray
    status: str                     # ok | diverged at step k | escaped at step k | error...
    evals: int                      # closure calls (function + gradient evaluations)
    seconds: float

    @property
    def final(self) -> float:
        return float(self.errors[-1])


def race(name: str, function: str, hyper: dict, steps: int) -> Run:
    """Run optimizer `name` with `hyper` for `steps` steps on `function`, from its start."""
    problem = PROBLEMS[function]
    md.manual_seed(0)  # Santa draws its noise seed from minidl's generator
    module = problem.make(problem.start)
    points, status, evals = [coordinates(module)], "ok", 0
    full = name in FULL_BATCH
    start = time.perf_counter()
    try:
        opt = make_optimizer(name, module, dataset_size=problem.n, **hyper)
    except SystemExit as e:  # make_optimizer's way of rejecting hyperparameters
        opt, status = None, f"error: {e}"
    step = 0

    def closure():
        nonlocal evals
        evals += 1
        opt.zero_grad()
        loss = problem.loss(module, step, full)
        loss.backward()
        return loss

    with np.errstate(all="ignore"):
        for step in range(steps if opt is not None else 0):
            try:
                opt.step(closure)
            except Exception as e:  # an optimizer giving up (Eve on a non-finite loss, ...)
                status = f"error at step {step + 1}: {type(e).__name__}: {e}"
                break
            point = coordinates(module)
            if not np.all(np.isfinite(point)):
                status = f"diverged at step {step + 1} (non-finite)"
                break
            points.append(point)
            if np.abs(point).max() > problem.limit:
                status = f"{'escaped' if problem.escape else 'diverged'} at step {step + 1}"
                break
        points = np.array(points)
        values = problem.value(points)
        errors = problem.error(points, values)
    return Run(name, function, hyper, points, values, errors, status, evals,
               time.perf_counter() - start)


def hyperparameters(name: str, function: str) -> dict:
    """HYPER's entry, or the registry defaults (with a note) for an optimizer it lacks."""
    row = HYPER.get(name)
    if row is None or function not in row:
        print(f"note: no HYPER entry for {name} on {function}: using its defaults")
        return {}
    return dict(row[function])


def score(run: Run) -> float:
    """Lower is better: the steps taken to reach the tolerance (time to solution); a run that
    never reaches it ranks after all that do, by the median log10 error of its last tenth.
    On the saddle, the steps taken to escape with x already settled (|x| <= 0.1: an lr so
    large that x keeps bouncing does not count). A run that diverged or failed scores inf."""
    problem = PROBLEMS[run.function]
    if run.status.startswith(("diverged", "error")):
        return math.inf
    hit = problem.reached(run.errors)
    if problem.escape:
        if hit is not None and abs(run.points[hit, 0]) <= 0.1:
            return float(hit)
        return 1e6 - min(run.final, 1.0) if hit is None else 2e6
    if hit is not None:
        return float(hit)
    tail = run.errors[-max(1, len(run.errors) // 10):]
    return 1e6 + float(np.median(np.log10(np.maximum(tail, 1e-300))))


def tune(names: list, functions: list, steps: dict) -> None:
    """Grid-search the lr of every (optimizer, function) and print the HYPER table."""
    print("HYPER = {")
    for name in names:
        cells = []
        for fn in functions:
            hyper = hyperparameters(name, fn)
            if name not in NOT_TUNED:
                scores = {lr: score(race(name, fn, {**hyper, "lr": lr}, steps[fn]))
                          for lr in LR_GRID}
                best = min(scores, key=lambda lr: (scores[lr], lr))
                hyper["lr"] = best if math.isfinite(scores[best]) else hyper.get("lr")
            args = ", ".join(f"{k}={json.dumps(v) if isinstance(v, str) else repr(v)}"
                             for k, v in hyper.items())
            cells.append(f"{fn}=dict({args})")
        print(_wrap(f'    "{name}": dict(', cells, "),"), flush=True)
    print("}")


def _wrap(head: str, cells: list, tail: str, width: int = 99) -> str:
    """head + cells joined by ', ' + tail, broken into lines of at most `width` columns."""
    lines, line = [], head
    for i, cell in enumerate(cells):
        cell += tail if i == len(cells) - 1 else ","
        if len(line) + len(cell) + 1 > width and line.strip() != head.strip():
            lines.append(line.rstrip())
            line = " " * len(head) + cell
        else:
            line += ("" if line.endswith("(") else " ") + cell
    return "\n".join(lines + [line])


# ----------------------------------------------------------------------------- outputs
def write_csv(runs: list, path: Path) -> None:
    """Every iterate of every run: optimizer, step, coordinates, f, error."""
    dim = runs[0].points.shape[1]
    axes = ["x", "y"][:dim]
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["optimizer", "step", *axes, "f", "error"])
        for r in runs:
            for k, (p, f, e) in enumerate(zip(r.points, r.values, r.errors)):
                out.writerow([r.optimizer, k, *(f"{c:.17g}" for c in p), f"{f:.17g}",
                              f"{e:.17g}"])


def _cell(run: Run) -> str:
    problem = PROBLEMS[run.function]
    if run.status.startswith(("diverged", "error")):
        return run.status.split(":")[0].replace(" at step ", " @")
    hit = problem.reached(run.errors)
    if problem.escape:
        return f"escaped @{hit}" if hit is not None else f"stuck, y = {run.final:.1e}"
    return f"{run.final:.1e}" + (f" ({hit})" if hit is not None else "")


def write_summary(runs: list, out: Path) -> str:
    """summary.csv (one row per run) and summary.md (optimizers x functions); returns the
    Markdown."""
    with open(out / "summary.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["function", "optimizer", "hyperparameters", "steps", "final_error",
                    "steps_to_target", "status", "evals", "seconds", "final_point"])
        for r in runs:
            hit = PROBLEMS[r.function].reached(r.errors)
            w.writerow([r.function, r.optimizer, json.dumps(r.hyper), len(r.points) - 1,
                        f"{r.final:.6g}", "" if hit is None else hit, r.status, r.evals,
                        f"{r.seconds:.3f}", " ".join(f"{c:.6g}" for c in r.points[-1])])
    functions = list(dict.fromkeys(r.function for r in runs))
    names = list(dict.fromkeys(r.optimizer for r in runs))
    by = {(r.optimizer, r.function): r for r in runs}
    lines = ["| optimizer | " + " | ".join(functions) + " |",
             "|---|" + "---|" * len(functions)]
    for name in names:
        cells = [_cell(by[name, fn]) if (name, fn) in by else "" for fn in functions]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    notes = ["", "Final error (f - f*; |y| on the saddle) after the run; in parentheses the "
             "first step with error below the tolerance (1e-6; 1e-4 on moons); "
             "`escaped @k`: |y| > 1 at step k; `diverged @k`: left the region or non-finite."]
    if "quartic" in functions:
        esc = [n for n in names
               if (n, "quartic") in by and by[n, "quartic"].points[-1, 0] > -0.5]
        notes.append(f"Quartic: escaped the local minimum at x = -1.5 (ended right of the bump "
                     f"at x = -0.5): {', '.join(esc) if esc else 'none'}.")
    text = "\n".join(lines + notes) + "\n"
    (out / "summary.md").write_text(text)
    return text


# ----------------------------------------------------------------------------- plots
FLOOR = 1e-16  # errors below this (or exactly 0) are drawn on it: log axes have no zero


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _panels(plt, problem: Problem, runs: list, title: str):
    """One panel per optimizer: contour lines (2-D) or the curve (1-D) under its iterates.
    Returns the figure and one line per run (what an animation moves)."""
    ncols = min(6, len(runs))
    nrows = math.ceil(len(runs) / ncols)
    height = 2.3 * nrows + 0.5
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.4 * ncols, height), squeeze=False)
    fig.subplots_adjust(left=0.04, right=0.99, bottom=0.3 / height, top=1 - 0.85 / height,
                        wspace=0.25, hspace=0.6)
    if len(problem.start) == 2:
        from contourpy import contour_generator  # matplotlib's own contour tracer
        from matplotlib.collections import LineCollection
        x0, x1, y0, y1 = problem.box
        gx, gy = np.meshgrid(np.linspace(x0, x1, 160), np.linspace(y0, y1, 160))
        grid = problem.value(np.stack([gx, gy], axis=-1))
        # geometric levels above the grid's minimum (linear for the saddle, which has none
        # to speak of), between quantiles so that the steep walls do not take every line;
        # traced once and drawn in every panel
        tracer = contour_generator(gx, gy, grid)
        if problem.escape:
            levels = np.linspace(grid.min(), grid.max(), 17)[1:-1]
        else:
            low = grid.min()
            lo, hi = np.quantile(grid - low, [0.002, 0.9])
            levels = low + np.geomspace(max(lo, hi * 1e-6), hi, 16)
        contours = [seg for level in levels for seg in tracer.lines(level)]
    else:
        xs = np.linspace(*problem.box, 400)
        curve = problem.value(xs[:, None])
    lines = []
    for ax, run in zip(axes.flat, runs):
        if len(problem.start) == 2:
            ax.add_collection(LineCollection(contours, colors="0.6", linewidths=0.5))
            line, = ax.plot(run.points[:, 0], run.points[:, 1], "-", color="C3", lw=1,
                            marker=".", ms=2.5)
            ax.plot(*problem.argmin, marker="*", color="k", ms=9, ls="none")
            ax.plot(*problem.start, marker="o", color="C0", ms=4, ls="none")
            ax.set_xlim(x0, x1)
            ax.set_ylim(y0, y1)
        else:
            ax.plot(xs, curve, color="0.6", lw=1)
            line, = ax.plot(run.points[:, 0], run.values, "-", color="C3", lw=0.6, marker="o",
                            ms=2.5)
            ax.plot(problem.argmin[0], problem.f_star, marker="*", color="k", ms=9)
            ax.set_xlim(*problem.box)
            ax.set_ylim(problem.f_star - 6, curve.max() * 1.05)
        ax.set_title(f"{run.optimizer}\n{_cell(run)}", fontsize=8)
        ax.tick_params(labelsize=6)
        lines.append(line)
    for ax in list(axes.flat)[len(runs):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    return fig, lines


def plot_trajectories(plt, problem: Problem, runs: list, path: Path, dpi: int) -> None:
    fig, _ = _panels(plt, problem, runs, problem.title + "  (start: blue dot, minimum: star)")
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def write_gif(plt, problem: Problem, runs: list, path: Path, frames: int = 60) -> bool:
    """The trajectories growing step by step; False when Pillow is missing."""
    from matplotlib import animation
    if not animation.PillowWriter.isAvailable():
        return False
    fig, lines = _panels(plt, problem, runs, problem.title)
    longest = max(len(r.points) for r in runs)
    shown = np.unique(np.linspace(1, longest, min(frames, longest)).astype(int))
    one_d = len(problem.start) == 1

    def draw(k):
        for line, r in zip(lines, runs):
            if one_d:
                line.set_data(r.points[:k, 0], r.values[:k])
            else:
                line.set_data(r.points[:k, 0], r.points[:k, 1])
        return lines

    anim = animation.FuncAnimation(fig, draw, frames=shown, blit=False)
    anim.save(path, writer=animation.PillowWriter(fps=10), dpi=60)
    plt.close(fig)
    return True


def plot_errors(plt, problem: Problem, runs: list, path: Path, dpi: int) -> None:
    """Error against step on a log axis, one panel per family of optimizers."""
    placed = {n for members in FAMILIES.values() for n in members}
    groups = [(title, [r for r in runs if r.optimizer in members])
              for title, members in FAMILIES.items()]
    groups.append(("other", [r for r in runs if r.optimizer not in placed]))
    groups = [g for g in groups if g[1]]
    ncols = 2 if len(groups) > 1 else 1
    nrows = math.ceil(len(groups) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.2 * ncols, 3.6 * nrows), squeeze=False,
                             sharey=True)
    ylabel = "|y| (distance from y = 0)" if problem.escape else "f - f*"
    for ax, (title, group) in zip(axes.flat, groups):
        for r in group:
            ax.plot(np.maximum(r.errors, FLOOR), lw=1.2, label=r.optimizer)
            if r.status.startswith(("diverged", "error")):
                ax.plot(len(r.errors) - 1, max(r.errors[-1], FLOOR), "kx")
        if problem.escape:
            ax.axhline(1.0, color="0.5", ls="--", lw=0.8)
        ax.set_yscale("log")
        # a diverging run must not squash the others: clip far above the starting error
        ax.set_ylim(top=10.0 if problem.escape else 1e3 * max(r.errors[0] for r in runs))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7, loc="best", ncol=2)
    for ax in list(axes.flat)[len(groups):]:
        ax.axis("off")
    fig.suptitle(problem.title + ("" if problem.escape else
                                  f"  (errors below {FLOOR:g} drawn at {FLOOR:g}; x: stopped)"),
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


# ----------------------------------------------------------------------------- main
SMOKE_STEPS = 15
# --smoke: one optimizer for each way of being called: plain, momentum, Adam-like, the loss
# (Eve), N and noise (Santa), a closure (L-BFGS), a layer (ADAS on moons), a wrapper (CProp)
SMOKE_OPTIMIZERS = ("sgd", "momentum", "adam", "eve", "santa-sss", "lbfgs", "adas",
                    "cprop-adam")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=None,
                    help="steps per run (default: per function, e.g. 2000 on rosenbrock)")
    ap.add_argument("--functions", nargs="+", default=list(FUNCTIONS), choices=FUNCTIONS)
    ap.add_argument("--optimizers", nargs="+", default=None,
                    help="registry names (default: all of `python -m minidl optimizers`)")
    ap.add_argument("--out", default="results/race")
    ap.add_argument("--smoke", action="store_true",
                    help=f"{SMOKE_STEPS} steps per run, {len(SMOKE_OPTIMIZERS)} optimizers, small "
                    "figures: a quick check")
    ap.add_argument("--gif", action="store_true", help="also write animated GIFs (Pillow)")
    ap.add_argument("--tune", action="store_true",
                    help="grid-search the learning rates and print the HYPER table")
    ap.add_argument("--dpi", type=int, default=None, help="figure resolution (default 110)")
    args = ap.parse_args(argv)
    names = args.optimizers or list(SMOKE_OPTIMIZERS if args.smoke else OPTIMIZERS)
    unknown = [n for n in names if n not in OPTIMIZERS]
    if unknown:
        ap.error(f"unknown optimizers {unknown}; valid: {', '.join(OPTIMIZERS)}")
    if args.steps is not None and args.steps < 1:
        ap.error("--steps must be positive")
    steps = {fn: args.steps or (SMOKE_STEPS if args.smoke else PROBLEMS[fn].steps)
             for fn in args.functions}
    if args.tune:
        tune(names, args.functions, steps)
        return 0
    dpi = args.dpi or (50 if args.smoke else 110)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plt = _pyplot()
    if plt is None:
        print("matplotlib is not installed: writing the CSVs only "
              "(pip install matplotlib for the figures)")
    runs = []
    for fn in args.functions:
        start = time.perf_counter()
        problem = PROBLEMS[fn]
        fn_runs = [race(n, fn, hyperparameters(n, fn), steps[fn]) for n in names]
        write_csv(fn_runs, out / f"{fn}.csv")
        wrote = [f"{fn}.csv"]
        if plt is not None:
            plot_trajectories(plt, problem, fn_runs, out / f"{fn}_trajectories.png", dpi)
            plot_errors(plt, problem, fn_runs, out / f"{fn}_error.png", dpi)
            wrote += [f"{fn}_trajectories.png", f"{fn}_error.png"]
            if args.gif:
                if write_gif(plt, problem, fn_runs, out / f"{fn}.gif"):
                    wrote.append(f"{fn}.gif")
                else:
                    print("no GIF: Pillow is not installed (pip install pillow)")
        for r in fn_runs:
            if r.status.startswith("error"):
                print(f"  {r.optimizer} on {fn}: {r.status}")
        print(f"{fn:<10} {len(names)} optimizers x {steps[fn]} steps "
              f"({time.perf_counter() - start:.1f} s): {', '.join(wrote)}", flush=True)
        runs += fn_runs
    print()
    print(write_summary(runs, out))
    print(f"wrote {out}/summary.md and summary.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
