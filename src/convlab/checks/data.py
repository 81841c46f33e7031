"""Checks of prepared image data, compared with a fresh load of the dataset."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from convlab.public import fail, image_format, require, show


@cache
def _raw(dataset: str) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    from convlab import datasets

    return datasets.load(dataset)


def _prepare(x: np.ndarray) -> np.ndarray:
    x = (x / 255).astype(np.float32)
    return x[..., np.newaxis] if x.ndim == 3 else x


@cache
def pristine(dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """A fresh, correctly prepared test split: float32 in [0, 1] with a channel axis, labels.

    Loaded by the check itself (never from the student's variables); cached per process.
    """
    _, (x_test, y_test) = _raw(dataset)
    return _prepare(x_test), y_test.reshape(-1)


def train_size(dataset: str) -> int:
    """Number of training images of a fresh load."""
    return len(_raw(dataset)[0][0])


def image_shape(dataset: str) -> tuple[int, ...]:
    """Shape of one prepared image (with its channel axis)."""
    return tuple(pristine(dataset)[0].shape[1:])


def _compare_split(x: Any, raw: np.ndarray, name: str, chunk: int = 4096) -> None:
    shape = raw.shape[1:] + ((1,) if raw.ndim == 3 else ())
    image_format(x, name, shape)
    require(len(x) == len(raw), f"{name}: число изображений", len(raw), len(x))
    for start in range(0, len(raw), chunk):
        expected = _prepare(raw[start : start + chunk])
        expected -= x[start : start + chunk]  # max |x - pixels / 255| (NaN fails too)
        if not float(np.max(np.abs(expected, out=expected))) <= 1e-6:
            ratio = float(np.max(x)) / max(float(np.max(raw)), 1.0)
            raise fail(f"{name}: значения", "исходные пиксели / 255 (в исходном порядке)",
                       f"другие значения (max(x) / max(пикселей) = {ratio:.4g})")


def scaled_like_raw(x_train: Any, x_test: Any, y_train: Any, y_test: Any, *, dataset: str) -> None:
    """Prepared data equals a fresh load divided by 255, as float32 with a channel axis;
    labels are unchanged."""
    (raw_train, raw_y_train), (raw_test, raw_y_test) = _raw(dataset)
    _compare_split(x_train, raw_train, "x_train")
    _compare_split(x_test, raw_test, "x_test")
    for value, raw, name in ((y_train, raw_y_train, "y_train"), (y_test, raw_y_test, "y_test")):
        labels = np.asarray(value)
        require(labels.size == raw.size and np.array_equal(labels.reshape(-1), raw.reshape(-1)),
                f"{name}: метки", f"метки датасета без изменений ({raw.size} шт.)", show(labels))
