"""A student's first "Run All" of a lab's solution: nothing cached, so every model trains.

    CONVLAB_DATASETS=../shared/datasets python benchmarks/first_run_all.py [--lab LAB]
        [--out benchmarks/results/<lab>_first_run.json] [--keep DIR]

Executes the solution notebook with nbclient (as Jupyter's "Run All" does) in an empty folder:
no ``artifacts/``, so ``Model.fit`` trains each model. Records the wall time of every code cell
(nbclient's ``record_timing``), and for the training cells the epoch times that Keras itself
printed (``verbose=2``: ``469/469 - 12s - ...``), i.e. the pure training time, so that the
difference between a cell and its training is visible: imports, data loading, graph tracing,
evaluation, model summaries, the kernel's output path.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat
from _measure import machine, run_measured  # benchmarks/_measure.py

ROOT = Path(__file__).resolve().parents[1]
EPOCH = re.compile(r"^\d+/\d+ - (\d+(?:\.\d+)?)(m?s) - ", re.M)

SCRIPT = (
    "import sys, nbformat\n"
    "from nbclient import NotebookClient\n"
    "nb = nbformat.read(sys.argv[1], as_version=4)\n"
    "try:\n"
    "    NotebookClient(nb, timeout=7200, kernel_name='python3', record_timing=True,\n"
    "                   resources={'metadata': {'path': sys.argv[2]}}).execute()\n"
    "finally:\n"
    "    nbformat.write(nb, sys.argv[1])\n"
)


def _seconds(timing: dict[str, str], start: str, end: str) -> float | None:
    if start not in timing or end not in timing:
        return None
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return round((parse(timing[end]) - parse(timing[start])).total_seconds(), 2)


def epoch_seconds(outputs: list[Any]) -> list[float]:
    """The per-epoch times Keras printed (``verbose=2`` lines) in a cell's stream outputs."""
    text = "".join("".join(o.get("text", "")) for o in outputs if o.get("output_type") == "stream")
    return [float(v) / (1000 if unit == "ms" else 1) for v, unit in EPOCH.findall(text)]


def cell_report(executed: Any) -> list[dict[str, Any]]:
    """Per code cell: index, first line, seconds (busy to idle as the kernel reported) and the
    Keras epoch times when it trained."""
    cells = []
    for index, cell in enumerate(executed.cells):
        if cell.cell_type != "code":
            continue
        timing = cell.metadata.get("execution", {})
        entry: dict[str, Any] = {
            "cell": index,
            "first_line": next((line for line in cell.source.splitlines()
                                if line.strip() and not line.startswith(("%%", "#"))), "")[:80],
            "seconds": _seconds(timing, "iopub.status.busy", "iopub.status.idle"),
        }
        epochs = epoch_seconds(cell.get("outputs", []))
        if epochs:
            entry["epochs"] = len(epochs)
            entry["training_seconds"] = round(sum(epochs), 1)
        cells.append(entry)
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lab", default="lab5_cnn")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep", type=Path, help="copy the executed notebook here")
    args = parser.parse_args()
    out = args.out or ROOT / "benchmarks" / "results" / f"{args.lab}_first_run.json"
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        shutil.copytree(ROOT / "student" / args.lab / "tests", work / "tests")
        notebook = work / f"{args.lab}.ipynb"
        shutil.copy(ROOT / "solutions" / args.lab / f"{args.lab}.ipynb", notebook)
        started = time.time()
        total = run_measured([sys.executable, "-c", SCRIPT, str(notebook), str(work)], cwd=work)
        executed = nbformat.read(notebook, as_version=4)
        if args.keep:
            shutil.copy(notebook, args.keep)
    cells = cell_report(executed)
    training = sum(c.get("training_seconds", 0) for c in cells)
    result = {
        "machine": machine(), "date": datetime.now().date().isoformat(), "started": started,
        "seconds": total["seconds"], "peak_mib": total["peak_mib"], "returncode": total["returncode"],
        "cells_seconds": round(sum(c["seconds"] or 0 for c in cells), 1),
        "training_seconds": round(training, 1),
        "ratio_to_training": round(total["seconds"] / training, 2) if training else None,
        "cells": cells,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "cells"}, indent=1))
    for cell in sorted(cells, key=lambda c: -(c["seconds"] or 0))[:10]:
        print(cell)


if __name__ == "__main__":
    main()
