"""Cost of scoring a Lab 5 submission in a fresh sandboxed process, against scoring in the grader.

Runs phase 1 (the notebook in the sandbox) once for the solution zip of the scenario corpus
(trained models included: nothing retrains), then scores its export, the two routes
interleaved (each isolated run followed by a warm in-process one, so both see the same load of
a shared machine):

* ``in_process_cold``: the former route, in a new grader process that has not imported TensorFlow
  yet (the first submission of a batch worker);
* ``in_process_warm``: the former route in a grader process that already scored once (every
  later submission of a batch worker);
* ``isolated``: the new route, :func:`convlab.grading.score_process.run` (a fresh sandboxed
  process per submission, the default of ``convlab grade``).

Each is repeated ``--repeat`` times (median reported) with wall time and the peak RSS of the
scoring (the grader's own peak for in-process, the sandboxed tree's for isolated). Also checks
that both routes give the same scores. Writes ``benchmarks/results/scorer.json``.

    CONVLAB_DATASETS=... python benchmarks/bench_scorer.py [--repeat 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _measure import solution_phase1  # benchmarks/_measure.py

ROOT = Path(__file__).resolve().parents[1]
LAB = "lab5_cnn"

_IN_PROCESS = str(Path(__file__).with_name("_warm_scorer.py"))  #: the warm scoring process, run by path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "scorer.json")
    args = parser.parse_args()

    from convlab.grading import execute, score, score_process

    tests_source = ROOT / "autograder" / LAB
    with tempfile.TemporaryDirectory(prefix="bench-scorer-") as tmp:
        execution, phase1, settings = solution_phase1(ROOT, LAB, Path(tmp))
        worker = subprocess.Popen([sys.executable, _IN_PROCESS, str(tests_source),
                                   str(execution.export)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  env=execute.kernel_env(settings))

        def in_process() -> dict:
            worker.stdin.write("go\n")
            worker.stdin.flush()
            return json.loads(worker.stdout.readline())

        try:
            inproc = [in_process()]  # cold: the worker's first submission
            isolated, isolated_rss, isolated_totals = [], [], []
            for _ in range(args.repeat):  # interleaved, so both see the same load of the machine
                start = time.monotonic()
                scored = score_process.run(score.load_tests(tests_source), tests_source, execution.export,
                                           status="ok", reason="", settings=score_process.Settings(),
                                           execution=settings, figures={})
                isolated.append(time.monotonic() - start)
                isolated_rss.append(scored.process["peak_rss_mb"])
                isolated_totals.append(scored.result["total"])
                inproc.append(in_process())
            worker.stdin.close()
            worker.wait(timeout=60)
        finally:
            execute.remove_workdir(execution)
    result = {
        "lab": LAB, "submission": "solution (trained models included)", "repeat": args.repeat,
        "phase1_seconds": round(phase1, 1),
        "in_process_cold_seconds": round(inproc[0]["seconds"], 2),
        "in_process_warm_seconds": [round(r["seconds"], 2) for r in inproc[1:]],
        "in_process_warm_seconds_median": round(statistics.median(r["seconds"] for r in inproc[1:]), 2),
        "in_process_peak_rss_mb": inproc[-1]["peak_rss_mb"],
        "isolated_seconds": [round(s, 2) for s in isolated],
        "isolated_seconds_median": round(statistics.median(isolated), 2),
        "isolated_peak_rss_mb_max": max(isolated_rss),
        "protections": scored.process["protections"],
        "totals": {"isolated": isolated_totals, "in_process": [r["total"] for r in inproc]},
    }
    result["extra_seconds_per_submission_vs_warm"] = round(
        result["isolated_seconds_median"] - result["in_process_warm_seconds_median"], 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
