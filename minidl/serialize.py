"""save / load: nested state (dicts, lists, tuples, numbers, strings, arrays) in one .npz file.

Arrays are stored as NumPy arrays (GPU arrays are copied to the host); everything else goes into
a JSON description stored beside them, which keeps dict key types (optimizer state is keyed by
int), tuples and big integers (random-generator states). Files are written atomically: to a
temporary file in the same folder, flushed to disk, then renamed over the target, so an
interrupted save never destroys the previous checkpoint.

Loading trusts nothing in the file: no object is ever unpickled, and every array's declared
shape and dtype are checked against the bytes the archive holds *before* it is allocated, so a
crafted file cannot make load() reserve absurd amounts of memory. Any problem is a ValueError
naming the file.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from minidl import backend

_TREE = "__tree__"


def _encode(obj, arrays: list):
    if isinstance(obj, dict):
        return {"__dict__": [[_encode(k, arrays), _encode(v, arrays)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, arrays) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, arrays) for v in obj]
    if isinstance(obj, np.ndarray) or backend.is_cupy_array(obj):
        arrays.append(backend.to_numpy(obj))
        return {"__array__": len(arrays) - 1}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot save an object of type {type(obj).__name__}")


def _decode(obj, arrays):
    if isinstance(obj, list):
        return [_decode(v, arrays) for v in obj]
    if isinstance(obj, dict):
        if "__dict__" in obj:
            return {_decode(k, arrays): _decode(v, arrays) for k, v in obj["__dict__"]}
        if "__tuple__" in obj:
            return tuple(_decode(v, arrays) for v in obj["__tuple__"])
        if "__array__" in obj:
            return arrays[f"a{obj['__array__']}"]
    return obj


def save(obj, path) -> Path:
    """Write `obj` to `path` (.npz) atomically; returns the path."""
    arrays: list = []
    tree = json.dumps(_encode(obj, arrays))
    payload = {f"a{i}": a for i, a in enumerate(arrays)}
    payload[_TREE] = np.frombuffer(tree.encode(), dtype=np.uint8)
    return atomic_write(path, lambda f: np.savez(f, **payload))


def atomic_write(path, write) -> Path:
    """Call write(f) on a new binary file `.NAME.XXXX.tmp` beside `path`, flush it to disk,
    then rename it over `path`: a reader (or a run killed meanwhile) sees the old file or the
    new one, never half of either. The file gets the permissions of any new file under the
    umask (the temporary file is made 0600). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def temporary_files(folder, name: str) -> list:
    """The temporary files atomic_write left in `folder` for target `name` (a killed run's)."""
    return list(Path(folder).glob(f".{name}.*.tmp"))


def _check_members(archive: zipfile.ZipFile) -> None:
    """Every member is a .npy array of a plain dtype whose header agrees with its size."""
    for info in archive.infolist():
        with archive.open(info) as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(f)
            declared = math.prod(shape) * dtype.itemsize
            if dtype.hasobject or declared != info.file_size - f.tell():
                raise ValueError(f"member {info.filename} declares {shape} of {dtype} "
                                 f"({declared} bytes) but holds {info.file_size - f.tell()}")


def load(path):
    """Read an object written by `save` (arrays come back as NumPy arrays).

    FileNotFoundError when there is no file; ValueError for anything else that is not a
    checkpoint written by `save` (a folder, an empty, truncated, corrupt or crafted file).
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a checkpoint file")
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"cannot read {path}: the file is empty")
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":  # every .npz starts with a zip member
            raise ValueError(f"cannot read {path}: not a checkpoint (not an .npz archive)")
    try:
        with zipfile.ZipFile(path) as archive:
            _check_members(archive)
        with np.load(path, allow_pickle=False) as data:
            if _TREE not in data.files:
                raise KeyError(f"no {_TREE} entry")
            arrays = {k: data[k] for k in data.files if k != _TREE}
            tree = json.loads(data[_TREE].tobytes().decode())
        return _decode(tree, arrays)
    except RecursionError:
        raise ValueError(f"cannot read {path}: its structure is nested too deeply") from None
    except (OSError, EOFError, ValueError, KeyError, TypeError, IndexError,
            zipfile.BadZipFile) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ValueError(f"cannot read {path}: the file is corrupt or truncated ({e})") from e
