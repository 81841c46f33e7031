"""Every lab graded end to end through `otter run` with its committed autograder zip.

Each scenario of tests/fixtures/<lab>/scenarios.yml is a submission made from the reference
solution (or the blank template) and must get exactly its expected score per question, with
the expected message.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from convlab import build, corpus

ROOT = Path(__file__).resolve().parents[2]
LABS = build.discover(ROOT)
CASES = [(lab, scenario) for lab in LABS
         for scenario in corpus.load(ROOT / "tests" / "fixtures" / lab / "scenarios.yml")]

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("lab", "scenario"), CASES, ids=[f"{lab}-{s.name}" for lab, s in CASES])
def test_scenario_scores(lab: str, scenario: corpus.Scenario, tmp_path: Path,
                         datasets_root: Path) -> None:
    """Does the submission get exactly its expected points, with the expected messages?"""
    results = corpus.grade(scenario, root=ROOT, lab=lab, fixtures=ROOT / "tests" / "fixtures" / lab,
                           work=tmp_path)
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
    assert not (tmp_path / "submission" / corpus.PWNED_MARKER).exists(), ".OTTER_LOG was unpickled"
