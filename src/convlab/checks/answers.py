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
    """``|value - expected| <= tolerance`` (a 0-d array of a number counts as the number)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    ok = isinstance(value, numbers.Real) and abs(float(value) - expected) <= tolerance
    require(ok, name, f"{expected:.4f} ± {tolerance:g}", show(value))


def _key(raw: Any) -> str:
    """A layer or weight name as students write it, reduced to one spelling: case, spaces,
    underscores, a "layer" prefix/suffix and keras' aliases (``MaxPool2D``, ``Input``) do not
    matter; "batch_normalization/gamma:0" is "gamma"."""
    from convlab.checks.models import LAYER_ALIASES

    text = str(raw).strip()
    text = text.rsplit("/", 1)[-1].split(":")[0]
    text = LAYER_ALIASES.get(text, text)
    key = "".join(c for c in text.lower() if c.isalnum())
    if key.endswith("layer") and key != "layer":
        key = key[: -len("layer")]
    if key.startswith("layer") and key != "layer":
        key = key[len("layer"):]
    key = {"maxpool2d": "maxpooling2d", "maxpool": "maxpooling2d", "maxpooling": "maxpooling2d",
           "avgpool2d": "averagepooling2d", "input": "input", "inputlayer": "input",
           "globalavgpool2d": "globalaveragepooling2d"}.get(key, key)
    return key


def _normalize(names: Iterable[Any]) -> dict[str, str]:
    return {_key(raw): str(raw) for raw in names}


def same_names(value: Any, expected: Iterable[str], name: str,
               optional: Iterable[str] = ("InputLayer",)) -> None:
    """The set of names in ``value`` equals ``expected`` as students write them (names in
    ``optional`` may be given or left out; ``MaxPool2D``/``MaxPooling2D``, ``Input``/
    ``InputLayer``, any case, with or without "layer")."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise fail(name, "список (или множество) имён", show(value))
    skip = set(_normalize(optional))
    found = {k: v for k, v in _normalize(value).items() if k not in skip}
    wanted = {k: v for k, v in _normalize(expected).items() if k not in skip}
    require(set(found) == set(wanted), name, show(set(wanted.values())), show(set(found.values())))
