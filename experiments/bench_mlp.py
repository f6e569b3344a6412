"""Benchmark: one MNIST epoch of the 784-256-10 MLP with Adam, minidl against a hand-written
fused NumPy implementation of exactly the same step (same weights, same batch order), in the
same process, interleaved, median of several rounds.

    python experiments/bench_mlp.py                      # batch 32, 128, 1024; 3 rounds
    python experiments/bench_mlp.py --batch-sizes 128 --rounds 5 --threads 2
    python experiments/bench_mlp.py --max-steps 50       # a quick smoke run

Prints seconds per epoch and the ratio minidl / NumPy, and the largest parameter difference
between the two after the epoch (they compute the same thing, so it must be tiny). Writes
results/bench_mlp.csv and .json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import minidl as md  # noqa: E402
from minidl.data import DataLoader, flatten, load_mnist, scale  # noqa: E402
from minidl.models import mlp  # noqa: E402
from minidl.optim.adam import Adam  # noqa: E402
from minidl.train import train_step  # noqa: E402


def minidl_epoch(params0, x, y, batch_size, max_steps):
    """One epoch with minidl's model, Adam and training step (as fit runs it)."""
    model = mlp()
    model.load_state_dict(params0)
    opt = Adam(model, lr=1e-3)
    step = train_step(model, opt, md.cross_entropy)
    loader = DataLoader(x, y, batch_size=batch_size, shuffle=True, seed=0)
    start = time.perf_counter()
    for i, (xb, yb) in enumerate(loader):
        if i == max_steps:
            break
        step(xb, yb)
    return time.perf_counter() - start, [p.data for p in model.parameters()]


def numpy_epoch(params0, x, y, batch_size, max_steps, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    """The same epoch written by hand: fused softmax cross-entropy, in-place Adam."""
    w1, c1, w2, c2 = (params0[k].copy() for k in ("0.weight", "0.bias", "2.weight", "2.bias"))
    params = [w1, c1, w2, c2]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    tmp = [np.empty_like(p) for p in params]
    perm = np.random.default_rng([0, 0]).permutation(len(x))
    n_steps = (len(x) + batch_size - 1) // batch_size
    start = time.perf_counter()
    for t in range(1, min(n_steps, max_steps) + 1):
        idx = perm[(t - 1) * batch_size:t * batch_size]
        xb, yb = x[idx], y[idx]
        h = xb @ w1
        h += c1
        np.maximum(h, 0, out=h)
        z = h @ w2
        z += c2
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        z[np.arange(len(yb)), yb] -= 1
        z /= len(yb)
        gh = z @ w2.T
        gh *= h > 0
        grads = [xb.T @ gh, gh.sum(axis=0), h.T @ z, z.sum(axis=0)]
        c_1, c_2 = 1 - b1**t, 1 - b2**t
        for p, g, mi, vi, tm in zip(params, grads, m, v, tmp):
            mi *= b1
            mi += (1 - b1) * g
            vi *= b2
            np.multiply(g, g, out=tm)
            tm *= 1 - b2
            vi += tm
            np.sqrt(vi, out=tm)
            tm /= np.sqrt(c_2)
            tm += eps
            np.divide(mi, tm, out=tm)
            tm *= lr / c_1
            p -= tm
    return time.perf_counter() - start, params


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128, 1024])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads (threadpoolctl)")
    ap.add_argument("--max-steps", type=int, default=10**9, help="cut the epoch short")
    ap.add_argument("--out", default="results")
    args = ap.parse_args(argv)
    if args.threads:
        md.set_num_threads(args.threads)
    threads = str(args.threads or "default")

    (x, y), _ = load_mnist()
    x = flatten(scale(x))
    md.manual_seed(0)
    params0 = {k: v.copy() for k, v in mlp().state_dict().items()}
    print(f"MLP 784-256-10, Adam, one MNIST epoch ({len(x)} images), BLAS threads {threads}")
    print(f"{'batch':>6} {'minidl s':>10} {'numpy s':>10} {'ratio':>7} {'max |dp|':>10}")
    rows = []
    for bs in args.batch_sizes:
        ours, ref = [], []
        for _ in range(args.rounds):  # interleaved, so machine noise hits both alike
            t_ours, p_ours = minidl_epoch(params0, x, y, bs, args.max_steps)
            t_ref, p_ref = numpy_epoch(params0, x, y, bs, args.max_steps)
            ours.append(t_ours)
            ref.append(t_ref)
        diff = max(float(np.abs(a - b).max()) for a, b in zip(p_ours, p_ref))
        row = {"batch_size": bs, "minidl_s": statistics.median(ours),
               "numpy_s": statistics.median(ref), "max_param_diff": diff}
        row["ratio"] = row["minidl_s"] / row["numpy_s"]
        rows.append(row)
        print(f"{bs:>6} {row['minidl_s']:>10.3f} {row['numpy_s']:>10.3f} {row['ratio']:>7.2f} "
              f"{diff:>10.2e}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_mlp.json").write_text(json.dumps(rows, indent=2))
    with open(out / "bench_mlp.csv", "w") as f:
        f.write(",".join(rows[0]) + "\n")
        for r in rows:
            f.write(",".join(str(v) for v in r.values()) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
