"""Runs you can trust: resume checks, run folders, divergence, Ctrl-C inside an optimizer step,
and checkpoints that are refused with a clear error (library side; the CLI is in test_cli)."""

import errno
import gzip
import json
import os
import signal
import stat
import tracemalloc
import zipfile

import numpy as np
import pytest

import minidl as md
from minidl import checkpoint, serialize
from minidl.checkpoint import CHECKPOINT, CheckpointError, ResumeConflict
from minidl.data import DataError, read_idx
from minidl.models import mlp
from minidl.optim import SGD, Adam, ReduceLROnPlateau, flat
from minidl.train import NonFiniteLossError, evaluate, fit

RNG = np.random.default_rng(0)
X = RNG.standard_normal((256, 12)).astype(np.float32)
Y = (X[:, 0] > 0).astype(np.int64) + 2 * (X[:, 1] > 0)


def _model(hidden=8):
    md.manual_seed(0)
    return mlp(hidden=(hidden,), in_features=12, classes=4)


def _fit(out, epochs=1, opt=None, model=None, **kw):
    model = model or _model()
    opt = opt or SGD(model, lr=0.1)
    kw = {"batch_size": 32, "progress": False, "eval_train": False, **kw}
    return model, opt, fit(model, opt, (X, Y), epochs, out=out, **kw)


# ------------------------------------------------------------------------------ resume
def test_resume_refuses_every_contradiction_and_names_each(tmp_path):
    _fit(tmp_path)
    before = (tmp_path / CHECKPOINT).read_bytes()
    model = _model()
    with pytest.raises(ResumeConflict) as info:
        _fit(tmp_path, 2, opt=SGD(model, lr=0.5, weight_decay=0.1), model=model, resume=True,
             batch_size=16, seed=3)
    msg = str(info.value)
    for part in ("lr 0.5 given, checkpoint was trained with 0.1",
                 "weight_decay 0.1 given, checkpoint was trained with 0.0",
                 "batch_size 16 given, checkpoint was trained with 32",
                 "seed 3 given, checkpoint was trained with 0"):
        assert part in msg
    assert (tmp_path / CHECKPOINT).read_bytes() == before  # nothing trained, nothing saved
    model = _model()
    with pytest.raises(ResumeConflict, match="optimizer class 'Adam' given.*'SGD'"):
        _fit(tmp_path, 2, opt=Adam(model), model=model, resume=True)
    with pytest.raises(ResumeConflict, match=r"parameter shapes \[\[12, 9\]"):
        _fit(tmp_path, 2, model=_model(hidden=9), resume=True)
    _fit(tmp_path / "c", config={"dataset": "digits"})
    with pytest.raises(ResumeConflict, match="dataset 'fashion' given.*'digits'"):
        _fit(tmp_path / "c", 2, config={"dataset": "fashion"}, resume=True)


def test_resume_with_an_allowed_change_trains_on_with_the_new_value(tmp_path):
    _fit(tmp_path)
    model = _model()
    _, opt, h = _fit(tmp_path, 2, opt=SGD(model, lr=0.5), model=model, resume=True,
                     allow_changes=["lr"])
    assert len(h) == 2 and opt.param_groups[0]["lr"] == 0.5 and h["lr"] == [0.1, 0.5]
    assert serialize.load(tmp_path / CHECKPOINT)["identity"]["lr"] == 0.5  # what ran
    with pytest.raises(ValueError, match="batch_size cannot change on resume"):
        _fit(tmp_path, 3, resume=True, allow_changes=["batch_size"])


def test_a_new_run_never_replaces_an_old_one_unless_asked(tmp_path):
    _fit(tmp_path, 2)
    with pytest.raises(FileExistsError, match="already holds a run"):
        _fit(tmp_path)
    assert len(json.loads((tmp_path / "history.json").read_text())) == 2
    _fit(tmp_path, overwrite=True)
    assert len(json.loads((tmp_path / "history.json").read_text())) == 1


def test_run_folder_problems_are_found_before_any_work(tmp_path):
    (tmp_path / "file").write_text("x")
    model = _model()
    start = [p.data.copy() for p in model.parameters()]
    with pytest.raises(NotADirectoryError, match="is a file"):
        _fit(tmp_path / "file", model=model)
    with pytest.raises(ValueError, match="test inputs have shape \\(11,\\) per sample"):
        _fit(None, model=model, test=(X[:10, :11], Y[:10]))
    with pytest.raises(ValueError, match="no samples"):
        fit(model, SGD(model, lr=0.1), (X[:0], Y[:0]), 1)
    with pytest.raises(ValueError, match="evaluate needs samples"):
        evaluate(model, X[:0], Y[:0])
    assert all(np.array_equal(p.data, s) for p, s in zip(model.parameters(), start))


