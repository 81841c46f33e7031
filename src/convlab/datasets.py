"""Offline MNIST and CIFAR-10: the real files, decoded exactly as keras returns them.

Set ``CONVLAB_DATASETS`` to a folder laid out like this (official distribution formats)::

    mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
    cifar10/cifar-10-batches-bin/data_batch_{1..N}.bin, test_batch.bin, batches.meta.txt

and :func:`install` makes ``tf.keras.datasets.mnist.load_data()`` and
``tf.keras.datasets.cifar10.load_data()`` return those arrays instead of downloading.
Without the variable, keras downloads as usual. Every file is verified against its SHA-256
(from ``SHA256SUMS`` in the folder when present, else the built-in table below).
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ENV_VAR = "CONVLAB_DATASETS"

Split = tuple[np.ndarray, np.ndarray]

#: SHA-256 of every file the loaders read, relative to the datasets folder.
KNOWN_SHA256: dict[str, str] = {
    "mnist/train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "mnist/train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "mnist/t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "mnist/t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

CIFAR_DIR = "cifar10/cifar-10-batches-bin"
CIFAR_RECORD = 1 + 32 * 32 * 3


class DatasetError(RuntimeError):
    """A dataset file is missing, corrupt or malformed."""


def datasets_root() -> Path | None:
    """The folder named by ``CONVLAB_DATASETS``, or None when keras should download."""
    value = os.environ.get(ENV_VAR)
    return Path(value).expanduser().resolve() if value else None


def absolutize_env() -> None:
    """Make ``CONVLAB_DATASETS`` absolute, so kernels started in other folders find it."""
    root = datasets_root()
    if root is not None:
        os.environ[ENV_VAR] = str(root)


def _expected_checksums(root: Path) -> dict[str, str]:
    sums = dict(KNOWN_SHA256)
    listing = root / "SHA256SUMS"
    if listing.is_file():
        for line in listing.read_text().splitlines():
            if line.strip():
                digest, name = line.split(maxsplit=1)
                sums[name.strip().removeprefix("*").removeprefix("./")] = digest
    return sums


_VERIFIED: set[tuple[str, int, int]] = set()


def read_verified(root: Path, relative: str) -> bytes:
    """Return the bytes of ``root/relative``, checking its SHA-256 once per process and version."""
    path = root / relative
    expected = _expected_checksums(root).get(relative)
    if not path.is_file():
        hint = f" (expected SHA-256 {expected})" if expected else ""
        raise DatasetError(f"{path}: file not found in {ENV_VAR}={root}{hint}")
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    data = path.read_bytes()
    if expected is not None and key not in _VERIFIED:
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise DatasetError(
                f"{path}: SHA-256 mismatch, expected {expected}, found {actual} "
                "(the file is corrupt or not the official one)"
            )
        _VERIFIED.add(key)
    return data


def _idx(root: Path, relative: str, magic: int, header: int) -> np.ndarray:
    raw = gzip.decompress(read_verified(root, relative))
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise DatasetError(f"{root / relative}: IDX magic {found:#x}, expected {magic:#x}")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(magic & 0xFF)]
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def load_mnist(root: Path) -> tuple[Split, Split]:
    """MNIST from the four IDX files: uint8 ``(N, 28, 28)`` images, uint8 ``(N,)`` labels."""
    splits = []
    for prefix in ("train", "t10k"):
        x = _idx(root, f"mnist/{prefix}-images-idx3-ubyte.gz", 0x803, 16)
        y = _idx(root, f"mnist/{prefix}-labels-idx1-ubyte.gz", 0x801, 8)
        if len(x) != len(y):
            raise DatasetError(f"mnist/{prefix}: {len(x)} images but {len(y)} labels")
        splits.append((x, y))
    return splits[0], splits[1]


def _cifar_batches(root: Path, names: list[str]) -> Split:
    records = []
    for name in names:
        raw = np.frombuffer(read_verified(root, f"{CIFAR_DIR}/{name}"), dtype=np.uint8)
        if raw.size % CIFAR_RECORD:
            raise DatasetError(f"{root / CIFAR_DIR / name}: size is not a multiple of 3073 bytes")
        records.append(raw.reshape(-1, CIFAR_RECORD))
    table = np.concatenate(records)
    x = table[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    y = table[:, :1]
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def load_cifar10(root: Path) -> tuple[Split, Split]:
    """CIFAR-10 from the binary batches: uint8 ``(N, 32, 32, 3)`` images, uint8 ``(N, 1)`` labels."""
    folder = root / CIFAR_DIR
    train = sorted(p.name for p in folder.glob("data_batch_*.bin"))
    if not train:
        raise DatasetError(f"{folder}: no data_batch_*.bin files in {ENV_VAR}={root}")
    return _cifar_batches(root, train), _cifar_batches(root, ["test_batch.bin"])


def cifar10_class_names(root: Path | None = None) -> list[str]:
    """The ten class names in label order."""
    root = root or datasets_root()
    if root is not None and (root / CIFAR_DIR / "batches.meta.txt").is_file():
        text = read_verified(root, f"{CIFAR_DIR}/batches.meta.txt").decode()
        return [line.strip() for line in text.splitlines() if line.strip()]
    return ["airplane", "automobile", "bird", "cat", "deer",
            "dog", "frog", "horse", "ship", "truck"]


LOADERS = {"mnist": load_mnist, "cifar10": load_cifar10}
_KERAS_ORIGINALS: dict[str, Callable[[], Any]] = {}


def _keras_module(name: str):
    import keras

    return getattr(keras.datasets, name)


def load(name: str) -> tuple[Split, Split]:
    """Raw (uint8) arrays of ``name`` from ``CONVLAB_DATASETS``, or keras' own download.

    Always bypasses anything a notebook may have patched onto ``keras.datasets``.
    """
    root = datasets_root()
    if root is not None:
        return LOADERS[name](root)
    original = _KERAS_ORIGINALS.get(name) or _keras_module(name).load_data
    return original()


def install() -> bool:
    """Route ``keras.datasets.{mnist,cifar10}.load_data`` to the local files.

    Returns True when ``CONVLAB_DATASETS`` is set (and the loaders were replaced).
    """
    if datasets_root() is None:
        return False
    for name, loader in LOADERS.items():
        module = _keras_module(name)
        _KERAS_ORIGINALS.setdefault(name, module.load_data)

        def load_data(*_args, _loader=loader, **_kwargs):
            root = datasets_root()
            if root is None:  # the variable was unset after install()
                return _KERAS_ORIGINALS[_loader.__name__.removeprefix("load_")]()
            return _loader(root)

        load_data.__doc__ = f"Offline {name} from {ENV_VAR} (convlab)."
        module.load_data = load_data
    return True
