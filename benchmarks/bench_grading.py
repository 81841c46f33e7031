"""Benchmark batch grading of Lab 5: ``convlab grade`` (route A) against ``otter run`` one by one (route B).

    CONVLAB_DATASETS=../shared/datasets python benchmarks/bench_grading.py [--count 100] [--workers W]
        [--dask [ADDRESS]] [--skip-otter] [--only-fast] [--out benchmarks/results/grading.json]
        [--compare-to REF]

``--compare-to REF`` (a git ref) also runs route A with REF's code (its ``src/`` by ``git archive``,
first on ``PYTHONPATH``) on the same folder, before this checkout's, and stores both with the
ratios (``route_a_before``, ``ratios.a_over_a_before``): the before/after table of one session.

Builds a folder of ``--count`` submissions mixing two corpora, in a fixed mix (printed and stored):

* about 70 % Lab 5 submissions: the scenarios of ``tests/fixtures/lab5_cnn/scenarios.yml``
  (:func:`convlab.corpus.make_submission`, from the generated ``solutions/`` and ``student/``
  trees), cycled in file order, each copy under its own student id. Scenarios that drop trained
  models (``drop_models``: ``model1_trained_at_grading``) train at grade time and would dominate
  the run, so they are left out unless ``--with-training``; every other scenario's models are in
  the zip (the solution's or ``tests/fixtures/lab5_cnn/artifacts``), so nothing trains;
* about 30 % faults and exploits of ``tests/grading/corpus_tiny.py`` (:data:`FAULTS`, in that
  order, cycled: the cheap ones come first, so 30 slots hold each once and the first nine
  twice), re-labeled as Lab 5 submissions (notebook metadata ``otter.assignment_name`` set to
  ``lab5_cnn``, also inside the zips that can be read safely) so that they run in the Lab 5
  batch: endless loops, memory hogs, dying kernels, exploits, corrupt files and zips. They do
  no Lab 5 work, so the score they earn is 0 (``other_lab`` keeps its ``lab6_nin`` label).

The faults are spread evenly among the Lab 5 submissions (student ids ``001_…`` to ``100_…``).

Route A: ``convlab grade lab5_cnn FOLDER -o OUT --workers W`` (``--dask local`` optionally) with
``--timeout`` (wall-clock seconds per submission, default 300: a hang costs that much),
``--memory`` (MB, default 4096) and ``--cell-timeout`` (default 120). Measured: the whole run's
wall time and the peak memory of its whole process tree (grading workers, sandboxes and
kernels), and from ``OUT/results/*.json`` each submission's ``duration_s`` and
``execution.peak_rss_mb`` (the sandboxed notebook's tree) and status.

Route B, the baseline: ``otter run -a autograder/lab5_cnn/lab5_cnn-autograder.zip SUB -o DIR``
for each submission, one after the other, as a grader would script it. ``otter run`` has no
wall-clock limit of its own (the autograder's ``GradingGuard`` plugin limits each cell to 1800 s,
but not the whole run), so each run is killed at ``--timeout`` like ``subprocess.run(timeout=...)``
would, except that the whole process tree goes, the kernel included (the kernel runs in a session
of its own and would outlive a plain ``subprocess.run`` timeout). A hang costs the full limit.
``otter run`` has no memory limit either: the benchmark kills a run whose tree exceeds
``--memory`` (a guard of the benchmark, not of otter: without it the memory hog would take the
machine). Each run gets its own ``TMPDIR`` (``otter run`` unpacks into a temporary folder that a
killed run leaves behind).

Trust: for each route, the submissions scored above what they earn (the scenario's expected total;
0 for the faults and exploits), the exploits among them, and whether a decoy folder standing for
the grader's files (the target of ``write_outside``, where unpickled payloads would leave markers)
came out changed.

Results go to ``--out`` (default ``benchmarks/results/grading.json``) and are printed as a table.
A full run (100 submissions, both routes) takes about 2 hours on a 2-core machine: route A
with 2 workers 50 minutes (``--skip-otter``, ``benchmarks/results/grading_route_a.json``); on
2026-11-26, before the fresh confined scoring process per submission and the stricter checks,
38 minutes for route A and 69 minutes for route B (``benchmarks/results/grading.json``).
``--count 6 --only-fast --out /tmp/grading.json`` is a smoke test of about 5 minutes (both routes).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
from _measure import machine, run_measured

from convlab import build, corpus, datasets
from convlab.grading import batch, score

ROOT = Path(__file__).resolve().parents[1]
LAB = "lab5_cnn"
FIXTURES = ROOT / "tests" / "fixtures" / LAB
sys.path.insert(0, str(ROOT / "tests" / "grading"))
import corpus_tiny  # noqa: E402  (tests/grading/corpus_tiny.py)

LAB5_SHARE = 0.7
#: The fault and exploit scenarios of corpus_tiny, cheap ones first (the fault slots cycle through
#: this list); the last ones cost a limit each (or write 5 GiB under otter run) and are left out
#: by --only-fast. Not used: the honest ones (``honest``, ``keras_honest``) and ``network``.
FAST_FAULTS = ("patch", "write_outside", "hog", "dies", "fake_results", "read_tests", "otter_log_pickle",
               "keras_patched", "corrupt", "syntax_error", "lab_(1)", "Сдача_final", "zip_lying_sizes",
               "zip_too_many", "other_lab", "empty")
SLOW_FAULTS = ("huge_output", "zip_bomb", "slow_cell", "print_forever", "hang")
FAULTS = FAST_FAULTS + SLOW_FAULTS
#: Lab 5 scenarios used by --only-fast.
FAST_LAB5 = ("solution", "blank_template")
MAX_RELABEL_BYTES = 64 << 20  # zips unpacking to more are left as they are (the zip bomb)


# ------------------------------------------------------------------------------- the submissions
def relabel(path: Path) -> bool:
    """Set ``otter.assignment_name`` of the tiny lab's notebooks (bare, or in a readable zip) to
    Lab 5's; return whether anything changed."""
    def convert(data: bytes) -> bytes | None:
        try:
            nb = nbformat.reads(data.decode(), as_version=4)
        except Exception:
            return None
        if nb.metadata.get("otter", {}).get("assignment_name") != corpus_tiny.LAB:
            return None
        nb.metadata["otter"]["assignment_name"] = LAB
        return nbformat.writes(nb).encode()

    if path.suffix == ".ipynb":
        new = convert(path.read_bytes())
        if new is not None:
            path.write_bytes(new)
        return new is not None
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if sum(i.file_size for i in infos) > MAX_RELABEL_BYTES:
                return False
            members = [(i.filename, zf.read(i)) for i in infos]
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    changed = False
    rewritten = []
    for name, data in members:
        new = convert(data) if name.endswith(".ipynb") else None
        changed |= new is not None
        rewritten.append((name, data if new is None else new))
    if changed:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in rewritten:
                zf.writestr(name, data)
    return changed


