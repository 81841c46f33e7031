"""Checks of answer variables (numbers, lists, names written by the student)."""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np

from convlab.public import (
    fail,
    is_fraction,
    is_integer,
    is_integer_list,
    is_label_vector,
    is_shape,
    is_string_list,
    require,
    show,
)

__all__ = ["answer_close", "answer_equals", "is_fraction", "is_integer", "is_integer_list",
           "is_label_vector", "is_shape", "is_string_list", "same_names"]


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
