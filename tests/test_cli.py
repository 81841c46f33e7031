"""The installed `convlab` command works."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _convlab(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("convlab")
    return subprocess.run([str(exe), *args], capture_output=True, text=True)


def test_help_lists_commands() -> None:
    """Does `convlab --help` list the build, calibrate, data and grade commands?"""
    result = _convlab("--help")
    assert result.returncode == 0
    for command in ("build", "calibrate", "data", "grade"):
        assert command in result.stdout


def test_data_command_verifies_datasets(datasets_root: Path) -> None:
    """Does `convlab data` load and verify both datasets?"""
    result = _convlab("data")
    assert result.returncode == 0, result.stderr
    assert "mnist: train (60000, 28, 28)" in result.stdout and "checksums ok" in result.stdout


def test_calibration_report(datasets_root: Path) -> None:
    """Does `convlab calibrate --report-only` turn the committed runs into thresholds?"""
    root = Path(__file__).resolve().parents[1]
    if not (root / "docs" / "calibration" / "lab5_cnn.json").is_file():
        pytest.skip("no calibration runs committed")
    result = _convlab("--root", str(root), "calibrate", "lab5_cnn", "--report-only")
    assert result.returncode == 0, result.stderr
    assert '"model4"' in result.stdout


def test_grade_and_review_defaults_are_the_called_functions_own(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    """Does `convlab grade` leave every limit it is not given at execute.Settings' default (the CLI
    retypes none), turn the given ones into Settings (--memory 0: none), and does `convlab review`
    leave host and port to review.serve?"""
    import inspect

    from convlab import cli
    from convlab.grading import execute, manual
    from convlab.review import serve

    parse = cli.build_parser().parse_args
    assert cli.grade_settings(parse(["grade", "lab5_cnn", "subs", "-o", "out"])) == execute.Settings()
    given = cli.grade_settings(parse(["grade", "lab5_cnn", "subs", "-o", "out", "--timeout", "5",
                                      "--memory", "0", "--cell-timeout", "2", "--allow-root"]))
    assert given == execute.Settings(wall_seconds=5, memory_bytes=None, cell_timeout=2, allow_root=True)
    megabytes = cli.grade_settings(parse(["grade", "l", "s", "-o", "o", "--memory", "10"]))
    assert megabytes.memory_bytes == 10 << 20

    called: dict = {}
    monkeypatch.setattr(manual, "load_questions", lambda out: {"q": {}})
    monkeypatch.setattr("convlab.review.serve", lambda out, **kwargs: called.update(kwargs))
    assert cli.cmd_review(parse(["review", str(tmp_path)])) == 0
    assert called == {"names": False, "grader": ""}
    defaults = inspect.signature(serve).parameters
    assert cli.cmd_review(parse(["review", str(tmp_path), "--port", "0"])) == 0
    assert called["port"] == 0 and defaults["port"].default != 0
