"""Each lab's scenario corpus graded by the two-phase grader gets the scores `otter run` gets.

tests/e2e/test_scenarios_otter_run.py grades each scenario of tests/fixtures/<lab>/scenarios.yml
through `otter run` and the committed autograder zip; here the same submissions go, one folder per
lab, through `convlab grade`'s route (sandboxed execution, then scoring in the trusted process) with
the same zip, and must meet the same expectations: per-question points and message fragments.

Every scenario already goes through `otter run`; here, to keep the suite's time on 2 cores in
bounds, only the scenarios in :data:`SUBSET` run by default: one of each kind of grading path
(trained weights used, refused, missing and trained at grade time; data and figure checks on the
exported arrays; a value the notebook never defined; an untrained model; the renamed notebook;
the pickle). The structural model checks the others exercise are the same `checks` code in both
routes. ``CONVLAB_E2E_FULL=1`` runs every scenario (Lab 6 alone then takes about 20 minutes).

A scenario whose grading environment differs from the lab's own (``env`` beyond what the lab's
config sets, e.g. a smaller model-size limit) cannot share a batch with the others and is left
to the otter run test.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from convlab import build, corpus, labs
from convlab.grading import execute, grade

ROOT = Path(__file__).resolve().parents[2]
LABS = build.discover(ROOT)
#: what the labs' own configs set anyway (GradingGuard ``no_train``)
LAB_ENV = {"CONVLAB_NO_TRAIN"}
#: lab -> the scenarios graded by default (its lab.yml's e2e_subset; empty: all)
SUBSET = {lab: config.e2e_subset for lab, config in labs.load_all(ROOT).items() if config.e2e_subset}
FULL = os.environ.get("CONVLAB_E2E_FULL") == "1"
CASES = [(lab, scenario) for lab in LABS
         for scenario in corpus.load(ROOT / "tests" / "fixtures" / lab / "scenarios.yml")
         if set(scenario.env) <= LAB_ENV and (FULL or lab not in SUBSET or scenario.name in SUBSET[lab])]

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
    config = grade.Config(lab=lab, tests=ROOT / "autograder" / lab / build.zip_name(lab),
                          settings=execute.Settings(wall_seconds=1800, memory_bytes=6 << 30,
                                                    cell_timeout=900))
    results = grade.grade_folder(config, subs, work / "out", workers=2, progress=False)
    return {"results": {r["student_id"]: r for r in results}, "work": work}


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


#: lab -> scenarios graded three times by test_regrading_gives_identical_scores: the reference and
#: submissions whose functions are checked on the grader's probes
REGRADED = {"lab6_nin": ("solution", "mults_input_size", "block_ignores_strides")}


@pytest.mark.parametrize("lab", sorted(set(REGRADED) & set(LABS)))
def test_regrading_gives_identical_scores(lab: str, tmp_path: Path, datasets_root: Path) -> None:
    """The grader owns every probe and seed: the same submissions graded three times (a first
    grading, then two regrades of the same folder) get identical points on every question."""
    scenarios = {s.name: s for s in corpus.load(ROOT / "tests" / "fixtures" / lab / "scenarios.yml")}
    subs = tmp_path / "submissions"
    subs.mkdir()
    for name in REGRADED[lab]:
        made = corpus.make_submission(scenarios[name], root=ROOT, lab=lab,
                                      fixtures=ROOT / "tests" / "fixtures" / lab,
                                      dest=tmp_path / "make" / name)
        shutil.copy(made, subs / f"{name}{made.suffix}")
    config = grade.Config(lab=lab, tests=ROOT / "autograder" / lab / build.zip_name(lab),
                          settings=execute.Settings(wall_seconds=1800, memory_bytes=6 << 30,
                                                    cell_timeout=900))
    gradings = []
    for attempt in range(3):
        results = grade.grade_folder(config, subs, tmp_path / "out", workers=2, progress=False,
                                     regrade=attempt > 0)
        gradings.append({r["student_id"]: {q: v["score"] for q, v in r["questions"].items()}
                         for r in results})
    assert set(gradings[0]) == set(REGRADED[lab])
    assert gradings[1] == gradings[0] and gradings[2] == gradings[0], gradings
    # and the wrong ones lose points: the three identical gradings are not vacuous
    for name in REGRADED[lab]:
        total = sum(gradings[0][name].values())
        possible = sum(v["possible"] for v in next(
            r for r in results if r["student_id"] == name)["questions"].values())
        assert (total == possible) == (name == "solution"), (name, total, possible)
