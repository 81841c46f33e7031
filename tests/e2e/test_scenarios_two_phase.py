"""Each lab's scenario corpus graded by the two-phase grader gets the scores `otter run` gets.

tests/e2e/test_scenarios_otter_run.py grades scenarios of tests/fixtures/<lab>/scenarios.yml
through `otter run` and the committed autograder zip; here submissions of the same corpus go, one
folder per lab, through `convlab grade`'s route (sandboxed execution, then scoring in the trusted
process) with the same zip, and must meet the same expectations: per-question points and message
fragments.

Which route grades which scenario is :mod:`routes`' choice: here, on a default run, the lab's
``e2e_subset`` (one of each kind of grading path: trained weights used, refused, missing and
trained at grade time; data and figure checks on the exported arrays; a value the notebook never
defined; an untrained model; the renamed notebook; the pickle; and the submissions whose functions
the grader calls on its own probes, graded a second time by the regrading test). The solution is
graded by both routes on every run; ``CONVLAB_E2E_FULL=1`` grades every scenario by both.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from routes import LABS, ROOT, scenarios, two_phase_grades

from convlab import build, corpus
from convlab.grading import execute, grade, results

CASES = [(lab, scenario) for lab in LABS for scenario in scenarios(lab) if two_phase_grades(lab, scenario)]

OTTER_UNDEFINED = "получено: None"
TWO_PHASE_UNDEFINED = "в блокноте нет такой переменной"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory, datasets_root: Path) -> Callable[[str], dict[str, Any]]:
    """Every scenario's submission of a lab in one folder, named after the scenario, graded in
    one batch: once per lab, on first use."""
    done: dict[str, dict[str, Any]] = {}

    def of(lab: str) -> dict[str, Any]:
        if lab not in done:
            done[lab] = _grade_lab(lab, tmp_path_factory.mktemp(f"two_phase_{lab}"))
        return done[lab]

    return of


def _grade_lab(lab: str, work: Path) -> dict[str, Any]:
    subs = work / "submissions"
    subs.mkdir()
    for case_lab, scenario in CASES:
        if case_lab != lab:
            continue
        made = corpus.make_submission(scenario, root=ROOT, lab=lab,
                                      fixtures=ROOT / "tests" / "fixtures" / lab,
                                      dest=work / "make" / scenario.name)
        shutil.copy(made, subs / f"{scenario.name}{made.suffix}")
    batch = grade.grade_folder(_config(lab), subs, work / "out", workers=2, progress=False)
    return {"results": {r["student_id"]: r for r in batch}, "work": work}


def _config(lab: str) -> grade.Config:
    return grade.Config(lab=lab, tests=ROOT / "autograder" / lab / build.zip_name(lab),
                        settings=execute.Settings(wall_seconds=1800, memory_bytes=6 << 30,
                                                  cell_timeout=900))


@pytest.mark.parametrize(("lab", "scenario"), CASES, ids=[f"{lab}-{s.name}" for lab, s in CASES])
def test_scenario_scores_like_otter_run(lab: str, scenario: corpus.Scenario,
                                        graded: Callable[[str], dict[str, Any]]) -> None:
    """Does the submission get exactly the points and messages `otter run` must give it?"""
    batch = graded(lab)
    result = batch["results"][scenario.name]
    assert result["status"] == "ok", (result["status"], result.get("reason"), result.get("error"))
    questions = result["questions"]
    assert questions, "no auto-graded questions were scored"
    for question, value in questions.items():
        expected = 0.0 if scenario.all_zero else scenario.expected.get(question, value["possible"])
        assert value["score"] == pytest.approx(expected), (
            f"{scenario.name}: {question} scored {value['score']}/{value['possible']}, expected {expected}\n"
            f"{value['output']}")
    for question, fragment in scenario.messages.items():
        output = questions[question]["output"]
        # otter passes None for a name the notebook never defined; this route says so in words
        undefined = fragment.endswith(OTTER_UNDEFINED) and TWO_PHASE_UNDEFINED in output
        assert fragment in output or undefined, output
    assert not set(scenario.expected) - set(questions), "expected scores for unknown questions"
    marker = batch["work"] / "make" / scenario.name / corpus.PWNED_MARKER
    assert not marker.exists(), ".OTTER_LOG was unpickled"
    report = json.loads((batch["work"] / "out" / "gradescope" / scenario.name / "results.json").read_text())
    assert report["score"] == pytest.approx(result["total"])


#: lab -> scenarios graded twice by test_regrading_gives_identical_scores (all in the lab's
#: e2e_subset): the reference and submissions whose functions are checked on the grader's probes
REGRADED = {"lab6_nin": ("solution", "mults_input_size", "block_ignores_strides")}


@pytest.mark.parametrize("lab", sorted(set(REGRADED) & set(LABS)))
def test_regrading_gives_identical_scores(lab: str, tmp_path: Path,
                                          graded: Callable[[str], dict[str, Any]]) -> None:
    """The grader owns every probe and seed: submissions of the lab's batch, regraded in an output
    folder that holds their first results (``regrade``), get identical points on every question."""
    batch = graded(lab)
    subs, kept = tmp_path / "submissions", tmp_path / "out" / "results"
    subs.mkdir()
    kept.mkdir(parents=True)
    for name in REGRADED[lab]:
        assert name in batch["results"], f"{name} is not in {lab}'s e2e_subset (lab.yml)"
        (submission,) = (batch["work"] / "submissions").glob(f"{name}.*")
        shutil.copy(submission, subs)
        first = kept / f"{name}{results.SUFFIX}"
        shutil.copy(batch["work"] / "out" / "results" / first.name, first)
        os.utime(first, (0, 0))
    regraded = grade.grade_folder(_config(lab), subs, tmp_path / "out", workers=2, progress=False,
                                  regrade=True)
    points = {r["student_id"]: {q: v["score"] for q, v in r["questions"].items()} for r in regraded}
    assert set(points) == set(REGRADED[lab])
    for name in REGRADED[lab]:
        assert (kept / f"{name}{results.SUFFIX}").stat().st_mtime > 0, f"{name} was not graded again"
        before = {q: v["score"] for q, v in batch["results"][name]["questions"].items()}
        assert points[name] == before, (name, before, points[name])
    # and the wrong ones lose points: the identical gradings are not vacuous
    for result in regraded:
        name, total = result["student_id"], sum(points[result["student_id"]].values())
        possible = sum(v["possible"] for v in result["questions"].values())
        assert (total == possible) == (name == "solution"), (name, total, possible)