def plan(count: int, only_fast: bool, with_training: bool) -> tuple[list[str], list[str], list[str]]:
    """The slots (``"lab5"`` or ``"fault"`` each, faults spread evenly), the Lab 5 scenario pool and
    the fault pool."""
    scenarios = corpus.load(FIXTURES / "scenarios.yml")
    if only_fast:
        lab5 = list(FAST_LAB5)
        faults = list(FAST_FAULTS)
        n_lab5 = min(len(lab5), count // 3)
    else:
        lab5 = [s.name for s in scenarios if with_training or not s.drop_models]
        faults = list(FAULTS)
        n_lab5 = round(count * LAB5_SHARE)
    missing = set(faults) - set(corpus_tiny.SCENARIOS)
    if missing:
        raise SystemExit(f"corpus_tiny has no scenarios {sorted(missing)}")
    n_faults = count - n_lab5
    slots = []
    for i in range(count):  # a fault where the running share of faults steps up
        slots.append("fault" if (i + 1) * n_faults // count > i * n_faults // count else "lab5")
    return slots, lab5, faults


def build_folder(work: Path, count: int, only_fast: bool, with_training: bool,
                 decoy: Path) -> tuple[Path, dict[str, dict[str, Any]], dict[str, Any]]:
    """Write the submissions into ``work/submissions``; return it, student id -> what it is, and
    the mix."""
    slots, lab5_pool, fault_pool = plan(count, only_fast, with_training)
    scenarios = {s.name: s for s in corpus.load(FIXTURES / "scenarios.yml")}
    points = {t.name: float(t.possible) for t in score.load_tests(ROOT / "autograder" / LAB)}
    made: dict[str, Path] = {}
    for name in dict.fromkeys(lab5_pool[:slots.count("lab5")]):
        made[name] = corpus.make_submission(scenarios[name], root=ROOT, lab=LAB, fixtures=FIXTURES,
                                            dest=work / "make" / name)
    tiny = work / "tiny"
    ctx = corpus_tiny.Context(outside=decoy)
    wanted = list(dict.fromkeys(fault_pool[:slots.count("fault")]))
    written = corpus_tiny.write_corpus(tiny, ctx, wanted) if wanted else {}
    tiny_files = {batch.student_id(p.name): p for p in tiny.iterdir()}
    relabeled = sorted(name for name in written if relabel(tiny_files[name]))
    folder = work / "submissions"
    folder.mkdir()
    plan_of: dict[str, dict[str, Any]] = {}
    n_lab5 = n_fault = 0
    for i, slot in enumerate(slots, start=1):
        if slot == "lab5":
            name = lab5_pool[n_lab5 % len(lab5_pool)]
            n_lab5 += 1
            source = made[name]
            target = folder / f"{i:03d}_{name}{source.suffix}"
            s = scenarios[name]
            expected = 0.0 if s.all_zero else sum(s.expected.get(q, p) for q, p in points.items())
            entry = {"corpus": "lab5", "scenario": name, "expected_total": expected,
                     "kind": "exploit" if s.otter_log_payload else "lab5"}
        else:
            name = fault_pool[n_fault % len(fault_pool)]
            n_fault += 1
            source = tiny_files[name]
            target = folder / f"{i:03d}_{source.name}"
            entry = {"corpus": "tiny", "scenario": name, "expected_total": 0.0,
                     "kind": corpus_tiny.SCENARIOS[name].kind}
        shutil.copy(source, target)
        sid = batch.student_id(target.name)
        if sid in plan_of:
            raise AssertionError(f"two submissions with the id {sid}")
        plan_of[sid] = {**entry, "file": target.name}
    chosen = list(plan_of.values())
    mix = {"count": count, "lab5": dict(Counter(e["scenario"] for e in chosen if e["corpus"] == "lab5")),
           "faults_and_exploits": dict(Counter(e["scenario"] for e in chosen if e["corpus"] == "tiny")),
           "lab5_left_out": sorted(set(scenarios) - set(lab5_pool)),
           "relabeled_as_lab5": relabeled, "max_total": sum(points.values())}
    return folder, plan_of, mix


# -------------------------------------------------------------------------------------- the trust
def write_decoy(decoy: Path) -> dict[str, str]:
    """(Re)create the folder standing for the grader's files; return its snapshot."""
    shutil.rmtree(decoy, ignore_errors=True)
    (decoy / "tests").mkdir(parents=True)
    (decoy / "tests" / "q1.py").write_text("SCORE = 0\n")
    (decoy / "gradebook.csv").write_text("student_id,total\n")
    return snapshot(decoy)


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))} if folder.exists() else {}


