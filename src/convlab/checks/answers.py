"""Checks of answer variables (numbers, lists, names written by the student)."""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np

from convlab.checks.base import fail, require, show


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_integer(value: Any, name: str) -> None:
    """``value`` is a whole number."""
    require(_is_int(value), f"{name}: тип ответа", "целое число", show(value))


def is_fraction(value: Any, name: str) -> None:
    """``value`` is a number in [0, 1] (an accuracy as a fraction, not percent)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and 0 <= value <= 1
    require(ok, f"{name}: ответ", "число от 0 до 1 (доля, не проценты)", show(value))


def is_integer_list(value: Any, name: str) -> None:
    """``value`` is a list or tuple of whole numbers."""
    ok = isinstance(value, (list, tuple)) and len(value) > 0 and all(_is_int(v) for v in value)
    require(ok, f"{name}: тип ответа", "непустой список целых чисел", show(value))


def is_string_list(value: Any, name: str) -> None:
    """``value`` is a non-empty list, tuple or set of strings."""
    ok = (isinstance(value, (list, tuple, set, frozenset)) and len(value) > 0
          and all(isinstance(v, str) for v in value))
    require(ok, f"{name}: тип ответа", "непустой список (или множество) строк", show(value))


def is_shape(value: Any, name: str) -> None:
    """``value`` is a tuple or list of positive whole numbers."""
    ok = isinstance(value, (list, tuple)) and len(value) > 0 and all(
        _is_int(v) and v > 0 for v in value)
    require(ok, f"{name}: тип ответа", "кортеж положительных целых чисел", show(value))


def is_label_vector(value: Any, name: str) -> None:
    """``value`` is a one-dimensional integer array of class numbers."""
    array = np.asarray(value) if value is not None else None
    ok = array is not None and array.ndim == 1 and np.issubdtype(array.dtype, np.integer)
    require(ok, f"{name}: тип ответа", "одномерный массив целых номеров классов",
            show(array if array is not None else None))


def answer_equals(value: Any, expected: Any, name: str) -> None:
    """``value == expected``."""
    if isinstance(value, np.ndarray) or isinstance(expected, np.ndarray):
        # same shape and elements: `==` would broadcast (an empty array "equals" anything)
        # or raise on mismatched shapes
        equal = np.array_equal(value, expected)
    else:
        equal = value == expected
        if isinstance(equal, np.ndarray):
            equal = bool(equal.all())
    require(bool(equal), name, show(expected), show(value))


def answer_close(value: Any, expected: float, tolerance: float, name: str) -> None:
    """``|value - expected| <= tolerance``."""
    ok = isinstance(value, numbers.Real) and abs(float(value) - expected) <= tolerance
    require(ok, name, f"{expected:.4f} ± {tolerance:g}", show(value))


def _normalize(names: Iterable[str]) -> set[str]:
    from convlab.checks.models import LAYER_ALIASES

    result = set()
    for raw in names:
        text = str(raw).strip()
        text = text.rsplit("/", 1)[-1].split(":")[0]  # "batch_normalization/gamma:0" -> "gamma"
        result.add(LAYER_ALIASES.get(text, text))
    return result


def same_names(value: Any, expected: Iterable[str], name: str,
               optional: Iterable[str] = ("InputLayer",)) -> None:
    """The set of names in ``value`` equals ``expected`` (names in ``optional`` may be given
    or left out; ``MaxPool2D`` counts as ``MaxPooling2D``)."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise fail(name, "список (или множество) имён", show(value))
    found = _normalize(value) - set(optional)
    wanted = _normalize(expected) - set(optional)
    require(found == wanted, name, show(wanted), show(found))
