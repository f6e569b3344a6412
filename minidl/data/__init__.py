"""Data layer: IDX files, MNIST / Fashion-MNIST with checksums, preprocessing, DataLoader."""

from minidl.data import datasets, transforms
from minidl.data.idx import DataError, read_idx, read_idx_with_hash, sha256_of_idx
from minidl.data.loader import DataLoader, TensorDataset
from minidl.data.mnist import (
    FILES,
    MANIFEST,
    MIRRORS,
    DatasetNotFoundError,
    cache_dir,
    clear_cache,
    download_dataset,
    find_dataset,
    flatten,
    load_dataset,
    load_fashion_mnist,
    load_mnist,
    one_hot,
    scale,
    search_dirs,
    standardize,
)

__all__ = [
    "FILES",
    "MANIFEST",
    "MIRRORS",
    "DataError",
    "DataLoader",
    "DatasetNotFoundError",
    "TensorDataset",
    "cache_dir",
    "clear_cache",
    "datasets",
    "download_dataset",
    "find_dataset",
    "flatten",
    "load_dataset",
    "load_fashion_mnist",
    "load_mnist",
    "one_hot",
    "read_idx",
    "read_idx_with_hash",
    "scale",
    "search_dirs",
    "sha256_of_idx",
    "standardize",
    "transforms",
]
