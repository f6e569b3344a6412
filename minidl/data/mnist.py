"""MNIST and Fashion-MNIST: find, download, verify and load; preprocessing helpers (data layer).

Each dataset is four IDX files (`FILES`). A dataset folder is searched for, in order:

1. the explicit `root` argument: `root/<name>/`, or `root` itself when it holds the files;
2. `$MINIDL_DATA/<name>/`;
3. the repository's `datasets/<name>/` (only in a source checkout);
4. the user cache `$XDG_CACHE_HOME/minidl/<name>/` (default `~/.cache/minidl/<name>/`).

The first folder holding all four files wins; each file may be gzipped (`file.gz`, preferred)
or raw (`file`). Environment variables are read at call time, never at import.

Every file is checked against the SHA-256 of its uncompressed bytes in `MANIFEST` (the same
values as the repository's `datasets/SHA256SUMS`) before use; a mismatch raises DataError
naming the file, the expected and the actual hash. Missing files are downloaded (when
`download=True`) into `root/<name>/`, or into the user cache when no root is given, trying
each mirror in turn; a download is verified before it is atomically moved into place.

Loaded arrays are cached in memory per file (resolved path, size, mtime), so loading MNIST
many times decompresses it once. The arrays returned are read-only views of that cache
(`flags.writeable` is False): copy them (`x.copy()`, or `scale(x)`) to modify them.
"""

from __future__ import annotations

import os
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

from minidl.backend import get_default_dtype, xp_of
from minidl.data.idx import DataError, read_idx

FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

# SHA-256 of the *uncompressed* files, in the order of FILES (gzip headers differ between
# mirrors, the content does not). The repository's datasets/SHA256SUMS holds the same values.
_MNIST_SHA256 = (
    "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",  # train-images-idx3-ubyte
    "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",  # train-labels-idx1-ubyte
    "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",  # t10k-images-idx3-ubyte
    "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",  # t10k-labels-idx1-ubyte
)
_FASHION_MNIST_SHA256 = (
    "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",  # train-images-idx3-ubyte
    "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",  # train-labels-idx1-ubyte
    "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",  # t10k-images-idx3-ubyte
    "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",  # t10k-labels-idx1-ubyte
)
MANIFEST: dict[str, dict[str, str]] = {
    "mnist": dict(zip(FILES, _MNIST_SHA256, strict=True)),
    "fashion-mnist": dict(zip(FILES, _FASHION_MNIST_SHA256, strict=True)),
}

# Tried in order; each serves `<mirror><file>.gz`.
MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion-mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
    ),
}

DOWNLOAD_TIMEOUT = 10.0  # seconds per connection attempt and per read

# The repository's datasets/ folder; absent in an installed package, then skipped.
_REPO_DATASETS = Path(__file__).resolve().parents[2] / "datasets"

# (resolved file, size, mtime_ns, expected sha256) -> its verified read-only array
_CACHE: dict[tuple, np.ndarray] = {}


class DatasetNotFoundError(DataError, FileNotFoundError):
    """A dataset's files are in none of the searched folders and could not be downloaded.

    A DataError (so callers catch one type) and a FileNotFoundError (what it means).
    """


# --------------------------------------------------------------------------- finding


def _check_name(name: str) -> None:
    if name not in MANIFEST:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(MANIFEST)}")


def cache_dir(name: str) -> Path:
    """The user cache folder of a dataset: `$XDG_CACHE_HOME/minidl/<name>` or ~/.cache/..."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "minidl" / name


def search_dirs(name: str, root: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched for dataset `name`, in order (see the module docstring)."""
    _check_name(name)
    if root is not None:
        return [Path(root) / name, Path(root)]
    dirs = []
    if os.environ.get("MINIDL_DATA"):
        dirs.append(Path(os.environ["MINIDL_DATA"]) / name)
    if _REPO_DATASETS.is_dir():
        dirs.append(_REPO_DATASETS / name)
    dirs.append(cache_dir(name))
    return dirs


def _file_in(folder: Path, file: str) -> Path | None:
    """`folder/file.gz` or `folder/file`, whichever exists first; None when neither does."""
    for candidate in (folder / f"{file}.gz", folder / file):
        if candidate.is_file():
            return candidate
    return None


