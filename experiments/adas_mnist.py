"""Reproduce ADAS's MNIST result: a 784-256(ReLU)-10 MLP reaching zero training errors in
about 11 epochs, while Adam (lr 1e-3) stays near 0.1 %.

    python experiments/adas_mnist.py                          # 15 epochs, ADAS and Adam, seed 0
    python experiments/adas_mnist.py --seeds 0 1 2 --optimizers adas adas-pytorch adam
    python experiments/adas_mnist.py --batch-size 4 --optimizers adas   # the C++ batch size
    python experiments/adas_mnist.py --adas-arg beta_3=0.9999           # any ADAS hyperparameter
    python experiments/adas_mnist.py --logit-penalty 0 --init cpp --no-shuffle  # training setup

The training setup is the C++ program's where it matters: every sample's loss is the
cross-entropy plus 1e-5/2 * |logits|^2 (its output derivative is y - p - 1e-5 * logits), for
every optimizer alike. Without that term ADAS needs 3-4 more epochs to reach zero errors
(README). The weights start from PyTorch's default initialisation and every epoch is shuffled
unless --init cpp / --no-shuffle ask for the C++ program's (at batch 32 neither helped).

After every epoch it counts the misclassified images of the full 60,000-image training set
(`train_errors`, the model after the epoch) and during the epoch (`online_errors`, how the
authors' C++ program counted), and measures test accuracy. Writes OUT/adas_mnist.csv and .json
(one row per optimizer, seed and epoch), OUT/summary.json, and, with matplotlib,
OUT/adas_mnist.png: training error rate on a log scale against epochs, zero at the bottom.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import minidl as md  # noqa: E402
from minidl.optim import parse_hyperparameters  # noqa: E402
from minidl.data import flatten, load_mnist, scale  # noqa: E402
from minidl.models import mlp  # noqa: E402
from minidl.nn import init  # noqa: E402
from minidl.nn.layers import Dense  # noqa: E402
from minidl.optim.adam import Adam  # noqa: E402
from minidl.optim.adas import Adas  # noqa: E402
from minidl.train import History, fit  # noqa: E402

# name -> (label, factory(model, batch_size, extra ADAS args))
OPTIMIZERS = {
    "adas": ("ADAS (C++ reference: input offsets)",
             lambda m, bs, kw: Adas(m, batch_size=bs, **kw)),
    "adas-plain": ("ADAS (C++ structure, no offsets)",
                   lambda m, bs, kw: Adas(m, batch_size=bs, offsets=False, **kw)),
    "adas-pytorch": ("ADAS (PyTorch file: no offsets)",
                     lambda m, bs, kw: Adas(m, variant="pytorch", **kw)),
    "adas-centred": ("ADAS (PyTorch file + debiased input offsets)",
                     lambda m, bs, kw: Adas(m, variant="pytorch", offsets=True,
                                            offset_debias=True, **kw)),
    "adam": ("Adam (lr 1e-3)", lambda m, bs, kw: Adam(m, lr=1e-3)),
}


def cpp_init(model) -> None:
    """The C++ program's initialisation: every weight of a layer, its bias column included,
    uniform in +-4/sqrt(fan_in + 1) (PyTorch's default is +-1/sqrt(fan_in))."""
    for layer in model:
        if isinstance(layer, Dense):
            bound = 4.0 / math.sqrt(layer.weight.shape[0] + 1)
            for p in (layer.weight, layer.bias):
                init.uniform(p, bound)


def penalised_cross_entropy(penalty: float):
    """Mean over the batch of CE + penalty/2 * |z|^2: per sample the logit gradient is
    p - y + penalty * z, the output derivative of the C++ program (penalty 1e-5)."""
    def loss(z, y):
        return md.cross_entropy(z, y) + (penalty / 2) * (z * z).sum() / z.shape[0]
    return loss


def run(name: str, seed: int, data, epochs: int, batch_size: int, adas_args: dict,
        progress: bool, init: str = "torch", shuffle: bool = True,
        logit_penalty: float = 0.0) -> History:
    (x_train, y_train), test = data
    md.manual_seed(seed)
    model = mlp(hidden=(256,))
    if init == "cpp":
        cpp_init(model)
    optimizer = OPTIMIZERS[name][1](model, batch_size, adas_args)
    print(f"--- {OPTIMIZERS[name][0]}, seed {seed}, batch {batch_size}, {init} init"
          f"{'' if shuffle else ', file order'}"
          f"{f', logit penalty {logit_penalty:g}' if logit_penalty else ''}", flush=True)
    loss_fn = penalised_cross_entropy(logit_penalty) if logit_penalty else md.cross_entropy
    return fit(model, optimizer, (x_train, y_train), epochs, test=test,
               batch_size=batch_size, shuffle=shuffle, seed=seed, progress=progress,
               loss_fn=loss_fn)


def plot(rows: list, n_train: int, path: Path) -> bool:
    """Training error rate per epoch on a log axis; zero errors drawn on the bottom line."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    floor = 0.5 / n_train  # where 0 errors is drawn: half an error below the first one
    fig, ax = plt.subplots(figsize=(7, 4.5))
    names = list(dict.fromkeys(r["optimizer"] for r in rows))
    seeds = list(dict.fromkeys(r["seed"] for r in rows))
    styles = ["-", "--", ":", "-."]
    for (name, seed) in dict.fromkeys((r["optimizer"], r["seed"]) for r in rows):
        sel = [r for r in rows if r["optimizer"] == name and r["seed"] == seed]
        rate = [max(r["train_errors"] / n_train, floor) for r in sel]
        # one colour per optimizer, one line style per seed
        ax.plot([r["epoch"] for r in sel], rate, marker="o", ms=3,
                color=f"C{names.index(name)}", ls=styles[seeds.index(seed) % len(styles)],
                label=f"{OPTIMIZERS[name][0]}, seed {seed}")
    ax.set_yscale("log")
    ax.set_ylim(floor / 1.5, None)
    ticks = [t for t in (1e-4, 1e-3, 1e-2, 1e-1) if t > floor]
    ax.set_yticks([floor] + ticks, ["0"] + [f"{t:g}" for t in ticks])
    ax.axhline(floor, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training error rate (full 60,000 images)")
    ax.set_title("MNIST MLP 784-256-10: ADAS vs Adam")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--optimizers", nargs="+", default=["adas", "adam"],
                    choices=sorted(OPTIMIZERS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--adas-arg", action="append", default=[], metavar="NAME=VALUE",
                    help="ADAS hyperparameter override, e.g. beta_3=0.9999 (repeatable)")
    ap.add_argument("--subset", type=int, default=0, help="train on the first N images")
    ap.add_argument("--init", choices=["torch", "cpp"], default="torch",
                    help="weight initialisation: PyTorch's default uniform +-1/sqrt(fan_in), "
                    "or the C++ program's +-4/sqrt(fan_in + 1), bias included")
    ap.add_argument("--no-shuffle", action="store_true",
                    help="every epoch in file order, as the C++ program trains")
    ap.add_argument("--logit-penalty", type=float, default=1e-5,
                    help="add penalty/2 * |logits|^2 to each sample's loss, as the C++ program "
                    "(default 1e-5; 0: plain cross-entropy)")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads (threadpoolctl)")
    ap.add_argument("--out", default="results/adas_mnist")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--replot", action="store_true",
                    help="redraw OUT/adas_mnist.png from OUT/adas_mnist.json, train nothing")
    args = ap.parse_args(argv)
    if args.replot:
        rows = json.loads((Path(args.out) / "adas_mnist.json").read_text())
        plot(rows, args.subset or 60000, Path(args.out) / "adas_mnist.png")
        return 0
    if args.threads:
        md.set_num_threads(args.threads)

    (x_train, y_train), (x_test, y_test) = load_mnist()
    x_train, x_test = flatten(scale(x_train)), flatten(scale(x_test))
    if args.subset:
        x_train, y_train = x_train[:args.subset], y_train[:args.subset]
    data = ((x_train, y_train), (x_test, y_test))
    adas_args = parse_hyperparameters(args.adas_arg)

    rows = []
    for seed in args.seeds:
        for name in args.optimizers:
            h = run(name, seed, data, args.epochs, args.batch_size,
                    adas_args if name.startswith("adas") else {}, not args.no_progress,
                    init=args.init, shuffle=not args.no_shuffle,
                    logit_penalty=args.logit_penalty)
            for r in h.records:
                rows.append({"optimizer": name, "seed": seed, "batch_size": args.batch_size,
                             **{k: r[k] for k in ("epoch", "train_errors", "online_errors",
                                                  "train_acc", "test_acc", "train_loss",
                                                  "time")}})

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    History(rows).to_csv(out / "adas_mnist.csv")
    History(rows).to_json(out / "adas_mnist.json")
    summary = summarise(rows, args)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    drawn = plot(rows, len(x_train), out / "adas_mnist.png")
    print_summary(summary)
    print(f"wrote {out}/adas_mnist.csv, .json, summary.json"
          + (", adas_mnist.png" if drawn else " (no plot: matplotlib is not installed)"))
    return 0


def summarise(rows: list, args) -> dict:
    """Per optimizer: first epoch with 0 full-set errors per seed, errors at epochs 11 and last,
    median epoch time."""
    out = {"epochs": args.epochs, "batch_size": args.batch_size, "seeds": args.seeds,
           "init": args.init, "shuffle": not args.no_shuffle,
           "logit_penalty": args.logit_penalty, "optimizers": {}}
    for name in args.optimizers:
        sel = [r for r in rows if r["optimizer"] == name]
        per_seed = {}
        for seed in args.seeds:
            s = [r for r in sel if r["seed"] == seed]
            zero = [r["epoch"] for r in s if r["train_errors"] == 0]
            at = {e: next((r["train_errors"] for r in s if r["epoch"] == e), None)
                  for e in (11, args.epochs)}
            online = {e: next((r["online_errors"] for r in s if r["epoch"] == e), None)
                      for e in (11, args.epochs)}
            per_seed[seed] = {"first_zero_epoch": zero[0] if zero else None,
                              "train_errors_at": at, "online_errors_at": online,
                              "final_test_acc": s[-1]["test_acc"] if s else None}
        out["optimizers"][name] = {
            "label": OPTIMIZERS[name][0], "per_seed": per_seed,
            "median_epoch_time_s": statistics.median(r["time"] for r in sel) if sel else None}
    times = {n: v["median_epoch_time_s"] for n, v in out["optimizers"].items()}
    if times.get("adas") and times.get("adam"):
        out["adas_over_adam_epoch_time"] = times["adas"] / times["adam"]
    return out


def print_summary(summary: dict) -> None:
    print(f"\n{'optimizer':<14} {'seed':>4} {'first 0':>8} {'err@11':>7} {'online@11':>9} "
          f"{'err@last':>8} {'test acc':>8} {'s/epoch':>8}")
    for name, info in summary["optimizers"].items():
        for seed, s in info["per_seed"].items():
            last = summary["epochs"]
            print(f"{name:<14} {seed:>4} {str(s['first_zero_epoch']):>8} "
                  f"{str(s['train_errors_at'][11]):>7} {str(s['online_errors_at'][11]):>9} "
                  f"{str(s['train_errors_at'][last]):>8} {s['final_test_acc']:>8.4f} "
                  f"{info['median_epoch_time_s']:>8.2f}")
    if "adas_over_adam_epoch_time" in summary:
        print(f"ADAS epoch time / Adam epoch time: {summary['adas_over_adam_epoch_time']:.2f}")


if __name__ == "__main__":
    sys.exit(main())
