"""Benchmark: minidl against PyTorch (when importable) and hand-fused NumPy, one ratio table.

Workloads, each written as a user writes the loop (zero_grad, loss.backward(), step):
    mlp32, mlp128, mlp1024  one MNIST epoch of the 784-256-10 MLP with Adam at batch 32/128/1024
                            (the NumPy column: bench_mlp.py's hand-fused step, same batches)
    lenet                   minidl.models.lenet train step with Adam, batch 128
    cnn                     PyTorch's MNIST example CNN (conv 1->32->64 3x3, relu, max-pool 2,
                            fc 9216->128->10), forward + backward, batch 64
    adas                    time in ADAS's step / in Adam's, MLP epoch at batch 32 (minidl)

    python experiments/bench_speed.py                          # all, 1 BLAS thread, 3 rounds
    python experiments/bench_speed.py --threads 2 --workloads lenet cnn --rounds 5
    python experiments/bench_speed.py --max-steps 20 --rounds 1   # a quick smoke run

All implementations run in this one process, interleaved round by round (machine noise hits
them alike); each figure is the median over rounds, each ratio the median of per-round ratios.
torch is never needed: without it the torch column stays empty. Threads: --threads limits BLAS
(threadpoolctl) and torch.set_num_threads alike. Writes DIR/bench_speed.json and .csv
(default results/).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import minidl as md  # noqa: E402
from bench_mlp import minidl_epoch, numpy_epoch  # noqa: E402
from minidl.data import DataLoader, flatten, load_mnist, scale  # noqa: E402
from minidl.models import lenet, mlp  # noqa: E402
from minidl.nn import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential  # noqa: E402
from minidl.optim import Adam, Adas  # noqa: E402

try:
    import torch
except ImportError:  # the torch column stays empty
    torch = None

WORKLOADS = ("mlp32", "mlp128", "mlp1024", "lenet", "cnn", "adas")


def example_cnn():
    """PyTorch's examples/mnist network without dropout, in minidl."""
    return Sequential(Conv2d(1, 32, 3), ReLU(), Conv2d(32, 64, 3), ReLU(), MaxPool2d(2),
                      Flatten(), Linear(9216, 128), ReLU(), Linear(128, 10))


def torch_twin(model):
    """The same architecture in torch, with minidl's initial weights copied over."""
    nn = torch.nn
    layers = []
    for layer in model:
        name = type(layer).__name__
        if name == "Conv2d":
            t = nn.Conv2d(layer.weight.shape[1], layer.weight.shape[0], layer.weight.shape[2:],
                          padding=layer.padding)
        elif name in ("Linear", "Dense"):
            w = layer.weight.data if name == "Linear" else layer.weight.data.T
            t = nn.Linear(w.shape[1], w.shape[0])
        else:
            layers.append({"ReLU": nn.ReLU, "Flatten": nn.Flatten}.get(name, nn.MaxPool2d)(
                *((2,) if name == "MaxPool2d" else ())))
            continue
        with torch.no_grad():
            w = layer.weight.data if name != "Dense" else layer.weight.data.T
            t.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
            t.bias.copy_(torch.from_numpy(layer.bias.data))
        layers.append(t)
    return nn.Sequential(*layers)


def timed_steps(step, batches, max_steps):
    """Seconds for step(xb, yb) over the batches (at most max_steps)."""
    start = time.perf_counter()
    for i, (xb, yb) in enumerate(batches):
        if i == max_steps:
            break
        step(xb, yb)
    return time.perf_counter() - start


def mlp_workload(batch_size, data, params0, max_steps):
    """{impl: callable returning seconds for one epoch}."""
    x, y = data
    impls = {"minidl": lambda: minidl_epoch(params0, x, y, batch_size, max_steps)[0],
             "numpy": lambda: numpy_epoch(params0, x, y, batch_size, max_steps)[0]}
    if torch is not None:
        def torch_epoch():
            md.manual_seed(0)
            model = mlp()
            model.load_state_dict(params0)
            net = torch_twin(model)
            opt = torch.optim.Adam(net.parameters(), lr=1e-3)
            loader = DataLoader(x, y, batch_size=batch_size, shuffle=True, seed=0)

            def step(xb, yb):  # the loader's minidl Tensors hold the arrays
                opt.zero_grad()
                torch.nn.functional.cross_entropy(net(torch.from_numpy(xb.data)),
                                                  torch.from_numpy(yb.data)).backward()
                opt.step()
            return timed_steps(step, loader, max_steps)
        impls["torch"] = torch_epoch
    return impls


