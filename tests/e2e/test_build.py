"""The generated trees are what the build makes from the masters, and well-formed."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import nbformat
import pytest

from convlab import build

ROOT = Path(__file__).resolve().parents[2]
LABS = build.discover(ROOT)


@pytest.mark.slow
def test_generated_trees_match_masters(datasets_root: Path) -> None:
    """Does rebuilding every lab reproduce student/, autograder/ and solutions/ exactly
    (with the committed reference models, without training)?"""
    drift = build.build(ROOT, check=True, log=lambda _: None)
    assert drift == [], "\n".join(drift)


@pytest.mark.parametrize("lab", LABS)
def test_student_template_hides_solutions_and_hidden_tests(lab: str) -> None:
    """Does the student notebook show ??? placeholders, and no solution code or hidden test?"""
    student = ROOT / "student" / lab
    nb = nbformat.read(student / f"{lab}.ipynb", as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "???" in code and "# SOLUTION" not in code and "BEGIN SOLUTION" not in code
    assert "BatchNormalization()(x)" not in code  # solution code of tasks 2, 5, 6
    text = "\n".join(c.source for c in nb.cells)
    assert "Type your answer here" not in text and "Make sure you have run all cells" not in text
    for test_file in (student / "tests").glob("*.py"):
        assert "hidden=True" not in test_file.read_text(), test_file.name
    assert not list(student.rglob("*.zip"))


@pytest.mark.parametrize("lab", LABS)
def test_autograder_zip_is_complete(lab: str) -> None:
    """Does the zip hold every test (hidden too), Python 3.11, the package wheel and config?"""
    with zipfile.ZipFile(ROOT / "autograder" / lab / build.zip_name(lab)) as zf:
        names = set(zf.namelist())
        environment = zf.read("environment.yml").decode()
        config = json.loads(zf.read("otter_config.json"))
        hidden = sum(zf.read(n).decode().count("hidden=True") for n in names
                     if n.startswith("tests/"))
        dates = {info.date_time for info in zf.infolist()}
    assert {"run_autograder", "setup.sh", "run_otter.py", f"files/{build.WHEEL}"} <= names
    assert "python=3.11" in environment and f"/autograder/source/files/{build.WHEEL}" in environment
    assert config["assignment_name"] == lab and config["seed_variable"] == "SEED"
    assert hidden > 0
    assert dates == {build.ZIP_DATE}
    student_tests = {p.name for p in (ROOT / "student" / lab / "tests").glob("*.py")}
    assert {n.removeprefix("tests/") for n in names if n.startswith("tests/")} == student_tests


@pytest.mark.parametrize("lab", LABS)
def test_init_cell_does_not_name_the_notebook(lab: str) -> None:
    """Is `grader` created without a notebook name, so renamed submissions grade the same?"""
    nb = nbformat.read(ROOT / "student" / lab / f"{lab}.ipynb", as_version=4)
    inits = [c.source for c in nb.cells if "otter.Notebook(" in c.source]
    assert inits == [s for s in inits if 'otter.Notebook(tests_dir="tests")' in s] and inits
    exports = [c.source for c in nb.cells if "grader.export(" in c.source]
    assert exports and all("pdf=False" in s and "run_tests" not in s for s in exports)
