"""IDX file reader: the format of MNIST and Fashion-MNIST (data layer).

An IDX file is a 4-byte magic number, one big-endian uint32 per dimension, then the payload::

    byte 0-1   0x00 0x00
    byte 2     dtype code: 0x08 ubyte, 0x09 byte, 0x0B short, 0x0C int, 0x0D float, 0x0E double
    byte 3     ndim
    then       ndim big-endian uint32 sizes, then prod(sizes) big-endian values, row-major

Files may be gzip-compressed; compression is detected by the gzip magic bytes (1f 8b), not by
the file name. Every problem with a file (bad magic, unknown dtype code, wrong payload length,
corrupt gzip stream, hash mismatch) raises `DataError` naming the file and what is wrong.

Reading decompresses a file exactly once: `read_idx_with_hash` hashes and parses the same
bytes, so checking a file against its SHA-256 costs no second decompression. It reads the
header first and refuses a bad one before decompressing the payload, and never decompresses
more than the header announces (plus one byte, to detect trailing data): a small gzip that
expands to gigabytes costs no more memory than its header claims.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import zlib

import numpy as np

GZIP_MAGIC = b"\x1f\x8b"

# IDX dtype code -> big-endian NumPy dtype of the payload.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class DataError(ValueError):
    """A dataset file is unusable: malformed, truncated, corrupt, or fails its checksum.

    The message always names the file and says what is wrong.
    """


def read_idx_bytes(path: str | os.PathLike) -> bytes:
    """The uncompressed bytes of an IDX file, gunzipped when it starts with the gzip magic.

    Raises FileNotFoundError (or another OSError) when the file cannot be read, and DataError
    when the gzip stream is corrupt or truncated.
    """
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        # EOFError: stream cut short; zlib.error: corrupt deflate data; BadGzipFile: bad CRC,
        # length or header. All three mean the same thing to a user: the file is damaged.
        raise DataError(f"{os.fspath(path)}: corrupt gzip stream ({exc})") from exc


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Parse the uncompressed bytes of an IDX file into an array of native byte order.

    `source` names the data in error messages (a file path). The result is read-only (for
    1-byte dtypes it is a view of `data`, not a copy); copy it to modify it.
    """
    dtype, dims, offset = _parse_header(data, source)
    expected = math.prod(dims) * dtype.itemsize
    got = len(data) - offset
    if got != expected:
        what = "truncated" if got < expected else "trailing data"
        raise DataError(
            f"{source}: {what}: shape {dims} of {dtype.name} needs a payload of {expected} "
            f"bytes ({expected + offset} with the header), got {got}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=offset).reshape(dims)
    if dtype.itemsize > 1:
        array = array.astype(dtype.newbyteorder("="))
    array.flags.writeable = False
    return array


def _parse_header(data: bytes, source: str) -> tuple[np.dtype, tuple, int]:
    """(payload dtype, dims, header length) from the first bytes of an IDX file."""
    if len(data) < 4:
        raise DataError(f"{source}: truncated header: {len(data)} bytes, need at least 4")
    if data[0] != 0 or data[1] != 0:
        raise DataError(
            f"{source}: bad magic {data[:4].hex(' ')}: not an IDX file "
            "(expected 00 00 <dtype code> <ndim>)"
        )
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise DataError(f"{source}: unknown IDX dtype code 0x{code:02X} (known: {known})")
    if ndim == 0:
        raise DataError(f"{source}: bad header: ndim is 0")
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise DataError(
            f"{source}: truncated header: {ndim} dimensions need {offset} bytes, got {len(data)}"
        )
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    return IDX_DTYPES[code], dims, offset


def _read_checked(path) -> bytes:
    """The uncompressed bytes of an IDX file, read header first: a bad header is refused
    from the first bytes, and at most the announced payload plus one byte is decompressed."""
    source = os.fspath(path)
    with open(path, "rb") as raw:
        f = gzip.GzipFile(fileobj=raw) if raw.read(2) == GZIP_MAGIC else raw
        raw.seek(0)
        try:
            head = f.read(4)
            if len(head) == 4 and head[:2] == b"\0\0":
                head += f.read(4 * head[3])
            dtype, dims, _ = _parse_header(head, source)
            return head + f.read(math.prod(dims) * dtype.itemsize + 1)
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise DataError(f"{source}: corrupt gzip stream ({exc})") from exc


def read_idx_with_hash(path: str | os.PathLike) -> tuple[np.ndarray, str]:
    """Read an IDX file (gzipped or raw) once: return (array, SHA-256 hex of uncompressed bytes).

    The array is read-only, as from `parse_idx`.
    """
    data = _read_checked(path)
    array = parse_idx(data, os.fspath(path))
    return array, hashlib.sha256(data).hexdigest()


def read_idx(path: str | os.PathLike, sha256: str | None = None) -> np.ndarray:
    """Read an IDX file, gzipped or raw, into a read-only NumPy array.

    When `sha256` is given, the SHA-256 of the uncompressed bytes must equal it, otherwise
    DataError names the file, the expected and the actual hash. Structural problems (bad magic,
    unknown dtype code, wrong payload length, corrupt gzip) also raise DataError.

    >>> x = read_idx('mnist/t10k-images-idx3-ubyte.gz')     # uint8, shape (10000, 28, 28)
    """
    array, actual = read_idx_with_hash(path)
    if sha256 is not None and actual != sha256.lower():
        raise DataError(
            f"{os.fspath(path)}: SHA-256 mismatch of the uncompressed bytes: "
            f"expected {sha256.lower()}, got {actual} (file corrupt or not the expected one)"
        )
    return array


def sha256_of_idx(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of the uncompressed bytes of an IDX file (gzipped or raw).

    This is the hash to compare across mirrors: gzip headers (timestamps, names) differ between
    copies of the same data, the uncompressed bytes do not.
    """
    return hashlib.sha256(read_idx_bytes(path)).hexdigest()
