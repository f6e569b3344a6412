"""Training loop: fit / evaluate / train_step, History.

fit() trains a classifier with softmax cross-entropy, shows a tqdm bar (loss and running
accuracy), evaluates on the full training set and the test set after every epoch, writes the
History as CSV and JSON, and saves an atomic checkpoint (model, optimizer, scheduler, loader
position, random state, history, the run's identity) after every epoch and on Ctrl-C.
Resuming from a checkpoint, even one written mid-epoch, continues exactly as the uninterrupted
run would have, and refuses objects that contradict the checkpoint (see minidl.checkpoint).

Ctrl-C never cuts a step in half: while fit runs, the first and the second SIGINT that arrive
during a training step (forward, backward and the whole optimizer update) wait until that step
ends; fit then stops, saves a checkpoint of that step and returns. Outside a step (during the
end-of-epoch evaluation) the first SIGINT stops after that epoch's checkpoint and a second one
interrupts at once. Only a third SIGINT during a step cuts it: fit then raises
KeyboardInterrupt and leaves the checkpoint on disk as it was (the last whole epoch or the
last Ctrl-C).

The hot path reads nothing back from the GPU: losses and correct counts accumulate on the
device and are read every `log_every` steps for the progress bar; the same read checks that
the loss is finite (a divergence then stops the run, see fit's on_nonfinite).
"""

from __future__ import annotations

import contextlib
import csv
import signal
import threading
import time

import numpy as np
from tqdm.auto import tqdm

from minidl import backend, checkpoint
from minidl.autograd import Tensor, no_grad
from minidl.checkpoint import CHECKPOINT, CheckpointError
from minidl.data.loader import DataLoader
from minidl.ops import cross_entropy

ON_NONFINITE = ("raise", "stop", "ignore")


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite (fit with on_nonfinite='raise')."""


class History:
    """Per-epoch records (dicts) with CSV/JSON export.

    history['test_acc'] gives one column as a list; history.records the rows.
    """

    def __init__(self, records: list | None = None):
        self.records = list(records or [])
        # None when fit ran to the end; "interrupted" after Ctrl-C; the divergence message
        # ("loss became nan at epoch 3, batch 17") when on_nonfinite="stop" stopped it
        self.stop_reason: str | None = None

    def append(self, record: dict) -> None:
        self.records.append(dict(record))

    def __getitem__(self, key: str) -> list:
        return [r.get(key) for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def to_csv(self, path) -> None:
        keys = list(dict.fromkeys(k for r in self.records for k in r))
        checkpoint.write_text(path, _csv_text(keys, self.records))

    def to_json(self, path) -> None:
        """Strict JSON: a non-finite number (a diverged loss) is written as null."""
        checkpoint.write_json(path, self.records)

    def __repr__(self) -> str:
        return f"History({len(self)} epochs)"


def _csv_text(keys, rows) -> str:
    import io  # noqa: PLC0415

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def evaluate(model, x, y, batch_size: int = 1000) -> dict:
    """Loss, accuracy and error count of `model` on arrays (x, y), in eval mode, no graph.

    x and y may be NumPy or device arrays (move them once with backend.to_device to avoid a
    copy per call). Returns {'loss', 'acc', 'errors', 'n'}.
    """
    n = len(x)
    if n == 0 or len(y) != n:
        raise ValueError(f"evaluate needs samples and one label each: got {n} inputs and "
                         f"{len(y)} labels")
    was_training = model.training
    params = list(model.parameters())
    if params:  # the model's device: host inputs are copied there once
        device = backend.device_of(params[0].data)
        x, y = backend.to_device(x, device), backend.to_device(y, device)
    model.eval()
    xp = backend.xp_of(x)
    loss_sum = xp.zeros((), dtype=np.float64)
    correct = xp.zeros((), dtype=np.int64)
    try:
        with no_grad():
            for i in range(0, n, batch_size):
                xb, yb = x[i:i + batch_size], y[i:i + batch_size]
                logits = model(Tensor(xb)).data
                loss_sum += cross_entropy(Tensor(logits), yb, reduction="sum").data
                correct += (logits.argmax(axis=1) == yb).sum()
    finally:
        model.train(was_training)
    loss, correct = float(backend.to_numpy(loss_sum)), int(backend.to_numpy(correct))
    return {"loss": loss / n, "acc": correct / n, "errors": n - correct, "n": n}


class _Interrupts:
    """Context manager that defers SIGINT (Ctrl-C) while fit runs.

    A signal sets `requested`; it raises KeyboardInterrupt only when it is the second one
    outside a training step, or the third one inside (`critical()`), where `cut` then records
    that a step was left half applied. Only installed from the main thread over Python's
    default handler (handlers can be set nowhere else; one the user installed is left alone).
    """

    def __init__(self):
        self.count = 0
        self.cut = False
        self._in_step = False
        self._installed = False

    @property
    def requested(self) -> bool:
        return self.count > 0

    def __enter__(self) -> "_Interrupts":
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def _handle(self, signum, frame) -> None:
        self.count += 1
        if self.count >= (3 if self._in_step else 2):
            self.cut = self._in_step
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def critical(self):
        """A block that the first two signals do not cut (one training step)."""
        self._in_step = True
        try:
            yield
        finally:
            self._in_step = False

    def __exit__(self, *exc) -> bool:
        if self._installed:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        return False


def train_step(model, optimizer, loss_fn=cross_entropy):
    """A function step(xb, yb) -> (loss Tensor, logits array) doing one optimisation step.

    Optimizers whose class declares `needs_closure` (LBFGS) get a closure that re-evaluates
    the batch; the others get one that returns the loss already computed (Eve reads it).
    """
    needs_closure = optimizer.needs_closure

    def step(xb, yb):
        out = {}

        def closure():
            optimizer.zero_grad()
            logits = model(xb)
            loss = loss_fn(logits, yb)
            loss.backward()
            out.setdefault("logits", logits.data)
            out.setdefault("loss", loss)
            return loss

        if needs_closure:
            optimizer.step(closure)
        else:
            closure()
            optimizer.step(lambda: out["loss"])  # hands the loss to optimizers that use it
        return out["loss"], out["logits"]

    return step


class _Epoch:
    """Running totals of one epoch, on the device: summed loss, correct count, samples seen,
    and the first batch whose loss was not finite (-1: none yet)."""

    def __init__(self, xp, online):
        self.loss_sum = xp.asarray(online[0], dtype=np.float64)
        self.correct = xp.asarray(online[1], dtype=np.int64)
        self.seen = int(online[2])
        self.first_bad = xp.asarray(-1, dtype=np.int64)
        self.xp = xp

    def add(self, batch: int, loss, logits, yb) -> None:
        n = len(yb)
        self.loss_sum += loss * n
        self.correct += (logits.argmax(axis=1) == yb).sum()
        self.seen += n
        # device-side: remembers where the loss first went bad without reading it back
        bad = (self.first_bad < 0) & ~self.xp.isfinite(loss)
        self.first_bad = self.xp.where(bad, batch, self.first_bad)

    def read(self) -> tuple[float, int]:
        """(summed loss, correct count) on the host: the loop's only device reads."""
        return float(backend.to_numpy(self.loss_sum)), int(backend.to_numpy(self.correct))

    def divergence(self, total: float, epoch: int) -> str:
        """The message for a non-finite running loss `total` (reads first_bad: failure only)."""
        batch = int(backend.to_numpy(self.first_bad))
        return f"loss became {'nan' if np.isnan(total) else 'inf'} at epoch {epoch}, batch {batch}"


