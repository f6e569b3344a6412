"""Training on 'cuda' end to end (a real GPU, else the CuPy stand-in): fit with test data and
checkpoints, resume and Ctrl-C with Dropout, the CLI, LeNet, state_dict round trips, and the
host reads of a whole epoch for every optimizer. Small subsets keep each test fast."""

import json
import subprocess

import numpy as np
import pytest

import minidl as md
from minidl import backend, nn, serialize
from minidl.optim import create
from minidl.data import flatten, load_mnist, scale
from minidl.models import lenet
from minidl.optim import OPTIMIZERS
from minidl.optim.sgd import SGD
from minidl.train import CHECKPOINT, fit
from tests.conftest import CUDA, minidl_command, on_standin
from tests.train_harness import interrupt_forward

pytestmark = pytest.mark.skipif(CUDA["mode"] is None, reason="'cuda' is switched off (no GPU "
                                "and --no-cupy-standin / MINIDL_TEST_CUPY=off)")


@pytest.fixture(scope="module")
def mnist():
    (xtr, ytr), (xte, yte) = load_mnist()
    return (flatten(scale(xtr[:1200])), ytr[:1200]), (flatten(scale(xte[:300])), yte[:300])


def _dropout_mlp():
    return nn.Sequential(nn.Dense(784, 32), nn.ReLU(), nn.Dropout(0.3), nn.Dense(32, 10))


def _fit(data, out, epochs, resume=False, interrupt_at=None, test=None):
    """Dropout MLP, SGD with momentum, built on 'cuda' from seed 0; `interrupt_at`: the forward
    call that raises KeyboardInterrupt (Ctrl-C inside an epoch)."""
    md.manual_seed(0)
    model = _dropout_mlp().to("cuda")
    if interrupt_at is not None:
        interrupt_forward(model, interrupt_at)
    h = fit(model, SGD(model, lr=0.05, momentum=0.9), data, epochs, batch_size=100, test=test,
            out=out, resume=resume, progress=False, eval_train=False, device="cuda")
    return model, h


def _params(model):
    return [backend.to_numpy(p.data) for p in model.parameters()]


def test_fit_with_test_data_and_checkpoints_then_resume_is_bit_identical(mnist, tmp_path):
    train, test = mnist
    full, h_full = _fit(train, tmp_path / "a", 3, test=test)
    _fit(train, tmp_path / "b", 1, test=test)
    ckpt = serialize.load(tmp_path / "b" / CHECKPOINT)
    assert ckpt["rng"]["seed"] == 0 and ckpt["rng"]["counter"] > 0  # Dropout drew from it
    resumed, h_res = _fit(train, tmp_path / "b", 3, resume=True, test=test)
    for p, q in zip(_params(full), _params(resumed)):
        np.testing.assert_array_equal(p, q)
    assert h_res["test_acc"] == h_full["test_acc"] and h_full["test_acc"][-1] > 0.5
    assert h_res["online_loss"] == h_full["online_loss"]


def test_ctrl_c_on_cuda_saves_and_resume_mid_epoch_is_bit_identical(mnist, tmp_path, capsys):
    train, _ = mnist
    full, h_full = _fit(train, tmp_path / "a", 2)
    _, h_cut = _fit(train, tmp_path / "b", 2, interrupt_at=17)  # epoch 2, batch 5
    assert len(h_cut) == 1 and "interrupted in epoch 2 after 4 batches" in capsys.readouterr().out
    resumed, h_res = _fit(train, tmp_path / "b", 2, resume=True)
    for p, q in zip(_params(full), _params(resumed)):
        np.testing.assert_array_equal(p, q)
    assert h_res["online_loss"] == pytest.approx(h_full["online_loss"], rel=1e-12)


