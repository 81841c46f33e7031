"""What an otter user types first, ``otter assign <master> <out>``, works on every master and
writes the student template of ``convlab build`` (modulo what the build adds: ``???`` instead of
otter's ``...`` prompts, Russian boilerplate, cell ids, metadata)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from convlab import build

ROOT = Path(__file__).resolve().parents[1]


def _cells(path: Path) -> list[tuple[str, str]]:
    build.normalize_notebook(path, keep_outputs=False, source_name="master")
    return [(cell.cell_type, cell.source) for cell in nbformat.read(path, as_version=4).cells]


@pytest.mark.parametrize("lab", build.discover(ROOT))
def test_plain_otter_assign_writes_the_build_template(tmp_path: Path, lab: str) -> None:
    """Does ``otter assign`` on a copy of the master succeed without the build's requirements.txt
    and without running (training) the solution, and is its student notebook the build's template
    once otter's ``...`` prompts are read as the build's ``???``?"""
    shutil.copytree(ROOT / "assignments", tmp_path / "assignments",
                    ignore=shutil.ignore_patterns("artifacts", ".*"))
    otter = Path(sys.executable).with_name("otter")
    result = subprocess.run([str(otter), "assign", f"assignments/{lab}/{lab}.ipynb", "out"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)  # no training:
    assert result.returncode == 0, result.stdout + result.stderr  # run_tests: false in the config
    plain = tmp_path / "out" / "student" / f"{lab}.ipynb"
    assert (tmp_path / "out" / "autograder" / f"{lab}.ipynb").is_file()

    ctx = build.Context(root=ROOT, out=tmp_path / "built", work=tmp_path / "work", log=lambda _: None)
    build.stage(lab, ctx)
    build.assign(lab, ctx)
    built = ctx.work / "dist" / lab / "student" / f"{lab}.ipynb"
    expected = [(kind, source.replace("???", "...")) for kind, source in _cells(built)]
    assert _cells(plain) == expected
