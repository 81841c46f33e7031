"""One home per lab: assignments/<lab>/lab.yml, read by convlab.labs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from convlab import build, calibration, labs
from convlab.grading import grade

ROOT = Path(__file__).resolve().parents[1]
THIRD = """calibration:
  models:
    tiny: {function: create_tiny, dataset: mnist, epochs: 1, batch_size: 32}
  fixed:
    tiny: {threshold: 0.5, reason: a stated reason}
feedback_figures: {cm: confusion}
e2e_subset: [solution]
"""


def test_the_labs_load() -> None:
    """Do both labs' lab.yml load, with the calibration plans the thresholds were made with?"""
    found = labs.load_all(ROOT)
    assert set(found) == {"lab5_cnn", "lab6_nin"}
    assert set(found["lab5_cnn"].plans) == {"model1", "model2", "model4", "model5", "model6"}
    assert found["lab6_nin"].plans["nin"].schedule == "cosine_lr"
    assert found["lab6_nin"].feedback_figures == {"confusion": "confusion"}


def test_fixed_thresholds_are_the_packaged_ones() -> None:
    """Is every fixed threshold of a lab.yml the one in the package's thresholds.json (which
    `convlab calibrate --write` writes from it and which travels in the autograder's wheel)?"""
    packaged = json.loads((ROOT / "src" / "convlab" / "thresholds.json").read_text())["thresholds"]
    for lab in labs.load_all(ROOT).values():
        for model, fixed in lab.fixed.items():
            assert packaged[lab.name][model] == fixed.threshold, (lab.name, model)


def test_grader_default_figures_match_lab_files() -> None:
    """Does grade.FEEDBACK_FIGURES (the fallback without a project folder) say what the lab.yml
    files say (the CLI passes the lab.yml's)?"""
    declared = {name: lab.feedback_figures for name, lab in labs.load_all(ROOT).items()
                if lab.feedback_figures}
    assert grade.FEEDBACK_FIGURES == declared


#: the checks that predict with a model, directly or through another check, and where the model
#: is among their arguments: what each needs ("test": the test split; "train": also the training
#: probe, checked by every accuracy step: ``fitted_on_training_split``)
_PREDICTING = {"accuracy_step": (0, ("test", "train")), "fitted_on_training_split": (0, ("test", "train")),
               "train_accuracy": (0, ("train",)), "test_accuracy": (0, ("test",)),
               "accuracy_at_least": (0, ("test",)), "nin_accuracy_step": (0, ("test",)),
               "answer_accuracy": (1, ("test",)), "predicted_labels": (1, ("test",)),
               "confusion_matrix_of": (1, ("test",)), "more_accurate": ((0, 1), ("test",)),
               "nin_trained_as_prescribed": (0, ("test",)),
               # with a batch size (its 5th argument), the training is nin_trained_as_prescribed
               "schedule_attached": (0, ("test",))}


def _predictions_of_tests(lab: str) -> dict[str, set[str]]:
    """variable -> kinds of prediction the lab's hidden tests make with its model, read from
    the calls of :data:`_PREDICTING` in the built autograder's test files."""
    import re

    found: dict[str, set[str]] = {}
    for path in (ROOT / "autograder" / lab / "tests").glob("*.py"):
        for call, args in re.findall(r"checks\.(\w+)\(([^)]*)\)", path.read_text(encoding="utf-8")):
            if call in _PREDICTING:
                where, kinds = _PREDICTING[call]
                names = [a.strip() for a in args.split(",")]
                if call == "schedule_attached" and len(names) < 5:
                    continue
                for position in (where if isinstance(where, tuple) else (where,)):
                    found.setdefault(names[position], set()).update(kinds)
    return found


@pytest.mark.parametrize("lab", ["lab5_cnn", "lab6_nin"])
def test_predictions_made_ahead_are_those_the_tests_make(lab: str) -> None:
    """Does a lab's ``predict_ahead`` name exactly the models and kinds of prediction its hidden
    tests make (so the scorer predicts ahead nothing it will not use, and misses nothing)?"""
    declared = labs.load(ROOT, lab).predict_ahead
    assert declared is not None
    assert {name: set(kinds) for name, kinds in declared.items()} == _predictions_of_tests(lab)


def test_a_third_lab_is_one_folder(tmp_path: Path) -> None:
    """Is a lab declared only by assignments/<lab>/ (a master + lab.yml) discovered by the build,
    loaded, and calibrated from its own plan (thresholds from runs, its fixed threshold kept)?"""
    shutil.copytree(ROOT / "assignments", tmp_path / "assignments",
                    ignore=shutil.ignore_patterns("artifacts", ".*"))
    folder = tmp_path / "assignments" / "lab7_tiny"
    folder.mkdir()
    (folder / "lab7_tiny.ipynb").write_text('{"cells": [], "metadata": {}, "nbformat": 4}')
    (folder / "lab.yml").write_text(THIRD)
    assert build.discover(tmp_path) == ["lab5_cnn", "lab6_nin", "lab7_tiny"]
    lab = labs.load(tmp_path, "lab7_tiny")
    assert lab.plans["tiny"] == labs.ModelPlan(function="create_tiny", dataset="mnist", epochs=1,
                                               batch_size=32)
    assert lab.master == folder / "lab7_tiny.ipynb" and lab.e2e_subset == {"solution"}
    runs = [{"model": "tiny", "seed": s, "epochs": 1, "test_accuracy": a} for s, a in enumerate([0.8, 0.82])]
    assert calibration.thresholds(lab, runs) == {"tiny": 0.5}
    assert "a stated reason" in calibration.report(lab, runs, {"tiny": 0.5})


@pytest.mark.parametrize(("text", "message"), [
    ("calibration: {models: {m: {function: f, dataset: svhn, epochs: 1}}}", "dataset must be one of"),
    ("calibration: {models: {m: {function: f, dataset: mnist}}}", "needs function, dataset, epochs"),
    ("calibration: {models: {m: {function: f, dataset: mnist, epochs: 0}}}", "positive integer"),
    ("calibration: {fixed: {m: {threshold: 0.5, reason: r}}}", "without a plan"),
    ("feedback_figures: {cm: pie}", "feedback_figures kinds"),
    ("e2e_subset: solution", "e2e_subset must be a list"),
    ("predict_ahead: {m: [test, val]}", "predict_ahead maps variables"),
    ("predict_ahead: {m: []}", "predict_ahead maps variables"),
    ("thresholds: {}", "unknown keys"),
    ("calibration: [", "not valid YAML"),
])
def test_a_bad_lab_file_names_itself(tmp_path: Path, text: str, message: str) -> None:
    """Does a malformed lab.yml fail with a LabError naming the file and the problem?"""
    folder = tmp_path / "assignments" / "bad"
    folder.mkdir(parents=True)
    (folder / "bad.ipynb").write_text("{}")
    (folder / "lab.yml").write_text(text)
    with pytest.raises(labs.LabError, match=message) as error:
        labs.load(tmp_path, "bad")
    assert str(folder / "lab.yml") in str(error.value)


def test_a_missing_lab_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "assignments" / "bare").mkdir(parents=True)
    (tmp_path / "assignments" / "bare" / "bare.ipynb").write_text("{}")
    with pytest.raises(labs.LabError, match="cannot read the lab's configuration"):
        labs.load(tmp_path, "bare")
