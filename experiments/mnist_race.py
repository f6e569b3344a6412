"""Optimizer race on MNIST: every optimizer of minidl's registry trains the 784-256-10 ReLU MLP
for a few epochs, from the same initial weights and with the same data order (minidl.train.fit
with one seed), and one table compares them.

    python experiments/mnist_race.py                        # all optimizers, 5 epochs, batch 128
    python experiments/mnist_race.py --optimizers sgd adam adas --epochs 10
    python experiments/mnist_race.py --subset 10000         # the first 10,000 training images
    python experiments/mnist_race.py --smoke                # seconds: 2,000 images, 1 epoch

MNIST is read from $MINIDL_DATA/mnist (then datasets/mnist, then ~/.cache/minidl), e.g.
`MINIDL_DATA=/path/to/data python experiments/mnist_race.py`.

Hyperparameters are the HYPER table below: the learning rate of each optimizer chosen by a
small search (lowest training loss after 5 epochs on the first 30,000 images), everything else
the optimizer's default unless the table says why. L-BFGS is a full-batch method: here it gets
large batches (4096 images, 4 iterations with a strong-Wolfe line search per batch) and a
closure that recomputes the loss on that batch; its batches therefore differ from the others',
and its seconds per epoch include the extra function evaluations of the line search.

Writes to OUT (default results/mnist_race): mnist_race.csv (one row per optimizer and epoch:
every History field), summary.csv and summary.md (final training errors on the full training
set, count and %, test accuracy, epochs to 99 % training accuracy, seconds per epoch, the
hyperparameters) and, with matplotlib, mnist_race.png (training and test error rate per epoch,
log scale, one panel per family of optimizers).
"""

from __future__ import annotations

import argparse
import csv
import inspect
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import minidl as md  # noqa: E402
from minidl.data import DatasetNotFoundError, flatten, load_mnist, scale  # noqa: E402
from minidl.models import mlp  # noqa: E402
from minidl.optim import OPTIMIZERS, create  # noqa: E402
from minidl.train import fit  # noqa: E402

# HYPER[name]: keyword arguments for optim.create (registry presets apply first). lr: the
# lowest training loss after 5 epochs on the first 30,000 images (batch 128, seed 0) among
# four or five factors of sqrt(10) around the default. Notes:
#  * lbfgs: "batch_size" is its own training batch: 4096 images, 4 L-BFGS iterations with a
#    strong-Wolfe line search per batch, memory 10 (a full-batch method needs large, fixed
#    batches; in 2-epoch trials, batch 1024 or one iteration per batch did worse).
#  * santa-e / santa-sss: N = 60,000 (filled in by optim.create), lambd raised from 1e-8.
#    With 1e-8 the preconditioner 1 / sqrt(lambd + sqrt(v)) reaches 1e4 on the weights of
#    pixels that are almost never on, whose rare gradients then take huge steps: Santa-E
#    turned NaN at every lr from 1e-10 up, Santa-SSS reached training losses of 1.4-5.
#    Santa-E still turned NaN with lambd 1e-4 (on the full set at lr 1e-9, on 30,000 images
#    at 1e-10), hence 1e-3 for it; and even then it overflowed in epoch 1 with one BLAS
#    thread (not with two: the run is chaotic) through the exploration term
#    (eta/beta)(1 - g_{t-1}/g_t)/u_{t-1}, which divides by momenta that pass close to 0 and
#    feeds the kick to the Euler factor (1 - alpha). Santa-E runs without that term
#    (preconditioner_drift=False, as the authors' MATLAB code): 556 vs 542 training errors
#    after 5 epochs with one and two threads. Exploration (burnin 10000) covers the whole
#    race (2345 steps).
#  * adabound / amsbound: final_lr 0.1 (the default), the SGD lr the bounds close on.
#  * adas / adas-pytorch: the authors' settings (ADAS's batch_size follows the run's).
HYPER = {
    "sgd": dict(lr=1.0),
    "momentum": dict(lr=0.1),
    "nesterov": dict(lr=0.1),
    "adagrad": dict(lr=0.032),
    "rmsprop": dict(lr=1e-3),
    "adadelta": dict(lr=3.2),
    "rmspropgraves": dict(lr=1e-3),
    "smorms3": dict(lr=0.01),
    "adam": dict(lr=3.2e-3),
    "amsgrad": dict(lr=3.2e-3),
    "adamw": dict(lr=3.2e-3),
    "adamax": dict(lr=0.02),
    "nadam": dict(lr=2e-3),
    "radam": dict(lr=0.01),
    "eve": dict(lr=0.01),
    "santa-e": dict(lr=1e-9, lambd=1e-3, preconditioner_drift=False),
    "santa-sss": dict(lr=1e-8, lambd=1e-4),
    "adabound": dict(lr=0.01),
    "amsbound": dict(lr=0.01),
    "adashift": dict(lr=0.032),
    "cprop-sgd": dict(lr=1.0),
    "cprop-adam": dict(lr=0.01),
    "adai": dict(lr=0.32),
    "lbfgs": dict(batch_size=4096, max_iter=4, history_size=10, line_search_fn="strong_wolfe"),
    "adas": dict(),
    "adas-pytorch": dict(),
}

