"""The calibration plan of the NiN lab matches its master notebook."""

from __future__ import annotations

from pathlib import Path

from convlab import calibration

ROOT = Path(__file__).resolve().parents[1]


def test_lab6_plan_names_master_functions_and_settings() -> None:
    """Does the master define the builder and schedule the lab6 plan names, with LR_0 and LR_MIN,
    and does the schedule start at LR_0 and end near LR_MIN?"""
    names = calibration.builders_from_master(ROOT / "assignments/lab6_nin/lab6_nin.ipynb")
    plan = calibration.PLANS["lab6_nin"]["nin"]
    assert callable(names[plan.function]) and callable(names[plan.schedule])
    lr_0, lr_min = names["LR_0"], names["LR_MIN"]
    assert names[plan.schedule](0, lr_0, lr_min, plan.epochs) == lr_0
    assert abs(names[plan.schedule](plan.epochs, lr_0, lr_min, plan.epochs) - lr_min) < 1e-12
    assert names["EPOCHS"] == plan.epochs