def trust(rows: list[dict[str, Any]], decoy: Path, before: dict[str, str], work: Path) -> dict[str, Any]:
    over = [r for r in rows if (r.get("total") or 0.0) > r["expected_total"] + 1e-6]
    after = snapshot(decoy)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    markers = [str(p.relative_to(work)) for p in (work / "make").rglob(corpus.PWNED_MARKER)]
    for marker in (work / "make").rglob(corpus.PWNED_MARKER):
        marker.unlink()
    right = [r for r in rows if abs((r.get("total") or 0.0) - r["expected_total"]) < 1e-6]
    return {"scored_as_expected": len(right),
            "over_scored": [r["student_id"] for r in over],
            "exploits_with_unearned_points": [r["student_id"] for r in over if r["kind"] == "exploit"],
            "exploits": sum(r["kind"] == "exploit" for r in rows),
            "grader_files_changed": changed, "unpickled_markers": markers}


# ------------------------------------------------------------------------------------- the routes
def distribution(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p90": None, "max": None}
    return {"median": round(float(np.median(values)), 1), "p90": round(float(np.percentile(values, 90)), 1),
            "max": round(float(max(values)), 1)}


def environment(src: Path | None = None) -> dict[str, str]:
    """The grader's environment: this checkout's ``src/`` (or ``src``) first on ``PYTHONPATH``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src or ROOT / "src"), env.get("PYTHONPATH")]))
    return env


def ref_source(ref: str, work: Path) -> Path:
    """``src/`` of the git ref ``ref``, extracted under ``work``."""
    dest = work / f"ref-{ref.replace('/', '_')}"
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "src"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest / "src"


def route_a(folder: Path, out: Path, plan_of: dict[str, dict[str, Any]], args: argparse.Namespace,
            decoy: Path, work: Path, src: Path | None = None) -> dict[str, Any]:
    before = write_decoy(decoy)
    command = [sys.executable, "-m", "convlab", "--root", str(ROOT), "grade", LAB, str(folder),
               "-o", str(out), "--workers", str(args.workers), "--timeout", str(args.timeout),
               "--memory", str(args.memory), "--cell-timeout", str(args.cell_timeout)]
    if args.dask:
        command += ["--dask", args.dask]
    run = run_measured(command, cwd=work, env=environment(src))
    rows = []
    for sid, entry in plan_of.items():
        path = out / "results" / f"{sid}.json"
        result = json.loads(path.read_text()) if path.is_file() else {"status": "missing"}
        rows.append({**entry, "student_id": sid, "status": result.get("status"),
                     "total": result.get("total") or 0.0, "seconds": result.get("duration_s"),
                     "peak_mib": (result.get("execution") or {}).get("peak_rss_mb")})
    shown = {str(ROOT): ".", str(folder): "SUBMISSIONS", str(out): "OUT"}  # no machine paths in the results
    return {"command": " ".join(["python", *(shown.get(part, part) for part in command[1:])]),
            "returncode": run["returncode"],
            "output_tail": run["output"][-1500:] if run["returncode"] else "",
            "seconds": run["seconds"], "peak_mib": run["peak_mib"], "cpu_s": run["cpu_s"],
            "peak_mib_per_worker": round(run["peak_mib"] / args.workers),
            "per_submission_seconds": distribution([r["seconds"] for r in rows if r["seconds"] is not None]),
            "sandbox_peak_mib": distribution([r["peak_mib"] for r in rows if r["peak_mib"] is not None]),
            "statuses": dict(Counter(r["status"] for r in rows)),
            "trust": trust(rows, decoy, before, work), "submissions": rows}


def route_b(folder: Path, out: Path, plan_of: dict[str, dict[str, Any]], args: argparse.Namespace,
            decoy: Path, work: Path) -> dict[str, Any]:
    before = write_decoy(decoy)
    otter = str(Path(sys.executable).with_name("otter"))
    autograder = ROOT / "autograder" / LAB / build.zip_name(LAB)
    files = {s.student_id: s.path for s in batch.discover(folder)}
    rows = []
    start = time.perf_counter()
    for sid, entry in plan_of.items():
        scratch = out / sid
        (scratch / "tmp").mkdir(parents=True)
        env = {**environment(), "TMPDIR": str(scratch / "tmp")}
        run = run_measured([otter, "run", "-a", str(autograder), "-o", str(scratch), "--no-logo",
                            str(files[sid])], cwd=scratch, env=env, timeout=args.timeout,
                           memory_limit_bytes=args.memory << 20 if args.memory else None)
        shutil.rmtree(scratch / "tmp", ignore_errors=True)
        results = scratch / "results.json"
        total = 0.0
        if run["killed"]:
            status = run["killed"]
        elif run["returncode"] != 0 or not results.is_file():
            status = "error"
        else:
            status = "ok"
            total = sum(s for s, _ in build.scores(json.loads(results.read_text())).values())
        rows.append({**entry, "student_id": sid, "status": status, "total": total, "seconds": run["seconds"],
                     "peak_mib": run["peak_mib"]})
        print(f"  otter run {sid}: {status} {total:g} in {run['seconds']} s, {run['peak_mib']} MiB",
              flush=True)
    seconds = round(time.perf_counter() - start, 1)
    peaks = [r["peak_mib"] for r in rows]
    return {"command": f"otter run -a {autograder.relative_to(ROOT)} SUB -o DIR, one by one",
            "seconds": seconds, "peak_mib": max(peaks, default=0),
            "peak_mib_per_worker": max(peaks, default=0),
            "per_submission_seconds": distribution([r["seconds"] for r in rows]),
            "per_submission_peak_mib": distribution(peaks),
            "statuses": dict(Counter(r["status"] for r in rows)),
            "trust": trust(rows, decoy, before, work), "submissions": rows}


# ------------------------------------------------------------------------------------- the report
def table(results: dict[str, Any]) -> str:
    routes = [(f"A: convlab grade ({results['workers']} workers{', dask' if results['dask'] else ''})",
               results["route_a"])]
    if results.get("route_b"):
        routes.append(("B: otter run one by one", results["route_b"]))

    def dist(d: dict[str, Any]) -> str:
        return " / ".join("—" if d[k] is None else f"{d[k]:g}" for k in ("median", "p90", "max"))

    def cells(r: dict[str, Any]) -> list[str]:
        t = r["trust"]
        per_worker = (f"{r['peak_mib_per_worker']} (sandbox {dist(r['sandbox_peak_mib'])})"
                      if "sandbox_peak_mib" in r else f"{r['peak_mib_per_worker']} "
                      f"(per run {dist(r['per_submission_peak_mib'])})")
        return [f"{r['seconds']:g}", dist(r["per_submission_seconds"]), f"{r['peak_mib']}", per_worker,
                ", ".join(f"{k} {v}" for k, v in sorted(r["statuses"].items())),
                f"{t['scored_as_expected']}/{len(r['submissions'])}",
                f"{len(t['exploits_with_unearned_points'])}/{t['exploits']}",
                f"{len(t['over_scored'])}",
                f"{len(t['grader_files_changed'])} changed, {len(t['unpickled_markers'])} markers"]

    labels = ["total wall, s", "per submission, s (median / p90 / max)", "peak memory, whole tree, MiB",
              "peak memory per worker, MiB", "statuses", "scored as expected",
              "exploits with unearned points", "submissions over-scored", "grader's files (decoy)"]
    columns = [cells(r) for _, r in routes]
    lines = ["| | " + " | ".join(name for name, _ in routes) + " |", "|---" * (len(routes) + 1) + "|"]
    lines += ["| " + " | ".join([label, *(c[i] for c in columns)]) + " |" for i, label in enumerate(labels)]
    return "\n".join(lines)


def per_scenario(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``corpus:scenario`` -> expected total, and per route the median seconds, statuses and totals."""
    out: dict[str, dict[str, Any]] = {}
    for key in ("route_a", "route_b"):
        for row in (results.get(key) or {}).get("submissions", []):
            entry = out.setdefault(f"{row['corpus']}:{row['scenario']}",
                                   {"expected": row["expected_total"]})
            route = entry.setdefault(key, {"seconds": [], "statuses": Counter(), "totals": Counter()})
            route["seconds"].append(row["seconds"] or 0.0)
            route["statuses"][row["status"]] += 1
            route["totals"][row["total"]] += 1
    for entry in out.values():
        for key in ("route_a", "route_b"):
            if key in entry:
                route = entry[key]
                entry[key] = {"count": len(route["seconds"]),
                              "median_s": round(statistics.median(route["seconds"]), 1),
                              "statuses": dict(route["statuses"]),
                              "totals": {f"{k:g}": v for k, v in route["totals"].items()}}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100, help="submissions in the folder (default 100)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="route A's workers (default: the CPU count)")
    parser.add_argument("--dask", nargs="?", const="local", metavar="ADDRESS",
                        help="route A on Dask: a LocalCluster (no address) or a scheduler address")
    parser.add_argument("--skip-otter", action="store_true", help="route A only")
    parser.add_argument("--only-fast", action="store_true",
                        help=f"Lab 5 {'/'.join(FAST_LAB5)} and the cheap faults only (smoke test)")
    parser.add_argument("--with-training", action="store_true",
                        help="keep the Lab 5 scenarios that train at grade time")
    parser.add_argument("--timeout", type=float, default=300.0, help="wall-clock seconds per submission")
    parser.add_argument("--memory", type=int, default=4096, help="memory limit per submission, MB")
    parser.add_argument("--cell-timeout", type=float, default=120.0, help="route A's seconds per cell")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "grading.json")
    parser.add_argument("--compare-to", metavar="REF", help="also route A with REF's code, first")
    parser.add_argument("--work", type=Path, help="keep the submissions and outputs here (default: a "
                        "temporary folder, removed)")
    args = parser.parse_args()
    datasets.absolutize_env()
    if datasets.datasets_root() is None:
        sys.exit(f"set {datasets.ENV_VAR} (offline datasets)")
    results: dict[str, Any] = {
        "machine": machine(), "load_average_before": round(os.getloadavg()[0], 1),
        "date": datetime.now().date().isoformat(), "workers": args.workers, "dask": args.dask,
        "settings": {"timeout_s": args.timeout, "memory_mb": args.memory, "cell_timeout_s": args.cell_timeout,
                     "otter_run_limits": "killed at timeout_s (whole tree) or above memory_mb by the "
                                         "benchmark; cells 1800 s by the autograder's GradingGuard"},
    }
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as scratch:
        work = Path(args.work or scratch).resolve()
        work.mkdir(parents=True, exist_ok=True)
        decoy = work / "grader_files"
        write_decoy(decoy)
        folder, plan_of, results["mix"] = build_folder(work, args.count, args.only_fast, args.with_training,
                                                       decoy)
        print("mix:", json.dumps(results["mix"], ensure_ascii=False), flush=True)
        if args.compare_to:
            print(f"route A at {args.compare_to}: convlab grade, {args.workers} workers ...", flush=True)
            results["route_a_before"] = route_a(folder, work / "out-a-before", plan_of, args, decoy, work,
                                                ref_source(args.compare_to, work))
            results["route_a_before"]["ref"] = args.compare_to
            print(f"route A at {args.compare_to}: {results['route_a_before']['seconds']} s", flush=True)
        print(f"route A: convlab grade, {args.workers} workers ...", flush=True)
        results["route_a"] = route_a(folder, work / "out-a", plan_of, args, decoy, work)
        a = results["route_a"]
        print(f"route A: {a['seconds']} s, statuses {a['statuses']}", flush=True)
        if not args.skip_otter:
            print("route B: otter run, one by one ...", flush=True)
            results["route_b"] = route_b(folder, work / "out-b", plan_of, args, decoy, work)
    a, b = results["route_a"], results.get("route_b")
    if b:
        results["ratios"] = {
            "total_time_b_over_a": round(b["seconds"] / a["seconds"], 2),
            "median_per_submission_a_over_b": round(a["per_submission_seconds"]["median"]
                                                    / b["per_submission_seconds"]["median"], 2),
            "peak_mib_per_worker_a_over_b": round(a["peak_mib_per_worker"] / b["peak_mib_per_worker"], 2),
        }
    if before := results.get("route_a_before"):
        results.setdefault("ratios", {}).update({
            "a_over_a_before": round(a["seconds"] / before["seconds"], 2),
            "peak_mib_per_worker_a_over_a_before": round(a["peak_mib_per_worker"]
                                                         / before["peak_mib_per_worker"], 2)})
        print(f"route A at {before['ref']}: {before['seconds']} s, {before['peak_mib_per_worker']} MiB per "
              f"worker; here: {a['seconds']} s ({results['ratios']['a_over_a_before']}x), "
              f"{a['peak_mib_per_worker']} MiB per worker")
    results["per_scenario"] = per_scenario(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    print()
    print(table(results))
    if b:
        r = results["ratios"]
        print(f"\nB / A total time: {r['total_time_b_over_a']}x; per-submission median A / B: "
              f"{r['median_per_submission_a_over_b']}x; peak memory per worker A / B: "
              f"{r['peak_mib_per_worker_a_over_b']}x")
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