def train_epoch(step, loader, epoch: int, *, skip: int = 0, online=(0.0, 0, 0),
                interrupts=None, log_every: int = 50, check_finite: bool = True, bar=None):
    """Run the batches of one epoch after the first `skip` (a resumed epoch).

    Returns (totals, stop) where totals is (loss sum, correct, seen) and stop is None (the
    epoch ended), ('interrupted', batches done) or ('diverged', message). The running loss is
    read every `log_every` batches and after the last (for the bar and the finiteness check).
    """
    totals = _Epoch(backend.xp_for(loader.device), online)
    interrupts = interrupts or _Interrupts()
    done = skip
    try:
        for batch, (xb, yb) in enumerate(loader, start=1):
            if batch <= skip:
                continue
            with interrupts.critical():  # the step and its bookkeeping: whole or not at all
                loss, logits = step(xb, yb)
                totals.add(batch, loss.data, logits, yb.data)
                done = batch
                if batch % log_every == 0 or batch == len(loader):
                    total, correct = totals.read()
                    if check_finite and not np.isfinite(total):
                        return _totals(totals), ("diverged", totals.divergence(total, epoch))
                    if bar is not None:
                        bar.set_postfix(loss=f"{total / totals.seen:.4f}",
                                        acc=f"{correct / totals.seen:.4f}")
                        bar.update(batch - bar.n)
            if interrupts.requested:  # Ctrl-C during this batch: it is complete now
                return _totals(totals), ("interrupted", done)
    except KeyboardInterrupt:
        if interrupts.cut:  # a third Ctrl-C inside a step: nothing consistent to save
            raise
        # a second Ctrl-C between steps, or one raised by the model: `done` batches are whole
        return _totals(totals), ("interrupted", done)
    return _totals(totals), None


def _totals(totals: _Epoch) -> tuple:
    total, correct = totals.read()
    return total, correct, totals.seen


