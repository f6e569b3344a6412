"""Benchmark: one LeNet-style forward + backward step in minidl vs hand-written NumPy.

    conv 1->6 5x5 pad 2, relu, maxpool 2, conv 6->16 5x5, relu, maxpool 2, flatten,
    dense 400->120, relu, dense 120->84, relu, dense 84->10, softmax cross-entropy

on batches of 128 real MNIST training images, float32. The NumPy version computes the same
thing by hand (channel-major im2col, first-maximum pooling, the same operation order), so the
ratio measures what minidl's graph, Tensor and Function machinery costs. The gradients agree
to float32 rounding: minidl splits some matrix products into blocks that stay in cache, and
whether a BLAS kernel sums a block's products in the same order as the whole product's
depends on the kernel (OpenBLAS's SkylakeX kernels happen to agree to the last bit, its
Haswell ones do not). Both run in this one process after a warm-up, alternating step by
step; the script prints the median ms per step of each, the median of the per-round ratios,
and the largest difference between the two implementations' gradients.

    python experiments/bench_conv.py [--threads N] [--rounds R] [--steps S] [--out DIR]

The figures are also written to DIR/bench_conv.json and .csv (default results/bench_conv).
--threads N (default 1; 0 for the library's default) limits the BLAS threads
(minidl.set_num_threads). Images come from minidl.data's MNIST (found as `python -m
minidl` finds it: $MINIDL_DATA/mnist, then the repository's datasets/mnist, then the cache).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from pathlib import Path

import numpy as np

import minidl
from minidl import ops
from minidl.data import mnist
from minidl.nn.conv import Conv2d, MaxPool2d
from minidl.nn.module import Parameter


BATCH = 128


def limit_threads(n: int | None) -> str:
    """Limit BLAS to n threads (0 or None: the library's default); returns a line saying how."""
    if not n:
        return f"BLAS threads: library default ({minidl.get_num_threads()})"
    minidl.set_num_threads(n)
    return f"BLAS threads: {n}"


def load_mnist(batches: int) -> tuple[np.ndarray, np.ndarray]:
    """The first batches*BATCH training images (N, 1, 28, 28) / 255 and labels, float32/int64."""
    (images, labels), _ = mnist.load_mnist(download=False)
    n = batches * BATCH
    return mnist.scale(images[:n, None], np.float32), labels[:n]


# --------------------------------------------------------------------------- minidl


class MinidlLeNet:
    def __init__(self, params: dict):
        self.conv1 = Conv2d(1, 6, 5, padding=2)
        self.conv2 = Conv2d(6, 16, 5)
        self.pool = MaxPool2d(2)
        for name, conv in (("1", self.conv1), ("2", self.conv2)):
            conv.weight.data[...] = params["cw" + name]
            conv.bias.data[...] = params["cb" + name]
        self.dense = [(Parameter(params[f"w{k}"].copy(), input_axes=(0,)),
                       Parameter(params[f"b{k}"].copy())) for k in (3, 4, 5)]

    def parameters(self) -> list:
        return [self.conv1.weight, self.conv1.bias, self.conv2.weight, self.conv2.bias,
                *(p for pair in self.dense for p in pair)]

    def step(self, x: np.ndarray, y: np.ndarray) -> list:
        for p in self.parameters():
            p.grad = None
        h = self.pool(ops.relu(self.conv1(minidl.Tensor(x))))
        h = ops.flatten(self.pool(ops.relu(self.conv2(h))), 1)
        (w3, b3), (w4, b4), (w5, b5) = self.dense
        h = ops.relu(ops.linear(h, w3, b3))
        h = ops.relu(ops.linear(h, w4, b4))
        loss = ops.cross_entropy(ops.linear(h, w5, b5), y)
        loss.backward()
        return [p.grad for p in self.parameters()]


# --------------------------------------------------------------------------- NumPy by hand


def np_im2col(xc, k, oh, ow):
    """xc (C, N, Hp, Wp) -> columns (C*k*k, N*oh*ow), stride 1."""
    c, n = xc.shape[:2]
    s = xc.strides
    view = np.lib.stride_tricks.as_strided(xc, (c, k, k, n, oh, ow), (s[0], s[2], s[3], s[1],
                                                                     s[2], s[3]))
    return np.ascontiguousarray(view).reshape(c * k * k, -1)


def np_pool_forward(a):
    """2x2 max pool over the last two axes."""
    out = np.maximum(a[..., 0::2, 0::2], a[..., 0::2, 1::2])
    np.maximum(out, a[..., 1::2, 0::2], out=out)
    return np.maximum(out, a[..., 1::2, 1::2], out=out)


def np_pool_backward(a, out, g):
    """Each window's gradient to its first maximum in row-major order."""
    grad = np.empty_like(a)
    free = np.ones(out.shape, bool)
    hit = np.empty(out.shape, bool)
    for k, (i, j) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        if k < 3:
            np.equal(a[..., i::2, j::2], out, out=hit)
            hit &= free
            free ^= hit
        else:
            hit = free
        np.multiply(g, hit, out=grad[..., i::2, j::2])
    return grad


def numpy_step(params: dict, x: np.ndarray, y: np.ndarray) -> list:
    """The same step by hand; activations channel-major (C, N, H, W) as minidl keeps them."""
    p = params
    n = x.shape[0]
    # conv1 (pad 2) + relu + pool
    xc = np.zeros((1, n, 32, 32), np.float32)
    xc[0, :, 2:30, 2:30] = x[:, 0]
    cols1 = np_im2col(xc, 5, 28, 28)
    w1 = p["cw1"].reshape(6, -1)
    z1 = w1 @ cols1
    z1 += p["cb1"][:, None]
    a1 = np.maximum(z1.reshape(6, n, 28, 28), 0)
    p1 = np_pool_forward(a1)
    # conv2 + relu + pool
    cols2 = np_im2col(p1, 5, 10, 10)
    w2 = p["cw2"].reshape(16, -1)
    z2 = w2 @ cols2
    z2 += p["cb2"][:, None]
    a2 = np.maximum(z2.reshape(16, n, 10, 10), 0)
    p2 = np_pool_forward(a2)
    f = p2.transpose(1, 0, 2, 3).reshape(n, 400)
    # dense layers and softmax cross-entropy
    h3 = np.maximum(f @ p["w3"] + p["b3"], 0)
    h4 = np.maximum(h3 @ p["w4"] + p["b4"], 0)
    logits = h4 @ p["w5"] + p["b5"]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    prob = e / e.sum(axis=1, keepdims=True)
    # backward
    g5 = prob
    g5[np.arange(n), y] -= 1
    g5 *= 1.0 / n
    ones = np.ones(n, np.float32)
    gw5, gb5 = h4.T @ g5, ones @ g5
    g4 = (g5 @ p["w5"].T) * (h4 > 0)
    gw4, gb4 = h3.T @ g4, ones @ g4
    g3 = (g4 @ p["w4"].T) * (h3 > 0)
    gw3, gb3 = f.T @ g3, ones @ g3
    gp2 = (g3 @ p["w3"].T).reshape(n, 16, 5, 5).transpose(1, 0, 2, 3)
    gz2 = (np_pool_backward(a2, p2, gp2) * (a2 > 0)).reshape(16, -1)
    gb2 = gz2 @ np.ones(gz2.shape[1], np.float32)
    gw2 = (gz2 @ cols2.T).reshape(16, 6, 5, 5)
    gcols2 = (w2.T @ gz2).reshape(6, 5, 5, n, 10, 10)
    gp1 = np.zeros((6, n, 14, 14), np.float32)
    for i in range(5):
        for j in range(5):
            gp1[:, :, i:i + 10, j:j + 10] += gcols2[:, i, j]
    gz1 = (np_pool_backward(a1, p1, gp1) * (a1 > 0)).reshape(6, -1)
    gb1 = gz1 @ np.ones(gz1.shape[1], np.float32)
    gw1 = (gz1 @ cols1.T).reshape(6, 1, 5, 5)
    return [gw1, gb1, gw2, gb2, gw3, gb3, gw4, gb4, gw5, gb5]


# --------------------------------------------------------------------------- timing


def init_params(seed: int = 0) -> dict:
    """PyTorch-default uniform weights, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), float32."""
    rng = np.random.default_rng(seed)
    shapes = {"cw1": (6, 1, 5, 5), "cb1": 6, "cw2": (16, 6, 5, 5), "cb2": 16,
              "w3": (400, 120), "b3": 120, "w4": (120, 84), "b4": 84, "w5": (84, 10), "b5": 10}
    fans = {"1": 25, "2": 150, "3": 400, "4": 120, "5": 84}
    return {k: rng.uniform(-1, 1, s).astype(np.float32) / np.float32(np.sqrt(fans[k[-1]]))
            for k, s in shapes.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS threads (default 1; 0: the library's default)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--batches", type=int, default=10, help="distinct batches cycled")
    parser.add_argument("--out", default="results/bench_conv", help="folder for the figures")
    args = parser.parse_args()
    print(limit_threads(args.threads))

    images, labels = load_mnist(args.batches)
    batches = [(images[i:i + BATCH], labels[i:i + BATCH]) for i in range(0, len(images), BATCH)]
    params = init_params()
    net = MinidlLeNet(params)
    impls = {"minidl": net.step, "numpy": lambda x, y: numpy_step(params, x, y)}

    x, y = batches[0]
    diffs = [float(np.abs(minidl.backend.to_numpy(a) - b).max() / np.abs(b).max())
             for a, b in zip(impls["minidl"](x, y), impls["numpy"](x, y))]
    print(f"max |grad minidl - grad numpy| / max |grad numpy| over the 10 parameter tensors: "
          f"{max(diffs):.3g}")

    def run(step, k: int) -> float:
        xb, yb = batches[k % len(batches)]
        t = time.perf_counter()
        step(xb, yb)
        return time.perf_counter() - t

    for k in range(args.steps):  # warm-up: caches, allocator, BLAS buffers
        for step in impls.values():
            run(step, k)
    # the machine's load drifts over seconds, so alternate implementations step by step (and
    # swap which goes first every round) rather than timing one block after another
    times = {name: [] for name in impls}
    ratios = []
    for r in range(args.rounds):
        order = list(impls) if r % 2 == 0 else list(impls)[::-1]
        this_round = {name: [] for name in impls}
        for k in range(args.steps):
            for name in order:
                this_round[name].append(run(impls[name], k))
        for name, t in this_round.items():
            times[name] += t
        ratios.append(statistics.median(this_round["minidl"])
                      / statistics.median(this_round["numpy"]))
    for name, t in times.items():
        print(f"{name:>7}: {1e3 * statistics.median(t):6.2f} ms per step "
              f"(median of {len(t)}; quartiles {1e3 * np.percentile(t, 25):.2f}-"
              f"{1e3 * np.percentile(t, 75):.2f})")
    print(f"  ratio minidl / numpy: {statistics.median(ratios):.3f} "
          f"(median of {args.rounds} per-round ratios; range {min(ratios):.3f}-{max(ratios):.3f})")
    row = {"batch": BATCH, "threads": args.threads, "rounds": args.rounds, "steps": args.steps,
           "minidl_ms": 1e3 * statistics.median(times["minidl"]),
           "numpy_ms": 1e3 * statistics.median(times["numpy"]),
           "ratio": statistics.median(ratios), "max_grad_rel_diff": max(diffs)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_conv.json").write_text(json.dumps(row, indent=2) + "\n")
    with open(out / "bench_conv.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)
    print(f"wrote {out}/bench_conv.json and .csv")


if __name__ == "__main__":
    main()
