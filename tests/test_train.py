"""fit / evaluate / History / checkpoints on real MNIST, and the atomic save format."""

import json
import signal

import numpy as np
import pytest

import minidl as md
from minidl import backend, serialize
from minidl.data import flatten, load_mnist, scale
from minidl.models import mlp
from minidl.optim.adam import Adam
from minidl.optim import flat
from minidl.optim.adas import Adas
from minidl.optim.sgd import SGD
from minidl.train import CHECKPOINT, History, evaluate, fit
from tests.conftest import cupyx_module
from tests.train_harness import interrupt_forward


@pytest.fixture(scope="module")
def mnist():
    (xtr, ytr), (xte, yte) = load_mnist()
    return (flatten(scale(xtr)), ytr), (flatten(scale(xte)), yte)


def test_one_epoch_sgd_on_10k_images_beats_90_percent(mnist, tmp_path):
    (xtr, ytr), test = mnist
    md.manual_seed(0)
    model = mlp()
    opt = SGD(model, lr=0.05, momentum=0.9)
    h = fit(model, opt, (xtr[:10000], ytr[:10000]), 1, test=test, out=tmp_path,
            progress=False)
    rec = h.records[0]
    assert rec["test_acc"] > 0.90
    assert rec["train_errors"] == round((1 - rec["train_acc"]) * 10000)
    # the files a user gets
    rows = (tmp_path / "history.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,") and len(rows) == 2
    assert json.loads((tmp_path / "history.json").read_text())[0]["test_acc"] == rec["test_acc"]
    assert (tmp_path / CHECKPOINT).exists()


def test_evaluate_matches_numpy(mnist):
    (xtr, ytr), _ = mnist
    md.manual_seed(1)
    model = mlp(hidden=(16,))
    r = evaluate(model, xtr[:3000], ytr[:3000], batch_size=700)
    w1, b1, w2, b2 = (p.numpy().astype(np.float64) for p in model.parameters())
    z = np.maximum(xtr[:3000] @ w1 + b1, 0) @ w2 + b2
    lse = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)
    assert r["loss"] == pytest.approx(np.mean(lse - z[np.arange(3000), ytr[:3000]]), rel=1e-5)
    assert r["errors"] == int((z.argmax(1) != ytr[:3000]).sum())


def _run(xtr, ytr, out, epochs, resume=False, interrupt_at=None):
    md.manual_seed(0)
    model = mlp(hidden=(32,))
    opt = SGD(model, lr=0.05, momentum=0.9)
    if interrupt_at is not None:
        interrupt_forward(model, interrupt_at)
    h = fit(model, opt, (xtr, ytr), epochs, out=out, resume=resume, progress=False,
            batch_size=64, eval_train=False)
    return model, opt, h


def test_resume_is_bit_identical(mnist, tmp_path):
    (xtr, ytr), _ = mnist
    xtr, ytr = xtr[:4000], ytr[:4000]
    full, opt_full, h_full = _run(xtr, ytr, tmp_path / "a", 3)
    _run(xtr, ytr, tmp_path / "b", 1)  # stops after epoch 1
    resumed, opt_res, h_res = _run(xtr, ytr, tmp_path / "b", 3, resume=True)
    for p, q in zip(full.parameters(), resumed.parameters()):
        assert np.array_equal(p.data, q.data)
    assert h_res["online_loss"] == h_full["online_loss"]


def test_ctrl_c_saves_and_resume_mid_epoch_is_bit_identical(mnist, tmp_path, capsys):
    (xtr, ytr), _ = mnist
    xtr, ytr = xtr[:4000], ytr[:4000]
    full, _, h_full = _run(xtr, ytr, tmp_path / "a", 2)
    _, _, h_cut = _run(xtr, ytr, tmp_path / "b", 2, interrupt_at=90)  # epoch 2, batch 27
    assert len(h_cut) == 1 and "interrupted in epoch 2 after 26 batches" in capsys.readouterr().out
    resumed, _, h_res = _run(xtr, ytr, tmp_path / "b", 2, resume=True)
    for p, q in zip(full.parameters(), resumed.parameters()):
        assert np.array_equal(p.data, q.data)
    assert h_res["online_loss"] == pytest.approx(h_full["online_loss"], rel=1e-12)


