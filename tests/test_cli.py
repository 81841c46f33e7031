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
