"""Command line: a thin layer over the library functions."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


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
    from convlab import calibration

    root = Path(args.root)
    out = root / "docs" / "calibration" / f"{args.lab}.json"
    master = root / "assignments" / args.lab / f"{args.lab}.ipynb"
    if not args.report_only:
        calibration.run(args.lab, master, out, _seeds(args.seeds), args.model or None)
    runs = json.loads(out.read_text())["runs"]
    if args.write:
        chosen = calibration.write(args.lab, runs, Path(calibration.__file__).with_name(
            "thresholds.json"), root / "docs" / "calibration.md")
    else:
        chosen = calibration.thresholds(args.lab, runs)
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


def main(argv: list[str] | None = None) -> int:
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

    args = parser.parse_args(argv)
    from convlab import datasets

    datasets.absolutize_env()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