def test_fit_validates_arguments(mnist):
    (xtr, ytr), _ = mnist
    model = mlp(hidden=(4,))
    with pytest.raises(ValueError, match="epochs"):
        fit(model, SGD(model, lr=0.1), (xtr[:10], ytr[:10]), -1)
    with pytest.raises(ValueError, match="same first dimension"):
        fit(model, SGD(model, lr=0.1), (xtr[:10], ytr[:9]), 1)


def test_history_columns_and_csv(tmp_path):
    h = History()
    h.append({"epoch": 1, "loss": 0.5})
    h.append({"epoch": 2, "loss": 0.25, "acc": 0.9})
    assert h["loss"] == [0.5, 0.25] and h["acc"] == [None, 0.9]
    h.to_csv(tmp_path / "h.csv")
    assert (tmp_path / "h.csv").read_text().splitlines() == ["epoch,loss,acc", "1,0.5,",
                                                               "2,0.25,0.9"]


def test_serialize_round_trip_keeps_types(tmp_path, device, xp):
    obj = {"a": xp.arange(6, dtype=np.float32).reshape(2, 3), 3: (1, 2.5, None),
           "nested": [{"k": True, "big": 2**100}], "s": "text"}
    path = serialize.save(obj, tmp_path / "x.npz")
    back = serialize.load(path)
    assert isinstance(back["a"], np.ndarray) and back["a"].dtype == np.float32
    assert np.array_equal(back["a"], backend.to_numpy(obj["a"]))
    assert back[3] == (1, 2.5, None) and back["nested"] == [{"k": True, "big": 2**100}]
    assert back["s"] == "text"


