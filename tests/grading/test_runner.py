"""The phase-1 runner (``grading/runner.py``), run by path as the sandbox runs it, outside the sandbox."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat

from convlab.grading import execute, runner


def _run(workdir: Path, cells: list[str], cell_budget: int = 1000, total_budget: int = 10_000
         ) -> tuple[subprocess.CompletedProcess, nbformat.NotebookNode]:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbformat.write(nb, workdir / "in.ipynb")
    proc = subprocess.run([sys.executable, "-P", str(execute.RUNNER), "in.ipynb", "out.ipynb", "60",
                           str(cell_budget), str(total_budget), "[cut]", "5"],
                          cwd=workdir, capture_output=True, text=True, timeout=300)
    return proc, nbformat.read(workdir / "out.ipynb", as_version=4)


def test_runner_bounds_outputs_and_ignores_the_working_directory(tmp_path: Path) -> None:
    """Does the runner, run by path, cut a cell's outputs past its budget with one note, keep a
    later cell's error, and import nothing from the submission's working directory (a planted
    ``nbformat.py`` there must not load: ``-P``)?"""
    (tmp_path / "nbformat.py").write_text("raise SystemExit('planted module imported')\n")
    proc, out = _run(tmp_path, ["for i in range(500):\n    print('x' * 10)", "print('ok')", "1/0"])
    assert proc.returncode == 0, proc.stderr
    first = out.cells[0].outputs
    assert first[-1]["text"] == "[cut]" and sum(len(o.get("text", "")) for o in first[:-1]) <= 1000
    assert out.cells[1].outputs[0]["text"] == "ok\n"
    assert out.cells[2].outputs[0]["ename"] == "ZeroDivisionError"


def test_runner_is_a_kernel_module_and_sizes_outputs() -> None:
    """Is the runner readable by the kernel's sandbox, and does it count an output's characters?"""
    assert "grading/runner.py" in execute.KERNEL_MODULES and execute.RUNNER.name == "runner.py"
    assert execute.KERNEL_KILLED == runner.KERNEL_KILLED
    assert runner.size({"output_type": "stream", "text": "abc"}) == 3
    assert runner.size({"output_type": "error", "traceback": ["ab", "c"], "evalue": "de"}) == 5
    assert runner.size({"output_type": "display_data", "data": {"text/plain": "abcd"}}) == 4
