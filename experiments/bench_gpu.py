"""Benchmark minidl on the CPU and on the GPU (CuPy): one MNIST epoch of the 784-256-10 MLP with
Adam at batch 32, 128 and 1024, and a LeNet-style conv net's forward+backward per batch.
When PyTorch with CUDA happens to be installed, the same models are timed with it in the same
run for comparison (PyTorch is never a dependency of minidl). On the GPU it also times one
optimizer step of Adam and ADAS on the MLP's parameters with the fused kernels (fused=True)
and with the chain of CuPy operations (fused=False).

    python experiments/bench_gpu.py                  # CPU, and GPU when CuPy sees one
    python experiments/bench_gpu.py --max-steps 200  # shorter epochs

Without a GPU it times the CPU only and says so. Writes results/bench_gpu.csv and .json.
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
from minidl import backend  # noqa: E402
from minidl.data import DataLoader, flatten, load_mnist, scale  # noqa: E402
from minidl.models import lenet, mlp  # noqa: E402
from minidl.optim import Adam, Adas  # noqa: E402
from minidl.train import train_step  # noqa: E402


def mlp_epoch(device, x, y, batch_size, max_steps):
    md.manual_seed(0)
    model = mlp().to(device)
    step = train_step(model, Adam(model), md.cross_entropy)
    loader = DataLoader(x, y, batch_size=batch_size, shuffle=True, device=device)
    batches = iter(loader)
    step(*next(batches))  # warm-up: kernels compiled, memory pool filled
    backend.synchronize(device)
    start = time.perf_counter()
    for i, (xb, yb) in enumerate(batches):
        if i == max_steps:
            break
        step(xb, yb)
    backend.synchronize(device)
    steps = min(len(loader) - 1, max_steps)
    return (time.perf_counter() - start) * len(loader) / steps  # seconds per full epoch


def lenet_batch(device, x, y, batch_size=128, repeats=20):
    md.manual_seed(0)
    model = lenet().to(device)
    xb = md.Tensor(backend.to_device(x[:batch_size, None], device))
    yb = backend.to_device(y[:batch_size], device)
    times = []
    for i in range(repeats + 2):
        backend.synchronize(device)
        start = time.perf_counter()
        model.zero_grad()
        md.cross_entropy(model(xb), yb).backward()
        backend.synchronize(device)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def optimizer_step(make, fused: bool, steps: int, repeats: int = 5) -> float:
    """Seconds per step of optimizer `make(model, fused)` on the MLP's parameters (GPU), fixed
    random gradients: the median over `repeats` runs of `steps` queued steps each."""
    md.manual_seed(0)
    model = mlp().to("cuda")
    opt = make(model, fused)
    rng = np.random.default_rng(0)
    for p in model.parameters():
        p.grad = backend.to_device(rng.standard_normal(p.shape).astype(p.dtype) * 1e-2, "cuda")
    opt.step()  # warm-up: kernels compiled, state and scratch allocated
    times = []
    for _ in range(repeats):
        backend.synchronize("cuda")
        start = time.perf_counter()
        for _ in range(steps):
            opt.step()
        backend.synchronize("cuda")
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


def fused_rows(steps: int) -> list[dict]:
    """Adam and ADAS steps, fused against unfused, one row each."""
    rows = []
    for name, make in (("Adam", lambda m, f: Adam(m, fused=f)),
                       ("ADAS", lambda m, f: Adas(m, fused=f))):
        fused, plain = (optimizer_step(make, f, steps) for f in (True, False))
        rows.append({"workload": f"{name} step, MLP params (s)", "cuda_fused": fused,
                     "cuda_unfused": plain, "unfused_over_fused": plain / fused})
    return rows


def torch_times(x, y, batch_sizes, max_steps):
    """The same models in PyTorch on CUDA, if PyTorch is installed; else None."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    dev = torch.device("cuda")
    xt, yt = torch.tensor(x, device=dev), torch.tensor(y, device=dev)
    out = {}
    for bs in batch_sizes:
        net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                  torch.nn.Linear(256, 10)).to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        perm = torch.randperm(len(x), device=dev)
        n = min((len(x) + bs - 1) // bs, max_steps)

        def step(i):
            idx = perm[i * bs:(i + 1) * bs]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
            opt.step()
        for i in range(3):  # warm-up, as minidl's: CUDA context, cuBLAS handles, allocator
            step(i)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for i in range(n):
            step(i)
        torch.cuda.synchronize()
        out[f"mlp_{bs}"] = (time.perf_counter() - start) * ((len(x) + bs - 1) // bs) / n
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128, 1024])
    ap.add_argument("--max-steps", type=int, default=400, help="steps timed per epoch")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads (threadpoolctl)")
    ap.add_argument("--optimizer-steps", type=int, default=200,
                    help="optimizer steps per timing run (fused vs unfused, GPU only)")
    ap.add_argument("--out", default="results")
    args = ap.parse_args(argv)
    if args.threads:
        md.set_num_threads(args.threads)

    (x, y), _ = load_mnist()
    x, img = flatten(scale(x)), scale(load_mnist()[0][0])
    devices = ["cpu"] + (["cuda"] if backend.gpu_available() else [])
    if len(devices) == 1:
        print("no GPU: CuPy is not installed or sees no CUDA device; timing the CPU only")
    rows = []
    for bs in args.batch_sizes:
        row = {"workload": f"MLP epoch, batch {bs} (s)"}
        for dev in devices:
            row[dev] = mlp_epoch(dev, x, y, bs, args.max_steps)
        rows.append(row)
    row = {"workload": "LeNet fwd+bwd, batch 128 (s)"}
    for dev in devices:
        row[dev] = lenet_batch(dev, img, y)
    rows.append(row)
    torch = torch_times(x, y, args.batch_sizes, args.max_steps) if "cuda" in devices else None
    if torch:
        for r, bs in zip(rows, args.batch_sizes):
            r["torch_cuda"] = torch[f"mlp_{bs}"]
    print(f"{'workload':<32}" + "".join(f"{d:>12}" for d in devices)
          + ("  cpu/cuda" if "cuda" in devices else "") + ("  torch_cuda" if torch else ""))
    for r in rows:
        line = f"{r['workload']:<32}" + "".join(f"{r[d]:>12.4f}" for d in devices)
        if "cuda" in devices:
            r["cpu_over_cuda"] = r["cpu"] / r["cuda"]
            line += f"  {r['cpu_over_cuda']:>8.1f}x"
        if "torch_cuda" in r:
            line += f"  {r['torch_cuda']:>10.4f}"
        print(line)
    if "cuda" in devices:
        steps = fused_rows(args.optimizer_steps)
        print(f"\n{'optimizer step':<32}{'fused':>12}{'unfused':>12}  unfused/fused")
        for r in steps:
            print(f"{r['workload']:<32}{r['cuda_fused']:>12.6f}{r['cuda_unfused']:>12.6f}"
                  f"  {r['unfused_over_fused']:>8.1f}x")
        rows += steps
    else:
        print("no GPU: fused optimizer kernels (Adam, ADAS) not timed")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_gpu.json").write_text(json.dumps(rows, indent=2))
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(out / "bench_gpu.csv", "w") as f:
        f.write(",".join(keys) + "\n")
        for r in rows:
            f.write(",".join(str(r.get(k, "")) for k in keys) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
