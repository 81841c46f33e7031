"""Cost of the sandbox's confinement per start: the confined route (mount namespace, own root,
one uid per sandbox, process/disk limits, private /dev/shm) against the former route (no mount
namespace; the grader's user where the sandbox user cannot run its Python), in the same session.

    python benchmarks/sandbox_start.py [--runs N] [--code CODE] [--lab5 N] [--json OUT]

Each run starts this Python in a fresh sandbox (``import numpy``, as every notebook's kernel does
first), alternating the two routes; the median and the 90th percentile wall time per start are
printed (seconds) with the difference. ``--lab5 N`` also runs phase 1 of grading (the sandboxed
notebook run, :func:`convlab.grading.execute.execute`) of the Lab 5 solution submission (its
trained models: nothing retrains) N times by each route, alternating (needs ``CONVLAB_DATASETS``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from convlab.grading import sandbox as sb

ROUTES = {
    "confined": {},
    # as before on a machine whose Python lives under /root: the grader's user, Landlock, no mount
    # namespace, no process or disk limit
    "former": {"confine_reads": False, "allow_root": True, "allow_user_switch": False,
               "max_processes": None, "disk_bytes": None},
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json")
    parser.add_argument("--code", default="import numpy", help="what the sandboxed Python runs")
    parser.add_argument("--lab5", type=int, default=0, help="Lab 5 solution runs per route")
    args = parser.parse_args()
    sb.probe_protections()  # probed once per process, not counted
    base = Path(tempfile.mkdtemp(prefix="convlab-bench-", dir="/tmp"))
    base.chmod(0o711)
    times: dict[str, list[float]] = {name: [] for name in ROUTES}
    try:
        for _ in range(args.runs):
            for name, extra in ROUTES.items():
                workdir = sb.prepare_workdir(base)
                start = time.perf_counter()
                out = sb.run([sys.executable, "-c", args.code], workdir=workdir, env={},
                             limits=sb.Limits(wall_seconds=60, memory_bytes=1 << 30, **extra))
                times[name].append(time.perf_counter() - start)
                assert out.status == "ok", out
                shutil.rmtree(workdir)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    result = {name: {"median_s": round(statistics.median(t), 4),
                     "p90_s": round(sorted(t)[int(0.9 * (len(t) - 1))], 4), "runs": len(t)}
              for name, t in times.items()}
    cost = result["confined"]["median_s"] - result["former"]["median_s"]
    result["confinement_cost_median_s"] = round(cost, 4)
    result["code"] = args.code
    if args.lab5:
        result["lab5_solution_phase1"] = lab5(args.lab5)
    import os

    result["load_average_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


def lab5(runs: int) -> dict:
    """Phase 1 of the Lab 5 solution submission by each route (seconds of the sandboxed run)."""
    import os

    from convlab import corpus
    from convlab.grading import execute, score

    root = Path(__file__).resolve().parents[1]
    lab = "lab5_cnn"
    fixtures = root / "tests" / "fixtures" / lab
    scenario = next(s for s in corpus.load(fixtures / "scenarios.yml") if s.name == "solution")
    scratch = Path(tempfile.mkdtemp(prefix="convlab-bench-lab5-"))
    seconds: dict[str, list[float]] = {name: [] for name in ROUTES}
    cpu: dict[str, list[float]] = {name: [] for name in ROUTES}
    try:
        submission = corpus.make_submission(scenario, root=root, lab=lab, fixtures=fixtures,
                                            dest=scratch / "submission")
        needed = score.needed_names(score.load_tests(root / "autograder" / lab))
        settings = {"wall_seconds": 1200, "memory_bytes": 10 << 30, "cell_timeout": 600,
                    "threads": 1, "datasets": os.environ.get("CONVLAB_DATASETS")}
        for _ in range(runs):
            for name, extra in ROUTES.items():
                keep = {k: v for k, v in extra.items() if k in (
                    "confine_reads", "allow_root", "allow_user_switch", "max_processes", "disk_bytes")}
                start, used = time.perf_counter(), _children_cpu()
                ex = execute.execute(submission, lab, needed, execute.Settings(**settings, **keep))
                seconds[name].append(round(time.perf_counter() - start, 2))
                cpu[name].append(round(_children_cpu() - used, 2))
                execute.remove_workdir(ex)
                assert ex.status == "ok", (name, ex.status, ex.message)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    out = {name: {"seconds": t, "median_s": statistics.median(t), "cpu_seconds": cpu[name],
                  "median_cpu_s": statistics.median(cpu[name])} for name, t in seconds.items()}
    for key in ("median_s", "median_cpu_s"):
        out[f"confinement_cost_{key}"] = round(out["confined"][key] - out["former"][key], 2)
    return out


def _children_cpu() -> float:
    """CPU seconds (user + system) of this process's ended children and their reaped descendants."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    sys.exit(main())
