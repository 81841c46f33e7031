"""Checks of answer variables (convlab.checks.answers), the failure type, and the coverage of
the whole checks vocabulary by these unit tests."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from convlab import checks
from convlab.checks import CheckFailed

GAMMA_BETA_MEAN_VAR = {"gamma", "beta", "moving_mean", "moving_variance"}


def exactly(text: str) -> str:
    """A ``match=`` pattern for this literal text."""
    return re.escape(text)


# ------------------------------------------------------------------------ the vocabulary


def test_every_public_check_is_unit_tested():
    """Is every name exported by convlab.checks exercised by some unit test module
    (so a new check cannot be added untested)?"""
    text = "\n".join(path.read_text() for path in Path(__file__).parent.glob("test_checks_*.py"))
    untested = [name for name in checks.__all__
                if not re.search(rf"\bchecks\.{name}\b|\b{name}\b\(|\bimport {name}\b", text)]
    assert untested == []


def test_failure_message_names_what_expected_and_found():
    """Does a failing check raise CheckFailed (an AssertionError) with the standard message
    «<what>: ожидается: <expected>; получено: <found>.»?"""
    with pytest.raises(AssertionError) as failure:
        checks.answer_equals(41, 42, "answer")
    assert isinstance(failure.value, CheckFailed)
    assert str(failure.value) == "answer: ожидается: 42; получено: 41."


# ----------------------------------------------------------------------------- is_integer


@pytest.mark.parametrize("value", [0, 5, 44426, np.int64(7), np.int32(3), 54890.0, np.float64(224.0),
                                   np.array(12), np.array(12.0)])
def test_is_integer_accepts_whole_numbers(value):
    """Are Python and numpy integers, whole floats (``np.prod`` of a shape) and 0-d arrays of
    them accepted as whole numbers?"""
    checks.is_integer(value, "total_params_1")


@pytest.mark.parametrize("value, found", [
    (5.5, "5.5"),
    (float("inf"), "inf"),
    (True, "True"),
    (np.array(2.5), "массив float64 формы ()"),
    ("60000", "'60000'"),
    (None, "None (переменная не задана)"),
    ([1], "[1]"),
])
def test_is_integer_rejects_other_values(value, found):
    """Do floats, booleans, strings, lists and None fail, showing what was found?"""
    with pytest.raises(CheckFailed, match=exactly(
            f"total_params_1: тип ответа: ожидается: целое число; получено: {found}.")):
        checks.is_integer(value, "total_params_1")


# ---------------------------------------------------------------------------- is_fraction


@pytest.mark.parametrize("value", [0, 0.0, 0.93, 1.0, np.float32(0.5), np.float64(0.99)])
def test_is_fraction_accepts_numbers_in_unit_interval(value):
    """Are numbers in [0, 1] (Python or numpy floats, the bounds included) accepted?"""
    checks.is_fraction(value, "accuracy_1")


@pytest.mark.parametrize("value, found", [
    (93.5, "93.5"),
    (-0.1, "-0.1"),
    (float("nan"), "nan"),
    (True, "True"),
    ("0.93", "'0.93'"),
    (None, "None (переменная не задана)"),
])
def test_is_fraction_rejects_percent_and_non_numbers(value, found):
    """Do a percentage, a negative, NaN, a boolean, a string and None fail, showing the
    value found?"""
    with pytest.raises(CheckFailed, match=exactly(
            "accuracy_1: ответ: ожидается: число от 0 до 1 (доля, не проценты); "
            f"получено: {found}.")):
        checks.is_fraction(value, "accuracy_1")


# ------------------------------------------------------------------------ is_integer_list


@pytest.mark.parametrize("value", [[64, 128, 256], (16,), [np.int64(64), 3], [64.0, 128],
                                   np.array([64, 128]), np.array([256.0])])
def test_is_integer_list_accepts_lists_of_ints(value):
    """Are non-empty lists, tuples and one-dimensional arrays of whole numbers accepted?"""
    checks.is_integer_list(value, "bn_params_per_layer")


@pytest.mark.parametrize("value, found", [
    ([], "[]"),
    ([64.5, 128], "[64.5, 128]"),
    ([True, 2], "[True, 2]"),
    (64, "64"),
    (np.array([[64, 128]]), "массив int64 формы (1, 2)"),
    (np.array([], dtype=int), "массив int64 формы (0,)"),
    (None, "None (переменная не задана)"),
])
def test_is_integer_list_rejects_other_values(value, found):
    """Do an empty list or array, fractions, booleans, a bare number, a 2-D array and None fail,
    showing the value?"""
    with pytest.raises(CheckFailed, match=exactly(
            "bn_params_per_layer: тип ответа: ожидается: непустой список целых чисел; "
            f"получено: {found}.")):
        checks.is_integer_list(value, "bn_params_per_layer")


# ------------------------------------------------------------------------- is_string_list


@pytest.mark.parametrize("value", [["gamma", "beta"], ("gamma",), {"Flatten", "MaxPooling2D"},
                                   frozenset({"Dropout"}), [np.str_("gamma")]])
def test_is_string_list_accepts_collections_of_strings(value):
    """Are non-empty lists, tuples and sets of strings accepted?"""
    checks.is_string_list(value, "bn_param_names")


@pytest.mark.parametrize("value, found", [
    ("gamma", "'gamma'"),
    ([], "[]"),
    (["gamma", 1], "['gamma', 1]"),
    (None, "None (переменная не задана)"),
])
def test_is_string_list_rejects_other_values(value, found):
    """Do a bare string, an empty list, a non-string element and None fail, showing them?"""
    with pytest.raises(CheckFailed, match=exactly(
            "bn_param_names: тип ответа: ожидается: непустой список (или множество) строк; "
            f"получено: {found}.")):
        checks.is_string_list(value, "bn_param_names")


# ------------------------------------------------------------------------------- is_shape


@pytest.mark.parametrize("value", [(32, 32, 3), [28, 28, 1], (np.int64(32), 32, 3), np.array([32, 32, 3]),
                                   (32.0, 32.0, 3.0)])
def test_is_shape_accepts_positive_int_sequences(value):
    """Are tuples, lists and 1-D arrays of positive whole numbers accepted as a shape?"""
    checks.is_shape(value, "input_shape_4")


@pytest.mark.parametrize("value, found", [
    ((None, 32, 32, 3), "(None, 32, 32, 3)"),
    ((0, 3), "(0, 3)"),
    ((), "()"),
    ((32.5, 32, 3), "(32.5, 32, 3)"),
    (np.zeros((32, 32, 3)), "массив float64 формы (32, 32, 3)"),
    (32, "32"),
    (None, "None (переменная не задана)"),
])
def test_is_shape_rejects_other_values(value, found):
    """Do a batch axis (None), zero, an empty tuple, fractions, an image instead of its shape,
    a bare number and None fail, showing the value?"""
    with pytest.raises(CheckFailed, match=exactly(
            "input_shape_4: тип ответа: ожидается: кортеж положительных целых чисел; "
            f"получено: {found}.")):
        checks.is_shape(value, "input_shape_4")


# ------------------------------------------------------------------------ is_label_vector


@pytest.mark.parametrize("value", [
    np.array([3, 1, 4]),
    [0, 1, 2],
    np.argmax(np.eye(3, dtype=np.float32), axis=1),
    np.array([1, 2], dtype=np.uint8),
])
def test_is_label_vector_accepts_1d_integer_arrays(value):
    """Are one-dimensional integer arrays (and lists) of class numbers accepted?"""
    checks.is_label_vector(value, "y_pred_labels")


@pytest.mark.parametrize("value, found", [
    (np.eye(3, 4, dtype=np.float32), "массив float32 формы (3, 4)"),
    (np.array([0.0, 1.0]), "массив float64 формы (2,)"),
    (np.array([[1], [2]]), "массив int64 формы (2, 1)"),
    (5, "массив int64 формы ()"),
    (None, "None (переменная не задана)"),
])
def test_is_label_vector_rejects_other_values(value, found):
    """Do probabilities (no argmax), floats, a column, a scalar and None fail, showing
    dtype and shape found?"""
    with pytest.raises(CheckFailed, match=exactly(
            "y_pred_labels: тип ответа: ожидается: одномерный массив целых номеров классов; "
            f"получено: {found}.")):
        checks.is_label_vector(value, "y_pred_labels")


# -------------------------------------------------------------------------- answer_equals


@pytest.mark.parametrize("value, expected", [
    (44426, 44426),
    (np.int64(60000), 60000),
    ((32, 32, 3), (32, 32, 3)),
    ([16, 32], [16, 32]),
    (np.array([1, 2, 3]), np.array([1, 2, 3])),
    (np.array([1, 2, 3]), [1, 2, 3]),
])
def test_answer_equals_accepts_equal_values(value, expected):
    """Are equal numbers, tuples, lists and arrays accepted?"""
    checks.answer_equals(value, expected, "answer")


@pytest.mark.parametrize("value, expected, message", [
    (44425, 44426, "ожидается: 44426; получено: 44425."),
    ((32, 32), (32, 32, 3), "ожидается: (32, 32, 3); получено: (32, 32)."),
    (None, 60000, "ожидается: 60000; получено: None (переменная не задана)."),
    (np.array([]), 10, "ожидается: 10; получено: массив float64 формы (0,)."),
    (np.array([1, 2]), np.array([1, 2, 3]),
     "ожидается: массив int64 формы (3,); получено: массив int64 формы (2,)."),
    (np.array([1, 2, 4]), np.array([1, 2, 3]),
     "ожидается: массив int64 формы (3,); получено: массив int64 формы (3,)."),
])
def test_answer_equals_rejects_different_values(value, expected, message):
    """Do different values fail with expected and found in the message, including an empty
    array and arrays of another shape (which must neither pass nor crash)?"""
    with pytest.raises(CheckFailed, match=exactly(f"answer: {message}")):
        checks.answer_equals(value, expected, "answer")


# --------------------------------------------------------------------------- answer_close


@pytest.mark.parametrize("value, expected", [
    (0.9, 0.9), (0.905, 0.9), (0.895, 0.9), (np.float32(0.9), 0.9), (1, 1.0)])
def test_answer_close_accepts_values_within_tolerance(value, expected):
    """Are values within ± tolerance of the expected one accepted (numpy floats and
    integers too)?"""
    checks.answer_close(value, expected, 0.01, "accuracy_1")


@pytest.mark.parametrize("value, found", [
    (0.8, "0.8"),
    (90.0, "90"),
    ("0.9", "'0.9'"),
    (None, "None (переменная не задана)"),
])
def test_answer_close_rejects_far_values(value, found):
    """Do a value off by more than the tolerance, a percentage, a string and None fail,
    giving the expected value with its tolerance and the value found?"""
    with pytest.raises(CheckFailed, match=exactly(
            f"accuracy_1: ожидается: 0.9000 ± 0.01; получено: {found}.")):
        checks.answer_close(value, 0.9, 0.01, "accuracy_1")


# ----------------------------------------------------------------------------- same_names


@pytest.mark.parametrize("value", [
    ["gamma", "beta", "moving_mean", "moving_variance"],
    {"moving_variance", "moving_mean", "beta", "gamma"},
    ("gamma", "beta", "moving_mean", "moving_variance", "gamma"),
    ["batch_normalization/gamma:0", "batch_normalization/beta:0",
     "batch_normalization/moving_mean:0", "batch_normalization/moving_variance:0"],
    [" gamma", "beta ", "moving_mean", "moving_variance"],
])
def test_same_names_accepts_the_same_set(value):
    """Is the same set of names accepted in any order, with repeats, as weight paths
    ('batch_normalization/gamma:0') or with stray spaces?"""
    checks.same_names(value, GAMMA_BETA_MEAN_VAR, "bn_param_names")


def test_same_names_optional_and_aliases():
    """Is InputLayer optional and MaxPool2D / AvgPool2D the same as MaxPooling2D /
    AveragePooling2D?"""
    expected = {"MaxPooling2D", "AveragePooling2D", "Flatten"}
    checks.same_names({"InputLayer", "MaxPooling2D", "AveragePooling2D", "Flatten"}, expected,
                      "layers_without_params_4")
    checks.same_names(["MaxPool2D", "AvgPool2D", "Flatten"], expected, "layers_without_params_4")


@pytest.mark.parametrize("value", [
    ["Input", "MaxPooling2D", "Flatten"],
    ["input_layer", "maxpool2d", "flatten"],
    {"InputLayer", "MaxPool2D", "Flatten layer"},
    ["MAXPOOLING2D", "Layer Flatten"],
    ["max_pooling2d", "Flatten"],
])
def test_same_names_as_students_write_them(value):
    """Are layer-type names accepted as students write them: Input / InputLayer (optional),
    MaxPool2D / MaxPooling2D / max_pooling2d, any case, with or without "layer"?"""
    checks.same_names(value, {"InputLayer", "MaxPooling2D", "Flatten"}, "layers_without_params_4")


def test_same_names_spelling_does_not_hide_a_wrong_name():
    """Does a wrong layer type still fail under the lenient spelling (Dense is not
    parameterless; Dropout missing)?"""
    with pytest.raises(CheckFailed, match=exactly("layers_without_params_4: ожидается")):
        checks.same_names(["maxpool2d", "dense"], {"MaxPooling2D", "Flatten"}, "layers_without_params_4")
    with pytest.raises(CheckFailed, match=exactly("layers_without_params_4: ожидается")):
        checks.same_names(["maxpool2d"], {"MaxPooling2D", "Dropout"}, "layers_without_params_4")


@pytest.mark.parametrize("value, found", [
    (["gamma", "beta", "moving_mean"], "{'beta', 'gamma', 'moving_mean'}"),
    (["gamma", "beta", "moving_mean", "moving_variance", "kernel"],
     "{'beta', 'gamma', 'kernel', 'moving_mean', 'moving_variance'}"),
])
def test_same_names_rejects_missing_or_extra_names(value, found):
    """Does a missing or an extra name fail, showing both sets?"""
    with pytest.raises(CheckFailed, match=exactly(
            "bn_param_names: ожидается: {'beta', 'gamma', 'moving_mean', 'moving_variance'}; "
            f"получено: {found}.")):
        checks.same_names(value, GAMMA_BETA_MEAN_VAR, "bn_param_names")


@pytest.mark.parametrize("value, found", [
    ("gamma", "'gamma'"), (None, "None (переменная не задана)"), (4, "4")])
def test_same_names_rejects_non_collections(value, found):
    """Do a bare string, None and a number fail, saying a list of names was expected?"""
    with pytest.raises(CheckFailed, match=exactly(
            f"bn_param_names: ожидается: список (или множество) имён; получено: {found}.")):
        checks.same_names(value, GAMMA_BETA_MEAN_VAR, "bn_param_names")
