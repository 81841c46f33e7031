"""Shared fixtures of the unit tests of the checks vocabulary.

Nothing here reads a real dataset: :func:`fake_datasets` replaces the checks' dataset loader
with tiny synthetic uint8 arrays in keras' format, laid out so that the accuracy of a small
"mapping" network on the test split is known exactly (see :class:`Synthetic`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")  # figures are built and inspected, never shown
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before any test module imports keras

CLASSES = 3

#: class each test image "points at": flat pixel ``k < CLASSES`` of test image ``i`` is 255
#: for ``k == ORACLE[i]`` and 0 for the other classes (see :func:`mapping_model`)
ORACLE = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
#: true test labels: equal to ORACLE except at WRONG, where they are ORACLE + 1 (mod CLASSES)
WRONG = [2, 7]


@dataclass(frozen=True)
class Synthetic:
    """The fake datasets and the facts about them the tests rely on."""

    raw: dict[str, tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]]
    classes: int
    oracle: np.ndarray  #: what ``mapping_model(shape, shift=0)`` predicts on the test split
    y_test: np.ndarray  #: flat true test labels (same for both datasets)

    def accuracy(self, shift: int) -> float:
        """Exact test accuracy of ``mapping_model(shape, shift)``."""
        return float(np.mean((self.oracle + shift) % self.classes == self.y_test))


def _images(rng: np.random.Generator, count: int, shape: tuple[int, ...]) -> np.ndarray:
    x = rng.integers(0, 256, size=(count, *shape), dtype=np.uint8)
    flat = x.reshape(count, -1)
    flat[:, -1] = 255  # every split spans the full pixel range [0, 255]
    flat[:, -2] = 0
    return x


def _split(rng: np.random.Generator, train: int, shape: tuple[int, ...], column: bool):
    x_train = _images(rng, train, shape)
    y_train = rng.integers(0, CLASSES, size=train).astype(np.uint8)
    x_test = _images(rng, len(ORACLE), shape)
    flat = x_test.reshape(len(ORACLE), -1)
    flat[:, :CLASSES] = 0
    flat[np.arange(len(ORACLE)), ORACLE] = 255
    y_test = ORACLE.copy()
    y_test[WRONG] = (ORACLE[WRONG] + 1) % CLASSES
    y_test = y_test.astype(np.uint8)
    if column:  # CIFAR-10 labels come as (N, 1)
        y_train, y_test = y_train[:, np.newaxis], y_test[:, np.newaxis]
    arrays = (x_train, y_train, x_test, y_test)
    for array in arrays:
        array.setflags(write=False)  # a check must never modify the loaded data
    return (x_train, y_train), (x_test, y_test)


@pytest.fixture(scope="session")
def synthetic() -> Synthetic:
    """Tiny MNIST-like (16 train, 10 test, 8x8 grey) and CIFAR-like (12 train, 10 test,
    6x6x3) datasets."""
    rng = np.random.default_rng(20240517)
    raw = {
        "mnist": _split(rng, 16, (8, 8), column=False),
        "cifar10": _split(rng, 12, (6, 6, 3), column=True),
    }
    y_test = ORACLE.copy()
    y_test[WRONG] = (ORACLE[WRONG] + 1) % CLASSES
    return Synthetic(raw=raw, classes=CLASSES, oracle=ORACLE.copy(), y_test=y_test)


def pytest_make_parametrize_id(config, val, argname):
    """Readable test ids: an expected Russian message becomes its argument's name (pytest
    numbers repeats) instead of a run of \\u escapes."""
    if isinstance(val, str) and not val.isascii():
        return argname
    return None


def _clear_caches() -> None:
    from convlab.checks import data, performance

    for function in (data._raw, data.pristine):
        if hasattr(function, "cache_clear"):
            function.cache_clear()
    performance._cache.clear()
    performance._ahead.clear()


@pytest.fixture
def fake_datasets(monkeypatch: pytest.MonkeyPatch, synthetic: Synthetic) -> Synthetic:
    """The checks load :func:`synthetic` instead of MNIST / CIFAR-10 (and never the real ones)."""
    from convlab import datasets
    from convlab.checks import data, figures

    def fake_raw(name: str):
        return synthetic.raw[name]

    def forbidden(name: str):
        raise AssertionError(f"a unit test tried to load the real dataset {name!r}")

    _clear_caches()
    monkeypatch.setattr(datasets, "load", forbidden)
    monkeypatch.setattr(data, "_raw", fake_raw)
    monkeypatch.setattr(figures, "_raw", fake_raw)
    yield synthetic
    monkeypatch.undo()
    _clear_caches()


def mapping_model(input_shape: tuple[int, ...], shift: int = 0):
    """Flatten + Dense softmax whose prediction for a test image of :func:`synthetic` is
    ``(ORACLE[i] + shift) % CLASSES``: flat pixel ``k`` votes for class ``k + shift``."""
    import keras

    inputs = keras.Input(input_shape)
    outputs = keras.layers.Dense(CLASSES, activation="softmax")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, outputs)
    set_mapping(model, shift)
    return model


def set_mapping(model, shift: int) -> None:
    """Point the weights of :func:`mapping_model` at ``shift``."""
    dense = model.layers[-1]
    kernel = np.zeros(dense.kernel.shape, dtype=np.float32)
    for k in range(CLASSES):
        kernel[k, (k + shift) % CLASSES] = 10.0
    dense.set_weights([kernel, np.zeros(CLASSES, dtype=np.float32)])


@pytest.fixture(scope="session")
def make_mapping_model():
    """:func:`mapping_model` for the tests (a factory, not a module to import)."""
    return mapping_model


@pytest.fixture(scope="session")
def point_mapping():
    """:func:`set_mapping` for the tests."""
    return set_mapping
