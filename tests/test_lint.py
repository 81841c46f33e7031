"""The code base is ruff-clean and type-checks (mypy, configured in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_clean() -> None:
    """Does `ruff check` report nothing on the package, tests, benchmarks, tools and the master
    notebooks (ruff reads *.ipynb itself; %magics and otter markers are understood)?"""
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    result = subprocess.run([ruff, "check", "src", "tests", "benchmarks", "tools", "assignments"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_clean() -> None:
    """Does mypy (``[tool.mypy]`` of pyproject.toml: the whole package; ``grading/`` with every
    function annotated and every body checked) report nothing?"""
    mypy = shutil.which("mypy") or str(Path(sys.executable).with_name("mypy"))
    result = subprocess.run([mypy], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