# families for the plot panels; names missing here go to "other"
FAMILIES = {
    "SGD, momentum and friends": ("sgd", "momentum", "nesterov", "cprop-sgd", "adai", "lbfgs",
                                  "santa-e", "santa-sss"),
    "RMS scaling and ADAS": ("adagrad", "rmsprop", "rmspropgraves", "adadelta", "smorms3",
                             "adas", "adas-pytorch"),
    "Adam family": ("adam", "amsgrad", "adamw", "adamax", "nadam", "radam"),
    "Adam variants": ("eve", "adabound", "amsbound", "adashift", "cprop-adam"),
}
SMOKE = dict(subset=2000, epochs=1, optimizers=["sgd", "adam", "eve", "santa-sss", "lbfgs",
                                                "adas", "cprop-adam"])


def build(name: str, model, n_train: int, batch_size: int):
    """The optimizer `name` for `model` with HYPER's settings; returns (optimizer, batch)."""
    hyper = dict(HYPER.get(name, {}))
    batch = hyper.pop("batch_size", batch_size)
    if "batch_size" in inspect.signature(OPTIMIZERS[name].factory).parameters:
        hyper["batch_size"] = batch  # ADAS: initial step sizes and decays per batch size
    # LBFGS declares `needs_closure`, so fit() hands it a closure that re-evaluates the batch
    return create(name, model, dataset_size=n_train, **hyper), batch


def run(name: str, data, epochs: int, batch_size: int, seed: int, progress: bool) -> dict:
    """Train a fresh MLP (same seed, hence same initial weights) with optimizer `name`."""
    (x, y), test = data
    md.manual_seed(seed)
    model = mlp(hidden=(256,))
    optimizer, batch = build(name, model, len(x), batch_size)
    start = time.perf_counter()
    # a diverging optimizer is a result of the race, recorded as it is, not an error
    history = fit(model, optimizer, (x, y), epochs, test=test, batch_size=batch, seed=seed,
                  progress=progress, on_nonfinite="ignore")
    wall = time.perf_counter() - start
    return {"name": name, "batch_size": batch, "history": history.records, "wall": wall,
            "hyper": dict(HYPER.get(name, {}))}


def summary_row(result: dict, n_train: int) -> dict:
    """The table's numbers for one optimizer."""
    records = result["history"]
    last = records[-1]
    to99 = next((r["epoch"] for r in records if r["train_acc"] >= 0.99), None)
    return {
        "optimizer": result["name"],
        "train_errors": last["train_errors"],
        "train_error_pct": 100.0 * last["train_errors"] / n_train,
        "train_loss": last["train_loss"],
        "test_acc_pct": 100.0 * last["test_acc"],
        "epochs_to_99": to99,
        "s_per_epoch": statistics.median(r["time"] for r in records),
        "batch_size": result["batch_size"],
        "hyperparameters": json.dumps(result["hyper"]),
    }


def write_tables(rows: list, out: Path, n_train: int, header: str) -> str:
    """summary.csv and summary.md (a Markdown table under `header`); returns the Markdown."""
    with open(out / "summary.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = [header, "",
             f"| optimizer | train errors (of {n_train:,}) | train error % | train loss | "
             "test accuracy % | epochs to 99 % train | s / epoch | hyperparameters |",
             "|---|---:|---:|---:|---:|:---:|---:|---|"]
    for r in rows:
        hyper = ", ".join(f"{k}={v}" for k, v in json.loads(r["hyperparameters"]).items())
        to99 = "—" if r["epochs_to_99"] is None else r["epochs_to_99"]
        lines.append(f"| {r['optimizer']} | {r['train_errors']} | {r['train_error_pct']:.2f} | "
                     f"{r['train_loss']:.4f} | {r['test_acc_pct']:.2f} | {to99} | "
                     f"{r['s_per_epoch']:.2f} | {hyper or 'defaults'} |")
    text = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(text)
    return text


