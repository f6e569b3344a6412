"""ADAS seen from inside: the first layer's learned per-input step sizes as 28x28 images after
each epoch, and its input offsets (the running input mean) next to the mean MNIST digit.

    python experiments/adas_inside.py                    # 2 epochs, batch 32: under a minute
    python experiments/adas_inside.py --epochs 3 --out /tmp/adas

Everything is read through the optimizer's public `state_dict()` after each epoch:
    step sizes  state_dict()["state"][i][STEP_KEY] of the first layer's weight: one step size
                per input pixel (ADAS keeps one per layer input), shape (784,)
    offsets     state_dict()["input_stats"][0]["mean"]: the running mean of the first layer's
                inputs that ADAS subtracts before taking the weight gradient (divided by
                1 - momentum^count when the statistics are debiased, as InputStats.center)
Writes adas_step_sizes.png and adas_offsets.png to OUT (default docs/figures) and prints the
numbers it plots. Needs MNIST (MINIDL_DATA) and matplotlib. Two epochs are enough to see the
pattern form; it keeps sharpening with more.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import minidl as md  # noqa: E402
from minidl.data import flatten, load_mnist, scale  # noqa: E402
from minidl.models import mlp  # noqa: E402
from minidl.optim.adas import Adas  # noqa: E402
from minidl.train import fit  # noqa: E402

STEP_KEY = "lr"              # the per-input step sizes in each parameter's optimizer state
STATS_KEY = "input_stats"    # the per-layer input statistics in Adas.state_dict()


def first_layer_step_sizes(state_dict: dict, n_inputs: int = 784) -> np.ndarray:
    """The step sizes of the first parameter whose per-input step sizes have n_inputs entries
    (the first Dense weight: bias step sizes are scalars)."""
    for i in sorted(state_dict["state"]):
        s = state_dict["state"][i].get(STEP_KEY)
        if s is not None and np.shape(s) == (n_inputs,):
            return md.backend.to_numpy(s).copy()
    raise KeyError(f"no parameter state holds {STEP_KEY!r} of shape ({n_inputs},)")


def first_layer_offsets(state_dict: dict) -> np.ndarray:
    stats = state_dict[STATS_KEY][0]
    mean = md.backend.to_numpy(stats["mean"])
    if stats.get("debias"):
        mean = mean / (1.0 - stats["momentum"] ** stats["count"])
    return mean


def plot(steps: list, offsets: np.ndarray, mean_digit: np.ndarray, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lo = min(s.min() for s in steps)
    hi = max(s.max() for s in steps)
    fig, axes = plt.subplots(1, len(steps), figsize=(2.6 * len(steps) + 0.8, 2.8),
                             squeeze=False)
    for k, (ax, s) in enumerate(zip(axes[0], steps)):
        im = ax.imshow(s.reshape(28, 28), cmap="magma", vmin=lo, vmax=hi)
        ax.set_title(f"after epoch {k + 1}", fontsize=9)
        ax.set_axis_off()
    fig.colorbar(im, ax=list(axes[0]), shrink=0.8, label="step size")
    fig.suptitle("ADAS: first-layer step size per input pixel", fontsize=10)
    fig.savefig(out / "adas_step_sizes.png", dpi=100, bbox_inches="tight")
    plt.close(fig)

    fig, (a, b) = plt.subplots(1, 2, figsize=(5.6, 2.9))
    ratio = offsets.sum() / mean_digit.sum()
    for ax, img, title in [(a, mean_digit, "mean training digit"),
                           (b, offsets, f"ADAS input offsets\n(= {ratio:.2f} x the mean)")]:
        ax.imshow(img.reshape(28, 28), cmap="gray_r", vmin=0, vmax=img.max())
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    fig.savefig(out / "adas_offsets.png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--subset", type=int, default=0, help="train on the first N images")
    ap.add_argument("--out", default=str(HERE.parent / "docs" / "figures"))
    args = ap.parse_args(argv)
    (x, y), _ = load_mnist()
    if args.subset:
        x, y = x[:args.subset], y[:args.subset]
    x = flatten(scale(x))
    md.manual_seed(0)
    model = mlp()
    opt = Adas(model, batch_size=args.batch_size)
    snapshots = []
    fit(model, opt, (x, y), args.epochs, batch_size=args.batch_size, seed=0, progress=False,
        on_epoch_end=lambda record: snapshots.append(opt.state_dict()))
    steps = [first_layer_step_sizes(sd) for sd in snapshots]
    offsets = first_layer_offsets(snapshots[-1])
    mean_digit = np.asarray(x, dtype=np.float64).mean(axis=0)
    border = np.zeros((28, 28), bool)
    border[:4], border[-4:], border[:, :4], border[:, -4:] = True, True, True, True
    for k, s in enumerate(steps):
        print(f"epoch {k + 1}: step sizes min {s.min():.3g} median {np.median(s):.3g} "
              f"max {s.max():.3g}; 4-pixel border median "
              f"{np.median(s[border.ravel()]):.3g}, centre median "
              f"{np.median(s[~border.ravel()]):.3g}")
    corr = np.corrcoef(offsets, mean_digit)[0, 1]
    ratio = offsets.sum() / mean_digit.sum()
    print(f"offsets vs mean digit: correlation {corr:.4f}; offsets = {ratio:.3f} x mean "
          f"(the running mean's momentum has not forgotten its start at 0), largest "
          f"difference after rescaling {np.abs(offsets / ratio - mean_digit).max():.3g}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # the numbers behind the figures: one row per input pixel
    columns = ["pixel", *(f"step_size_epoch{k + 1}" for k in range(len(steps))),
               "offset", "mean_digit"]
    table = np.column_stack([np.arange(len(offsets)), *steps, offsets, mean_digit])
    np.savetxt(out / "adas_inside.csv", table, delimiter=",", header=",".join(columns),
               comments="", fmt=["%d", *["%.9g"] * (table.shape[1] - 1)])
    summary = {"epochs": args.epochs, "batch_size": args.batch_size, "subset": args.subset,
               "step_sizes": [{"epoch": k + 1, "min": float(s.min()),
                               "median": float(np.median(s)), "max": float(s.max())}
                              for k, s in enumerate(steps)],
               "offsets_vs_mean_digit": {"correlation": float(corr), "ratio": float(ratio)}}
    (out / "adas_inside.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot(steps, offsets, mean_digit, out)
    print(f"wrote {out / 'adas_step_sizes.png'}, {out / 'adas_offsets.png'} and "
          f"adas_inside.csv/.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
