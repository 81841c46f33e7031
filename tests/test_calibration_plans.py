"""The calibration plan of the NiN lab matches its master notebook."""

from __future__ import annotations

from pathlib import Path

from convlab import calibration, labs

ROOT = Path(__file__).resolve().parents[1]


def test_lab6_plan_names_master_functions_and_settings() -> None:
    """Does the master define the builder and schedule the lab6 plan names, with LR_0 and LR_MIN,
    and does the schedule start at LR_0 and end near LR_MIN?"""
    lab = labs.load(ROOT, "lab6_nin")
    names = calibration.builders_from_master(lab.master)
    plan = lab.plans["nin"]
    assert callable(names[plan.function]) and callable(names[plan.schedule])
    lr_0, lr_min = names["LR_0"], names["LR_MIN"]
    assert names[plan.schedule](0, lr_0, lr_min, plan.epochs) == lr_0
    assert abs(names[plan.schedule](plan.epochs, lr_0, lr_min, plan.epochs) - lr_min) < 1e-12
    assert names["EPOCHS"] == plan.epochs


def test_every_plan_names_functions_of_its_master() -> None:
    """Does every model planned in a lab.yml name a builder (and schedule) its master defines?"""
    for lab in labs.load_all(ROOT).values():
        names = calibration.builders_from_master(lab.master)
        for plan in lab.plans.values():
            assert callable(names.get(plan.function)), (lab.name, plan.function)
            assert plan.schedule is None or callable(names.get(plan.schedule)), (lab.name, plan.schedule)