def _loader(train, batch_size, shuffle, seed, device) -> DataLoader:
    loader = train if isinstance(train, DataLoader) else DataLoader(
        train[0], train[1], batch_size=batch_size, shuffle=shuffle, seed=seed, device=device)
    if loader.num_samples == 0:
        raise ValueError("fit: the training set has no samples")
    return loader


def _test_arrays(test, loader):
    """The test set on the loader's device, checked against the training inputs' shape."""
    if test is None:
        return None
    # host or device arrays alike; np.asarray would refuse (CuPy) or copy a device array
    x, y = (backend.to_device(a if backend.is_cupy_array(a) else np.asarray(a), loader.device)
            for a in test)
    if len(x) == 0 or len(x) != len(y):
        raise ValueError(f"fit: test set needs samples and one label each, got {len(x)} "
                         f"inputs and {len(y)} labels")
    if tuple(x.shape[1:]) != tuple(loader.x.shape[1:]):
        raise ValueError(f"fit: test inputs have shape {tuple(x.shape[1:])} per sample, "
                         f"training inputs {tuple(loader.x.shape[1:])}")
    return x, y


def _resume(path, ident, allow_changes, model, optimizer, scheduler, loader):
    """Load the checkpoint at `path` after checking it against the run's identity; returns
    (history records, batches done in the current epoch, online totals)."""
    ckpt = checkpoint.read(path)
    found = checkpoint.conflicts(ident, ckpt["identity"], allow_changes)
    if found:
        raise checkpoint.ResumeConflict(path, found)
    if not 0 <= ckpt["batch"] <= len(loader) or len(ckpt["online"]) != 3:
        raise CheckpointError(f"{path}: batch {ckpt['batch']} or online totals out of range")
    chosen = [dict(group) for group in optimizer.param_groups]
    checkpoint.restore(ckpt, path, model, optimizer, scheduler, loader)
    for i, group in enumerate(optimizer.param_groups):  # hyperparameters changed on purpose
        prefix = f"group{i}." if i else ""
        for key in group:
            if prefix + key in allow_changes and key in chosen[i]:
                group[key] = chosen[i][key]
    return ckpt["history"], ckpt["batch"], tuple(ckpt["online"])


def _epoch_record(model, optimizer, epoch, elapsed, totals, x_eval, y_eval, test) -> dict:
    """The History row of an epoch: online totals, then the evaluations."""
    loss_sum, correct, seen = totals
    record = {"epoch": epoch, "time": round(elapsed, 4),
              "lr": optimizer.param_groups[0].get("lr", float("nan")),
              "online_loss": loss_sum / max(seen, 1),
              "online_acc": correct / max(seen, 1), "online_errors": seen - correct}
    if x_eval is not None:
        r = evaluate(model, x_eval, y_eval)
        record.update(train_loss=r["loss"], train_acc=r["acc"], train_errors=r["errors"])
    if test is not None:
        r = evaluate(model, *test)
        record.update(test_loss=r["loss"], test_acc=r["acc"], test_errors=r["errors"])
    return record


def _step_scheduler(scheduler, record) -> None:
    if scheduler is None:
        return
    if scheduler.needs_metric:  # ReduceLROnPlateau: the test loss, else the training loss
        scheduler.step(record.get("test_loss", record.get("train_loss", record["online_loss"])))
    else:
        scheduler.step()


