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


def test_floor_is_a_quarter_of_the_way_to_chance() -> None:
    """floor = threshold − (threshold − 0.1)/4, rounded down to 0.01 (docs/calibration.md)."""
    assert calibration.floor_of(0.92) == 0.71
    assert calibration.floor_of(0.47) == 0.37
    assert calibration.floor_of(0.75) == 0.58
    assert calibration.floor_of(0.1) == 0.1


def test_false_fails_count_runs_below_and_estimate_from_their_spread() -> None:
    """Observed runs below the threshold, and the normal estimate: half the runs fail a
    threshold at their mean, almost none one three sd below it."""
    values = [0.70, 0.72, 0.74, 0.76, 0.78]
    at_mean = calibration.false_fails(values, 0.74)
    assert (at_mean.runs, at_mean.below) == (5, 2) and abs(at_mean.estimate - 0.5) < 1e-9
    low = calibration.false_fails(values, 0.74 - 3 * 0.0316228)
    assert low.below == 0 and 0.001 < low.estimate < 0.002
    assert calibration.false_fails([0.8], 0.75).estimate != calibration.false_fails([0.8], 0.75).estimate


def test_report_states_floor_false_fails_and_backends() -> None:
    """The calibration table says the floor, how many runs fall below, and splits the
    false-fail rate by backend when the runs come from several."""
    lab = labs.load(ROOT, "lab6_nin")
    runs = [{"model": "nin", "seed": s, "epochs": 8, "test_accuracy": a, "backend": b}
            for s, a, b in [(0, 0.79, "gpu"), (1, 0.80, "gpu"), (0, 0.77, "cpu"), (1, 0.74, "cpu")]]
    text = calibration.report(lab, runs, {"nin": 0.75})
    assert "| 0.58 | 1 of 4 |" in text
    assert "nin, cpu: 2 runs, mean 0.7550, 1 below 0.75" in text
