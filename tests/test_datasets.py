"""Offline datasets: the real files, keras' formats, checksums, and keras' loaders routed."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from convlab import datasets


def test_mnist_matches_keras_format(datasets_root: Path) -> None:
    """Does the MNIST loader return keras' dtypes and shapes and the real first labels?"""
    (x_train, y_train), (x_test, y_test) = datasets.load_mnist(datasets_root)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.uint8
    assert x_train.shape == (len(y_train), 28, 28) and x_test.shape == (len(y_test), 28, 28)
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]  # the official order
    assert x_train.max() == 255 and x_train.min() == 0


def test_cifar10_matches_keras_format(datasets_root: Path) -> None:
    """Does CIFAR-10 come as (N, 32, 32, 3) uint8 with (N, 1) labels, N from the files?"""
    (x_train, y_train), (x_test, y_test) = datasets.load_cifar10(datasets_root)
    batches = len(list((datasets_root / datasets.CIFAR_DIR).glob("data_batch_*.bin")))
    assert len(x_train) == 10000 * batches  # each official batch holds 10 000 records
    assert x_train.shape[1:] == (32, 32, 3) and x_train.dtype == np.uint8
    assert y_train.shape == (len(x_train), 1) and y_test.shape == (len(x_test), 1)
    assert y_train[:5, 0].tolist() == [6, 9, 9, 4, 1]  # frog, truck, truck, deer, automobile
    assert set(np.unique(y_test)) == set(range(10))


def test_install_routes_keras_loaders(datasets_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Do tf.keras.datasets.*.load_data() return the local arrays without downloading?"""
    import keras
    import tensorflow as tf

    def no_download(*args, **kwargs):
        raise AssertionError("keras tried to download")

    monkeypatch.setattr(keras.utils, "get_file", no_download)
    monkeypatch.setattr(keras.datasets.mnist, "load_data", keras.datasets.mnist.load_data)
    monkeypatch.setattr(keras.datasets.cifar10, "load_data", keras.datasets.cifar10.load_data)
    assert datasets.install()
    (x_train, _), _ = tf.keras.datasets.mnist.load_data()
    (expected, _), _ = datasets.load_mnist(datasets_root)
    assert np.array_equal(x_train, expected)
    (cx_train, _), (cx_test, _) = tf.keras.datasets.cifar10.load_data()
    assert cx_train.shape[1:] == (32, 32, 3) and cx_test.dtype == np.uint8


def test_without_variable_keras_is_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without CONVLAB_DATASETS, does install() leave keras' own downloader in place?"""
    import keras

    monkeypatch.delenv(datasets.ENV_VAR, raising=False)
    original = keras.datasets.mnist.load_data
    assert datasets.install() is False
    assert keras.datasets.mnist.load_data is original


def _copy_mnist(datasets_root: Path, tmp_path: Path) -> Path:
    shutil.copytree(datasets_root / "mnist", tmp_path / "mnist")
    shutil.copy(datasets_root / "SHA256SUMS", tmp_path / "SHA256SUMS")
    return tmp_path


def test_corrupt_file_names_file_and_checksum(datasets_root: Path, tmp_path: Path) -> None:
    """Does a corrupt file raise an error naming the file and the expected SHA-256?"""
    root = _copy_mnist(datasets_root, tmp_path)
    target = root / "mnist" / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(target.read_bytes())
    data[100] ^= 0xFF
    target.write_bytes(bytes(data))
    expected = datasets.KNOWN_SHA256["mnist/t10k-labels-idx1-ubyte.gz"]
    with pytest.raises(datasets.DatasetError, match=f"t10k-labels-idx1-ubyte.gz.*{expected}"):
        datasets.load_mnist(root)


def test_missing_file_names_file(datasets_root: Path, tmp_path: Path) -> None:
    """Does a missing file raise an error naming it and its expected checksum?"""
    root = _copy_mnist(datasets_root, tmp_path)
    (root / "mnist" / "train-images-idx3-ubyte.gz").unlink()
    pattern = r"train-images-idx3-ubyte\.gz: file not found.*440fcabf"
    with pytest.raises(datasets.DatasetError, match=pattern):
        datasets.load_mnist(root)


def test_relative_variable_made_absolute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Is a relative CONVLAB_DATASETS made absolute (kernels run in other folders)?"""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(datasets.ENV_VAR, "data")
    datasets.absolutize_env()
    assert datasets.datasets_root() == (tmp_path / "data").resolve()
