"""Grade an outside scenario corpus (``tests/fixtures/<lab>/outside.yml``) through ``otter run``.

The outside corpus is written from the labs' text alone, in the format of ``scenarios.yml``
(:mod:`convlab.corpus`), and is not part of the test suite: its point is to find where the
hidden checks disagree with the lab text. Each case is graded exactly as the end-to-end test
grades a scenario (:func:`convlab.corpus.grade`: the submission made from the solution, the
committed autograder zip, the real ``otter run``), one submission at a time, and the script
prints a table of every question that was expected to lose points or did: case, question,
expected, got, agree, and the grader's message. Results are also appended, one JSON line per
case, to ``--log`` as they arrive, so an interrupted run keeps what it graded.

    python tools/grade_outside.py tests/fixtures/lab6_nin/outside.yml [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from convlab import build, corpus
from convlab.grading import execute

ROOT = Path(__file__).resolve().parents[1]


def grade_case(scenario: corpus.Scenario, *, lab: str, work: Path) -> dict[str, Any]:
    """Grade one case; return its rows (question, expected, got, possible, message) or its error."""
    started = time.monotonic()
    try:
        results = corpus.grade(scenario, root=ROOT, lab=lab, fixtures=ROOT / "tests" / "fixtures" / lab,
                               work=work, env=execute.thread_env(execute.cores()))
    except Exception as error:  # a case that cannot be graded is reported, not fatal
        return {"case": scenario.name, "error": f"{type(error).__name__}: {error}"[-2000:],
                "seconds": round(time.monotonic() - started)}
    texts = corpus.outputs(results)
    rows = []
    for question, (score, possible) in build.scores(results).items():
        expected = 0.0 if scenario.all_zero else scenario.expected.get(question, possible)
        rows.append({"question": question, "expected": expected, "got": score, "possible": possible,
                     "message": texts.get(question, "").strip()})
    unknown = sorted(set(scenario.expected) - {r["question"] for r in rows})
    return {"case": scenario.name, "rows": rows, "unknown": unknown,
            "seconds": round(time.monotonic() - started)}


def gist(output: str) -> str:
    """The informative part of otter's output for a question: the lines that say what was expected
    (the checks' messages say "ожидается"), else its last non-empty line."""
    lines = [" ".join(line.split()) for line in output.splitlines() if line.strip()]
    said = [line for line in lines if "ожида" in line]
    return " | ".join(dict.fromkeys(said)) if said else (lines[-1] if lines else "")


def table(graded: list[dict[str, Any]], width: int = 160) -> str:
    """Rows where a point was expected to be lost or was lost, one line each (message shortened)."""
    lines = [f"{'case':34} {'question':16} {'exp':>6} {'got':>6}  agree  message"]
    for case in graded:
        if "error" in case:
            lines.append(f"{case['case']:34} {'-':16} {'-':>6} {'-':>6}  ERROR  {case['error'][:width]}")
            continue
        shown = [r for r in case["rows"] if r["expected"] < r["possible"] or r["got"] < r["possible"]]
        if not shown:
            lines.append(f"{case['case']:34} {'(all)':16} {'full':>6} {'full':>6}  yes")
        for r in shown:
            agree = "yes" if abs(r["got"] - r["expected"]) < 1e-6 else "NO"
            message = gist(r["message"])[:width]
            lines.append(f"{case['case']:34} {r['question']:16} {r['expected']:6.3g} {r['got']:6.3g}  "
                         f"{agree:5}  {message}")
        for question in case["unknown"]:
            lines.append(f"{case['case']:34} {question:16} expected for an unknown question")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", type=Path, help="tests/fixtures/<lab>/outside.yml")
    parser.add_argument("--only", nargs="*", default=None, help="grade these cases only")
    parser.add_argument("--log", type=Path, default=None, help="JSON lines, one per graded case")
    parser.add_argument("--keep", type=Path, default=None, help="keep the work folders here")
    args = parser.parse_args(argv)
    lab = args.cases.resolve().parent.name
    scenarios = [s for s in corpus.load(args.cases) if args.only is None or s.name in args.only]
    work = args.keep or Path(tempfile.mkdtemp(prefix=f"outside_{lab}_"))
    graded = []
    for scenario in scenarios:
        case = grade_case(scenario, lab=lab, work=work / scenario.name)
        graded.append(case)
        body = "\n".join(table([case]).splitlines()[1:])
        print(f"{body}  [{case['seconds']} s]", flush=True, file=sys.stderr)
        if args.log:
            with args.log.open("a") as log:
                log.write(json.dumps(case, ensure_ascii=False) + "\n")
        if not args.keep:
            shutil.rmtree(work / scenario.name, ignore_errors=True)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(table(graded))
    return 0


if __name__ == "__main__":
    sys.exit(main())
