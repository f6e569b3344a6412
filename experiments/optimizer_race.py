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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # minidl, and race_functions beside this file

import minidl as md  # noqa: E402
from minidl.optim import OPTIMIZERS, create  # noqa: E402
from race_functions import MOONS_X, MOONS_Y, PROBLEMS, Problem, coordinates  # noqa: E402,F401
from race_plots import plot_errors, plot_trajectories, pyplot, write_gif  # noqa: E402

FUNCTIONS = ("quartic", "beale", "rosenbrock", "saddle", "valley", "moons")

# ----------------------------------------------------------------------------- the table
# HYPER[optimizer][function]: keyword arguments for optim.create (registry presets apply
# first). The lr of every first-order optimizer comes from `--tune` (time to solution within
# the step budget, which is why Adam-like methods get lrs of 0.3-3: their steps shrink with
# the gradients); everything else is the optimizer's default except:
#  * lbfgs: one iteration per step (max_iter=1), so its trajectory has one point per
#    iteration; the strong-Wolfe line search picks the step length, at the cost of a few
#    function evaluations per step (column `evals` of summary.csv). max_eval=26 leaves the
#    search 25 trials (as torch, it only gets what max_eval leaves). Nothing to tune.
#  * santa-e / santa-sss: N = 1 on the deterministic functions (p.grad is the full gradient),
#    the dataset size 400 on moons (filled in by optim.create). C = 0.1 instead of 1000:
#    an initial friction alpha_0 = sqrt(lr) * C of 1e-3 to 1e-2, as the paper's MNIST setting
#    (C = 1000 at lr 8e-12), and far below SantaE's Euler limit 2. Exploration (thermostat
#    noise) for the first half of the default run (burnin), then refinement.
#  * adabound / amsbound: final_lr, the SGD learning rate the bounds close on, is SGD's tuned
#    lr on the function (the default 0.1 makes both diverge on Rosenbrock after ~1100 steps).
#  * adas (the C++ reference variant): input offsets need a layer with a bias (the test
#    functions optimise a bare Parameter, moons a bias-free Dense on centred data), so
#    offsets=False everywhere. ADAS's tuned value is its initial step size init_lr (its lr is
#    a live scale of the learned step sizes, 1 by default).
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
    "lbfgs": dict(quartic=dict(max_iter=1, max_eval=26, history_size=10,
                                 line_search_fn="strong_wolfe"),
                  beale=dict(max_iter=1, max_eval=26, history_size=10,
                                 line_search_fn="strong_wolfe"),
                  rosenbrock=dict(max_iter=1, max_eval=26, history_size=10,
                                 line_search_fn="strong_wolfe"),
                  saddle=dict(max_iter=1, max_eval=26, history_size=10,
                                 line_search_fn="strong_wolfe"),
                  valley=dict(max_iter=1, max_eval=26, history_size=10,
                                 line_search_fn="strong_wolfe"),
                  moons=dict(max_iter=1, max_eval=26, history_size=10,
                                 line_search_fn="strong_wolfe")),
    "adas": dict(quartic=dict(init_lr=3.2, offsets=False), beale=dict(init_lr=0.1, offsets=False),
                 rosenbrock=dict(init_lr=0.0032, offsets=False),
                 saddle=dict(init_lr=0.00032, offsets=False),
                 valley=dict(init_lr=0.32, offsets=False),
                 moons=dict(init_lr=0.032, offsets=False)),
    "adas-pytorch": dict(quartic=dict(init_lr=3.2), beale=dict(init_lr=0.1),
                         rosenbrock=dict(init_lr=0.0032), saddle=dict(init_lr=0.00032),
                         valley=dict(init_lr=0.32), moons=dict(init_lr=0.032)),
}
NOT_TUNED = {"lbfgs"}   # no learning rate to search: the line search picks the step
FULL_BATCH = {"lbfgs"}  # on moons: a line search needs the same function at every trial
LR_GRID = tuple(float(f"{v:.2g}") for v in 10.0 ** np.arange(-6.0, 0.75, 0.5))  # 1e-6 .. 3.2


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

    def cell(self) -> str:
        """How the run ended, for a table cell or a panel title: the final error and the step
        it reached the tolerance, `escaped @k`, or `diverged @k`."""
        problem = PROBLEMS[self.function]
        if self.status.startswith(("diverged", "error")):
            return self.status.split(":")[0].replace(" at step ", " @")
        hit = problem.reached(self.errors)
        if problem.escape:
            return f"escaped @{hit}" if hit is not None else f"stuck, y = {self.final:.1e}"
        return f"{self.final:.1e}" + (f" ({hit})" if hit is not None else "")


def race(name: str, function: str, hyper: dict, steps: int) -> Run:
    """Run optimizer `name` with `hyper` for `steps` steps on `function`, from its start."""
    problem = PROBLEMS[function]
    md.manual_seed(0)  # Santa draws its noise seed from minidl's generator
    module = problem.make(problem.start)
    points, status, evals = [coordinates(module)], "ok", 0
    full = name in FULL_BATCH
    start = time.perf_counter()
    try:
        opt = create(name, module, dataset_size=problem.n, **hyper)
    except (ValueError, TypeError) as e:  # hyperparameters the optimizer rejects
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


def tune(names: list, functions: list, steps: dict, progress: bool = True) -> None:
    """Grid-search the lr of every (optimizer, function) and print the HYPER table."""
    print("HYPER = {")
    for name in tqdm(names, desc="tuning", unit="optimizer", disable=not progress):
        cells = []
        for fn in functions:
            hyper = hyperparameters(name, fn)
            if name not in NOT_TUNED:
                key = "init_lr" if name.startswith("adas") else "lr"  # see HYPER's notes
                scores = {lr: score(race(name, fn, {**hyper, key: lr}, steps[fn]))
                          for lr in LR_GRID}
                best = min(scores, key=lambda lr: (scores[lr], lr))
                hyper[key] = best if math.isfinite(scores[best]) else hyper.get(key)
            args = ", ".join(f"{k}={json.dumps(v) if isinstance(v, str) else repr(v)}"
                             for k, v in hyper.items())
            cells.append(f"{fn}=dict({args})")
        tqdm.write(_wrap(f'    "{name}": dict(', cells, "),"))
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
        cells = [by[name, fn].cell() if (name, fn) in by else "" for fn in functions]
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
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
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
        tune(names, args.functions, steps, progress=not args.no_progress)
        return 0
    dpi = args.dpi or (50 if args.smoke else 110)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plt = pyplot()
    if plt is None:
        print("matplotlib is not installed: writing the CSVs only "
              "(pip install matplotlib for the figures)")
    runs = []
    for fn in args.functions:
        start = time.perf_counter()
        problem = PROBLEMS[fn]
        fn_runs = [race(n, fn, hyperparameters(n, fn), steps[fn])
                   for n in tqdm(names, desc=fn, unit="optimizer", leave=False,
                                 disable=args.no_progress)]
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
