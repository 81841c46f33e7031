"""Benchmark a lab: grading, student checks, Run All and the build, on this machine.

    CONVLAB_DATASETS=../shared/datasets python benchmarks/bench_lab.py [--lab LAB] [--skip-retrain]
        [--repeat 3]
    CONVLAB_DATASETS=../shared/datasets python benchmarks/bench_lab.py --lab LAB --compare-to REF
        [--repeat 3]

``--compare-to REF`` (a git ref, e.g. ``main``) measures only the grading routes, interleaved in
rounds (``otter run``, ``convlab grade`` of REF's code, ``convlab grade`` of this checkout), so
that a busy machine slows all three alike, and writes the before/after table with the ratios to
``benchmarks/results/<lab>_compare.json`` (REF's ``src/`` is taken with ``git archive`` and put
first on ``PYTHONPATH``; the sandbox then runs REF's code too; REF's ``assignments/`` gives its
``lab.yml`` files, this checkout's built trees the rest). The solution zip graded is what a
student who ran the solution exports: the notebook and the reference trained models.

Measures wall time and peak memory (sum of RSS over the whole process tree, sampled every
0.1 s) of:

* grading the solution submission (notebook + trained models) with ``otter run``, against
  the obvious alternative, full re-execution: the same notebook without its models, so
  ``otter run`` retrains them (Lab 5: all six, about 12 minutes). A lab graded from the
  submitted weights only (GradingGuard ``no_train``, Lab 6) refuses to retrain at grade time;
  there the alternative is training the reference models from scratch, timed by running the
  master as a script (``tools/run_master.py``, about 45 minutes for Lab 6). ``--skip-retrain``
  leaves this out and keeps the previous measurement;
* grading the same zip with ``convlab grade`` (two phases: sandboxed execution, trusted
  scoring), the route that student code cannot fool, against ``otter run``;
* "Run All" of the solution notebook with its models (no training) and each student-side
  ``grader.check`` (public tests), from the cell timings of that run;
* ``convlab build --check`` (assign, normalize, execute the solution without training).

Results go to ``benchmarks/results/<lab>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat
import psutil
from _measure import measure, run_measured  # benchmarks/_measure.py

from convlab import build, datasets

ROOT = Path(__file__).resolve().parents[1]
LAB = "lab5_cnn"  #: set by --lab


def grade(submission: Path, work: Path) -> dict[str, float]:
    otter = str(Path(sys.executable).with_name("otter"))
    autograder = ROOT / "autograder" / LAB / build.zip_name(LAB)
    out = work / "out"
    out.mkdir(parents=True, exist_ok=True)
    result = measure([otter, "run", "-a", str(autograder), "-o", str(out), "--no-logo",
                      str(submission)])
    scores = build.scores(json.loads((out / "results.json").read_text()))
    result["score"] = sum(s for s, _ in scores.values())
    result["possible"] = sum(p for _, p in scores.values())
    return result


def grade_two_phase(submission: Path, work: Path, src: Path | None = None,
                    root: Path = ROOT) -> dict[str, Any]:
    """``convlab grade`` of a folder holding only ``submission`` (one worker); ``src``: run that
    ``src/`` folder's convlab instead of this checkout's, on the project folder ``root``
    (``--compare-to``)."""
    folder = work / "submissions"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(submission, folder / submission.name)
    command = [sys.executable, "-m", "convlab", "--root", str(root), "grade", LAB, str(folder),
               "-o", str(work / "out"), "--workers", "1"]
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(src), *filter(None, [env.get("PYTHONPATH")])])
    run = run_measured(command, env=env)
    if run["returncode"] != 0:
        raise RuntimeError(f"{command} failed:\n{run['output']}")
    result: dict[str, Any] = {"seconds": run["seconds"], "peak_mib": run["peak_mib"], "cpu_s": run["cpu_s"]}
    graded = json.loads((work / "out" / "results" / f"{submission.stem}.json").read_text())
    result["score"], result["possible"] = graded["total"], graded["max_total"]
    result["status"] = graded["status"]
    if isinstance(graded.get("phases"), dict):
        result["phases"] = graded["phases"]
        result["scoring_phases"] = (graded.get("scoring") or {}).get("phases")
    return result


def compare(ref: str, submission: Path, work: Path, rounds: int) -> dict[str, Any]:
    """``otter run``, ``convlab grade`` at ``ref`` and ``convlab grade`` here, interleaved in
    ``rounds`` rounds; medians, every run, and the ratios to ``otter run`` (per round and of
    the medians)."""
    src = work / "ref"
    src.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "src", "assignments"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    # REF's code reads REF's lab files (assignments/), and this checkout's built trees
    for tree in ("autograder", "student", "solutions"):
        (src / tree).symlink_to(ROOT / tree)
    routes: dict[str, Callable[[Path], dict[str, Any]]] = {
        "otter_run": lambda w: grade(submission, w),
        f"convlab_grade@{ref}": lambda w: grade_two_phase(submission, w, src / "src", root=src),
        "convlab_grade@HEAD": lambda w: grade_two_phase(submission, w),
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in routes}
    for i in range(rounds):
        for name, route in routes.items():
            runs[name].append(route(work / f"{name}-{i}".replace("@", "_")))
            print(f"round {i + 1}: {name}: {runs[name][-1]['seconds']} s, "
                  f"{runs[name][-1]['peak_mib']} MiB, {runs[name][-1]['cpu_s']} CPU s", flush=True)
    table: dict[str, Any] = {}
    otter = runs["otter_run"]
    otter_median = statistics.median_high(r["seconds"] for r in otter)
    for name, done in runs.items():
        median = sorted(done, key=lambda r: r["seconds"])[len(done) // 2]  # the run of the median_high
        table[name] = {**median, "runs_seconds": [r["seconds"] for r in done],
                       "runs_peak_mib": [r["peak_mib"] for r in done],
                       "runs_cpu_s": [r["cpu_s"] for r in done],
                       # no schedule of the route's CPU work on this machine's cores is faster
                       "wall_floor_s": round(statistics.median_high(r["cpu_s"] for r in done)
                                             / (psutil.cpu_count() or 1), 1),
                       "ratio_to_otter_run": round(median["seconds"] / otter_median, 2),
                       "round_ratios": [round(r["seconds"] / o["seconds"], 2)
                                        for r, o in zip(done, otter, strict=True)]}
    return table


def run_all(work: Path) -> dict[str, object]:
    """Execute the solution with its models and the students' public tests; time each check."""
    work.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "student" / LAB / "tests", work / "tests")
    shutil.copytree(ROOT / "solutions" / LAB / "artifacts", work / "artifacts")
    nb = nbformat.read(ROOT / "solutions" / LAB / f"{LAB}.ipynb", as_version=4)
    nbformat.write(nb, work / f"{LAB}.ipynb")
    script = (
        "import sys, nbformat\n"
        "from nbclient import NotebookClient\n"
        "nb = nbformat.read(sys.argv[1], as_version=4)\n"
        "NotebookClient(nb, timeout=3600, kernel_name='python3', record_timing=True,\n"
        "               resources={'metadata': {'path': sys.argv[2]}}).execute()\n"
        "nbformat.write(nb, sys.argv[1])\n"
    )
    total = measure([sys.executable, "-c", script, str(work / f"{LAB}.ipynb"), str(work)])
    executed = nbformat.read(work / f"{LAB}.ipynb", as_version=4)
    checks = {}
    for cell in executed.cells:
        if cell.cell_type == "code" and cell.source.startswith("grader.check("):
            timing = cell.metadata.get("execution", {})
            start = datetime.fromisoformat(timing["iopub.execute_input"].replace("Z", "+00:00"))
            end = datetime.fromisoformat(timing["shell.execute_reply"].replace("Z", "+00:00"))
            checks[cell.source.split('"')[1]] = round((end - start).total_seconds(), 3)
    return {"run_all": total, "grader_check_seconds": checks}


