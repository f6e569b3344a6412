"""Tests of minidl.data on the real MNIST and Fashion-MNIST files.

The real files come from $MINIDL_DATA or ../shared/data; copies in tmp_path are corrupted,
decompressed or served as mirrors. No test contacts the network: `_fetch` is guarded so that
only file:// URLs and a local server on 127.0.0.1 can be fetched.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import os
import re
import shutil
import threading
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from minidl.autograd import Tensor
from minidl.backend import default_dtype
from minidl.data import (
    FILES,
    MANIFEST,
    DataError,
    DataLoader,
    DatasetNotFoundError,
    cache_dir,
    find_dataset,
    flatten,
    load_dataset,
    load_fashion_mnist,
    load_mnist,
    one_hot,
    read_idx,
    scale,
    search_dirs,
    sha256_of_idx,
    standardize,
)
from minidl.data import mnist as mnist_module
from minidl.data.idx import read_idx_bytes

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
REPO = Path(__file__).resolve().parents[1]


def _has_data(folder: Path) -> bool:
    return all((folder / name / f"{f}.gz").is_file() for name in MANIFEST for f in FILES)


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The folder holding mnist/ and fashion-mnist/ (skips only when the real data is absent)."""
    candidates = [Path(__file__).resolve().parents[2] / "shared" / "data"]
    if os.environ.get("MINIDL_DATA"):
        candidates.insert(0, Path(os.environ["MINIDL_DATA"]))
    for folder in candidates:
        if _has_data(folder):
            return folder
    pytest.skip(f"real MNIST/Fashion-MNIST files not found in {candidates}")


@pytest.fixture(scope="session")
def mnist(data_root):
    return load_mnist(root=data_root, download=False)


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No test sees the user's cache or the repository's datasets/, or reaches the internet."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setattr(mnist_module, "_REPO_DATASETS", tmp_path / "repo-datasets")
    real_fetch, blocked = mnist_module._fetch, []

    def guarded_fetch(url, dest, timeout):
        if not url.startswith(("file://", "http://127.0.0.1")):
            blocked.append(url)
            raise urllib.error.URLError(f"test blocked a real mirror: {url}")
        real_fetch(url, dest, timeout)

    monkeypatch.setattr(mnist_module, "_fetch", guarded_fetch)
    yield
    assert not blocked, f"a test tried to contact real mirrors: {blocked}"


def _link_dataset(src: Path, dest: Path, files=FILES) -> Path:
    """dest/ with symlinks to the given .gz files of src/ (dest is created)."""
    dest.mkdir(parents=True, exist_ok=True)
    for f in files:
        (dest / f"{f}.gz").symlink_to(src / f"{f}.gz")
    return dest


def _fetch_log(monkeypatch) -> list[str]:
    """Record the URLs `_fetch` is asked for (still going through the guard)."""
    log, inner = [], mnist_module._fetch

    def logging_fetch(url, dest, timeout):
        log.append(url)
        inner(url, dest, timeout)

    monkeypatch.setattr(mnist_module, "_fetch", logging_fetch)
    return log


# --------------------------------------------------------------------------- IDX format


def _write_idx(path: Path, array: np.ndarray, code: int, compress: bool = False) -> None:
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    data = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


@pytest.mark.parametrize(
    "code, dtype",
    [(0x08, "u1"), (0x09, "i1"), (0x0B, "i2"), (0x0C, "i4"), (0x0D, "f4"), (0x0E, "f8")],
)
def test_read_idx_every_dtype_code(tmp_path, code, dtype):
    array = (np.arange(24).reshape(2, 3, 4) - (0 if dtype == "u1" else 7)).astype(dtype)
    _write_idx(tmp_path / "a.idx", array, code)
    out = read_idx(tmp_path / "a.idx")
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, array)
    assert not out.flags.writeable


def test_gzip_detected_by_magic_not_suffix(tmp_path):
    array = np.arange(10, dtype=np.int32)
    _write_idx(tmp_path / "compressed.idx", array, 0x0C, compress=True)
    _write_idx(tmp_path / "raw.gz", array, 0x0C)
    np.testing.assert_array_equal(read_idx(tmp_path / "compressed.idx"), array)
    np.testing.assert_array_equal(read_idx(tmp_path / "raw.gz"), array)


