"""Every scenario of every lab is graded end to end by some route on a default run."""

from __future__ import annotations

import pytest
from routes import BOTH, LABS, SUBSET, otter_run_grades, scenarios, two_phase_grades


@pytest.mark.parametrize("lab", LABS)
def test_every_scenario_is_graded_by_a_route(lab: str) -> None:
    """Is each scenario graded by ``otter run``, by the two-phase route or by both (the solution
    by both), and does the lab's ``e2e_subset`` name only scenarios that exist?"""
    names = {scenario.name for scenario in scenarios(lab)}
    assert not set(SUBSET.get(lab, ())) - names, "e2e_subset names unknown scenarios"
    for scenario in scenarios(lab):
        routes = (("otter run", otter_run_grades), ("two-phase", two_phase_grades))
        graders = {route for route, grades in routes if grades(lab, scenario)}
        assert graders, f"{lab}: {scenario.name} is graded by no route"
        if scenario.name in BOTH:
            assert graders == {"otter run", "two-phase"}, (scenario.name, graders)