def test_lenet_trains_on_cuda_as_on_the_cpu(mnist):
    """Built from the same seed on either device, LeNet starts from the same weights and three
    SGD steps take it to the same place (to float32 rounding on a real GPU)."""
    (x, y), _ = mnist
    x = x[:96].reshape(-1, 1, 28, 28)
    trained = {}
    for device in ("cpu", "cuda"):
        md.manual_seed(4)
        model = lenet().to(device)
        opt = SGD(model, lr=0.05, momentum=0.9)
        for i in range(3):
            xb = backend.to_device(x[32 * i:32 * (i + 1)], device)
            yb = backend.to_device(y[32 * i:32 * (i + 1)], device)
            opt.zero_grad()
            md.cross_entropy(model(md.Tensor(xb)), yb).backward()
            opt.step()
        trained[device] = _params(model)
    for p, q in zip(trained["cpu"], trained["cuda"]):
        assert np.isfinite(q).all()
        np.testing.assert_allclose(q, p, rtol=1e-4, atol=1e-5)


def test_module_state_dict_round_trips_between_devices(tmp_path):
    md.manual_seed(1)
    model = nn.Sequential(nn.Dense(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Dense(5, 3))
    model.to("cuda")
    x = md.Tensor(backend.to_device(np.random.default_rng(0).random((8, 6), np.float32), "cuda"))
    model(x)  # moves BatchNorm's running statistics off their initial values
    state = model.state_dict()
    assert all(backend.device_of(v) == "cuda" for v in state.values() if hasattr(v, "shape"))
    serialize.save({"model": dict(state)}, tmp_path / "m.npz")
    loaded = serialize.load(tmp_path / "m.npz")["model"]
    md.manual_seed(2)  # different initial weights
    on_cpu = nn.Sequential(nn.Dense(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Dense(5, 3))
    on_cpu.load_state_dict(loaded)
    back = nn.Sequential(nn.Dense(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Dense(5, 3))
    back.to("cuda").load_state_dict(on_cpu.state_dict())
    for key, value in state.items():
        want = backend.to_numpy(value)
        np.testing.assert_array_equal(np.asarray(on_cpu.state_dict()[key]), want)
        got = back.state_dict()[key]
        assert backend.device_of(got) == "cuda" or not hasattr(got, "shape")
        np.testing.assert_array_equal(backend.to_numpy(got), want)


def test_cli_trains_on_cuda(tmp_path):
    """`python -m minidl train --device cuda`, LeNet on a few batches, then --resume."""
    args = ["train", "--model", "lenet", "--optimizer", "adam", "--epochs", "1", "--subset",
            "256", "--batch-size", "64", "--device", "cuda", "--out", str(tmp_path)]
    r = subprocess.run([*minidl_command(), *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "cuda" in r.stdout and "final: train accuracy" in r.stdout
    (record,) = json.loads((tmp_path / "history.json").read_text())
    assert np.isfinite(record["train_loss"]) and (tmp_path / CHECKPOINT).exists()
    r = subprocess.run([*minidl_command(), *args[:6], "2", *args[7:], "--resume"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert len(json.loads((tmp_path / "history.json").read_text())) == 2


# Optimizers that read the device by design: L-BFGS decides its line search and convergence
# on the host each step; Eve feeds the loss value back into its step size every step.
READS_BY_DESIGN = {"lbfgs", "eve"}


@pytest.mark.parametrize("name", sorted(set(OPTIMIZERS) - READS_BY_DESIGN))
def test_a_whole_epoch_reads_back_only_for_progress(mnist, name):
    """An epoch of 8 steps with progress every 3 steps: 2 reads per progress line (steps 3, 6
    and the last) and 2 for the epoch's totals, for every optimizer. Under the stand-in every device-to-host read
    is counted, including any the code makes without going through backend.to_numpy."""
    (x, y), _ = mnist
    md.manual_seed(0)
    model = md.models.mlp(hidden=(8,)).to("cuda")
    # Santa's lr has no default; without the drift term SantaE's Euler step stays finite here
    # (its docstring: the term divides by the momentum)
    santa = {"lr": 1e-6, "preconditioner_drift": False}
    hyper = santa if name.startswith("santa") else {}
    opt = create(name, model, dataset_size=400, batch_size=50, **hyper)
    if on_standin():
        from tests import cupy_standin
        device_reads = cupy_standin.host_reads()
    before = backend.transfer_count()
    fit(model, opt, (x[:400], y[:400]), 1, batch_size=50, log_every=3, progress=False,
        eval_train=False, device="cuda")
    assert backend.transfer_count() - before == 2 * 3 + 2
    if on_standin():
        assert cupy_standin.host_reads() - device_reads == 2 * 3 + 2
