"""The figures of experiments/optimizer_race.py: trajectories over contour lines (one panel per
optimizer), error against step on a log axis (one panel per family), and the animated GIF.
Each function takes the race's `Run`s (points, values, errors, status, `cell()`) and the
`Problem` they ran on (race_functions.py).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from race_functions import Problem

# families for the error plots (one panel each); names missing here go to "other"
FAMILIES = {
    "SGD, momentum and friends": ("sgd", "momentum", "nesterov", "cprop-sgd", "adai", "lbfgs",
                                  "santa-e", "santa-sss"),
    "RMS scaling": ("adagrad", "rmsprop", "rmspropgraves", "adadelta", "smorms3", "adas",
                    "adas-pytorch"),
    "Adam family": ("adam", "amsgrad", "adamw", "adamax", "nadam", "radam"),
    "Adam variants": ("eve", "adabound", "amsbound", "adashift", "cprop-adam"),
}
FLOOR = 1e-16  # errors below this (or exactly 0) are drawn on it: log axes have no zero


def pyplot():
    """matplotlib.pyplot on the Agg backend, or None when matplotlib is not installed."""
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
        ax.set_title(f"{run.optimizer}\n{run.cell()}", fontsize=8)
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