def test_bad_magic_unknown_code_and_trailing_data(tmp_path):
    bad = tmp_path / "bad-magic"
    bad.write_bytes(b"\x12\x34\x08\x01" + b"\x00\x00\x00\x02" + b"\x01\x02")
    with pytest.raises(DataError, match=r"bad-magic.*bad magic 12 34 08 01"):
        read_idx(bad)
    unknown = tmp_path / "unknown-code"
    unknown.write_bytes(b"\x00\x00\x0a\x01" + b"\x00\x00\x00\x02" + b"\x01\x02")
    with pytest.raises(DataError, match=r"unknown-code.*unknown IDX dtype code 0x0A"):
        read_idx(unknown)
    trailing = tmp_path / "trailing"
    trailing.write_bytes(b"\x00\x00\x08\x01" + b"\x00\x00\x00\x02" + b"\x01\x02\x03")
    with pytest.raises(DataError, match=r"trailing.*trailing data.*2 bytes.*got 3"):
        read_idx(trailing)
    header_cut = tmp_path / "header-cut"
    header_cut.write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(DataError, match=r"header-cut.*truncated header"):
        read_idx(header_cut)


def test_real_idx_and_hashes(data_root):
    path = data_root / "mnist" / "t10k-images-idx3-ubyte.gz"
    images = read_idx(path, sha256=MANIFEST["mnist"]["t10k-images-idx3-ubyte"])
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    labels = data_root / "mnist" / "t10k-labels-idx1-ubyte.gz"
    assert sha256_of_idx(labels) == MANIFEST["mnist"]["t10k-labels-idx1-ubyte"]
    with pytest.raises(DataError, match="t10k-labels.*expected 0+ *, got ff7bcfd4"):
        read_idx(labels, sha256="0" * 64)


def test_manifest_matches_sums_files(data_root):
    """The package manifest, datasets/SHA256SUMS and the shared SHA256SUMS.raw all agree."""
    repo_sums = (REPO / "datasets" / "SHA256SUMS").read_text().split("\n")
    expected = [f"{h}  {name}/{f}" for name in MANIFEST for f, h in MANIFEST[name].items()]
    assert [line for line in repo_sums if line] == expected
    for name in MANIFEST:
        raw = (data_root / name / "SHA256SUMS.raw").read_text().split()
        assert dict(zip(raw[1::2], raw[0::2], strict=True)) == MANIFEST[name]


# --------------------------------------------------------------------------- real datasets