def step_workload(model, images, labels, batch, steps, optimizer):
    """{impl: callable returning seconds for `steps` steps} of a conv net on real MNIST
    batches, each implementation walking the same sequence of batches (one batch repeated
    would be learnt by heart within a few dozen Adam steps, and its vanishing gradients turn
    into denormal numbers that slow every library down severalfold)."""
    n = len(images) // batch
    batches = [(images[i * batch:(i + 1) * batch], labels[i * batch:(i + 1) * batch])
               for i in range(n)]

    def walker(step, sequence):
        """Seconds for the next `steps` batches of `sequence`, cycling through it."""
        cursor = [0]

        def walk():
            chosen = [sequence[(cursor[0] + k) % n] for k in range(steps)]
            cursor[0] += steps
            return timed_steps(step, chosen, steps)
        return walk

    opt = Adam(model, lr=1e-3) if optimizer else None

    def minidl_step(xb, yb):
        if opt is None:
            model.zero_grad()
        else:
            opt.zero_grad()
        md.cross_entropy(model(md.Tensor(xb)), yb).backward()
        if opt is not None:
            opt.step()
    impls = {"minidl": walker(minidl_step, batches)}
    if torch is not None:
        net = torch_twin(model)
        topt = torch.optim.Adam(net.parameters(), lr=1e-3) if optimizer else None
        x0 = batches[0][0]
        with torch.no_grad():  # the same network: the same logits before any step
            np.testing.assert_allclose(net(torch.from_numpy(x0)).numpy(),
                                       model(md.Tensor(x0)).data, rtol=1e-3, atol=1e-5)
        tbatches = [(torch.from_numpy(xb), torch.from_numpy(yb.copy())) for xb, yb in batches]

        def torch_step(xb, yb):
            (topt or net).zero_grad()
            torch.nn.functional.cross_entropy(net(xb), yb).backward()
            if topt is not None:
                topt.step()
        impls["torch"] = walker(torch_step, tbatches)
    return impls


def adas_workload(data, max_steps):
    """Seconds spent in optimizer.step() over an MLP epoch at batch 32, ADAS and Adam."""
    x, y = data

    def epoch(make):
        md.manual_seed(0)
        model = mlp()
        opt = make(model)
        spent = 0.0
        for i, (xb, yb) in enumerate(DataLoader(x, y, batch_size=32, shuffle=True, seed=0)):
            if i == max_steps:
                break
            opt.zero_grad()
            md.cross_entropy(model(xb), yb).backward()
            start = time.perf_counter()
            opt.step()
            spent += time.perf_counter() - start
        return spent
    return {"minidl": lambda: epoch(Adas), "adam": lambda: epoch(Adam)}


def measure(impls: dict, rounds: int) -> dict:
    """Medians over interleaved rounds; the first call of each is a warm-up."""
    for run in impls.values():
        run()
    times = {name: [] for name in impls}
    for r in range(rounds):
        for name in (list(impls) if r % 2 == 0 else list(impls)[::-1]):
            times[name].append(impls[name]())
    return times


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    ap.add_argument("--threads", type=int, default=1, help="BLAS and torch threads")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per round (conv nets)")
    ap.add_argument("--max-steps", type=int, default=10**9, help="cut MLP epochs short")
    ap.add_argument("--out", default="results")
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_info  # a dependency of minidl

    md.set_num_threads(args.threads)
    kernels = sorted({f"{i['internal_api']} {i.get('architecture', '?')}"
                      for i in threadpool_info()})
    if torch is not None:
        torch.set_num_threads(args.threads)
    print(f"threads {args.threads}, cores {os.cpu_count()}, BLAS {', '.join(kernels)}, "
          f"torch {torch.__version__ if torch is not None else 'not installed'}")

    (x, y), _ = load_mnist()
    scaled = scale(x)
    data = (flatten(scaled), y)
    images = scaled[:, None]  # (N, 1, 28, 28) float32, the same values as data's rows
    md.manual_seed(0)
    params0 = {k: v.copy() for k, v in mlp().state_dict().items()}
    rows = []
    print(f"{'workload':>9} {'minidl':>9} {'numpy':>9} {'torch':>9} {'/numpy':>7} {'/torch':>7}"
          f"  unit")
    for name in args.workloads:
        md.manual_seed(0)
        if name.startswith("mlp"):
            impls, unit = mlp_workload(int(name[3:]), data, params0, args.max_steps), "s/epoch"
        elif name == "lenet":
            impls, unit = step_workload(lenet(), images, y, 128, args.steps, True), "ms/step"
        elif name == "cnn":
            impls, unit = step_workload(example_cnn(), images, y, 64, args.steps, False), "ms/step"
        else:
            impls, unit = adas_workload(data, args.max_steps), "s in step"
        times = measure(impls, args.rounds)
        scale_to = 1e3 / args.steps if unit == "ms/step" else 1.0
        row = {"workload": name, "unit": unit, "threads": args.threads, "rounds": args.rounds}
        for impl in ("minidl", "numpy", "torch", "adam"):
            row[impl] = statistics.median(times[impl]) * scale_to if impl in times else None
        for ref in ("numpy", "torch", "adam"):
            row[f"ratio_{ref}"] = (statistics.median(a / b for a, b in zip(
                times["minidl"], times[ref])) if ref in times else None)
        rows.append(row)

        def cell(v, width, digits):
            return f"{'-' if v is None else f'{v:.{digits}f}':>{width}}"
        adam = f"  (ADAS / Adam {row['ratio_adam']:.2f})" if row["ratio_adam"] else ""
        print(f"{name:>9} {cell(row['minidl'], 9, 3)} {cell(row['numpy'], 9, 3)} "
              f"{cell(row['torch'], 9, 3)} {cell(row['ratio_numpy'], 7, 2)} "
              f"{cell(row['ratio_torch'], 7, 2)}  {unit}{adam}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_speed.json").write_text(json.dumps(rows, indent=2) + "\n")
    with open(out / "bench_speed.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {out}/bench_speed.json and .csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
