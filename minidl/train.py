"""Training loop: fit / evaluate, History, checkpoints.

fit() trains a classifier with softmax cross-entropy, shows a tqdm bar (loss and running
accuracy), evaluates on the full training set and the test set after every epoch, writes the
History as CSV and JSON, and saves an atomic checkpoint (model, optimizer, scheduler, loader
position, random state, history) after every epoch and on Ctrl-C. Resuming from a checkpoint,
even one written mid-epoch, continues exactly as the uninterrupted run would have.

Ctrl-C never cuts a step in half: while fit runs, the first SIGINT only asks the loop to stop
after the current batch (or, during the evaluation that ends an epoch, after that epoch's
checkpoint), so the saved state is always one a resumed run can continue from exactly. A
second Ctrl-C interrupts at once.

The hot path reads nothing back from the GPU: losses and correct counts accumulate on the
device and are read every `log_every` steps for the progress bar.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from minidl import backend, serialize
from minidl.autograd import Tensor, no_grad
from minidl.data.loader import DataLoader
from minidl.ops import cross_entropy

CHECKPOINT = "checkpoint.npz"


class History:
    """Per-epoch records (dicts) with CSV/JSON export.

    history['test_acc'] gives one column as a list; history.records the rows.
    """

    def __init__(self, records: list | None = None):
        self.records = list(records or [])

    def append(self, record: dict) -> None:
        self.records.append(dict(record))

    def __getitem__(self, key: str) -> list:
        return [r.get(key) for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def to_csv(self, path) -> None:
        keys = list(dict.fromkeys(k for r in self.records for k in r))
        _atomic_write_text(path, _csv_text(keys, self.records))

    def to_json(self, path) -> None:
        _atomic_write_text(path, json.dumps(self.records, indent=2))

    def __repr__(self) -> str:
        return f"History({len(self)} epochs)"


def _csv_text(keys, rows) -> str:
    import io  # noqa: PLC0415

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _atomic_write_text(path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def evaluate(model, x, y, batch_size: int = 1000) -> dict:
    """Loss, accuracy and error count of `model` on arrays (x, y), in eval mode, no graph.

    x and y may be NumPy or device arrays (move them once with backend.to_device to avoid a
    copy per call). Returns {'loss', 'acc', 'errors', 'n'}.
    """
    was_training = model.training
    params = list(model.parameters())
    if params:  # the model's device: host inputs are copied there once
        device = backend.device_of(params[0].data)
        x, y = backend.to_device(x, device), backend.to_device(y, device)
    model.eval()
    xp = backend.xp_of(x)
    loss_sum = xp.zeros((), dtype=np.float64)
    correct = xp.zeros((), dtype=np.int64)
    n = len(x)
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


class _DeferredInterrupt:
    """Context manager: the first SIGINT sets `requested` instead of raising KeyboardInterrupt,
    so the loop can stop between two batches; a second one raises as usual.

    Only installed from the main thread over Python's default handler (signal handlers can be
    set nowhere else, and a handler the user installed is left alone)."""

    def __init__(self):
        self.requested = False
        self._installed = False

    def __enter__(self) -> "_DeferredInterrupt":
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> bool:
        if self._installed:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        return False


def _step_fn(model, optimizer, loss_fn):
    """One optimisation step on a batch; returns the loss Tensor and the logits array."""
    needs_closure = getattr(optimizer, "needs_closure", False)

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


def fit(model, optimizer, train, epochs: int, *, test=None, batch_size: int = 32,
        shuffle: bool = True, seed: int = 0, device: str = "cpu", scheduler=None,
        out=None, resume: bool = False, log_every: int = 50, eval_train: bool = True,
        progress: bool = True, loss_fn=cross_entropy, on_epoch_end=None) -> History:
    """Train `model` with `optimizer` for `epochs` epochs; returns the History.

    train: (x, y) arrays or a DataLoader (then batch_size/shuffle/seed/device are its own).
    test: optional (x, y) arrays evaluated after every epoch.
    scheduler: an LR schedule stepped once per epoch (ReduceLROnPlateau gets the test loss,
        or the training loss when there is no test set).
    out: folder for history.csv, history.json and checkpoint.npz (nothing written if None).
    resume: continue from out/checkpoint.npz when it exists.
    log_every: progress-bar refresh period in steps (the only device-to-host reads in the loop).
    eval_train: also measure loss/accuracy/errors on the full training set after every epoch.
    on_epoch_end: optional callback(record) after each epoch.
    Ctrl-C stops after the current batch (or after the epoch being evaluated), saves a
    checkpoint (when `out` is set) and returns the History so far; a second Ctrl-C stops at once.
    """
    if not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative int, got {epochs!r}")
    if log_every < 1:
        raise ValueError(f"log_every must be >= 1, got {log_every}")
    loader = train if isinstance(train, DataLoader) else DataLoader(
        train[0], train[1], batch_size=batch_size, shuffle=shuffle, seed=seed, device=device)
    device = loader.device
    x_eval, y_eval = loader.x, loader.y  # already on the device
    # host or device arrays alike; np.asarray would refuse (CuPy) or copy a device array
    test = None if test is None else tuple(backend.to_device(a, device) for a in test)
    out = Path(out) if out is not None else None
    history = History()
    skip, online = 0, (0.0, 0, 0)

    if resume and out is not None and (out / CHECKPOINT).exists():
        ckpt = serialize.load(out / CHECKPOINT)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt.get("scheduler") is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
        loader.load_state_dict(ckpt["loader"])
        backend.set_rng_state(ckpt["rng"])
        history = History(ckpt["history"])
        skip, online = ckpt["batch"], tuple(ckpt["online"])

    def save_checkpoint(batch: int, online_totals) -> None:
        if out is None:
            return
        serialize.save({
            "model": dict(model.state_dict()), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "loader": loader.state_dict(), "rng": backend.rng_state(),
            "history": history.records, "batch": batch, "online": list(online_totals),
        }, out / CHECKPOINT)

    step = _step_fn(model, optimizer, loss_fn)
    xp = backend.xp_for(device)
    model.train()
    with _DeferredInterrupt() as interrupt:
        while loader.epoch < epochs:
            epoch = loader.epoch + 1
            loss_sum = xp.asarray(online[0], dtype=np.float64)
            correct = xp.asarray(online[1], dtype=np.int64)
            seen = online[2]
            start = time.perf_counter()
            bar = tqdm(total=len(loader), desc=f"epoch {epoch}/{epochs}", disable=not progress,
                       leave=False, dynamic_ncols=True, initial=skip)
            batch, done = 0, None
            try:
                for batch, (xb, yb) in enumerate(loader, start=1):
                    if batch <= skip:
                        continue
                    loss, logits = step(xb, yb)
                    n = len(yb.data)
                    loss_sum += loss.data * n
                    correct += (logits.argmax(axis=1) == yb.data).sum()
                    seen += n
                    if batch % log_every == 0 or batch == len(loader):
                        bar.set_postfix(loss=f"{float(backend.to_numpy(loss_sum)) / seen:.4f}",
                                        acc=f"{int(backend.to_numpy(correct)) / seen:.4f}")
                        bar.update(batch - bar.n)
                    if interrupt.requested:  # Ctrl-C during this batch: it is complete now
                        done = batch
                        break
            except KeyboardInterrupt:  # a second Ctrl-C, or one raised by the model itself
                # The batch being processed may be half applied; the last whole one is batch - 1.
                done = batch - 1 if batch > skip else skip
            bar.close()
            if done is not None:
                save_checkpoint(done, (float(backend.to_numpy(loss_sum)),
                                       int(backend.to_numpy(correct)), seen))
                print(f"\ninterrupted in epoch {epoch} after {done} batches"
                      + (f"; checkpoint saved to {out / CHECKPOINT}" if out else ""))
                return history
            elapsed = time.perf_counter() - start
            skip, online = 0, (0.0, 0, 0)

            total_loss = float(backend.to_numpy(loss_sum))
            n_correct = int(backend.to_numpy(correct))
            record = {"epoch": epoch, "time": round(elapsed, 4),
                      "lr": optimizer.param_groups[0].get("lr", math.nan),
                      "online_loss": total_loss / max(seen, 1),
                      "online_acc": n_correct / max(seen, 1), "online_errors": seen - n_correct}
            if eval_train:
                r = evaluate(model, x_eval, y_eval)
                record.update(train_loss=r["loss"], train_acc=r["acc"], train_errors=r["errors"])
            if test is not None:
                r = evaluate(model, *test)
                record.update(test_loss=r["loss"], test_acc=r["acc"], test_errors=r["errors"])
            history.append(record)
            if scheduler is not None:
                metric = record.get("test_loss", record.get("train_loss", record["online_loss"]))
                if getattr(scheduler, "needs_metric", False):
                    scheduler.step(metric)
                else:
                    scheduler.step()
            if progress:
                tqdm.write(_format_record(record))
            if out is not None:
                history.to_csv(out / "history.csv")
                history.to_json(out / "history.json")
                save_checkpoint(0, (0.0, 0, 0))
            if on_epoch_end is not None:
                on_epoch_end(record)
            if interrupt.requested and loader.epoch < epochs:  # Ctrl-C while evaluating
                print(f"\ninterrupted after epoch {epoch}"
                      + (f"; checkpoint saved to {out / CHECKPOINT}" if out else ""))
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
