"""Scoring time of one Lab 5 submission at a git ref against this checkout (issue 16).

Runs phase 1 (the solution notebook in the sandbox, trained models included: nothing retrains)
once with this checkout, then scores its export in two warm grader processes, one running
REF's ``src/`` (``git archive``, first on ``PYTHONPATH``) and one running this checkout's: each
scores once to warm up (TensorFlow imported, datasets loaded; reported, not compared), then
both score in ``--rounds`` interleaved rounds, so a busy machine slows both alike. Reports the
seconds of every scoring, the per-round ratios (here / REF) and the ratio of the medians, and
checks that both give the same scores and messages. Writes
``benchmarks/results/predictions_compare.json``. The machine may be loaded by other jobs:
read the ratios, not the seconds.

    CONVLAB_DATASETS=... python benchmarks/bench_predictions.py --compare-to main [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _measure import solution_phase1  # benchmarks/_measure.py

ROOT = Path(__file__).resolve().parents[1]
LAB = "lab5_cnn"

_SCORER = str(Path(__file__).with_name("_warm_scorer.py"))  #: the warm scoring process, run by path


class Scorer:
    """A grader process that scores the export once per :meth:`__call__` (``src``: run that
    ``src/`` folder's convlab instead of this checkout's)."""

    def __init__(self, tests_source: Path, export: Path, env: dict[str, str], src: Path | None) -> None:
        env = dict(env)
        if src is not None:
            env["PYTHONPATH"] = os.pathsep.join([str(src), *filter(None, [env.get("PYTHONPATH")])])
        self.process = subprocess.Popen([sys.executable, _SCORER, str(tests_source), str(export)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def __call__(self) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the scoring process ended")
        return json.loads(line)

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare-to", metavar="REF", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path,
                        default=ROOT / "benchmarks" / "results" / "predictions_compare.json")
    args = parser.parse_args()

    from convlab.grading import execute

    tests_source = ROOT / "autograder" / LAB
    with tempfile.TemporaryDirectory(prefix="bench-predictions-") as tmp:
        src = Path(tmp) / "ref"
        src.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.compare_to, "src"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
        execution, phase1, settings = solution_phase1(ROOT, LAB, Path(tmp))
        env = execute.kernel_env(settings)
        scorers = {"ref": Scorer(tests_source, execution.export, env, src / "src"),
                   "here": Scorer(tests_source, execution.export, env, None)}
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in scorers}
        try:
            warmup = {name: scorer() for name, scorer in scorers.items()}
            for i in range(args.rounds):
                for name, scorer in scorers.items():
                    runs[name].append(scorer())
                    print(f"round {i + 1}: {name}: {runs[name][-1]['seconds']:.1f} s", flush=True)
            for scorer in scorers.values():
                scorer.close()
        finally:
            execute.remove_workdir(execution)
    medians = {name: statistics.median(r["seconds"] for r in done) for name, done in runs.items()}
    outcomes = {(r["total"], r["messages_sha"]) for done in [*runs.values(), list(warmup.values())]
                for r in done}
    result = {
        "lab": LAB, "submission": "solution (trained models included)", "ref": args.compare_to,
        "here": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                               capture_output=True, text=True).stdout.strip(),
        "rounds": args.rounds, "phase1_seconds": round(phase1, 1),
        "warmup_seconds": {name: round(r["seconds"], 2) for name, r in warmup.items()},
        "seconds": {name: [round(r["seconds"], 2) for r in done] for name, done in runs.items()},
        "median_seconds": {name: round(m, 2) for name, m in medians.items()},
        "round_ratios_here_to_ref": [round(h["seconds"] / r["seconds"], 3)
                                     for h, r in zip(runs["here"], runs["ref"], strict=True)],
        "median_ratio_here_to_ref": round(medians["here"] / medians["ref"], 3),
        "same_scores_and_messages": len(outcomes) == 1,
        "outcomes": sorted([total, sha] for total, sha in outcomes),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