def test_mnist_shapes_dtypes_ranges_counts(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == x_test.dtype == np.uint8
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert y_train.dtype == y_test.dtype == np.int64
    assert x_train.min() == 0 and x_train.max() == 255
    assert np.bincount(y_train).tolist() == MNIST_TRAIN_COUNTS
    assert set(np.unique(y_test).tolist()) == set(range(10))
    assert 0.1 < x_train.mean() / 255 < 0.15  # MNIST is mostly black background


def test_fashion_mnist_shapes_and_counts(data_root):
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist(root=data_root, download=False)
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.int64
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10
    assert x_test.max() == 255 and x_test.min() == 0
    (mnist_train, _), _ = load_mnist(root=data_root)
    assert not np.array_equal(x_train[:100], mnist_train[:100])


def test_load_dataset_names(data_root, mnist):
    (x_train, _), _ = load_dataset("mnist", root=data_root)
    assert np.shares_memory(x_train, mnist[0][0])  # the same cached arrays
    with pytest.raises(ValueError, match="'cifar'.*mnist, fashion-mnist"):
        load_dataset("cifar", root=data_root)


def test_cached_arrays_are_read_only_and_shared(data_root, mnist, monkeypatch):
    (x_train, y_train), _ = mnist
    with pytest.raises(ValueError):
        x_train[0, 0, 0] = 1
    with pytest.raises(ValueError):
        y_train[0] = 3
    with pytest.raises(ValueError):
        y_train.flags.writeable = True
    # A second load reads nothing from disk: the cache serves views of the same memory.
    monkeypatch.setattr(mnist_module, "read_idx", lambda *a, **k: pytest.fail("file re-read"))
    (x_again, y_again), _ = load_mnist(root=data_root)
    assert np.shares_memory(x_again, x_train) and np.shares_memory(y_again, y_train)


def test_raw_files_load_the_same_as_gz(data_root, mnist, tmp_path):
    for f in FILES:
        (tmp_path / "mnist" / f).parent.mkdir(exist_ok=True)
        (tmp_path / "mnist" / f).write_bytes(read_idx_bytes(data_root / "mnist" / f"{f}.gz"))
    assert find_dataset("mnist", root=tmp_path) == tmp_path / "mnist"
    raw = load_mnist(root=tmp_path, download=False)
    for got, want in zip(
        (a for pair in raw for a in pair), (a for pair in mnist for a in pair), strict=True
    ):
        assert got.dtype == want.dtype and np.array_equal(got, want)


def _folder_with(data_root: Path, tmp_path: Path, corrupt: str, data: bytes) -> Path:
    """tmp_path/mnist: links to the real files except `corrupt`, written as `data`."""
    folder = _link_dataset(
        data_root / "mnist", tmp_path / "mnist", [f for f in FILES if f != corrupt]
    )
    (folder / corrupt).write_bytes(data)
    return folder


def test_truncated_files_are_detected(data_root, tmp_path):
    labels = "t10k-labels-idx1-ubyte"
    gz = (data_root / "mnist" / f"{labels}.gz").read_bytes()
    folder = _link_dataset(data_root / "mnist", tmp_path / "gz" / "mnist", FILES[:3])
    (folder / f"{labels}.gz").write_bytes(gz[: len(gz) // 2])
    with pytest.raises(DataError, match=re.escape(f"{folder / labels}.gz: corrupt gzip stream")):
        load_mnist(root=tmp_path / "gz", download=False)
    raw = gzip.decompress(gz)[:1000]
    folder = _folder_with(data_root, tmp_path / "raw", labels, raw)
    with pytest.raises(DataError, match=re.escape(f"{folder / labels}: truncated: ")) as info:
        load_mnist(root=tmp_path / "raw", download=False)
    assert "needs a payload of 10000 bytes" in str(info.value) and "got 992" in str(info.value)


def test_one_flipped_byte_is_detected(data_root, tmp_path):
    labels = "t10k-labels-idx1-ubyte"
    data = bytearray(read_idx_bytes(data_root / "mnist" / f"{labels}.gz"))
    data[5000] ^= 0x01  # a label 7 becomes 6, say: same length, valid IDX
    folder = _folder_with(data_root, tmp_path, labels, bytes(data))
    expected = MANIFEST["mnist"][labels]
    actual = hashlib.sha256(data).hexdigest()
    with pytest.raises(DataError) as info:
        load_mnist(root=tmp_path, download=False)
    assert all(s in str(info.value) for s in (str(folder / labels), expected, actual))
    # The same flip inside a gzip stream: a damaged deflate stream or CRC, also named.
    gz = bytearray((data_root / "mnist" / f"{labels}.gz").read_bytes())
    gz[len(gz) // 2] ^= 0x01
    (tmp_path / "flipped.gz").write_bytes(bytes(gz))
    with pytest.raises(DataError, match="flipped.gz"):
        read_idx(tmp_path / "flipped.gz", sha256=expected)


# --------------------------------------------------------------------------- search order


def test_search_order(data_root, tmp_path, monkeypatch):
    src = data_root / "mnist"
    env = _link_dataset(src, tmp_path / "env" / "mnist")
    repo = _link_dataset(src, tmp_path / "repo-datasets" / "mnist")
    cache = _link_dataset(src, tmp_path / "xdg-cache" / "minidl" / "mnist")
    explicit = _link_dataset(src, tmp_path / "explicit" / "mnist")
    monkeypatch.setenv("MINIDL_DATA", str(tmp_path / "env"))
    assert search_dirs("mnist") == [env, repo, cache]
    assert find_dataset("mnist", root=tmp_path / "explicit") == explicit
    assert find_dataset("mnist") == env
    monkeypatch.delenv("MINIDL_DATA")
    assert find_dataset("mnist") == repo
    shutil.rmtree(tmp_path / "repo-datasets")
    assert search_dirs("mnist") == [cache]
    assert find_dataset("mnist") == cache
    # A folder counts only with all four files.
    (env / f"{FILES[0]}.gz").unlink()
    monkeypatch.setenv("MINIDL_DATA", str(tmp_path / "env"))
    assert find_dataset("mnist") == cache
    (x_train, y_train), _ = load_mnist()  # found in the cache, nothing downloaded
    assert np.bincount(y_train).tolist() == MNIST_TRAIN_COUNTS


def test_cache_dir_follows_xdg_and_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir("mnist") == tmp_path / "xdg" / "minidl" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir("fashion-mnist") == tmp_path / "home" / ".cache" / "minidl" / "fashion-mnist"


# --------------------------------------------------------------------------- downloading


def test_offline_error_lists_folders_and_files(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIDL_DATA", str(tmp_path / "empty"))
    urls = []

    def offline(url, dest, timeout):
        urls.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(mnist_module, "_fetch", offline)
    with pytest.raises(DatasetNotFoundError) as info:
        load_mnist()
    message = str(info.value)
    assert isinstance(info.value, DataError) and isinstance(info.value, FileNotFoundError)
    for folder in (tmp_path / "empty" / "mnist", cache_dir("mnist")):
        assert str(folder) in message
    assert all(f in message for f in FILES)
    assert "MINIDL_DATA" in message and "name resolution" in message
    assert len(urls) == len(FILES) * len(mnist_module.MIRRORS["mnist"])
    assert not any(cache_dir("mnist").iterdir())  # no partial files left behind
    with pytest.raises(DatasetNotFoundError, match="download=False"):
        load_mnist(download=False)
    assert len(urls) == len(FILES) * len(mnist_module.MIRRORS["mnist"])


def test_download_from_file_mirror_lands_in_cache(data_root, mnist, tmp_path, monkeypatch):
    monkeypatch.delenv("MINIDL_DATA", raising=False)
    mirror = _link_dataset(data_root / "mnist", tmp_path / "mirror")
    log = _fetch_log(monkeypatch)
    mirrors = [(tmp_path / "nowhere").as_uri() + "/", mirror.as_uri() + "/"]
    (x_train, y_train), (x_test, y_test) = load_dataset("mnist", mirrors=mirrors)
    assert len(log) == 2 * len(FILES)  # the dead mirror first, every time
    cache = cache_dir("mnist")
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{f}.gz" for f in FILES)
    for f in FILES:
        assert sha256_of_idx(cache / f"{f}.gz") == MANIFEST["mnist"][f]
    assert np.array_equal(y_train, mnist[0][1]) and np.array_equal(x_test, mnist[1][0])
    assert find_dataset("mnist") == cache


def test_corrupt_mirror_is_rejected_and_next_used(data_root, tmp_path, monkeypatch):
    monkeypatch.delenv("MINIDL_DATA", raising=False)
    labels = "t10k-labels-idx1-ubyte"
    _link_dataset(data_root / "mnist", cache_dir("mnist"), FILES[:3])
    bad = tmp_path / "bad-mirror"
    bad.mkdir()
    data = bytearray(read_idx_bytes(data_root / "mnist" / f"{labels}.gz"))
    data[-1] ^= 0xFF  # a valid gzip of a valid IDX file: only the hash can tell
    (bad / f"{labels}.gz").write_bytes(gzip.compress(bytes(data)))
    good = _link_dataset(data_root / "mnist", tmp_path / "good-mirror", [labels])
    log = _fetch_log(monkeypatch)
    with pytest.raises(DatasetNotFoundError, match=r"SHA-256 mismatch"):
        load_dataset("mnist", mirrors=[bad.as_uri()])
    assert not (cache_dir("mnist") / f"{labels}.gz").exists()
    (_, _), (_, y_test) = load_dataset("mnist", mirrors=[bad.as_uri(), good.as_uri()])
    assert log == [f"{bad.as_uri()}/{labels}.gz"] * 2 + [f"{good.as_uri()}/{labels}.gz"]
    assert sha256_of_idx(cache_dir("mnist") / f"{labels}.gz") == MANIFEST["mnist"][labels]
    assert sorted(p.name for p in cache_dir("mnist").iterdir()) == sorted(f"{f}.gz" for f in FILES)
    assert y_test.shape == (10000,)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_download_over_local_http(data_root, tmp_path, monkeypatch):
    monkeypatch.delenv("MINIDL_DATA", raising=False)
    served = _link_dataset(data_root / "fashion-mnist", tmp_path / "served", FILES[1::2])
    _link_dataset(data_root / "fashion-mnist", tmp_path / "root" / "fashion-mnist", FILES[0::2])
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        (_, y_train), (_, y_test) = load_dataset(
            "fashion-mnist", root=tmp_path / "root", mirrors=[url]
        )
    finally:
        server.shutdown()
        server.server_close()
    assert np.bincount(y_train).tolist() == [6000] * 10 and y_test.shape == (10000,)
    for f in FILES[1::2]:  # downloaded into root/<name>/, as real files
        path = tmp_path / "root" / "fashion-mnist" / f"{f}.gz"
        assert path.is_file() and not path.is_symlink()


# --------------------------------------------------------------------------- preprocessing


def test_scale_and_flatten(mnist):
    x = mnist[1][0][:100]
    xs = scale(x)
    assert xs.dtype == np.float32 and xs.shape == x.shape and xs.flags.writeable
    assert xs.min() == 0.0 and xs.max() == 1.0
    np.testing.assert_array_equal(xs, x.astype(np.float32) / np.float32(255))
    with default_dtype("float64"):
        assert scale(x).dtype == np.float64
    assert scale(x, np.float64)[0, 14, 14] == x[0, 14, 14] / 255
    flat = flatten(xs)
    assert flat.shape == (100, 784) and np.shares_memory(flat, xs)
    np.testing.assert_array_equal(flat[3], xs[3].ravel())


def test_standardize_reuses_train_statistics(mnist):
    (x_train, _), (x_test, _) = mnist
    train, mean, std = standardize(scale(x_train[:5000]))
    assert np.ndim(mean) == 0 and train.dtype == np.float32
    assert abs(float(train.mean())) < 1e-4 and abs(float(train.std()) - 1) < 1e-4
    test, mean2, std2 = standardize(scale(x_test[:1000]), mean, std)
    assert mean2 is mean and std2 is std
    np.testing.assert_allclose(test, (scale(x_test[:1000]) - mean) / std, rtol=1e-6)
    pixels, pmean, pstd = standardize(x_train[:5000], per_pixel=True)
    assert pmean.shape == pstd.shape == (28, 28) and pixels.dtype == np.float32
    assert np.isfinite(pixels).all()
    assert (pixels[:, 0, 0] == 0).all()  # a constant border pixel: std 0, kept at 0
    centre = pixels[:, 14, 14]
    assert abs(float(centre.mean())) < 1e-4 and abs(float(centre.std()) - 1) < 1e-3


def test_one_hot():
    y = np.array([0, 3, 9, 3])
    out = one_hot(y)
    assert out.shape == (4, 10) and out.dtype == np.float32
    np.testing.assert_array_equal(out.argmax(axis=1), y)
    assert out.sum() == 4
    assert one_hot(np.array([1]), 3, dtype=np.int64).tolist() == [[0, 1, 0]]
    with pytest.raises(ValueError, match="max 10"):
        one_hot(np.array([1, 10]))
    with pytest.raises(ValueError, match="shape"):
        one_hot(np.zeros((2, 2), dtype=np.int64))


# --------------------------------------------------------------------------- DataLoader


def _epoch(loader) -> list[int]:
    return [int(v) for xb, _ in loader for v in xb.data]


def test_loader_batch_counts_and_views():
    x, y = np.arange(10) * 10, np.arange(10)
    loader = DataLoader(x, y, batch_size=3)
    assert len(loader) == 4
    batches = list(loader)
    assert [len(xb.data) for xb, _ in batches] == [3, 3, 3, 1]
    assert all(isinstance(xb, Tensor) and isinstance(yb, Tensor) for xb, yb in batches)
    assert np.shares_memory(batches[1][0].data, x)  # no shuffle: slices are views
    np.testing.assert_array_equal(batches[3][1].data, [9])
    dropped = DataLoader(x, y, batch_size=3, drop_last=True)
    assert len(dropped) == 3 and [len(yb.data) for _, yb in dropped] == [3, 3, 3]
    assert len(DataLoader(x, batch_size=5)) == 2 and len(DataLoader(x, batch_size=11)) == 1
    assert len(DataLoader(x, batch_size=11, drop_last=True)) == 0


def test_loader_shuffle_sees_every_sample_once_and_is_seeded(device):
    n = 103
    x, y = np.arange(n), np.arange(n) * 2
    loader = DataLoader(x, y, batch_size=10, shuffle=True, seed=5, device=device)
    orders = []
    for e in range(3):
        pairs = [
            (int(a), int(b)) for xb, yb in loader for a, b in zip(xb.data, yb.data, strict=True)
        ]
        assert all(b == 2 * a for a, b in pairs)  # x and y stay aligned
        order = [a for a, _ in pairs]
        assert sorted(order) == list(range(n))
        assert order == np.random.default_rng([5, e]).permutation(n).tolist()
        orders.append(order)
    assert loader.epoch == 3
    assert orders[0] != orders[1] != orders[2]
    again = DataLoader(x, y, batch_size=10, shuffle=True, seed=5, device=device)
    assert _epoch(again) == orders[0]
    assert _epoch(DataLoader(x, y, batch_size=10, shuffle=True, seed=6)) != orders[0]


def test_loader_resume_by_epoch_and_state_dict():
    x = np.arange(50)
    first = DataLoader(x, x, batch_size=8, shuffle=True, seed=1)
    orders = [_epoch(first) for _ in range(4)]
    resumed = DataLoader(x, x, batch_size=8, shuffle=True, seed=1)
    resumed.epoch = 2
    assert _epoch(resumed) == orders[2]
    restored = DataLoader(x, x, batch_size=8, shuffle=True, seed=99)
    restored.load_state_dict({"epoch": 3, "seed": 1})
    assert restored.state_dict() == {"epoch": 3, "seed": 1}
    assert _epoch(restored) == orders[3] and restored.epoch == 4
    # An abandoned pass does not count as an epoch.
    for _ in restored:
        break
    assert restored.epoch == 4


def test_loader_errors_and_options():
    with pytest.raises(ValueError, match=r"x has 10 samples.*y has 9"):
        DataLoader(np.zeros((10, 2)), np.zeros(9))
    for bad in (0, -4, 2.5, True, "8", None):
        with pytest.raises(ValueError, match="batch_size must be a positive int"):
            DataLoader(np.zeros(4), batch_size=bad)
    with pytest.raises(ValueError, match="seed"):
        DataLoader(np.zeros(4), seed=-1)
    loader = DataLoader(np.arange(6, dtype=np.uint8).reshape(3, 2), batch_size=2, dtype="float32")
    assert loader.x.dtype == np.float32
    batches = list(loader)
    assert all(isinstance(b, Tensor) for b in batches)  # y=None: x batches alone
    assert batches[0].data.dtype == np.float32 and np.shares_memory(batches[0].data, loader.x)
    assert DataLoader([[1, 2], [3, 4]], [0, 1], batch_size=1).num_samples == 2


def test_loader_on_real_mnist(mnist):
    (x_train, y_train), _ = mnist
    loader = DataLoader(flatten(x_train), y_train, batch_size=128, shuffle=True, dtype="float32")
    assert len(loader) == 469
    xb, yb = next(iter(loader))
    assert xb.shape == (128, 784) and xb.dtype == np.float32 and yb.dtype == np.int64
    first = loader.permutation(0)[:128]
    np.testing.assert_array_equal(yb.data, y_train[first])