def plot(results: list, n_train: int, n_test: int, path: Path) -> bool:
    """Training (solid) and test (dashed) error rate per epoch, log scale, one panel per
    family; False without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return False
    placed = {n for members in FAMILIES.values() for n in members}
    groups = [(title, [r for r in results if r["name"] in members])
              for title, members in FAMILIES.items()]
    groups.append(("other", [r for r in results if r["name"] not in placed]))
    groups = [g for g in groups if g[1]]
    ncols = 2 if len(groups) > 1 else 1
    nrows = -(-len(groups) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.4 * ncols, 3.8 * nrows), squeeze=False,
                             sharey=True)
    floor = 0.5 / n_train  # zero training errors are drawn half an error below one error
    for ax, (title, group) in zip(axes.flat, groups):
        for i, r in enumerate(group):
            epochs = [h["epoch"] for h in r["history"]]
            train = [max(h["train_errors"] / n_train, floor) for h in r["history"]]
            test = [max(h["test_errors"] / n_test, floor) for h in r["history"]]
            line, = ax.plot(epochs, train, marker="o", ms=3, lw=1.3, label=r["name"],
                            color=f"C{i}")
            ax.plot(epochs, test, ls="--", lw=1, color=line.get_color())
        ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("error rate")
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=7, loc="upper right", ncol=2)
    for ax in list(axes.flat)[len(groups):]:
        ax.axis("off")
    fig.suptitle("MNIST MLP 784-256-10: training error (solid, full training set) and test "
                 "error (dashed)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--optimizers", nargs="+", default=None,
                    help="registry names (default: all of `python -m minidl optimizers`)")
    ap.add_argument("--subset", type=int, default=0, help="train on the first N images only")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads (threadpoolctl)")
    ap.add_argument("--smoke", action="store_true",
                    help="2,000 images, 1 epoch, a few optimizers: a quick check")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--out", default="results/mnist_race")
    args = ap.parse_args(argv)
    if args.smoke:
        args.subset = args.subset or SMOKE["subset"]
        args.epochs = SMOKE["epochs"]
        args.optimizers = args.optimizers or SMOKE["optimizers"]
    names = args.optimizers or list(OPTIMIZERS)
    unknown = [n for n in names if n not in OPTIMIZERS]
    if unknown:
        ap.error(f"unknown optimizers {unknown}; valid: {', '.join(OPTIMIZERS)}")
    if args.epochs < 1 or args.batch_size < 1 or args.subset < 0:
        ap.error("--epochs and --batch-size must be positive, --subset >= 0")
    if args.threads:
        md.set_num_threads(args.threads)
    try:
        (x, y), (x_test, y_test) = load_mnist()
    except DatasetNotFoundError as e:
        print(f"{e}\nSet MINIDL_DATA to the folder that holds mnist/, e.g. "
              "MINIDL_DATA=/path/to/data python experiments/mnist_race.py",
              file=sys.stderr)
        return 2
    x, x_test = flatten(scale(x)), flatten(scale(x_test))
    if args.subset:
        x, y = x[:args.subset], y[:args.subset]
    data = ((x, y), (x_test, y_test))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    results = []
    for name in names:
        print(f"--- {name}", flush=True)
        result = run(name, data, args.epochs, args.batch_size, args.seed,
                     not args.no_progress and not args.smoke)
        last = result["history"][-1]
        print(f"    train errors {last['train_errors']}, test accuracy {last['test_acc']:.4f}, "
              f"{result['wall']:.1f} s", flush=True)
        results.append(result)

    with open(out / "mnist_race.csv", "w", newline="") as fh:
        keys = list(dict.fromkeys(k for r in results for h in r["history"] for k in h))
        w = csv.DictWriter(fh, fieldnames=["optimizer", "batch_size", *keys])
        w.writeheader()
        for r in results:
            for h in r["history"]:
                w.writerow({"optimizer": r["name"], "batch_size": r["batch_size"], **h})
    rows = [summary_row(r, len(x)) for r in results]
    command = "python experiments/mnist_race.py " + " ".join(argv if argv is not None
                                                             else sys.argv[1:])
    header = (f"MNIST MLP 784-256-10, {args.epochs} epoch(s), batch {args.batch_size}, "
              f"{len(x):,} training images, seed {args.seed}: `{command.strip()}`")
    print("\n" + write_tables(rows, out, len(x), header))
    drawn = plot(results, len(x), len(x_test), out / "mnist_race.png")
    print(f"wrote {out}/summary.md, summary.csv, mnist_race.csv"
          + (", mnist_race.png" if drawn else " (no plot: matplotlib is not installed)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
