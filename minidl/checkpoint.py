"""A training run's folder: its checkpoint, its identity, and the checks a resume makes.

A run folder (`fit(..., out=FOLDER)`) holds checkpoint.npz, history.csv and history.json (and
the CLI's config.json). The checkpoint stores, beside the model, optimizer, scheduler, loader
position and random state, the run's *identity*: a flat dict of plain data (parameter shapes,
optimizer class and hyperparameters, batch size, shuffling, seed, number of training samples,
and whatever the caller adds, such as the CLI's model and dataset names). Resuming compares the
identity of the objects given now with the stored one and refuses every difference it cannot
honour, naming each; a hyperparameter may be changed on purpose (`allow_changes`).

All files a run writes go through serialize.atomic_write, so they get the same permissions
(those of any new file under the umask), and temporary files an interrupted run left behind are
removed by the next run in that folder.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from minidl import backend, serialize

CHECKPOINT = "checkpoint.npz"
OUTPUTS = (CHECKPOINT, "history.csv", "history.json")
_KEYS = ("model", "optimizer", "scheduler", "loader", "rng", "history", "batch", "online",
         "identity")
# Keys of the identity that are the run itself: changing them cannot continue the same run.
STRUCTURAL = ("parameter shapes", "optimizer class", "batch_size", "shuffle", "seed",
              "training samples")


class CheckpointError(ValueError):
    """A checkpoint cannot be used: unreadable, crafted, or for another model or run."""


class ResumeConflict(CheckpointError):
    """The objects given to a resumed run contradict the checkpoint's identity.

    `conflicts` lists (name, given, saved) for each difference, in identity order."""

    def __init__(self, path, conflicts: list):
        self.conflicts = conflicts
        super().__init__(f"cannot resume from {path}: " + "; ".join(
            f"{name} {given!r} given, checkpoint was trained with {saved!r}"
            for name, given, saved in conflicts))


def _plain(value):
    """value if it is plain data (numbers, strings, None, tuples/lists of them), else None."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)) and all(
            v is None or isinstance(v, (bool, int, float, str)) for v in value):
        return tuple(value)
    return None


def identity(model, optimizer, loader, config: dict | None = None) -> dict:
    """The run's identity (see the module docstring) as a flat dict of plain data.

    Hyperparameters come from the optimizer's param groups as constructed (call this before
    a scheduler or a loaded state changes them); with several groups, names get a `groupI.`
    prefix for groups after the first.
    """
    ident = dict(config or {})
    ident["parameter shapes"] = [list(p.shape) for p in model.parameters()]
    ident["optimizer class"] = type(optimizer).__name__
    for i, group in enumerate(optimizer.param_groups):
        prefix = f"group{i}." if i else ""
        for key, value in group.items():
            if key not in ("params", "initial_lr") and _plain(value) == value:
                ident[prefix + key] = _plain(value)
    ident.update(batch_size=loader.batch_size, shuffle=loader.shuffle, seed=loader.seed,
                 **{"training samples": loader.num_samples})
    return ident


def conflicts(given: dict, saved: dict, allow_changes=()) -> list:
    """(name, given, saved) for each key of either identity whose values differ, except the
    names in allow_changes."""
    out = []
    for key in dict.fromkeys([*saved, *given]):
        a, b = given.get(key), saved.get(key)
        if key not in allow_changes and not _same(a, b):
            out.append((key, a, b))
    return out


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and isinstance(a, bool) == isinstance(b, bool)  # True is not 1 here


def check_allow_changes(allow_changes) -> None:
    """Only hyperparameters and caller data may change on resume, never the run's structure."""
    bad = [name for name in allow_changes if name in STRUCTURAL]
    if bad:
        raise ValueError(f"{', '.join(bad)} cannot change on resume: the checkpoint's batches, "
                         "shapes and random stream depend on it (start a new run instead)")


def prepare_folder(out, resume: bool, overwrite: bool) -> Path | None:
    """Check the run folder before any work: not a file; an earlier run's outputs are kept
    unless `resume` (continue it) or `overwrite` (delete them now); orphan temporary files of
    an interrupted run are removed. Returns the folder as a Path (None for out=None)."""
    if out is None:
        return None
    if str(out) == "":
        raise ValueError("out is an empty path: give a folder, or None to write nothing")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"out {out} is a file, not a folder")
    if resume and overwrite:
        raise ValueError("resume and overwrite contradict each other: choose one")
    if out.is_dir():
        for name in (*OUTPUTS, "config.json"):
            for orphan in serialize.temporary_files(out, name):
                orphan.unlink(missing_ok=True)
        existing = [name for name in OUTPUTS if (out / name).exists()]
        if existing and overwrite:
            for name in existing:
                (out / name).unlink()
        elif existing and not resume:
            raise FileExistsError(
                f"{out} already holds a run ({', '.join(existing)}): resume it, or overwrite it")
    out.mkdir(parents=True, exist_ok=True)
    return out


def save(path, model, optimizer, scheduler, loader, history, batch: int, online,
         ident: dict) -> None:
    """Write the checkpoint atomically (the previous one stays intact if this fails)."""
    serialize.save({
        "model": dict(model.state_dict()), "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "loader": loader.state_dict(), "rng": backend.rng_state(),
        "history": history, "batch": batch, "online": list(online), "identity": ident,
    }, path)


def read(path) -> dict:
    """Load and check a checkpoint's structure (every key, of the right kind); CheckpointError
    names what is wrong. Reading refuses arrays whose declared size does not match the file
    before allocating them (see serialize.load)."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file")
    try:
        ckpt = serialize.load(path)
    except FileNotFoundError:
        raise
    except ValueError as e:
        raise CheckpointError(str(e)) from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path} is not a minidl training checkpoint")
    missing = [k for k in _KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path} is not a minidl training checkpoint (or one written "
                              f"before runs recorded their identity): no {', '.join(missing)}")
    kinds = {"model": dict, "optimizer": dict, "loader": dict, "history": list, "batch": int,
             "online": list, "identity": dict}
    for key, kind in kinds.items():
        if not isinstance(ckpt[key], kind):
            raise CheckpointError(f"{path}: '{key}' is a {type(ckpt[key]).__name__}, "
                                  f"expected a {kind.__name__}")
    return ckpt


def restore(ckpt: dict, path, model, optimizer, scheduler, loader) -> None:
    """Load a checked checkpoint into the objects; any mismatch becomes a CheckpointError."""
    try:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt["scheduler"] is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
        loader.load_state_dict(ckpt["loader"])
        backend.set_rng_state(ckpt["rng"])
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise CheckpointError(f"cannot resume from {path}: the checkpoint does not fit this "
                              f"model and optimizer ({type(e).__name__}: {e})") from None


def json_safe(value):
    """`value` with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json(path, value) -> None:
    """Atomic write of `value` as strict JSON (NaN and infinities become null)."""
    write_text(path, json.dumps(json_safe(value), indent=2, allow_nan=False))


def write_text(path, text: str) -> None:
    """Write `text` to `path` atomically (serialize.atomic_write)."""
    serialize.atomic_write(path, lambda f: f.write(text.encode()))
