"""Calibrate accuracy thresholds by training the reference models over several seeds.

The model-building functions are taken from the master notebook itself (``create_modelN``
definitions in its solution cells), so the calibration trains exactly the reference solution.
Results are appended run by run to ``docs/calibration/<lab>.json`` (a killed run resumes),
and :func:`thresholds` turns them into the thresholds the hidden checks use. What each lab
trains and which thresholds it fixes is declared in ``assignments/<lab>/lab.yml``
(:mod:`convlab.labs`).
"""

from __future__ import annotations

import ast
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import numpy as np

from convlab.grading import files
from convlab.labs import Lab, ModelPlan

__all__ = ["ModelPlan", "backend_description", "builders_from_master", "prepared", "report", "run",
           "thresholds", "write"]


def builders_from_master(master: Path) -> dict[str, Any]:
    """Execute the function definitions of the master's code cells (``create_*`` builders and
    the helpers they call) and its upper-case constant settings (``LR_0 = 2e-3``)."""
    import math

    import tensorflow as tf

    namespace: dict[str, Any] = {"tf": tf, "np": np, "math": math}
    nb = nbformat.read(master, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        source = "\n".join(
            line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!"))
        )
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                exec(compile(ast.Module([node], []), str(master), "exec"), namespace)
            elif (isinstance(node, ast.Assign) and len(node.targets) == 1
                  and isinstance(node.targets[0], ast.Name) and node.targets[0].id.isupper()):
                try:
                    namespace[node.targets[0].id] = ast.literal_eval(node.value)
                except ValueError:
                    continue
    return {k: v for k, v in namespace.items() if k not in ("tf", "np", "math")}


def prepared(dataset: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The lab's preprocessing: float32 in [0, 1] with a channel axis."""
    from convlab import datasets

    (x_train, y_train), (x_test, y_test) = datasets.load(dataset)

    def scale(x: np.ndarray) -> np.ndarray:
        x = (x / 255).astype(np.float32)
        return x[..., np.newaxis] if x.ndim == 3 else x

    return scale(x_train), y_train, scale(x_test), y_test


def backend_description() -> str:
    """Where a run trains, e.g. ``tensorflow 2.21.0 on 2 CPU cores``, recorded with each run
    (seeds trained on different backends differ, docs/calibration.md)."""
    import os

    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    where = f"{len(gpus)} GPU" if gpus else f"{os.cpu_count()} CPU cores"
    return f"tensorflow {tf.__version__} on {where}"


def run(lab: Lab, out: Path, seeds: list[int], models: list[str] | None = None) -> None:
    """Train every planned model for every seed; append one record per run to ``out``."""
    import tensorflow as tf

    builders = builders_from_master(lab.master)
    records = json.loads(out.read_text())["runs"] if out.is_file() else []
    backend = backend_description()
    done = {(r["model"], r["seed"], r.get("backend", backend)) for r in records}
    for name, plan in lab.plans.items():
        if models and name not in models:
            continue
        x_train, y_train, x_test, y_test = prepared(plan.dataset)
        for seed in seeds:
            if (name, seed, backend) in done:
                continue
            tf.keras.utils.set_random_seed(seed)
            tf.config.experimental.enable_op_determinism()
            model = builders[plan.function](x_train, y_train, **dict(plan.kwargs))
            callbacks = []
            if plan.schedule is not None:
                schedule, lr_0, lr_min = builders[plan.schedule], builders["LR_0"], builders["LR_MIN"]
                callbacks.append(tf.keras.callbacks.LearningRateScheduler(
                    lambda epoch, _lr, f=schedule, a=lr_0, b=lr_min, t=plan.epochs: f(epoch, a, b, t)))
            start = time.perf_counter()
            model.fit(x_train, y_train, batch_size=plan.batch_size, epochs=plan.epochs, verbose=0,
                      callbacks=callbacks)
            seconds = time.perf_counter() - start
            predictions = model.predict(x_test, batch_size=1000, verbose=0)
            accuracy = float(np.mean(np.argmax(predictions, axis=1) == y_test.reshape(-1)))
            records.append({"model": name, "seed": seed, "epochs": plan.epochs,
                            "train_seconds": round(seconds, 1), "test_accuracy": round(accuracy, 4),
                            "backend": backend})
            out.parent.mkdir(parents=True, exist_ok=True)
            # rewritten after each run of hours of training: a kill mid-write keeps the last whole file
            files.write_text(out, json.dumps({"lab": lab.name, "runs": records}, indent=1) + "\n")
            print(f"{name} seed={seed} acc={accuracy:.4f} ({seconds:.0f} s)", flush=True)


def thresholds(lab: Lab, runs: list[dict[str, Any]]) -> dict[str, float]:
    """Threshold per model: ``min(mean - 3*sd, min - 0.01)`` rounded down to 0.01.

    With roughly normal seed-to-seed variation, mean - 3 sd is failed by about 0.1% of
    reference runs; the min - 0.01 cap keeps a margin below every observed run.
    """
    result: dict[str, float] = {}
    for name in lab.plans:
        values = [r["test_accuracy"] for r in runs if r["model"] == name]
        if len(values) < 2:
            continue
        bound = min(statistics.mean(values) - 3 * statistics.stdev(values), min(values) - 0.01)
        result[name] = float(np.floor(bound * 100) / 100)
    for name, fixed in lab.fixed.items():
        result[name] = fixed.threshold
    return result


CHANCE = 0.1  #: accuracy of a guess among the ten classes of both datasets


def floor_of(threshold: float) -> float:
    """The accuracy at which credit starts: a quarter of the way from the threshold down to
    chance, rounded down to 0.01 (docs/calibration.md, "floors")."""
    return float(np.floor((threshold - (threshold - CHANCE) / 4) * 100 + 1e-9) / 100)


def floors(lab: Lab, chosen: dict[str, float]) -> dict[str, float]:
    """Floor per model from its threshold (:func:`floor_of`)."""
    return {name: floor_of(value) for name, value in chosen.items()}


@dataclass(frozen=True)
class FalseFails:
    """How often a reference run falls below a threshold: observed among the runs, and the
    normal estimate from their mean and sd (``nan`` with fewer than two runs)."""

    runs: int
    below: int
    estimate: float


def false_fails(values: list[float], threshold: float) -> FalseFails:
    """The false-fail rate of ``threshold`` over reference runs ``values``."""
    below = sum(v < threshold for v in values)
    if len(values) < 2:
        return FalseFails(len(values), below, float("nan"))
    spread = statistics.stdev(values)
    estimate = (float(threshold > statistics.mean(values)) if spread == 0 else
                statistics.NormalDist(statistics.mean(values), spread).cdf(threshold))
    return FalseFails(len(values), below, estimate)


def report(lab: Lab, runs: list[dict[str, Any]], chosen: dict[str, float]) -> str:
    """Markdown table of the runs, the chosen thresholds and their false-fail rates (all runs,
    and the runs on the backend each run names, when there are several)."""
    lines = [
        f"## {lab.name}",
        "",
        "| model | epochs | seeds | test accuracy per seed | mean | sd | min | threshold | floor "
        "| runs below | false-fail estimate |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    notes: list[str] = []
    for name in lab.plans:
        mine = sorted((r for r in runs if r["model"] == name), key=lambda r: r["seed"])
        if not mine:
            continue
        values = [r["test_accuracy"] for r in mine]
        sd = statistics.stdev(values) if len(values) > 1 else float("nan")
        fixed = f" ({lab.fixed[name].reason})" if name in lab.fixed else ""
        threshold = chosen.get(name, float("nan"))
        fails = false_fails(values, threshold)
        lines.append(
            f"| {name} | {mine[0]['epochs']} | {', '.join(str(r['seed']) for r in mine)} | "
            f"{', '.join(f'{v:.4f}' for v in values)} | {statistics.mean(values):.4f} | "
            f"{sd:.4f} | {min(values):.4f} | {threshold:.2f}{fixed} | {floor_of(threshold):.2f} | "
            f"{fails.below} of {fails.runs} | {fails.estimate:.2%} |")
        backends = sorted({r.get("backend", "") for r in mine})
        if len(backends) > 1:
            for backend in backends:
                part = [r["test_accuracy"] for r in mine if r.get("backend", "") == backend]
                one = false_fails(part, threshold)
                notes.append(f"* {name}, {backend or 'backend not recorded'}: {len(part)} runs, mean "
                             f"{statistics.mean(part):.4f}, {one.below} below {threshold:.2f}, "
                             f"false-fail estimate {one.estimate:.2%}")
    if notes:
        lines += ["", "By backend:", "", *notes]
    return "\n".join(lines) + "\n"


def write(lab: Lab, runs: list[dict[str, Any]], thresholds_file: Path, doc: Path) -> dict[str, float]:
    """Store the thresholds for the checks and the calibration section of the docs."""
    chosen = thresholds(lab, runs)
    data = json.loads(thresholds_file.read_text())
    data["thresholds"][lab.name] = chosen
    data.setdefault("floors", {})[lab.name] = floors(lab, chosen)
    files.write_text(thresholds_file, json.dumps(data, indent=1) + "\n")
    marker = f"<!-- {lab.name} -->"
    text = doc.read_text() if doc.is_file() else ""
    section = f"{marker}\n{report(lab, runs, chosen)}{marker}\n"
    if marker in text:
        start, end = text.index(marker), text.rindex(marker) + len(marker) + 1
        text = text[:start] + section + text[end:]
    else:
        text += "\n" + section
    files.write_text(doc, text)
    return chosen
