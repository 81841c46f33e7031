"""Command line: a thin layer over the library functions."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from convlab.grading import execute


def _seeds(text: str) -> list[int]:
    if "-" in text:
        low, high = text.split("-")
        return list(range(int(low), int(high) + 1))
    return [int(s) for s in text.split(",")]


def cmd_build(args: argparse.Namespace) -> int:
    from convlab.build import BuildError, build

    try:
        drift = build(Path(args.root), args.lab or None, check=args.check,
                      verify_solution=not args.no_verify)
    except BuildError as error:
        print(f"build failed: {error}", file=sys.stderr)
        return 1
    if drift:
        print("generated files drifted from the masters (run `convlab build`):", file=sys.stderr)
        for line in drift:
            print(f"  {line}", file=sys.stderr)
        return 1
    print("up to date" if args.check else "built")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from convlab import calibration, labs

    root = Path(args.root)
    try:
        lab = labs.load(root, args.lab)
    except labs.LabError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = root / "docs" / "calibration" / f"{args.lab}.json"
    if not args.report_only:
        calibration.run(lab, out, _seeds(args.seeds), args.model or None)
    runs = json.loads(out.read_text())["runs"]
    if args.write:
        chosen = calibration.write(lab, runs, Path(calibration.__file__).with_name(
            "thresholds.json"), root / "docs" / "calibration.md")
    else:
        chosen = calibration.thresholds(lab, runs)
    print(json.dumps(chosen, indent=1))
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from convlab import datasets

    root = datasets.datasets_root()
    if root is None:
        print(f"{datasets.ENV_VAR} is not set: keras will download the datasets", file=sys.stderr)
        return 1
    for name in datasets.LOADERS:
        (x_train, _), (x_test, _) = datasets.load(name)
        print(f"{name}: train {x_train.shape} {x_train.dtype}, test {x_test.shape}; checksums ok")
    return 0


def grade_settings(args: argparse.Namespace) -> execute.Settings:
    """The ``execute.Settings`` of ``convlab grade``: the limits given as options, and
    ``execute.Settings``' own defaults for those left out (the one place they are written)."""
    from convlab.grading import execute

    given: dict[str, Any] = {"allow_root": args.allow_root}
    if args.timeout is not None:
        given["wall_seconds"] = args.timeout
    if args.memory is not None:
        given["memory_bytes"] = args.memory << 20 if args.memory else None
    if args.cell_timeout is not None:
        given["cell_timeout"] = args.cell_timeout
    return execute.Settings(**given)


