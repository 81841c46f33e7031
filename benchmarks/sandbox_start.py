"""Cost of the sandbox's confinement per start: the confined route (mount namespace, own root,
one uid per sandbox, process/disk limits, private /dev/shm) against the former route (no mount
namespace; the grader's user where the sandbox user cannot run its Python), in the same session.

    python benchmarks/sandbox_start.py [--runs N] [--json OUT]

Each run starts this Python in a fresh sandbox (``import numpy``, as every notebook's kernel does
first), alternating the two routes; the median and the 90th percentile wall time per start are
printed (seconds) with the difference.
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
    "former": {"confine_reads": False, "allow_root": True, "max_processes": None, "disk_bytes": None},
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json")
    parser.add_argument("--code", default="import numpy", help="what the sandboxed Python runs")
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
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