def test_orphan_temporary_files_are_removed_by_the_next_run(tmp_path):
    _fit(tmp_path)
    orphans = [tmp_path / f".{CHECKPOINT}.abc123.tmp", tmp_path / ".history.csv.k3j9.tmp",
               tmp_path / ".config.json.x7q2.tmp"]
    for o in orphans:
        o.write_bytes(b"half written")
    _fit(tmp_path, 2, resume=True)
    assert not any(o.exists() for o in orphans)


def test_every_output_file_gets_the_same_permissions(tmp_path):
    _fit(tmp_path)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert set(modes) == {CHECKPOINT, "history.csv", "history.json"}
    assert len(set(modes.values())) == 1, modes


def test_reduce_lr_on_plateau_gets_its_metric_from_fit(tmp_path):
    model = _model()
    opt = SGD(model, lr=0.1)
    _, _, h = _fit(None, 3, opt=opt, model=model,
                   scheduler=ReduceLROnPlateau(opt, patience=0, factor=0.5, threshold=10.0))
    assert h["lr"] == [0.1, 0.05, 0.025]  # no improvement by 10x: halved after each epoch


# -------------------------------------------------------------------------- divergence
def _nan_at(call):
    """cross_entropy, except that the loss of training step `call` is NaN."""
    calls = {"n": 0}

    def loss_fn(logits, y):
        calls["n"] += 1
        loss = md.cross_entropy(logits, y)
        return loss * float("nan") if calls["n"] == call else loss
    return loss_fn


def test_nonfinite_loss_raises_naming_epoch_and_batch_and_keeps_the_last_good_run(tmp_path):
    _fit(tmp_path)
    before = (tmp_path / CHECKPOINT).read_bytes(), (tmp_path / "history.json").read_text()
    with pytest.raises(NonFiniteLossError, match="loss became nan at epoch 2, batch 3$"):
        _fit(tmp_path, 2, resume=True, loss_fn=_nan_at(3), log_every=5)
    after = (tmp_path / CHECKPOINT).read_bytes(), (tmp_path / "history.json").read_text()
    assert after == before


def test_nonfinite_loss_stop_returns_the_history_and_ignore_writes_json_null(tmp_path):
    _, _, h = _fit(None, 3, loss_fn=_nan_at(12), on_nonfinite="stop", log_every=3)
    assert len(h) == 1
    assert h.stop_reason == "loss became nan at epoch 2, batch 4"
    _, _, h = _fit(tmp_path, 1, loss_fn=_nan_at(2), on_nonfinite="ignore")
    text = (tmp_path / "history.json").read_text()
    assert "NaN" not in text and json.loads(text)[0]["online_loss"] is None
    with pytest.raises(ValueError, match="on_nonfinite must be one of raise, stop, ignore"):
        _fit(None, on_nonfinite="warn")


# ------------------------------------------------------------------------------ Ctrl-C
# Adam updates the MLP's 140 float32 values as one flat buffer, in blocks of BLOCK_BYTES:
# with 64-byte blocks (16 values) a step is 10 update calls, so a signal can arrive mid-step
CALLS_PER_STEP = len(flat._plan_blocks([12 * 8, 8, 8 * 4, 4], 64 // 4))
assert CALLS_PER_STEP == 10


def _adam_run(out, epochs, monkeypatch=None, kills=0, at_call=None, resume=False):
    """Adam on the MLP (CALLS_PER_STEP update calls per step); `kills` SIGINTs sent from
    inside update call `at_call`, i.e. while the step is half applied."""
    if monkeypatch is not None:
        monkeypatch.setattr(flat, "BLOCK_BYTES", 64)
        update, calls = Adam.update, {"n": 0}

        def update_and_signal(self, p, grad, state, group):
            calls["n"] += 1
            update(self, p, grad, state, group)
            if calls["n"] == at_call:
                for _ in range(kills):
                    os.kill(os.getpid(), signal.SIGINT)
        monkeypatch.setattr(Adam, "update", update_and_signal)
    model = _model()
    return _fit(out, epochs, opt=Adam(model, lr=1e-2), model=model, resume=resume)


def test_two_ctrl_c_inside_an_adam_update_wait_for_the_step_and_resume_is_bit_identical(
        tmp_path, monkeypatch, capsys):
    full, _, h_full = _adam_run(tmp_path / "a", 2)
    # 8 batches per epoch: call CALLS_PER_STEP * 10 + 3 is the 3rd block of epoch 2's batch 3
    with monkeypatch.context() as m:
        _, _, h_cut = _adam_run(tmp_path / "b", 2, m, kills=2, at_call=CALLS_PER_STEP * 10 + 3)
    assert h_cut.stop_reason == "interrupted"
    assert "interrupted in epoch 2 after 3 batches" in capsys.readouterr().out
    resumed, _, h_res = _adam_run(tmp_path / "b", 2, resume=True)
    for p, q in zip(full.parameters(), resumed.parameters()):
        assert np.array_equal(p.data, q.data)
    assert h_res.records[1]["online_loss"] == pytest.approx(h_full.records[1]["online_loss"],
                                                            rel=1e-12)


def test_a_third_ctrl_c_cuts_the_step_and_leaves_the_checkpoint_alone(tmp_path, monkeypatch):
    _adam_run(tmp_path, 1)
    before = (tmp_path / CHECKPOINT).read_bytes()
    with pytest.raises(KeyboardInterrupt):
        _adam_run(tmp_path, 2, monkeypatch, kills=3, at_call=CALLS_PER_STEP * 2 + 3,
                  resume=True)
    assert (tmp_path / CHECKPOINT).read_bytes() == before
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# ------------------------------------------------------------------ refused checkpoints
def _crafted(path, members: dict):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def _npy_header(shape, dtype="<f8"):
    import io
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False,
                                               "shape": shape})
    return buf.getvalue()


