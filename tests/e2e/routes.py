"""Which route grades which scenario of tests/fixtures/<lab>/scenarios.yml end to end.

Every scenario is graded end to end by at least one route on every run: the lab's ``e2e_subset``
(its lab.yml: one scenario of each grading path, and the submissions the regrading test grades
twice) by ``convlab grade``'s two-phase route, every other scenario by ``otter run``, and the
scenarios of :data:`BOTH` by both, so that the two routes are compared on every run.
``CONVLAB_E2E_FULL=1`` grades every scenario by both routes (about an hour longer on 2 cores).

A scenario whose grading environment differs from the lab's own (``env`` beyond what the lab's
config sets, e.g. a smaller model-size limit) cannot share a two-phase batch with the others:
``otter run`` grades it.
"""

from __future__ import annotations

import os
from pathlib import Path

from convlab import build, corpus, labs

ROOT = Path(__file__).resolve().parents[2]
LABS = build.discover(ROOT)
FULL = os.environ.get("CONVLAB_E2E_FULL") == "1"
#: what the labs' own configs set anyway (GradingGuard ``no_train``)
LAB_ENV = {"CONVLAB_NO_TRAIN"}
#: scenarios graded by both routes on every run
BOTH = frozenset({"solution"})
#: lab -> its lab.yml's e2e_subset (a lab without one has every scenario in it)
SUBSET = {lab: config.e2e_subset for lab, config in labs.load_all(ROOT).items() if config.e2e_subset}


def scenarios(lab: str) -> list[corpus.Scenario]:
    """The lab's scenarios, in file order."""
    return corpus.load(ROOT / "tests" / "fixtures" / lab / "scenarios.yml")


def two_phase_grades(lab: str, scenario: corpus.Scenario) -> bool:
    """Does the two-phase test grade this scenario on this run?"""
    if not set(scenario.env) <= LAB_ENV:
        return False
    return FULL or lab not in SUBSET or scenario.name in SUBSET[lab]


def otter_run_grades(lab: str, scenario: corpus.Scenario) -> bool:
    """Does the ``otter run`` test grade this scenario on this run?"""
    return FULL or scenario.name in BOTH or not two_phase_grades(lab, scenario)
