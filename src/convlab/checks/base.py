"""Shared pieces of the checks: the calibrated thresholds; the failure type and value formatting
live in :mod:`convlab.public` (re-exported here)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from convlab.public import CheckFailed, fail, require, show

__all__ = ["CheckFailed", "fail", "require", "show", "threshold"]


@cache
def _thresholds() -> dict[str, dict[str, float]]:
    text = resources.files("convlab").joinpath("thresholds.json").read_text()
    return json.loads(text)["thresholds"]


def threshold(lab: str, model: str) -> float:
    """The calibrated accuracy threshold for ``model`` of ``lab`` (see docs/calibration.md)."""
    return float(_thresholds()[lab][model])