def _missing(folder: Path) -> list[str]:
    return [f for f in FILES if _file_in(folder, f) is None]


def _describe(folder: Path) -> str:
    """'folder (missing: ...)' for error messages."""
    if not folder.is_dir():
        return f"{folder}  (no such folder)"
    return f"{folder}  (missing: {', '.join(_missing(folder)) or 'nothing'})"


def find_dataset(name: str, root: str | os.PathLike | None = None) -> Path | None:
    """The first folder of `search_dirs(name, root)` holding all four files, else None."""
    for folder in search_dirs(name, root):
        if not _missing(folder):
            return folder
    return None


# --------------------------------------------------------------------------- downloading


def _fetch(url: str, dest: Path, timeout: float) -> None:
    """Copy `url` into the file `dest`. Replaced in tests; raises on any network error."""
    with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
        while chunk := response.read(1 << 20):
            out.write(chunk)


def download_dataset(
    name: str,
    folder: str | os.PathLike | None = None,
    mirrors: tuple[str, ...] | list[str] | None = None,
    timeout: float = DOWNLOAD_TIMEOUT,
) -> Path:
    """Download the files of dataset `name` missing from `folder` (default: the user cache).

    Each file is fetched from the mirrors in order (default `MIRRORS[name]`) into a temporary
    file beside its destination, its uncompressed SHA-256 checked against `MANIFEST`, and only
    then moved into place with `os.replace` (atomic: a reader never sees half a file). A file
    failing its hash is deleted and the next mirror tried. Returns the folder.

    Raises DatasetNotFoundError listing the files no mirror could provide and why.
    """
    _check_name(name)
    folder = Path(folder) if folder is not None else cache_dir(name)
    mirrors = MIRRORS[name] if mirrors is None else tuple(mirrors)
    folder.mkdir(parents=True, exist_ok=True)
    failures: dict[str, list[str]] = {}
    for file in _missing(folder):
        failures[file] = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + f"/{file}.gz"
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{file}.", suffix=".part")
            os.close(fd)
            try:
                _fetch(url, Path(tmp), timeout)
                with open(tmp, "rb") as f:
                    gzipped = f.read(2) == b"\x1f\x8b"
                read_idx(tmp, MANIFEST[name][file])
                os.replace(tmp, folder / (f"{file}.gz" if gzipped else file))
                del failures[file]
                break
            except Exception as exc:  # network error, bad gzip, wrong hash: try the next one
                failures[file].append(f"{url}: {exc}")
            finally:
                if os.path.exists(tmp):
                    os.remove(tmp)
    if failures:
        lines = "\n".join(f"    {why}" for whys in failures.values() for why in whys)
        raise DatasetNotFoundError(
            f"could not download {', '.join(failures)} of {name!r} into {folder}; "
            f"every mirror failed:\n{lines}"
        )
    return folder


# --------------------------------------------------------------------------- loading


def _read_verified(path: Path, sha256: str, labels: bool) -> np.ndarray:
    """One verified file as a read-only view of the in-memory cache (filled on first use)."""
    path = path.resolve()
    stat = path.stat()
    # Size and mtime in the key: a file replaced on disk is read again, not served stale.
    key = (str(path), stat.st_size, stat.st_mtime_ns, sha256)
    if key not in _CACHE:
        array = read_idx(path, sha256)
        if labels:  # int64: what the losses index with
            array = array.astype(np.int64)
            array.flags.writeable = False
        _CACHE[key] = array
    # A view of a read-only array cannot be made writeable again, so the cache stays intact.
    return _CACHE[key].view()


def clear_cache() -> None:
    """Forget the arrays cached in memory (the next load reads the files again)."""
    _CACHE.clear()