def repeated(run: Callable[[int], dict[str, Any]], times: int) -> dict[str, Any]:
    """The run with the median time of ``times`` runs, with every run's time and peak memory
    (this virtual machine's speed varies by up to a quarter from one minute to the next)."""
    runs = [run(i) for i in range(max(times, 1))]
    median = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
    return {**median, "runs_seconds": [r["seconds"] for r in runs],
            "runs_peak_mib": [r["peak_mib"] for r in runs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lab", default="lab5_cnn", choices=build.discover(ROOT))
    parser.add_argument("--skip-retrain", action="store_true")
    parser.add_argument("--repeat", type=int, default=3,
                        help="grade the solution this many times per route; the median is reported")
    parser.add_argument("--compare-to", metavar="REF",
                        help="only the grading routes, interleaved: otter run, convlab grade at REF, here")
    args = parser.parse_args()
    global LAB
    LAB = args.lab
    if args.compare_to:
        datasets.absolutize_env()
        solution = ROOT / "solutions" / LAB
        with tempfile.TemporaryDirectory() as scratch:
            zipped = build.submission_zip(solution / f"{LAB}.ipynb", solution / "artifacts",
                                          Path(scratch) / "solution.zip")
            table = compare(args.compare_to, zipped, Path(scratch), args.repeat)
        out = ROOT / "benchmarks" / "results" / f"{LAB}_compare.json"
        out.write_text(json.dumps({"machine": platform.machine(), "cores": psutil.cpu_count(),
                                   "date": datetime.now().date().isoformat(), "ref": args.compare_to,
                                   "routes": table}, indent=1, ensure_ascii=False) + "\n")
        print(f"{'route':28} {'median s':>9} {'x otter':>8} {'peak MiB':>9}  per-round ratios")
        for name, row in table.items():
            print(f"{name:28} {row['seconds']:9.1f} {row['ratio_to_otter_run']:8.2f} {row['peak_mib']:9d}"
                  f"  {row['round_ratios']}")
        return
    from convlab.grading import grade as two_phase

    no_train = two_phase.grading_guard(ROOT / "autograder" / LAB / build.zip_name(LAB)).get("no_train")
    datasets.absolutize_env()
    if datasets.datasets_root() is None:
        sys.exit(f"set {datasets.ENV_VAR} (offline datasets)")
    results: dict[str, object] = {
        "machine": f"{platform.processor() or platform.machine()}, {psutil.cpu_count()} cores, "
                   f"{round(psutil.virtual_memory().total / 2**30)} GiB",
        "date": datetime.now().date().isoformat(),
    }
    solution = ROOT / "solutions" / LAB
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        with_models = build.submission_zip(solution / f"{LAB}.ipynb", solution / "artifacts",
                                           work / "with-models.zip")
        for key, route in (("grade_with_models", grade), ("grade_two_phase", grade_two_phase)):
            results[key] = repeated(lambda i, r=route, k=key: r(with_models, work / f"{k}-{i}"),
                                    args.repeat)
            print(f"{key}:", results[key], flush=True)
        if not args.skip_retrain and no_train:
            results["grade_full_reexecution"] = measure(
                [sys.executable, str(ROOT / "tools" / "run_master.py"), LAB, "--artifacts",
                 str(work / "retrained")])
            results["grade_full_reexecution"]["what"] = "training the reference models (run_master.py)"
            print("training the reference:", results["grade_full_reexecution"], flush=True)
        elif not args.skip_retrain:
            bare = work / "bare" / f"{LAB}.ipynb"
            bare.parent.mkdir()
            shutil.copy(solution / f"{LAB}.ipynb", bare)
            results["grade_full_reexecution"] = grade(bare, work / "b")
            print("grade by full re-execution:", results["grade_full_reexecution"], flush=True)
        results.update(run_all(work / "run-all"))
        print("run all:", results["run_all"], flush=True)
        convlab = str(Path(sys.executable).with_name("convlab"))
        results["build_check"] = measure([convlab, "--root", str(ROOT), "build", "--check",
                                          "--lab", LAB])
        print("build --check:", results["build_check"], flush=True)
    out = ROOT / "benchmarks" / "results" / f"{LAB}.json"
    previous = json.loads(out.read_text()) if out.is_file() else {}
    if args.skip_retrain and "grade_full_reexecution" in previous:
        results["grade_full_reexecution"] = previous["grade_full_reexecution"]
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    otter_run, two_phase = results["grade_with_models"], results["grade_two_phase"]
    if isinstance(otter_run, dict) and isinstance(two_phase, dict):
        print(f"two-phase / otter run: time {two_phase['seconds'] / otter_run['seconds']:.2f}x, "
              f"peak memory {two_phase['peak_mib'] / otter_run['peak_mib']:.2f}x")
    fast, slow = results["grade_with_models"], results.get("grade_full_reexecution")
    if isinstance(fast, dict) and isinstance(slow, dict) and "seconds" in slow:
        print(f"speed-up of grading with trained models: {slow['seconds'] / fast['seconds']:.1f}x,"
              f" peak memory ratio {slow['peak_mib'] / fast['peak_mib']:.2f}")
    elif isinstance(fast, dict) and isinstance(slow, dict) and "seconds_at_least" in slow:
        print(f"speed-up of grading with trained models: at least "
              f"{slow['seconds_at_least'] / fast['seconds']:.0f}x (full re-execution unfinished)")


if __name__ == "__main__":
    main()
