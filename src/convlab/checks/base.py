"""Shared pieces of the checks: the failure type, value formatting, calibrated thresholds."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import numpy as np


class CheckFailed(AssertionError):
    """A check did not pass; the message (Russian) says what was expected and what was found."""


def fail(what: str, expected: Any, found: Any) -> CheckFailed:
    """Build the standard message: ``<what>: ожидалось <expected>, получено <found>``."""
    return CheckFailed(f"{what}: ожидалось {expected}, получено {found}.")


def require(condition: bool, what: str, expected: Any, found: Any) -> None:
    """Raise :func:`fail` unless ``condition``."""
    if not condition:
        raise fail(what, expected, found)


def show(value: Any) -> str:
    """A short human-readable rendering of a value for messages."""
    if isinstance(value, np.ndarray):
        return f"массив {value.dtype} формы {tuple(value.shape)}"
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return f"{number:.1f}" if number.is_integer() else f"{number:.4g}"
    if isinstance(value, (set, frozenset)):
        return "{" + ", ".join(sorted(map(repr, value))) + "}"
    if value is None:
        return "None (переменная не задана)"
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


@cache
def _thresholds() -> dict[str, dict[str, float]]:
    text = resources.files("convlab").joinpath("thresholds.json").read_text()
    return json.loads(text)["thresholds"]


def threshold(lab: str, model: str) -> float:
    """The calibrated accuracy threshold for ``model`` of ``lab`` (see docs/calibration.md)."""
    return float(_thresholds()[lab][model])