def test_serialize_is_atomic_and_detects_corruption(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    serialize.save({"v": np.ones(3)}, path)

    def broken_savez(f, **arrays):
        f.write(b"partial")
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        serialize.save({"v": np.zeros(3)}, path)
    monkeypatch.undo()
    assert np.array_equal(serialize.load(path)["v"], np.ones(3))  # old checkpoint intact
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.npz"]  # no temp file left
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        serialize.load(path)
    with pytest.raises(FileNotFoundError):
        serialize.load(tmp_path / "missing.npz")


HOT_OPTIMIZERS = {
    "sgd": lambda model: SGD(model, lr=0.05, momentum=0.9),
    "adam": lambda model: Adam(model, lr=1e-3),
    "adas": lambda model: Adas(model, batch_size=50),
}


@pytest.mark.parametrize("name", sorted(HOT_OPTIMIZERS))
def test_training_loop_reads_back_only_for_the_progress_bar(mnist, device, name):
    """On the GPU every host read is a device-to-host copy. The loop may read the running loss
    and accuracy every `log_every` steps (2 reads) and at the end of the epoch (2 reads),
    nothing else, whatever the optimizer: the same calls are counted on the CPU."""
    (xtr, ytr), _ = mnist
    md.manual_seed(0)
    model = mlp(hidden=(16,)).to(device)
    opt = HOT_OPTIMIZERS[name](model)
    before = backend.transfer_count()
    fit(model, opt, (xtr[:2000], ytr[:2000]), 1, batch_size=50, log_every=15, progress=False,
        eval_train=False, device=device)
    steps = 2000 // 50  # 40 steps: progress reads after steps 15, 30 and 40
    assert backend.transfer_count() - before == 2 * len(range(15, steps + 1, 15)) + 2 + 2


@pytest.mark.parametrize("name", sorted(HOT_OPTIMIZERS))
def test_gpu_training_steps_never_synchronize(mnist, name):
    """The counter above sees only minidl's own reads; CuPy can also stop the host silently
    (a float() of a device scalar, a boolean mask, ...). Inside cupyx.allow_synchronize(False)
    any such synchronisation raises, so training steps, the optimizer's included, make none."""
    if not backend.gpu_available():
        pytest.skip("no GPU: CuPy is not installed or sees no CUDA device")
    cupyx = cupyx_module()
    from minidl.data import DataLoader  # noqa: PLC0415
    from minidl.train import train_step  # noqa: PLC0415

    (xtr, ytr), _ = mnist
    md.manual_seed(0)
    model = mlp(hidden=(16,)).to("cuda")
    step = train_step(model, HOT_OPTIMIZERS[name](model), md.cross_entropy)
    batches = list(DataLoader(xtr[:500], ytr[:500], batch_size=50, device="cuda"))
    step(*batches[0])  # first step: lazy state, kernel compilation
    backend.synchronize("cuda")
    with cupyx.allow_synchronize(False):
        for xb, yb in batches[1:]:
            step(xb, yb)
    backend.synchronize("cuda")
    assert all(bool(backend.xp_of(p.data).isfinite(p.data).all()) for p in model.parameters())


class _SignalingSGD(SGD):
    """SGD that delivers a real SIGINT (what Ctrl-C sends) inside its `at`-th update call
    (a block of the flat buffers), after that block has moved and before the rest has."""

    def __init__(self, params, at=None, **kw):
        super().__init__(params, **kw)
        self.at, self.calls = at, 0

    def update(self, p, grad, state, group):
        super().update(p, grad, state, group)
        self.calls += 1
        if self.calls == self.at:
            signal.raise_signal(signal.SIGINT)


def _run_signaled(xtr, ytr, out, epochs, resume=False, at=None, test=None):
    md.manual_seed(0)
    model = mlp(hidden=(32,))
    opt = _SignalingSGD(model, at=at, lr=0.05, momentum=0.9)
    try:
        h = fit(model, opt, (xtr, ytr), epochs, out=out, resume=resume, progress=False,
                batch_size=64, eval_train=False, test=test)
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped fit()")
    return model, h


def test_real_ctrl_c_inside_an_optimizer_step_finishes_the_step_and_resumes_exactly(
        mnist, tmp_path, capsys, monkeypatch):
    # SGD updates the model's 25450 float32 values as one flat buffer in blocks: with
    # 6400-value blocks a step is 5 update calls (the 784x32 weight in four, the three small
    # tensors packed in one), and update 5 * 40 + 2 is in the middle of batch 41's step
    monkeypatch.setattr(flat, "BLOCK_BYTES", 6400 * 4)
    per_step = len(flat._plan_blocks([784 * 32, 32, 32 * 10, 10], 6400))
    assert per_step == 5
    (xtr, ytr), _ = mnist
    xtr, ytr = xtr[:2000], ytr[:2000]
    full, h_full = _run_signaled(xtr, ytr, tmp_path / "a", 2)
    _, h_cut = _run_signaled(xtr, ytr, tmp_path / "b", 2, at=per_step * 40 + 2)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    assert len(h_cut) == 1 and "interrupted in epoch 2 after 9 batches" in capsys.readouterr().out
    resumed, h_res = _run_signaled(xtr, ytr, tmp_path / "b", 2, resume=True)
    for p, q in zip(full.parameters(), resumed.parameters()):
        assert np.array_equal(p.data, q.data)
    assert h_res["online_loss"] == pytest.approx(h_full["online_loss"], rel=1e-12)


def test_real_ctrl_c_during_the_end_of_epoch_evaluation_saves_that_epoch(mnist, tmp_path, capsys):
    (xtr, ytr), (xte, yte) = mnist
    xtr, ytr, test = xtr[:2000], ytr[:2000], (xte[:500], yte[:500])
    full, h_full = _run_signaled(xtr, ytr, tmp_path / "a", 2, test=test)
    md.manual_seed(0)
    model = mlp(hidden=(32,))
    forward = model.forward

    def forward_hit_during_evaluation(x):
        if not model.training:
            signal.raise_signal(signal.SIGINT)
        return forward(x)
    object.__setattr__(model, "forward", forward_hit_during_evaluation)
    try:
        h_cut = fit(model, _SignalingSGD(model, lr=0.05, momentum=0.9), (xtr, ytr), 2, test=test,
                    out=tmp_path / "b", progress=False, batch_size=64, eval_train=False)
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped fit()")
    assert len(h_cut) == 1 and h_cut.records[0] == {**h_full.records[0],
                                                    "time": h_cut.records[0]["time"]}
    assert "interrupted after epoch 1; checkpoint saved" in capsys.readouterr().out
    resumed, h_res = _run_signaled(xtr, ytr, tmp_path / "b", 2, resume=True, test=test)
    for p, q in zip(full.parameters(), resumed.parameters()):
        assert np.array_equal(p.data, q.data)
    assert h_res["test_acc"] == h_full["test_acc"]
