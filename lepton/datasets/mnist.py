"""MNIST, shipped inside the package (about 11 MB), read from its original IDX files."""

from __future__ import annotations

import gzip
import hashlib
from functools import cache
from pathlib import Path

import numpy as np

from lepton.errors import DataError

DATA_DIR = Path(__file__).parent / "data" / "mnist"
MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}


def read_idx(path: Path, verify: str | None = None) -> np.ndarray:
    """Parse an IDX file (gzipped or not): magic, dims, then big-endian data."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"Cannot read the IDX file '{path}'", received=str(exc),
                        fix="reinstall Lepton; the bundled MNIST files are damaged") from None
    if verify and hashlib.md5(raw).hexdigest() != verify:
        raise DataError(f"'{path}' does not match the official MNIST checksum",
                        expected=verify, fix="reinstall Lepton")
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise DataError(f"'{path}' is not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(int)
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


@cache
def _load(split: str) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(DATA_DIR / f"{split}-images-idx3-ubyte.gz", MD5[f"{split}-images-idx3-ubyte"])
    labels = read_idx(DATA_DIR / f"{split}-labels-idx1-ubyte.gz", MD5[f"{split}-labels-idx1-ubyte"])
    return images, labels


def load_data() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``(x_train, y_train), (x_test, y_test)`` as uint8 ``(N, 28, 28)`` and uint8 labels,
    exactly like ``keras.datasets.mnist.load_data()``."""
    (x_train, y_train), (x_test, y_test) = _load("train"), _load("t10k")
    return (x_train.copy(), y_train.copy()), (x_test.copy(), y_test.copy())
