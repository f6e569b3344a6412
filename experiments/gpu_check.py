"""One command for a machine with an NVIDIA GPU and CuPy: check minidl's GPU path there.

    python experiments/gpu_check.py --out DIR

Three stages, each in its own process with its own time limit (together under 8 minutes):

1. tests: the 'cuda' half of the test suite on the real GPU (`pytest --no-cupy-standin -k
   "cuda or gpu or nvrtc"`: every op, layer, loss and optimizer parametrised over devices, the
   fused kernels against the unfused path, training inside cupyx.allow_synchronize(False),
   fit / resume / Ctrl-C / CLI / LeNet end to end, NVRTC compilation of the kernels);
2. cli: `python -m minidl train --device cuda` for one short epoch (10,000 MNIST images);
3. bench: experiments/bench_gpu.py (CPU against GPU, fused against unfused optimizer steps,
   and PyTorch on CUDA, warmed up first, when it is installed).

DIR receives each stage's log (tests.log with a JUnit tests.xml, cli.log and the run's files
under cli/, bench.log with bench_gpu.csv/.json under bench/) and summary.json: the device,
CuPy's version, and per stage the command, exit code, seconds and whether it timed out. The
summary is printed at the end; the exit code is 0 only when every stage passed. Without a GPU
it prints one line saying so and exits with 2.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minidl import backend  # noqa: E402

# seconds per stage: 300 + 60 + 110 = 470 s, under 8 minutes with start-up
LIMITS = {"tests": 300, "cli": 60, "bench": 110}


def stages(out: Path) -> dict:
    py = sys.executable
    return {
        "tests": [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--no-cupy-standin",
                  "-k", "cuda or gpu or nvrtc", f"--junitxml={out / 'tests.xml'}",
                  str(ROOT / "tests")],
        "cli": [py, "-m", "minidl", "train", "--device", "cuda", "--epochs", "1", "--subset",
                "10000", "--batch-size", "128", "--out", str(out / "cli")],
        "bench": [py, str(ROOT / "experiments" / "bench_gpu.py"), "--max-steps", "100",
                  "--optimizer-steps", "50", "--out", str(out / "bench")],
    }


def run_stage(name: str, cmd: list, out: Path) -> dict:
    """Run one stage with its time limit, its output to DIR/<name>.log."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    log = out / f"{name}.log"
    start = time.perf_counter()
    with open(log, "w") as f:
        try:
            rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
                                timeout=LIMITS[name]).returncode
            timed_out = False
        except subprocess.TimeoutExpired:
            rc, timed_out = None, True
    record = {"command": " ".join(cmd), "returncode": rc, "timed_out": timed_out,
              "seconds": round(time.perf_counter() - start, 1), "log": log.name}
    lines = log.read_text(errors="replace").strip().splitlines()
    record["last_line"] = lines[-1] if lines else ""
    if name == "tests":  # "12 failed, 2400 passed, 3 skipped in 200.1s"
        record["counts"] = {k: int(n) for n, k in re.findall(
            r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed)", record["last_line"])}
    return record


def device_info() -> dict:
    cp = backend.xp_for("cuda")
    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    name = props["name"]
    return {"device": name.decode() if isinstance(name, bytes) else name,
            "compute_capability": f"{props['major']}.{props['minor']}",
            "cupy": cp.__version__, "cuda_runtime": cp.cuda.runtime.runtimeGetVersion()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="folder for the logs and summary.json")
    args = ap.parse_args(argv)
    if not backend.gpu_available():
        print("gpu_check: no GPU: CuPy is not installed or sees no CUDA device "
              "(pip install 'minidl[gpu]' on a machine with an NVIDIA GPU)", file=sys.stderr)
        return 2
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    summary = {**device_info(), "stages": {}}
    for name, cmd in stages(out).items():
        print(f"gpu_check: {name} (limit {LIMITS[name]} s) ...", flush=True)
        summary["stages"][name] = record = run_stage(name, cmd, out)
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        state = "TIMED OUT" if record["timed_out"] else f"exit {record['returncode']}"
        print(f"  {state} in {record['seconds']} s: {record['last_line']}", flush=True)
    ok = all(r["returncode"] == 0 for r in summary["stages"].values())
    print(f"gpu_check: {'all stages passed' if ok else 'FAILED'} on {summary['device']} "
          f"(CuPy {summary['cupy']}); logs and summary.json in {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
