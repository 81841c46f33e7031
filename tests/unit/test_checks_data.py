"""Checks of prepared image data (convlab.checks.data), against the synthetic datasets of the
``fake_datasets`` fixture (conftest.py) instead of MNIST / CIFAR-10."""

from __future__ import annotations

import re

import numpy as np
import pytest

from convlab import checks
from convlab.checks import CheckFailed


def exactly(text: str) -> str:
    """A ``match=`` pattern for this literal text."""
    return re.escape(text)


def prepared(fake, dataset: str):
    """The solution's preparation: x / 255 as float32, a channel axis for grey images."""
    (x_train, y_train), (x_test, y_test) = fake.raw[dataset]
    x_train = (x_train / 255).astype(np.float32)
    x_test = (x_test / 255).astype(np.float32)
    if x_train.ndim == 3:
        x_train, x_test = x_train[..., np.newaxis], x_test[..., np.newaxis]
    return x_train, x_test, y_train, y_test


# ---------------------------------------------------------------- train_size, image_shape


def test_train_size(fake_datasets):
    """Does train_size count the training images of a fresh load?"""
    assert checks.train_size("mnist") == 16
    assert checks.train_size("cifar10") == 12


def test_train_size_wrong_answer_fails(fake_datasets):
    """Does a student count of the test images instead of the training ones fail
    answer_equals against train_size, naming both counts?"""
    with pytest.raises(CheckFailed, match=exactly(
            "train_vectors_1: ожидается: 16; получено: 10.")):
        checks.answer_equals(10, checks.train_size("mnist"), "train_vectors_1")


def test_image_shape(fake_datasets):
    """Does image_shape give the prepared image shape, with a channel axis for grey images?"""
    assert checks.image_shape("mnist") == (8, 8, 1)
    assert checks.image_shape("cifar10") == (6, 6, 3)


def test_image_shape_wrong_answer_fails(fake_datasets):
    """Does a shape with the batch axis fail answer_equals against image_shape, naming both?"""
    x_train, *_ = prepared(fake_datasets, "cifar10")
    checks.answer_equals(tuple(x_train.shape[1:]), checks.image_shape("cifar10"), "input_shape_4")
    with pytest.raises(CheckFailed, match=exactly(
            "input_shape_4: ожидается: (6, 6, 3); получено: (12, 6, 6, 3).")):
        checks.answer_equals(tuple(x_train.shape), checks.image_shape("cifar10"), "input_shape_4")


# ------------------------------------------------------------------------------- pristine


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_pristine_is_the_prepared_test_split(fake_datasets, dataset):
    """Is pristine the raw test split / 255 as float32 with a channel axis, and the labels
    as a flat vector (CIFAR's (N, 1) column flattened)?"""
    _, (raw_x, _) = fake_datasets.raw[dataset]
    x, y = checks.pristine(dataset)
    assert x.dtype == np.float32 and x.shape[1:] == checks.image_shape(dataset)
    assert np.array_equal(x.reshape(raw_x.shape), (raw_x / 255).astype(np.float32))
    assert y.shape == (len(raw_x),) and np.array_equal(y, fake_datasets.y_test)
    checks.image_format(x, "x_test", checks.image_shape(dataset))


def test_pristine_ignores_the_students_variables(fake_datasets):
    """Does pristine come from a fresh load, unaffected by a student's wrongly prepared
    copy, so that image_format on the pristine data passes while the copy fails?"""
    x_test = fake_datasets.raw["mnist"][1][0].astype(np.float32)  # forgot / 255
    x, _ = checks.pristine("mnist")
    assert checks.pristine("mnist")[0] is x  # loaded once per process
    checks.image_format(x, "x_test", (8, 8, 1))
    with pytest.raises(CheckFailed, match=exactly(
            "x_test: размерность: ожидается: (N, 8, 8, 1); получено: (10, 8, 8).")):
        checks.image_format(x_test, "x_test", (8, 8, 1))


# --------------------------------------------------------------------------- image_format


@pytest.mark.parametrize("dataset, shape", [("mnist", (8, 8, 1)), ("cifar10", (6, 6, 3))])
def test_image_format_accepts_prepared_images(fake_datasets, dataset, shape):
    """Are float32 images in [0, 1] of the right shape accepted?"""
    x_train, x_test, *_ = prepared(fake_datasets, dataset)
    checks.image_format(x_train, "x_train", shape)
    checks.image_format(x_test, "x_test", shape)


def test_image_format_needs_no_dataset():
    """Does image_format (a public check) work without loading any dataset?"""
    checks.image_format(np.zeros((2, 4, 4, 1), np.float32), "x_train", (4, 4, 1))


@pytest.mark.parametrize("make, message", [
    (lambda x: x.tolist(), "x_train: тип: ожидается: numpy.ndarray; получено: list."),
    (lambda x: x.astype(np.float64), "x_train: тип элементов: ожидается: float32; получено: float64."),
    (lambda x: (x * 255).astype(np.uint8), "x_train: тип элементов: ожидается: float32; получено: uint8."),
    (lambda x: x[..., 0], "x_train: размерность: ожидается: (N, 8, 8, 1); получено: (16, 8, 8)."),
    (lambda x: x[0], "x_train: размерность: ожидается: (N, 8, 8, 1); получено: (8, 8, 1)."),
    (lambda x: x * 255, "x_train: диапазон значений: ожидается: отрезок [0, 1]; получено: [0, 255]."),
    (lambda x: x - 0.5, "x_train: диапазон значений: ожидается: отрезок [0, 1]; получено: [-0.5, 0.5]."),
])
def test_image_format_rejects_wrong_preparation(fake_datasets, make, message):
    """Do a list, float64, uint8, a missing channel axis, a single image, unscaled and
    centred pixels each fail, naming the expected and the found type, shape or range?"""
    x_train, *_ = prepared(fake_datasets, "mnist")
    with pytest.raises(CheckFailed, match=exactly(message)):
        checks.image_format(make(x_train), "x_train", (8, 8, 1))


