"""Every lab graded end to end through `otter run` with its committed autograder zip.

Each scenario of tests/fixtures/<lab>/scenarios.yml is a submission made from the reference
solution (or the blank template) and must get exactly its expected score per question, with
the expected message. The scenarios the two-phase test grades are left to it, but for the
solution (:mod:`routes`: every scenario is graded by one route or both; ``CONVLAB_E2E_FULL=1``
grades all here too). A lab's scenarios are graded on first use, two ``otter run`` at a time
(one run keeps about 1.2 of the 2 cores busy; two at a time grade 1.6 times as many per minute),
each kernel's TensorFlow limited to its share of the cores, as ``convlab grade`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from routes import LABS, ROOT, otter_run_grades, scenarios

from convlab import build, corpus
from convlab.grading import execute

CASES = [(lab, scenario) for lab in LABS for scenario in scenarios(lab) if otter_run_grades(lab, scenario)]

pytestmark = pytest.mark.slow


PARALLEL = 2


@pytest.fixture(scope="module")
def graded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           datasets_root: Path) -> Callable[[str], dict[str, tuple[Path, Any]]]:
    """lab -> scenario name -> (work folder, results.json or the exception grading raised), for
    the scenarios of this run (``-k`` selects)."""
    done: dict[str, dict[str, tuple[Path, Any]]] = {}
    selected = {(item.callspec.params["lab"], item.callspec.params["scenario"].name)
                for item in request.session.items
                if item.module is request.module and hasattr(item, "callspec")}

    def run(lab: str, scenario: corpus.Scenario, work: Path) -> tuple[Path, Any]:
        try:
            return work, corpus.grade(scenario, root=ROOT, lab=lab,
                                      fixtures=ROOT / "tests" / "fixtures" / lab, work=work,
                                      env=execute.thread_env(max(1, execute.cores() // PARALLEL)))
        except Exception as error:  # reported by the scenario's own test
            return work, error

    def of(lab: str) -> dict[str, tuple[Path, Any]]:
        if lab not in done:
            base = tmp_path_factory.mktemp(f"otter_run_{lab}")
            scenarios = [s for case_lab, s in CASES if case_lab == lab and (lab, s.name) in selected]
            with ThreadPoolExecutor(PARALLEL) as pool:
                graded = pool.map(lambda s: run(lab, s, base / s.name), scenarios)
                done[lab] = {s.name: g for s, g in zip(scenarios, graded, strict=True)}
        return done[lab]

    return of


@pytest.mark.parametrize(("lab", "scenario"), CASES, ids=[f"{lab}-{s.name}" for lab, s in CASES])
def test_scenario_scores(lab: str, scenario: corpus.Scenario,
                         graded: Callable[[str], dict[str, tuple[Path, Any]]]) -> None:
    """Does the submission get exactly its expected points, with the expected messages?"""
    work, results = graded(lab)[scenario.name]
    if isinstance(results, Exception):
        raise results
    scores = build.scores(results)
    texts = corpus.outputs(results)
    assert scores, "no auto-graded questions in results.json"
    for question, (score, possible) in scores.items():
        if scenario.all_zero:
            expected = 0.0
        else:
            expected = scenario.expected.get(question, possible)
        assert score == pytest.approx(expected), (
            f"{scenario.name}: {question} scored {score}/{possible}, expected {expected}\n"
            f"{texts[question]}")
    for question, fragment in scenario.messages.items():
        assert fragment in texts[question], texts[question]
    unknown = set(scenario.expected) - set(scores)
    assert not unknown, f"expected scores for unknown questions {unknown}"
    assert not (work / "submission" / corpus.PWNED_MARKER).exists(), ".OTTER_LOG was unpickled"