def test_broken_or_foreign_checkpoints_are_refused_with_one_clear_error(tmp_path):
    _fit(tmp_path / "good")
    good = (tmp_path / "good" / CHECKPOINT).read_bytes()
    cases = {
        "empty": (b"", "the file is empty"),
        "random": (bytes(RNG.integers(0, 256, 4096, dtype=np.uint8)), "not an .npz archive"),
        "truncated": (good[:len(good) // 2], "corrupt or truncated"),
        "bitflip": (good[:200] + bytes([good[200] ^ 0x10]) + good[201:], "corrupt or truncated"),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / name / CHECKPOINT
        path.parent.mkdir()
        path.write_bytes(data)
        with pytest.raises(CheckpointError, match=message):
            checkpoint.read(path)
    (tmp_path / "dir" / CHECKPOINT).mkdir(parents=True)
    with pytest.raises(CheckpointError, match="is a folder, not a checkpoint file"):
        _fit(tmp_path / "dir", resume=True)


def test_crafted_checkpoints_are_refused_before_allocating(tmp_path):
    path = tmp_path / CHECKPOINT
    serialize.save({"model": {}}, path)
    with pytest.raises(CheckpointError, match="no optimizer, scheduler"):
        checkpoint.read(path)
    tree = ("[" * 50000 + "]" * 50000).encode()
    _crafted(path, {"__tree__.npy": _npy_header((len(tree),), "|u1") + tree})
    with pytest.raises(CheckpointError, match="nested too deeply"):
        checkpoint.read(path)
    # 10^12 float64 declared (8 TB), 16 bytes present: refused from the header
    _crafted(path, {"a0.npy": _npy_header((10 ** 12,)) + bytes(16),
                    "__tree__.npy": _npy_header((2,), "|u1") + b"{}"})
    tracemalloc.start()
    with pytest.raises(CheckpointError, match=r"declares \(1000000000000,\) of float64"):
        checkpoint.read(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 10 ** 7
    _fit(tmp_path / "other", model=_model(hidden=9))
    model = _model()
    opt = SGD(model, lr=0.1)
    ckpt = checkpoint.read(tmp_path / "other" / CHECKPOINT)
    with pytest.raises(CheckpointError, match="does not fit this model and optimizer"):
        checkpoint.restore(ckpt, "x", model, opt, None, md.data.DataLoader(X, Y))


def test_disk_full_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    _fit(tmp_path)
    before = (tmp_path / CHECKPOINT).read_bytes()

    def full(f, **arrays):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(np, "savez", full)
    with pytest.raises(OSError, match="No space left on device"):
        _fit(tmp_path, 2, resume=True)
    monkeypatch.undo()
    assert (tmp_path / CHECKPOINT).read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------------ data and gradcheck
def test_idx_with_a_bad_header_is_refused_before_decompressing_the_payload(tmp_path):
    path = tmp_path / "bomb.gz"
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(b"\x01\x02\x08\x03")  # bad magic, then 64 MB of zeros
        f.write(bytes(64 * 2 ** 20))
    tracemalloc.start()
    with pytest.raises(DataError, match="bad magic 01 02 08 03"):
        read_idx(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2 ** 20


def test_gradcheck_refuses_a_function_returning_an_array():
    w = md.Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(TypeError, match="fn must return a Tensor, got ndarray"):
        md.gradcheck(lambda w: w.data * 2, [w])