# ------------------------------------------------------------------------ scaled_like_raw


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_scaled_like_raw_accepts_the_solution(fake_datasets, dataset):
    """Is the solution's preparation (x / 255 as float32, labels untouched) accepted?"""
    x_train, x_test, y_train, y_test = prepared(fake_datasets, dataset)
    checks.scaled_like_raw(x_train, x_test, y_train, y_test, dataset=dataset)


def test_scaled_like_raw_accepts_equivalent_preparations(fake_datasets):
    """Are float32 division, np.expand_dims, and CIFAR labels flattened to (N,) or turned
    into lists accepted as the same data?"""
    (x_train, y_train), (x_test, y_test) = fake_datasets.raw["mnist"]
    checks.scaled_like_raw(np.expand_dims(x_train.astype(np.float32) / 255.0, -1),
                           np.expand_dims(x_test.astype(np.float32) / 255.0, -1),
                           y_train.tolist(), y_test, dataset="mnist")
    x_train, x_test, y_train, y_test = prepared(fake_datasets, "cifar10")
    checks.scaled_like_raw(x_train, x_test, y_train.reshape(-1), y_test.ravel(),
                           dataset="cifar10")


def test_scaled_like_raw_unscaled_fails(fake_datasets):
    """Does data cast to float32 but not divided by 255 fail on its range, showing it?"""
    (x_train, y_train), (x_test, y_test) = fake_datasets.raw["cifar10"]
    with pytest.raises(CheckFailed, match=exactly(
            "x_train: диапазон значений: ожидается: отрезок [0, 1]; получено: [0, 255].")):
        checks.scaled_like_raw(x_train.astype(np.float32), x_test.astype(np.float32),
                               y_train, y_test, dataset="cifar10")


def test_scaled_like_raw_wrong_divisor_fails(fake_datasets):
    """Does data divided by 256 (in range, but not the pixels / 255) fail on its values?"""
    x_train, x_test, y_train, y_test = prepared(fake_datasets, "mnist")
    with pytest.raises(CheckFailed, match=exactly(
            "x_train: значения: ожидается: исходные пиксели / 255 (в исходном порядке); "
            "получено: другие значения")):
        checks.scaled_like_raw(x_train * 255 / 256, x_test, y_train, y_test, dataset="mnist")


def test_scaled_like_raw_shuffled_fails(fake_datasets):
    """Do shuffled test images (right values, wrong order) fail, saying the original order
    was expected?"""
    x_train, x_test, y_train, y_test = prepared(fake_datasets, "mnist")
    with pytest.raises(CheckFailed, match=exactly(
            "x_test: значения: ожидается: исходные пиксели / 255 (в исходном порядке); "
            "получено: другие значения")):
        checks.scaled_like_raw(x_train, x_test[::-1], y_train, y_test, dataset="mnist")


def test_scaled_like_raw_subset_fails(fake_datasets):
    """Does a subset of the training images fail, naming both image counts?"""
    x_train, x_test, y_train, y_test = prepared(fake_datasets, "mnist")
    with pytest.raises(CheckFailed, match=exactly(
            "x_train: число изображений: ожидается: 16; получено: 8.")):
        checks.scaled_like_raw(x_train[:8], x_test, y_train[:8], y_test, dataset="mnist")


def test_scaled_like_raw_missing_channel_axis_fails(fake_datasets):
    """Do grey images without the channel axis fail on their shape?"""
    x_train, x_test, y_train, y_test = prepared(fake_datasets, "mnist")
    with pytest.raises(CheckFailed, match=exactly(
            "x_train: размерность: ожидается: (N, 8, 8, 1); получено: (16, 8, 8).")):
        checks.scaled_like_raw(x_train[..., 0], x_test, y_train, y_test, dataset="mnist")


def test_scaled_like_raw_one_hot_labels_fail(fake_datasets):
    """Do one-hot labels (changed instead of left as they were) fail, showing what was
    expected and the array found?"""
    x_train, x_test, y_train, y_test = prepared(fake_datasets, "mnist")
    one_hot = np.eye(fake_datasets.classes, dtype=np.float32)[y_train]
    with pytest.raises(CheckFailed, match=exactly(
            "y_train: метки: ожидается: метки датасета без изменений (16 шт.); "
            "получено: массив float32 формы (16, 3).")):
        checks.scaled_like_raw(x_train, x_test, one_hot, y_test, dataset="mnist")


def test_scaled_like_raw_changed_labels_fail(fake_datasets):
    """Do test labels of the right size but other values fail?"""
    x_train, x_test, y_train, y_test = prepared(fake_datasets, "cifar10")
    with pytest.raises(CheckFailed, match=exactly(
            "y_test: метки: ожидается: метки датасета без изменений (10 шт.); "
            "получено: массив uint8 формы (10, 1).")):
        checks.scaled_like_raw(x_train, x_test, y_train, (y_test + 1) % 3, dataset="cifar10")
