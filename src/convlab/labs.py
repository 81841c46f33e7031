"""One home per lab: ``assignments/<lab>/`` holds the master ``<lab>.ipynb`` and ``lab.yml``,
everything else the package needs to know about that lab (the calibration plan and fixed
thresholds, the feedback figures, the e2e subset), so adding a lab touches one folder (and the
checks vocabulary). The build, ``convlab calibrate``, ``convlab grade`` and the tests read it here.

``lab.yml`` is a project file, not package data: the grader's own process reads it (the CLI's
``--root``); nothing inside a grading kernel or scoring process needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CONFIG = "lab.yml"
DATASETS = ("mnist", "cifar10")
FIGURE_KINDS = ("confusion",)
#: the test split; the training probe (``checks.performance.TRAIN_PROBE`` images)
PREDICTION_KINDS = ("test", "train")


class LabError(ValueError):
    """A lab folder or its ``lab.yml`` is missing or malformed; the message names the file."""


@dataclass(frozen=True, kw_only=True)
class ModelPlan:
    """What a calibrated model trains on and how (the notebook's fit arguments)."""

    function: str  #: name of the builder in the master notebook
    dataset: str  #: one of :data:`DATASETS`
    epochs: int
    batch_size: int = 128
    kwargs: tuple[tuple[str, Any], ...] = ()  #: extra keyword arguments of the builder
    #: a master function ``(epoch, lr_0, lr_min, T)`` driving a LearningRateScheduler with the
    #: master's ``LR_0`` and ``LR_MIN`` and ``T = epochs``
    schedule: str | None = None


@dataclass(frozen=True, kw_only=True)
class Fixed:
    """A threshold set by a stated reason rather than by the calibration rule."""

    threshold: float
    reason: str


@dataclass(frozen=True, kw_only=True)
class Lab:
    """One lab: its folder and what its ``lab.yml`` declares."""

    name: str
    folder: Path
    plans: dict[str, ModelPlan]  #: model -> calibration plan
    fixed: dict[str, Fixed]  #: model -> fixed threshold
    feedback_figures: dict[str, str]  #: notebook variable -> picture kind (:data:`FIGURE_KINDS`)
    e2e_subset: frozenset[str]  #: scenarios graded by the default two-phase e2e run
    #: notebook variable -> the predictions the hidden tests make with its trained model
    #: (:data:`PREDICTION_KINDS`), made ahead of scoring from the submission's trained-model
    #: files (:func:`convlab.grading.score_process.predict_ahead`); None: every kind, every model
    predict_ahead: dict[str, tuple[str, ...]] | None = None

    @property
    def master(self) -> Path:
        return self.folder / f"{self.name}.ipynb"


def discover(root: Path) -> list[str]:
    """Names of the labs: folders ``assignments/<lab>/`` holding ``<lab>.ipynb``."""
    return sorted(p.parent.name for p in (Path(root) / "assignments").glob("*/*.ipynb")
                  if p.stem == p.parent.name)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise LabError(f"{where}: expected a mapping with string keys, found {value!r}")
    return value


def _plan(model: str, value: Any, where: str) -> ModelPlan:
    entry = _mapping(value, f"{where}: calibration.models.{model}")
    known = {"function", "dataset", "epochs", "batch_size", "kwargs", "schedule"}
    if set(entry) - known or not {"function", "dataset", "epochs"} <= set(entry):
        raise LabError(f"{where}: calibration.models.{model} needs function, dataset, epochs "
                       f"(optional batch_size, kwargs, schedule); found {sorted(entry)}")
    if entry["dataset"] not in DATASETS:
        raise LabError(f"{where}: calibration.models.{model}.dataset must be one of {DATASETS}, "
                       f"found {entry['dataset']!r}")
    for key in ("epochs", "batch_size"):
        if key in entry and (not isinstance(entry[key], int) or isinstance(entry[key], bool)
                             or entry[key] < 1):
            raise LabError(f"{where}: calibration.models.{model}.{key} must be a positive integer")
    kwargs = _mapping(entry.get("kwargs"), f"{where}: calibration.models.{model}.kwargs")
    return ModelPlan(function=str(entry["function"]), dataset=entry["dataset"], epochs=entry["epochs"],
                     batch_size=entry.get("batch_size", 128), kwargs=tuple(sorted(kwargs.items())),
                     schedule=entry.get("schedule"))


def _fixed(model: str, value: Any, where: str) -> Fixed:
    entry = _mapping(value, f"{where}: calibration.fixed.{model}")
    threshold = entry.get("threshold")
    if (set(entry) != {"threshold", "reason"} or not isinstance(threshold, (int, float))
            or not 0 < threshold < 1 or not str(entry["reason"]).strip()):
        raise LabError(f"{where}: calibration.fixed.{model} needs a threshold in (0, 1) and a reason")
    return Fixed(threshold=float(threshold), reason=str(entry["reason"]))


def load(root: Path, name: str) -> Lab:
    """The lab ``name`` of the project at ``root``, validated."""
    folder = Path(root) / "assignments" / name
    path = folder / CONFIG
    if not (folder / f"{name}.ipynb").is_file():
        raise LabError(f"{folder}: no master notebook {name}.ipynb")
    try:
        data = _mapping(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))
    except OSError as error:
        raise LabError(f"{path}: cannot read the lab's configuration ({error})") from error
    except yaml.YAMLError as error:
        raise LabError(f"{path}: not valid YAML ({error})") from error
    where = str(path)
    unknown = set(data) - {"calibration", "feedback_figures", "e2e_subset", "predict_ahead"}
    if unknown:
        raise LabError(f"{where}: unknown keys {sorted(unknown)}")
    calibration = _mapping(data.get("calibration"), f"{where}: calibration")
    if set(calibration) - {"models", "fixed"}:
        raise LabError(f"{where}: calibration takes models and fixed, found {sorted(calibration)}")
    plans = {m: _plan(m, v, where) for m, v in _mapping(calibration.get("models"), where).items()}
    fixed = {m: _fixed(m, v, where) for m, v in _mapping(calibration.get("fixed"), where).items()}
    if set(fixed) - set(plans):
        raise LabError(f"{where}: fixed thresholds for models without a plan: "
                       f"{sorted(set(fixed) - set(plans))}")
    figures = _mapping(data.get("feedback_figures"), f"{where}: feedback_figures")
    if any(kind not in FIGURE_KINDS for kind in figures.values()):
        raise LabError(f"{where}: feedback_figures kinds must be among {FIGURE_KINDS}, found {figures}")
    subset = data.get("e2e_subset") or []
    if not isinstance(subset, list) or not all(isinstance(s, str) for s in subset):
        raise LabError(f"{where}: e2e_subset must be a list of scenario names")
    ahead = None
    if "predict_ahead" in data:
        declared = _mapping(data["predict_ahead"], f"{where}: predict_ahead")
        if not all(isinstance(v, list) and v and set(v) <= set(PREDICTION_KINDS) for v in declared.values()):
            raise LabError(f"{where}: predict_ahead maps variables to lists of {PREDICTION_KINDS}, "
                           f"found {declared}")
        ahead = {str(k): tuple(v) for k, v in declared.items()}
    return Lab(name=name, folder=folder, plans=plans, fixed=fixed,
               feedback_figures={str(k): str(v) for k, v in figures.items()}, e2e_subset=frozenset(subset),
               predict_ahead=ahead)


def load_all(root: Path) -> dict[str, Lab]:
    """Every lab of the project at ``root``."""
    return {name: load(root, name) for name in discover(root)}