def fit(model, optimizer, train, epochs: int, *, test=None, batch_size: int = 32,
        shuffle: bool = True, seed: int = 0, device: str = "cpu", scheduler=None,
        out=None, resume: bool = False, overwrite: bool = False, config: dict | None = None,
        allow_changes=(), on_nonfinite: str = "raise", log_every: int = 50,
        eval_train: bool = True, progress: bool = True, loss_fn=cross_entropy,
        on_start=None, on_epoch_end=None) -> History:
    """Train `model` with `optimizer` for `epochs` epochs; returns the History.

    train: (x, y) arrays or a DataLoader (then batch_size/shuffle/seed/device are its own).
    test: optional (x, y) arrays evaluated after every epoch (checked against the training
        inputs' shape before any training).
    scheduler: an LR schedule stepped once per epoch (one with `needs_metric`, such as
        ReduceLROnPlateau, gets the test loss, or the training loss when there is no test set).
    out: folder for history.csv, history.json and checkpoint.npz (nothing written if None).
        A folder that already holds a run is refused unless `resume` or `overwrite` (which
        deletes that run's files first); temporary files of an interrupted run are removed.
    resume: continue from out/checkpoint.npz when it exists (a new run starts otherwise). The
        checkpoint's identity (minidl.checkpoint.identity: parameter shapes, optimizer class and
        hyperparameters, batch size, shuffling, seed, training-set size, and `config`) must
        match the objects given now; every difference is named in one ResumeConflict.
    config: plain data describing the run beyond what fit sees (the CLI: model and dataset
        names); stored in the checkpoint and compared on resume.
    allow_changes: identity names that may differ on resume; an optimizer hyperparameter
        named here (e.g. 'lr') takes the value given now instead of the checkpoint's.
    on_nonfinite: what a NaN or infinite training loss does, checked at each progress read
        (every `log_every` steps and at the end of the epoch): 'raise' NonFiniteLossError
        ("loss became nan at epoch e, batch b"), 'stop' (return the History with that message
        in `stop_reason`), or 'ignore' (train on). After 'raise' or 'stop' nothing of the
        diverged epoch is saved: the checkpoint and history on disk stay those of the last
        good epoch.
    log_every: progress-bar refresh period in steps (the only device-to-host reads in the loop).
    eval_train: also measure loss/accuracy/errors on the full training set after every epoch.
    on_start: optional callback(identity) once the run is set up (checkpoint loaded and
        checked), before the first step. on_epoch_end: optional callback(record).
    Ctrl-C: see the module docstring; fit returns the History with stop_reason 'interrupted'.
    """
    if not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative int, got {epochs!r}")
    if log_every < 1:
        raise ValueError(f"log_every must be >= 1, got {log_every}")
    if on_nonfinite not in ON_NONFINITE:
        raise ValueError(f"on_nonfinite must be one of {', '.join(ON_NONFINITE)}, "
                         f"got {on_nonfinite!r}")
    checkpoint.check_allow_changes(allow_changes)
    loader = _loader(train, batch_size, shuffle, seed, device)
    test = _test_arrays(test, loader)
    out = checkpoint.prepare_folder(out, resume, overwrite)
    path = out / CHECKPOINT if out is not None else None
    ident = checkpoint.identity(model, optimizer, loader, config)
    records, skip, online = [], 0, (0.0, 0, 0)
    if resume and path is not None and path.exists():
        records, skip, online = _resume(path, ident, allow_changes, model, optimizer,
                                        scheduler, loader)
    history = History(records)
    if on_start is not None:
        on_start(ident)

    def save(batch: int, totals) -> None:
        if path is not None:
            checkpoint.save(path, model, optimizer, scheduler, loader, history.records, batch,
                            totals, ident)

    step = train_step(model, optimizer, loss_fn)
    x_eval, y_eval = (loader.x, loader.y) if eval_train else (None, None)
    model.train()
    with _Interrupts() as interrupts:
        while loader.epoch < epochs:
            epoch, start = loader.epoch + 1, time.perf_counter()
            bar = tqdm(total=len(loader), desc=f"epoch {epoch}/{epochs}", disable=not progress,
                       leave=False, dynamic_ncols=True, initial=skip)
            try:
                totals, stop = train_epoch(step, loader, epoch, skip=skip, online=online,
                                           interrupts=interrupts, log_every=log_every,
                                           check_finite=on_nonfinite != "ignore", bar=bar)
            finally:
                bar.close()
            if stop is not None and stop[0] == "diverged":
                if on_nonfinite == "raise":
                    raise NonFiniteLossError(stop[1])
                history.stop_reason = stop[1]
                return history
            if stop is not None:
                save(stop[1], totals)
                print(f"\ninterrupted in epoch {epoch} after {stop[1]} batches"
                      + (f"; checkpoint saved to {path}" if path else ""))
                history.stop_reason = "interrupted"
                return history
            skip, online = 0, (0.0, 0, 0)
            record = _epoch_record(model, optimizer, epoch, time.perf_counter() - start,
                                   totals, x_eval, y_eval, test)
            history.append(record)
            _step_scheduler(scheduler, record)
            if progress:
                tqdm.write(_format_record(record))
            if out is not None:  # the history first: a resume rewrites it from the checkpoint
                history.to_csv(out / "history.csv")
                history.to_json(out / "history.json")
                save(0, (0.0, 0, 0))
            if on_epoch_end is not None:
                on_epoch_end(record)
            if interrupts.requested and loader.epoch < epochs:  # Ctrl-C while evaluating
                print(f"\ninterrupted after epoch {epoch}"
                      + (f"; checkpoint saved to {path}" if path else ""))
                history.stop_reason = "interrupted"
                return history
    return history


def _format_record(r: dict) -> str:
    parts = [f"epoch {r['epoch']:3d}", f"{r['time']:.2f}s",
             f"online loss {r['online_loss']:.4f} acc {r['online_acc']:.4f}"]
    if "train_loss" in r:
        parts.append(f"train loss {r['train_loss']:.4f} acc {r['train_acc']:.4f} "
                     f"errors {r['train_errors']}")
    if "test_loss" in r:
        parts.append(f"test loss {r['test_loss']:.4f} acc {r['test_acc']:.4f}")
    return " | ".join(parts)