def cmd_grade(args: argparse.Namespace) -> int:
    from convlab import labs
    from convlab.grading import batch, execute, grade, manual, sandbox

    root = Path(args.root).resolve()
    tests = Path(args.autograder) if args.autograder else root / "autograder" / args.lab
    settings = grade_settings(args)
    template = Path(args.template) if args.template else root / "student" / args.lab / f"{args.lab}.ipynb"
    master = root / "assignments" / args.lab / f"{args.lab}.ipynb"
    setup = manual.Setup(master=master, rubric=master.with_name("rubric.yml"),
                         template=template.resolve() if template.is_file() else None)
    if master.is_file():  # a broken rubric fails now, not after the grading
        try:
            manual.load_rubric(master.with_name("rubric.yml"), manual.manual_questions(master))
        except manual.ManualError as error:
            print(f"rubric: {error}", file=sys.stderr)
            return 2
    figures = ahead = None  # without the lab's folder: grade.FEEDBACK_FIGURES, every prediction
    if master.is_file():
        try:
            lab = labs.load(root, args.lab)
        except labs.LabError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        figures, ahead = lab.feedback_figures, lab.predict_ahead
    config = grade.Config(lab=args.lab, tests=tests.resolve(), settings=settings,
                          template=template.resolve() if template.is_file() else None,
                          manual=setup if master.is_file() else None, figures=figures,
                          predict_ahead=ahead)
    problem = sandbox.confinement_problem()
    if problem and not args.allow_root:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if problem:
        print("WARNING: --allow-root: notebooks run UNCONFINED" + (" AS ROOT" if os.geteuid() == 0 else "")
              + f": they can read (and, without Landlock, write) the grader's files. {problem}",
              file=sys.stderr)
    engine = None
    if args.dask:
        try:
            import distributed  # noqa: F401
        except ImportError:
            print("--dask needs Dask distributed: pip install 'convlab[dask]'", file=sys.stderr)
            return 2
        engine = batch.DaskEngine(args.dask)
    results = grade.grade_folder(config, Path(args.submissions).resolve(), Path(args.output).resolve(),
                                 workers=args.workers or execute.cores(), regrade=args.regrade,
                                 hide_hidden=args.hide_hidden, engine=engine)
    for result in results:
        print(f"{result['student_id']}: {result['status']} {result.get('total', 0):g}"
              f"/{result.get('max_total', 0):g}")
    if manual.load_questions(Path(args.output)):
        print(f"manual questions: convlab review {args.output}")
    flags = json.loads((Path(args.output) / "report.json").read_text())["integrity"]
    print(f"gradebook: {Path(args.output) / 'gradebook.csv'}; class report: "
          f"{Path(args.output) / 'report.html'} ({len(flags['weights'])} weight, "
          f"{len(flags.get('predictions', []))} prediction and {len(flags['answers'])} answer "
          "integrity flag(s))")
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    from convlab.grading import manual

    out = Path(args.output)
    if not manual.load_questions(out):
        print(f"{out}: no manual questions extracted (run `convlab grade` first)", file=sys.stderr)
        return 1
    if args.export:
        rows = manual.merge(out)["questions"]
        for row in rows:
            print(f"{row['question']}: {row['graded']}/{row['answers']} graded")
        print(f"merged into {out / 'gradebook.csv'}, feedback/, gradescope/ and report.html")
        return 0
    from convlab.review import serve

    # an option left out keeps serve()'s default
    where = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    serve(out, names=args.names, grader=args.grader, **where)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from convlab.grading import manual

    out = Path(args.output)
    dest = Path(args.to) if args.to else out / f"{args.lms}.csv"
    try:
        count = manual.export_lms(out, args.lms, Path(args.mapping), dest, item=args.item,
                                  id_column=args.id_column)
    except manual.ManualError as error:
        print(f"export failed: {error}", file=sys.stderr)
        return 2
    print(f"{args.lms}: {count} students -> {dest}")
    left = sum(row["answers"] - row["graded"] for row in manual.progress(out))
    if left:
        print(f"warning: {left} manual answer(s) not graded yet, counted as 0 (convlab review {out})",
              file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``convlab`` (its defaults are the called functions' own)."""
    parser = argparse.ArgumentParser(prog="convlab", description=__doc__)
    parser.add_argument("--root", default=".", help="project folder holding assignments/")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("build", help="build student/, autograder/, solutions/ from the masters")
    p.add_argument("--lab", action="append", help="only this lab (repeatable)")
    p.add_argument("--check", action="store_true",
                   help="fail if the committed generated files differ from a rebuild")
    p.add_argument("--no-verify", action="store_true",
                   help="skip grading the solution with otter run")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("calibrate", help="train reference models over seeds; print thresholds")
    p.add_argument("lab")
    p.add_argument("--seeds", default="0-4")
    p.add_argument("--model", action="append")
    p.add_argument("--report-only", action="store_true", help="use the recorded runs only")
    p.add_argument("--write", action="store_true",
                   help="store thresholds in the package and docs/calibration.md")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("data", help="verify and summarize the offline datasets")
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("grade", help="grade a folder of submissions (sandboxed, two-phase)")
    p.add_argument("lab")
    p.add_argument("submissions", help="folder of *.ipynb / *.zip submissions")
    p.add_argument("-o", "--output", required=True, help="output folder (gradebook, results, feedback)")
    p.add_argument("--workers", type=int, default=None,
                   help="submissions graded at once (processes here, or the LocalCluster's workers; "
                        "default: one per core, each notebook's TensorFlow limited to its share)")
    p.add_argument("--dask", metavar="ADDRESS",
                   help="grade on Dask: 'local' (a LocalCluster of --workers processes) or a scheduler "
                        "address such as tcp://host:8786; the submissions and the output folder must be "
                        "on a filesystem the workers share (needs the dask extra)")
    p.add_argument("--regrade", action="store_true", help="grade again submissions with a result")
    # no defaults here: execute.Settings' (grade_settings)
    p.add_argument("--timeout", type=float,
                   help="wall-clock seconds per submission (default: execute.Settings.wall_seconds)")
    p.add_argument("--memory", type=int,
                   help="memory limit per submission, MB (0: none; default: execute.Settings.memory_bytes)")
    p.add_argument("--cell-timeout", type=float,
                   help="seconds per notebook cell (default: execute.Settings.cell_timeout)")
    p.add_argument("--allow-root", action="store_true",
                   help="where this machine cannot confine notebooks (unprivileged user, read "
                        "confinement), run them unconfined, as root when the grader is root; without "
                        "it such a machine refuses to grade (see docs/maintainers.md, 'Sandbox')")
    p.add_argument("--autograder", help="autograder folder or zip (default autograder/<lab>)")
    p.add_argument("--template", help="student template notebook whose unchanged cells are not answers "
                   "(default student/<lab>/<lab>.ipynb when it exists)")
    p.add_argument("--hide-hidden", action="store_true",
                   help="feedback says only that a hidden check failed, not why")
    p.set_defaults(func=cmd_grade)

    p = sub.add_parser("review", help="grade the manual questions in a local web page")
    p.add_argument("output", help="output folder of convlab grade")
    p.add_argument("--port", type=int, help="port (0: any free one; default: review.serve's)")
    p.add_argument("--host", help="address to listen on (default: review.serve's, this machine only)")
    p.add_argument("--names", action="store_true", help="show student ids instead of anonymous numbers")
    p.add_argument("--grader", default="", help="your name, recorded with each grade")
    p.add_argument("--export", action="store_true",
                   help="no page: merge the manual grades into the gradebook, feedback, results.json, report")
    p.set_defaults(func=cmd_review)

    p = sub.add_parser("export", help="write the gradebook as a Moodle or Canvas grade-import CSV")
    p.add_argument("output", help="output folder of convlab grade")
    p.add_argument("--lms", required=True, choices=["moodle", "canvas"])
    p.add_argument("--mapping", required=True,
                   help="CSV with columns file,identifier[,name,sis_user_id,sis_login_id,section]: "
                        "submission file name (or student id) -> LMS identifier")
    p.add_argument("--to", help="CSV to write (default <output>/<lms>.csv)")
    p.add_argument("--item", help="grade item / assignment column name (default: the lab's name; "
                   "Canvas: 'Name (assignment id)' updates that assignment)")
    p.add_argument("--id-column", default="Email address",
                   help="Moodle: header of the identifier column (default 'Email address')")
    p.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from convlab import datasets, tflog

    datasets.absolutize_env()
    # every process this command starts (grading workers, kernels, otter) inherits both: no
    # TensorFlow log lines between the progress lines, whatever the caller's shell sets
    os.environ.update(tflog.ENV)
    if args.command not in ("build", "grade"):
        return args.func(args)
    with tflog.filtered_stderr():  # the lines ENV cannot stop (see tflog), for the long commands
        return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
