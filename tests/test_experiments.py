"""Smoke runs of the reproduction and benchmark scripts in experiments/ (seconds each, on real
MNIST), and the pieces of the ADAS reproduction that change the training setup."""

import csv
import importlib.util
import json
import math

import numpy as np
import pytest

import minidl as md
from minidl.models import mlp
from tests.script_harness import load_experiment, run_experiment


def _run(script: str, *args: str) -> str:
    done = run_experiment(script, *args)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_adas_mnist_smoke_writes_a_consistent_table(tmp_path):
    out = tmp_path / "adas"
    _run("adas_mnist.py", "--epochs", "2", "--subset", "1000", "--seeds", "0", "1",
         "--optimizers", "adas", "adam", "--no-progress", "--out", str(out))
    rows = json.loads((out / "adas_mnist.json").read_text())
    assert [(r["optimizer"], r["seed"], r["epoch"]) for r in rows] == [
        (name, seed, epoch) for seed in (0, 1) for name in ("adas", "adam") for epoch in (1, 2)]
    with open(out / "adas_mnist.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == len(rows)
    for r in rows:
        assert 0 <= r["train_errors"] <= 1000 and 0 <= r["online_errors"] <= 1000
        assert math.isclose(r["train_acc"], 1 - r["train_errors"] / 1000, abs_tol=1e-9)
        assert 0.5 < r["test_acc"] <= 1.0  # 2 epochs on 1000 images already learn something
    summary = json.loads((out / "summary.json").read_text())
    assert summary["logit_penalty"] == 1e-5 and summary["init"] == "torch"
    for name in ("adas", "adam"):
        for seed in (0, 1):
            last = [r for r in rows if r["optimizer"] == name and r["seed"] == seed][-1]
            got = summary["optimizers"][name]["per_seed"][str(seed)]
            assert got["train_errors_at"]["2"] == last["train_errors"]
    if importlib.util.find_spec("matplotlib"):
        assert (out / "adas_mnist.png").read_bytes()[:4] == b"\x89PNG"


def test_penalised_cross_entropy_has_the_cpp_output_derivative():
    """Per sample, d loss / d logits = p - y + penalty * z (the C++ program's output derivative,
    with minidl's sign), divided by the batch size because the loss is a batch mean."""
    loss_fn = load_experiment("adas_mnist").penalised_cross_entropy(0.3)
    rng = np.random.default_rng(0)
    z = md.Tensor(rng.standard_normal((5, 4)), requires_grad=True)
    y = np.array([0, 3, 1, 1, 2])
    loss_fn(z, y).backward()
    p = np.exp(z.data) / np.exp(z.data).sum(axis=1, keepdims=True)
    expected = (p - np.eye(4)[y] + 0.3 * z.data) / 5
    np.testing.assert_allclose(z.grad, expected, rtol=1e-12, atol=1e-15)


def test_cpp_init_draws_from_the_cpp_range():
    md.manual_seed(0)
    model = mlp(hidden=(256,))
    load_experiment("adas_mnist").cpp_init(model)
    for layer, fan_in in ((model[0], 784), (model[2], 256)):
        bound = 4 / math.sqrt(fan_in + 1)
        for p in (layer.weight, layer.bias):
            assert np.abs(p.numpy()).max() <= bound
        # uniform: reaches the edges (weight and bias together: a 10-element bias alone stays
        # inside 0.9 * bound with probability 0.9^10 = 0.35)
        values = np.concatenate([layer.weight.numpy().ravel(), layer.bias.numpy()])
        assert np.abs(values).max() > 0.9 * bound
        # uniform(-b, b) has standard deviation b / sqrt(3)
        assert layer.weight.numpy().std() == pytest.approx(bound / math.sqrt(3), rel=0.05)


def test_bench_mlp_smoke_agrees_with_its_numpy_twin(tmp_path):
    text = _run("bench_mlp.py", "--batch-sizes", "128", "--rounds", "1", "--max-steps", "20",
                "--out", str(tmp_path))
    assert "ratio" in text
    (row,) = json.loads((tmp_path / "bench_mlp.json").read_text())
    assert row["batch_size"] == 128 and row["minidl_s"] > 0 and row["numpy_s"] > 0
    # 20 Adam steps in float32: the two implementations of the same step stay together
    assert row["max_param_diff"] < 1e-4


def test_bench_conv_smoke_agrees_with_its_numpy_twin(tmp_path):
    text = _run("bench_conv.py", "--rounds", "1", "--steps", "1", "--batches", "1",
                "--out", str(tmp_path))
    assert "ratio minidl / numpy" in text
    row = json.loads((tmp_path / "bench_conv.json").read_text())
    # float32 gradients of the same computation: equal up to the order of a BLAS sum
    assert row["max_grad_rel_diff"] < 1e-5 and row["minidl_ms"] > 0 and row["numpy_ms"] > 0


def test_bench_speed_smoke_writes_one_ratio_table(tmp_path):
    text = _run("bench_speed.py", "--workloads", "mlp128", "cnn", "adas", "--rounds", "1",
                "--steps", "1", "--max-steps", "5", "--out", str(tmp_path))
    assert "cores" in text and "ADAS / Adam" in text
    rows = {r["workload"]: r for r in json.loads((tmp_path / "bench_speed.json").read_text())}
    assert set(rows) == {"mlp128", "cnn", "adas"}
    assert rows["mlp128"]["minidl"] > 0 and rows["mlp128"]["ratio_numpy"] > 0
    assert rows["adas"]["ratio_adam"] > 0 and rows["cnn"]["unit"] == "ms/step"
    with open(tmp_path / "bench_speed.csv") as fh:
        assert [r["workload"] for r in csv.DictReader(fh)] == ["mlp128", "cnn", "adas"]


def test_bench_gpu_runs_on_the_cpu_alone(tmp_path):
    text = _run("bench_gpu.py", "--batch-sizes", "128", "--max-steps", "5", "--out",
                str(tmp_path))
    assert "MLP epoch, batch 128" in text


def test_gpu_check_without_a_gpu_says_so_in_one_line(tmp_path):
    from tests.conftest import CUDA

    if CUDA["mode"] == "gpu":
        pytest.skip("a GPU is present: gpu_check.py would run its checks")
    done = run_experiment("gpu_check.py", "--out", str(tmp_path / "check"))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "no GPU" in done.stderr
    assert not (tmp_path / "check").exists()


def test_adas_inside_smoke_writes_figures_and_numbers(tmp_path):
    """Two short epochs: the per-pixel step sizes and offsets come out as PNG, CSV and JSON,
    and the offsets (a running mean of the inputs) follow the mean digit of the same images."""
    _run("adas_inside.py", "--epochs", "2", "--subset", "640", "--out", str(tmp_path))
    for name in ("adas_step_sizes.png", "adas_offsets.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    table = np.loadtxt(tmp_path / "adas_inside.csv", delimiter=",", skiprows=1)
    assert table.shape == (784, 5)  # pixel, two epochs of step sizes, offset, mean digit
    summary = json.loads((tmp_path / "adas_inside.json").read_text())
    assert [e["epoch"] for e in summary["step_sizes"]] == [1, 2]
    for e, column in zip(summary["step_sizes"], (1, 2)):
        assert e["min"] == pytest.approx(table[:, column].min(), rel=1e-6)
        assert 0 < e["min"] <= e["median"] <= e["max"]
    assert np.corrcoef(table[:, 3], table[:, 4])[0, 1] > 0.99
