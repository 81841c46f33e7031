"""Scenario-named submissions made from the reference solution.

A scenario file (YAML, e.g. ``tests/fixtures/lab5_cnn/scenarios.yml``) lists submissions such
as ``missing_batchnorm``: which cells of the solution to change (exact text replacements), how
the submission is packaged (a zip with the trained models, as ``grader.export()`` makes, or a
bare notebook), under which file name, and the score each question is expected to get
(questions not listed keep full marks) with a fragment of the expected message.

Trained models of scenarios whose broken model differs from the reference are kept in the
fixture's ``artifacts/`` (made by :func:`harvest`), so grading them does not retrain; a
missing one is simply trained at grade time.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import yaml

from convlab import build
from convlab.artifacts import files_of
from convlab.grading import files


@dataclass(frozen=True, kw_only=True)
class Edit:
    """Replace ``old`` by ``new`` in the code cell containing ``cell``."""

    cell: str  #: text that identifies the cell
    old: str
    new: str


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """One submission of the corpus and its expected grade."""

    name: str
    about: str
    base: str = "solution"  #: "solution" or "template" (the blank student notebook)
    edits: tuple[Edit, ...] = ()
    package: str = "zip"  #: "zip" (notebook + artifacts) or "ipynb"
    filename: str | None = None  #: submitted notebook name (default: the lab's)
    drop_models: tuple[str, ...] = ()  #: notebook variables whose trained models are left out
    expected: dict[str, float] = field(default_factory=dict)  #: question -> score (others full)
    all_zero: bool = False  #: every auto-graded question scores 0
    messages: dict[str, str] = field(default_factory=dict)  #: question -> expected fragment
    otter_log_payload: bool = False  #: add a .OTTER_LOG whose unpickling creates PWNED_MARKER
    env: dict[str, str] = field(default_factory=dict)  #: grading environment, e.g. CONVLAB_NO_TRAIN


PWNED_MARKER = "PWNED_BY_OTTER_LOG"


class _Payload:
    """Unpickling this runs ``touch <marker>`` (a stand-in for arbitrary code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        import os

        return os.system, (f"touch '{self.marker}'",)


def load(path: Path) -> list[Scenario]:
    """Scenarios of a YAML file."""
    raw = yaml.safe_load(path.read_text())
    scenarios = []
    for name, spec in raw["scenarios"].items():
        edits = tuple(Edit(**e) for e in spec.pop("edits", []))
        spec["drop_models"] = tuple(spec.pop("drop_models", []))
        scenarios.append(Scenario(name=name, edits=edits, **spec))
    return scenarios


def apply_edits(nb: Any, edits: tuple[Edit, ...]) -> Any:
    """Apply the edits; each must match exactly one cell, once."""
    for edit in edits:
        cells = [c for c in nb.cells if c.cell_type == "code" and edit.cell in c.source]
        if len(cells) != 1:
            raise ValueError(f"edit target {edit.cell!r} matches {len(cells)} cells")
        if cells[0].source.count(edit.old) != 1:
            raise ValueError(f"{edit.old!r} occurs {cells[0].source.count(edit.old)} times")
        cells[0].source = cells[0].source.replace(edit.old, edit.new)
    return nb


def make_submission(scenario: Scenario, *, root: Path, lab: str, fixtures: Path,
                    dest: Path) -> Path:
    """Write the scenario's submission file into ``dest``; return its path."""
    dest.mkdir(parents=True, exist_ok=True)
    source = (root / "solutions" / lab / f"{lab}.ipynb" if scenario.base == "solution"
              else root / "student" / lab / f"{lab}.ipynb")
    nb = apply_edits(nbformat.read(source, as_version=4), scenario.edits)
    notebook = dest / (scenario.filename or f"{lab}.ipynb")
    nbformat.write(nb, notebook)
    if scenario.package == "ipynb":
        return notebook
    models = dest / "artifacts"
    shutil.rmtree(models, ignore_errors=True)
    models.mkdir()
    manifest: dict[str, Any] = {}
    for folder in (root / "solutions" / lab / "artifacts", fixtures / "artifacts"):
        if not folder.is_dir():
            continue
        entries = json.loads((folder / "manifest.json").read_text())
        for key, entry in entries.items():
            if set(entry.get("variables", [])) & set(scenario.drop_models):
                continue
            for path in files_of(folder, key):
                shutil.copy(path, models)
            manifest[key] = entry
    (models / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    submission = build.submission_zip(notebook, models, dest / f"{scenario.name}.zip")
    if scenario.otter_log_payload:
        import pickle

        with zipfile.ZipFile(submission, "a") as zf:
            zf.writestr(".OTTER_LOG", pickle.dumps(_Payload(dest.resolve() / PWNED_MARKER)))
    notebook.unlink()
    shutil.rmtree(models)
    return submission


def grade(scenario: Scenario, *, root: Path, lab: str, fixtures: Path, work: Path,
          env: dict[str, str] | None = None) -> dict[str, Any]:
    """Make the scenario's submission and grade it with ``otter run``; return results.json."""
    submission = make_submission(scenario, root=root, lab=lab, fixtures=fixtures,
                                 dest=work / "submission")
    autograder = root / "autograder" / lab / build.zip_name(lab)
    return build.otter_run(submission, autograder, work / "out", env={**scenario.env, **(env or {})})


def outputs(results: dict[str, Any]) -> dict[str, str]:
    """Question -> the grader's output text (messages of failed checks)."""
    return {t["name"]: t.get("output", "") for t in results["tests"] if "max_score" in t}


def harvest(scenarios: list[Scenario], *, root: Path, lab: str, fixtures: Path,
            work: Path) -> list[str]:
    """Grade each scenario once with a shared model cache and keep the models it trained.

    New trained models (not among the reference ones) go to ``fixtures/artifacts``.
    """
    cache = work / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    known: dict[str, Any] = {}
    for folder in (root / "solutions" / lab / "artifacts", fixtures / "artifacts"):
        if folder.is_dir():
            known.update(json.loads((folder / "manifest.json").read_text()))
            for path in folder.iterdir():
                shutil.copy(path, cache)
    reference = set(json.loads(
        (root / "solutions" / lab / "artifacts" / "manifest.json").read_text()))
    for scenario in scenarios:
        if scenario.package != "zip" or scenario.drop_models:
            continue
        grade(scenario, root=root, lab=lab, fixtures=fixtures, work=work / scenario.name,
              env={"CONVLAB_ARTIFACTS": str(cache)})
    manifest = json.loads((cache / "manifest.json").read_text())
    target = fixtures / "artifacts"
    target.mkdir(parents=True, exist_ok=True)
    kept = {k: v for k, v in manifest.items() if k not in reference}
    for key in kept:
        for path in files_of(cache, key):
            shutil.copy(path, target)
    files.write_text(target / "manifest.json", json.dumps(kept, indent=1, sort_keys=True))
    return sorted(kept)
