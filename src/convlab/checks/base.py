"""Shared pieces of the checks: the calibrated thresholds; the failure type and value formatting
live in :mod:`convlab.public` (re-exported here)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from convlab.public import CheckFailed, fail, require, show

__all__ = ["CheckFailed", "fail", "floor", "require", "show", "threshold"]


@cache
def _table(key: str) -> dict[str, dict[str, float]]:
    text = resources.files("convlab").joinpath("thresholds.json").read_text()
    return json.loads(text)[key]


def _thresholds() -> dict[str, dict[str, float]]:
    return _table("thresholds")


def threshold(lab: str, model: str) -> float:
    """The calibrated accuracy threshold for ``model`` of ``lab`` (see docs/calibration.md)."""
    return float(_thresholds()[lab][model])


def floor(lab: str, model: str) -> float:
    """The accuracy at and below which ``model`` of ``lab`` earns no accuracy credit; credit
    rises linearly (in steps) from it to :func:`threshold` (see docs/calibration.md)."""
    return float(_table("floors")[lab][model])