def load_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    download: bool = True,
    mirrors: tuple[str, ...] | list[str] | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load dataset `name` ('mnist' or 'fashion-mnist') as ((x_train, y_train), (x_test, y_test)).

    Images are uint8 of shape (N, 28, 28) in [0, 255], labels int64 of shape (N,) in 0..9;
    N = 60000 for training and 10000 for test. The arrays are read-only (see module docstring).
    The folder is found as in `search_dirs`; missing files are downloaded when `download` is
    True (see `download_dataset`; `mirrors` overrides `MIRRORS[name]`). Raises DatasetNotFoundError
    when the files can be neither found nor downloaded, DataError when a file is corrupt.
    """
    folder = find_dataset(name, root)
    if folder is None:
        target = Path(root) / name if root is not None else cache_dir(name)
        reason = "download=False"
        if download:
            try:
                folder = download_dataset(name, target, mirrors)
            except (OSError, DataError) as exc:  # offline, or a read-only folder
                reason = f"download failed: {exc}"
        if folder is None:
            searched = "\n".join(f"    {_describe(d)}" for d in search_dirs(name, root))
            raise DatasetNotFoundError(
                f"dataset {name!r} not found. Searched:\n{searched}\n"
                f"Each folder needs the files {', '.join(FILES)} (each gzipped as .gz, or raw). "
                f"Put the files in one of those folders or set MINIDL_DATA to a folder holding "
                f"'{name}/'.\n({reason})"
            )
    x_train, y_train, x_test, y_test = (
        _read_verified(_file_in(folder, f), MANIFEST[name][f], labels="labels" in f) for f in FILES
    )
    return (x_train, y_train), (x_test, y_test)


def load_mnist(root: str | os.PathLike | None = None, download: bool = True):
    """MNIST digits: ((x_train, y_train), (x_test, y_test)); see `load_dataset`."""
    return load_dataset("mnist", root, download)


def load_fashion_mnist(root: str | os.PathLike | None = None, download: bool = True):
    """Fashion-MNIST clothing images: ((x_train, y_train), (x_test, y_test)); see `load_dataset`."""
    return load_dataset("fashion-mnist", root, download)


# --------------------------------------------------------------------------- preprocessing


def scale(x, dtype=None):
    """Images in [0, 255] -> floats in [0, 1]: x / 255, in `dtype` (default: the default dtype).

    Returns a new (writeable) array on x's device.
    """
    dtype = np.dtype(get_default_dtype() if dtype is None else dtype)
    return x.astype(dtype) / dtype.type(255)


def flatten(x):
    """(N, d1, d2, ...) -> (N, d1*d2*...): a view when x is contiguous."""
    return x.reshape(x.shape[0], -1)


def standardize(x, mean=None, std=None, per_pixel: bool = False, eps: float = 0.0):
    """Return (x_std, mean, std) with x_std = (x - mean) / (std + eps).

    Without `mean`/`std` they are computed from x: over everything (scalars) or, with
    `per_pixel`, over the first axis (one value per feature, shape x.shape[1:]). Compute them
    on the training set and pass them back for the test set::

        x_train, mean, std = standardize(x_train)
        x_test, _, _ = standardize(x_test, mean, std)

    With the default eps=0 this is exactly torchvision's Normalize(mean, std). A std of 0 (a
    constant pixel, e.g. MNIST's border) divides by 1 instead, so such pixels stay at 0.
    Integer x is first converted to the default dtype (not scaled).
    """
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(get_default_dtype())
    xp = xp_of(x)
    axis = 0 if per_pixel else None
    # float64 accumulators: cheap insurance against float32 rounding in sums of 47M terms.
    if mean is None:
        mean = x.mean(axis=axis, dtype=np.float64).astype(x.dtype)
    if std is None:
        std = x.std(axis=axis, dtype=np.float64).astype(x.dtype)
    divisor = xp.where(xp.asarray(std) == 0, 1, std).astype(x.dtype)
    return (x - mean) / (divisor + x.dtype.type(eps)), mean, std


def one_hot(y, num_classes: int = 10, dtype=None):
    """Integer labels of shape (N,) -> (N, num_classes) rows with a single 1 (default dtype)."""
    xp = xp_of(y)
    if y.ndim != 1:
        raise ValueError(f"one_hot expects labels of shape (N,), got shape {y.shape}")
    if y.size and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes}); got min {int(y.min())}, max {int(y.max())}"
        )
    out = xp.zeros((y.shape[0], num_classes), dtype=get_default_dtype() if dtype is None else dtype)
    out[xp.arange(y.shape[0]), y] = 1
    return out
