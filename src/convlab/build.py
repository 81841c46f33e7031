"""Build every lab: master notebook -> student template, autograder, executed solution.

The build is an ordered list of single-purpose steps (:data:`STEPS`), each a function of
``(lab, context)``:

1. ``stage``     copy the master and the shared assign config into a scratch tree, with the
                 generated ``requirements.txt`` and this package's wheel (the grading
                 environment installs it);
2. ``assign``    run ``otter assign`` (no test run) with ``???`` as the answer placeholder;
3. ``collect``   normalize and write ``student/<lab>/`` and ``autograder/<lab>/`` (stable zip
                 name, fixed zip timestamps, sequential cell ids) -- deterministic output;
4. ``solve``     execute the solution notebook into ``solutions/<lab>/`` with the reference
                 trained models in ``solutions/<lab>/artifacts/`` (reused when unchanged);
5. ``verify``    grade the solution (notebook + trained models) with ``otter run`` against
                 the autograder zip; anything short of full marks fails the build.

``stage`` must precede ``assign`` (otter reads the staged config); ``solve`` runs the
autograder notebook written by ``collect``; ``verify`` grades what ``solve`` produced.
``check`` mode writes steps 1-3 to a scratch folder and compares, and runs ``solve`` with
training disabled, so a stale reference model fails instead of silently retraining.
"""

from __future__ import annotations

import filecmp
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import yaml

import convlab
from convlab import labs
from convlab.artifacts import files_of
from convlab.grading import files
from convlab.tflog import NATIVE_LOG_LINE, quiet_env

#: Packages the grading kernel needs (otter adds itself); their versions are pyproject.toml's
#: (:func:`pinned`), the one place they are written.
GRADING_PACKAGES = ("tensorflow-cpu", "keras", "numpy", "matplotlib", "scikit-learn", "nbformat", "pyyaml")
WHEEL = f"convlab-{convlab.__version__}-py3-none-any.whl"
#: the student kit's wheel: the same ``convlab`` package, only what the notebook runs
STUDENT_VERSION = f"{convlab.__version__}+student"
STUDENT_WHEEL = f"convlab-{STUDENT_VERSION}-py3-none-any.whl"
#: the modules of the student wheel: setup, offline data, the trained-model cache, public checks.
#: Nothing that computes a graded answer or knows a threshold (checks/, grading/, thresholds.json,
#: build, calibration, corpus, cli) ships to students; tests/test_build_steps.py proves it.
STUDENT_MODULES = ("__init__.py", "datasets.py", "artifacts.py", "public.py")
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
GENERATED = ("student", "autograder", "solutions")


class BuildError(RuntimeError):
    """A build step failed or the generated files drifted from the masters."""


@dataclass
class Context:
    """Where a build reads and writes."""

    root: Path  #: the project (holds assignments/)
    out: Path  #: where student/, autograder/, solutions/ are written
    work: Path  #: scratch space of this build
    check: bool = False  #: drift check: no training, compare instead of overwrite
    log: Callable[[str], None] = print
    notes: list[str] = field(default_factory=list)


def discover(root: Path) -> list[str]:
    """Names of the labs: ``assignments/<lab>/<lab>.ipynb`` (:func:`convlab.labs.discover`)."""
    return labs.discover(root)


# ----------------------------------------------------------------------------- helpers


def project_source() -> Path:
    """The source checkout of this package (for building its wheel)."""
    return Path(__file__).resolve().parents[2]


def pinned(names: tuple[str, ...] | list[str], pyproject: Path | None = None) -> list[str]:
    """The requirement of each of ``names`` as ``pyproject.toml``'s ``dependencies`` pin it (the
    generated ``requirements.txt`` files repeat no version); a name it lacks is an error."""
    path = pyproject if pyproject is not None else project_source() / "pyproject.toml"
    dependencies = tomllib.loads(path.read_text(encoding="utf-8"))["project"]["dependencies"]
    by_name = {}
    for requirement in dependencies:
        name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
        if name is not None:
            by_name[re.sub(r"[-_.]+", "-", name.group(0)).lower()] = requirement.strip()
    missing = [n for n in names if n not in by_name]
    if missing:
        raise BuildError(f"{path}: no dependency {', '.join(missing)}")
    return [by_name[n] for n in names]


def build_wheel(dest: Path) -> Path:
    """Build this package's wheel (reproducible: hatchling fixes timestamps)."""
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(dest)],
                   cwd=project_source(), check=True, capture_output=True)
    return dest / WHEEL


STUDENT_PYPROJECT = """[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "convlab"
version = "{version}"
description = "convlab student kit: lab setup, offline datasets, the trained-model cache, public checks"
requires-python = ">=3.11,<3.12"

[tool.hatch.build.targets.wheel]
packages = ["src/convlab"]
"""


def build_student_wheel(dest: Path, work: Path) -> Path:
    """Build the student kit's wheel (:data:`STUDENT_MODULES` only) with hatchling."""
    source = work / "student-wheel"
    shutil.rmtree(source, ignore_errors=True)
    package = source / "src" / "convlab"
    package.mkdir(parents=True)
    for module in STUDENT_MODULES:
        shutil.copy(project_source() / "src" / "convlab" / module, package / module)
    (source / "pyproject.toml").write_text(STUDENT_PYPROJECT.format(version=STUDENT_VERSION))
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(dest)],
                   cwd=source, check=True, capture_output=True)
    return dest / STUDENT_WHEEL


#: otter's English boilerplate and the Russian text students see instead.
RUSSIAN_TEXT = {
    "_Type your answer here, replacing this text._": "_Впишите ответ здесь вместо этого текста._",
    "## Submission\n\nMake sure you have run all cells in your notebook in order before running "
    "the cell below, so that all images/graphs appear in the output. The cell below will generate "
    "a zip file for you to submit. **Please save before exporting!**":
        "## Сдача работы\n\nПеред сдачей выполните все ячейки блокнота по порядку, чтобы в нём "
        "были все результаты и графики.",
    "# Save your notebook first, then run this cell to export your submission.":
        "# Сначала сохраните блокнот, затем выполните эту ячейку: она создаст архив для сдачи.",
}




def without_native_logs(outputs: list[Any]) -> list[Any]:
    """``outputs`` without TensorFlow's native log lines on stderr (they carry timestamps and
    process ids, and say nothing to a student)."""
    kept = []
    for output in outputs:
        if output.get("output_type") == "stream" and output.get("name") == "stderr":
            text = "".join(line for line in str(output.get("text", "")).splitlines(keepends=True)
                           if not NATIVE_LOG_LINE.match(line))
            if not text:
                continue
            output["text"] = text
        kept.append(output)
    return kept


def normalize_notebook(path: Path, *, keep_outputs: bool, source_name: str) -> None:
    """Sequential cell ids, no execution timestamps, minimal notebook metadata,
    Russian instead of otter's English boilerplate, no native log lines in outputs."""
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.outputs = without_native_logs(cell.outputs)
        for english, russian in RUSSIAN_TEXT.items():
            cell.source = cell.source.replace(english, russian)
        cell["id"] = f"cell-{index:03d}"
        cell.metadata.pop("execution", None)
        cell.metadata.pop("collapsed", None)
        if cell.cell_type == "code" and not keep_outputs:
            cell.outputs = []
            cell.execution_count = None
    metadata = {key: nb.metadata[key] for key in ("kernelspec", "otter") if key in nb.metadata}
    metadata["language_info"] = {"name": "python"}
    metadata["convlab"] = {"generated_from": source_name,
                           "note": "generated by `convlab build`; edit the master instead"}
    nb.metadata = metadata
    nbformat.write(nb, path)


def repack_zip(source: Path, dest: Path) -> None:
    """Rewrite a zip with sorted entries and fixed timestamps (byte-identical rebuilds)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as new:
        for name in sorted(old.namelist()):
            if name.endswith("/"):
                continue
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.external_attr = (0o755 if name in ("run_autograder", "setup.sh") else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            new.writestr(info, old.read(name))


def zip_name(lab: str) -> str:
    return f"{lab}-autograder.zip"


def _tree_diff(expected: Path, actual: Path) -> list[str]:
    """Relative paths that differ between two trees (missing on either side or changed)."""
    drift = []
    left = {p.relative_to(expected) for p in expected.rglob("*") if p.is_file()}
    right = {p.relative_to(actual) for p in actual.rglob("*") if p.is_file()} if actual.exists() else set()
    for rel in sorted(left | right):
        if rel not in right:
            drift.append(f"missing in repo: {rel}")
        elif rel not in left:
            drift.append(f"not generated any more: {rel}")
        elif not filecmp.cmp(expected / rel, actual / rel, shallow=False):
            drift.append(f"changed: {rel}")
    return drift


# ----------------------------------------------------------------------------- steps


def stage(lab: str, ctx: Context) -> None:
    """Copy the master and the shared config into ``work/assignments``, add requirements
    and the wheel, and register the wheel as an autograder file."""
    src = ctx.root / "assignments"
    dest = ctx.work / "assignments"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(src / lab, dest / lab, ignore=shutil.ignore_patterns("artifacts", ".*"))
    # the shared config names no requirements file, so a plain `otter assign` of a master works;
    # the build adds the one it writes (first, where otter's docs put it)
    config = {"requirements": "requirements.txt",
              **yaml.safe_load((src / "assign_config.yml").read_text())}
    build_wheel(dest / lab)
    config["autograder_files"] = [*config.get("autograder_files", []), WHEEL]
    requirements = [*pinned(GRADING_PACKAGES), f"/autograder/source/files/{WHEEL}"]
    (dest / lab / "requirements.txt").write_text("\n".join(requirements) + "\n")
    (dest / "assign_config.yml").write_text(yaml.safe_dump(config, sort_keys=False,
                                                           allow_unicode=True))


def assign(lab: str, ctx: Context) -> None:
    """``otter assign --no-run-tests`` with ``???`` prompts instead of otter's ``...``."""
    master = ctx.work / "assignments" / lab / f"{lab}.ipynb"
    dist = ctx.work / "dist" / lab
    shutil.rmtree(dist, ignore_errors=True)
    code = (
        "import sys, otter.assign.solutions as S\n"
        "from otter.assign import main\n"
        "S.BLOCK_PROMPT = '???'\n"
        "S.SUBSTITUTIONS['python'] = [\n"
        "    (S.solution_assignment_regex, lambda m: m.group(1) + ' ???'),\n"
        "    (S.solution_line_regex, lambda m: m.group(1) + '???'),\n"
        "]\n"
        "main(sys.argv[1], sys.argv[2], no_run_tests=True, no_pdfs=True)\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(master), str(dist)],
                            cwd=master.parent, capture_output=True, text=True, env=quiet_env())
    if result.returncode != 0:
        raise BuildError(f"otter assign failed for {lab}:\n{result.stdout}\n{result.stderr}")


STUDENT_README = """# {lab}

Откройте `{lab}.ipynb` в Jupyter. Перед началом установите зависимости:

    pip install -r requirements.txt

Ячейки `grader.check(...)` выполняют быстрые открытые проверки; при оценивании
выполняются дополнительные скрытые проверки. Сдайте zip-архив, который создаёт последняя ячейка.
"""


def collect(lab: str, ctx: Context) -> None:
    """Write normalized ``student/<lab>`` and ``autograder/<lab>`` under ``ctx.out``."""
    dist = ctx.work / "dist" / lab
    for kind in ("student", "autograder"):
        target = ctx.out / kind / lab
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(dist / kind, target, ignore=shutil.ignore_patterns("*.zip", "*.pdf"))
        normalize_notebook(target / f"{lab}.ipynb", keep_outputs=False,
                           source_name=f"assignments/{lab}/{lab}.ipynb")
    zips = sorted((dist / "autograder").glob("*.zip"))
    if len(zips) != 1:
        raise BuildError(f"{lab}: expected one autograder zip, found {[z.name for z in zips]}")
    repack_zip(zips[0], ctx.out / "autograder" / lab / zip_name(lab))
    student = ctx.out / "student" / lab
    build_student_wheel(student, ctx.work)
    (student / "requirements.txt").write_text(
        "\n".join([*pinned(["otter-grader"]), "jupyterlab", *pinned(GRADING_PACKAGES), f"./{STUDENT_WHEEL}"])
        + "\n")
    files.write_text(student / "README.md", STUDENT_README.format(lab=lab))


def _execute(notebook: Path, workdir: Path, env: dict[str, str]) -> None:
    from nbclient import NotebookClient

    nb = nbformat.read(notebook, as_version=4)
    saved = dict(os.environ)
    os.environ.update(quiet_env(env))  # the kernel inherits this environment
    try:
        client = NotebookClient(nb, timeout=7200, kernel_name="python3",
                                resources={"metadata": {"path": str(workdir)}})
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    nbformat.write(nb, notebook)


def solve(lab: str, ctx: Context) -> None:
    """Execute the solution with the reference models; write ``solutions/<lab>``.

    Reference models in ``<root>/solutions/<lab>/artifacts`` are reused when their
    fingerprints still match; otherwise they are trained (never in check mode).
    """
    workdir = ctx.work / "solve" / lab
    shutil.rmtree(workdir, ignore_errors=True)
    autograder = ctx.out / "autograder" / lab
    shutil.copytree(autograder / "tests", workdir / "tests")
    notebook = workdir / f"{lab}.ipynb"
    shutil.copy(autograder / f"{lab}.ipynb", notebook)
    reference = ctx.root / "solutions" / lab / "artifacts"
    if reference.is_dir():
        shutil.copytree(reference, workdir / "artifacts")
    used = workdir / "used-artifacts.log"
    # the kernel runs in workdir, so the notebook's own relative artifacts/ folder is used;
    # _execute sets TensorFlow's log level (tflog.ENV), normalize_notebook drops what it misses
    env = {"CONVLAB_ARTIFACTS_LOG": str(used)}
    if ctx.check:
        env["CONVLAB_NO_TRAIN"] = "1"
    ctx.log(f"  executing the {lab} solution (reference models reused when unchanged)")
    try:
        _execute(notebook, workdir, env)
    except Exception as error:  # nbclient's CellExecutionError carries the traceback text
        raise BuildError(f"{lab}: the solution notebook failed:\n{error}") from error
    keys = sorted(set(used.read_text().split())) if used.is_file() else []
    target = ctx.out / "solutions" / lab
    if ctx.check:
        expected = sorted(p.name.removesuffix(".keras") for p in reference.glob("*.keras"))
        if keys != expected:
            raise BuildError(f"{lab}: reference models used {keys}, committed {expected}")
        return
    shutil.rmtree(target, ignore_errors=True)
    (target / "artifacts").mkdir(parents=True)
    manifest = json.loads((workdir / "artifacts" / "manifest.json").read_text())
    for key in keys:  # the model, its history and the memos of its evaluate/predict calls
        for path in files_of(workdir / "artifacts", key):
            shutil.copy(path, target / "artifacts")
    files.write_text(target / "artifacts" / "manifest.json",
                     json.dumps({k: manifest[k] for k in keys}, indent=1, sort_keys=True))
    shutil.copy(notebook, target / f"{lab}.ipynb")
    normalize_notebook(target / f"{lab}.ipynb", keep_outputs=True,
                       source_name=f"assignments/{lab}/{lab}.ipynb")


def submission_zip(notebook: Path, artifacts: Path | None, dest: Path) -> Path:
    """A submission zip as ``grader.export()`` makes it: the notebook and ``artifacts/``."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(notebook, notebook.name)
        if artifacts is not None and artifacts.is_dir():
            for path in sorted(artifacts.rglob("*")):
                if path.is_file():
                    zf.write(path, f"artifacts/{path.relative_to(artifacts)}")
    return dest


def otter_run(submission: Path, autograder_zip: Path, output: Path,
              timeout: float | None = None, env: dict[str, str] | None = None) -> dict:
    """Grade one submission with the real ``otter run`` CLI; return its results.json."""
    output.mkdir(parents=True, exist_ok=True)
    otter = Path(sys.executable).with_name("otter")
    result = subprocess.run(
        [str(otter), "run", "-a", str(autograder_zip), "-o", str(output), "--no-logo",
         str(submission)], capture_output=True, text=True, timeout=timeout,
        env=quiet_env({**os.environ, **(env or {})}))
    files.write_text(output / "otter-run.log", result.stdout + "\n" + result.stderr)
    results = output / "results.json"
    if result.returncode != 0 or not results.is_file():
        raise BuildError(f"otter run failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return json.loads(results.read_text())


def scores(results: dict) -> dict[str, tuple[float, float]]:
    """Question -> (score, max score) from an otter results.json."""
    return {t["name"]: (float(t["score"]), float(t["max_score"]))
            for t in results["tests"] if "max_score" in t}


def verify(lab: str, ctx: Context) -> None:
    """The solution with its trained models gets full marks through ``otter run``."""
    if ctx.check:
        return
    solution = ctx.out / "solutions" / lab
    workdir = ctx.work / "verify" / lab
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    submission = submission_zip(solution / f"{lab}.ipynb", solution / "artifacts",
                                workdir / "submission.zip")
    ctx.log(f"  grading the {lab} solution with otter run")
    results = otter_run(submission, ctx.out / "autograder" / lab / zip_name(lab), workdir / "out")
    lost = {q: s for q, s in scores(results).items() if s[0] < s[1]}
    if lost:
        raise BuildError(f"{lab}: the solution lost points: {lost}")


STEPS: list[Callable[[str, Context], None]] = [stage, assign, collect, solve, verify]


def build(root: Path, labs: list[str] | None = None, *, check: bool = False,
          verify_solution: bool = True, log: Callable[[str], None] = print) -> list[str]:
    """Run :data:`STEPS` for each lab. In ``check`` mode, return the drifted files."""
    root = root.resolve()
    labs = labs or discover(root)
    drift: list[str] = []
    with tempfile.TemporaryDirectory(prefix="convlab-build-") as scratch:
        work = Path(scratch)
        out = work / "out" if check else root
        for lab in labs:
            ctx = Context(root=root, out=out, work=work, check=check, log=log)
            log(f"{lab}:")
            for step in STEPS:
                if step is verify and not verify_solution:
                    continue
                log(f"  {step.__name__}")
                step(lab, ctx)
            if check:
                for kind in ("student", "autograder"):
                    drift += [f"{kind}/{lab}: {d}"
                              for d in _tree_diff(out / kind / lab, root / kind / lab)]
                drift += _solution_drift(lab, root, out)
    return drift


def _sources(path: Path) -> list[tuple[str, str]]:
    nb = nbformat.read(path, as_version=4)
    return [(c.cell_type, c.source) for c in nb.cells]


def _solution_drift(lab: str, root: Path, out: Path) -> list[str]:
    """The committed solution was executed from the current autograder notebook."""
    committed = root / "solutions" / lab / f"{lab}.ipynb"
    if not committed.is_file():
        return [f"solutions/{lab}: missing {committed.name}"]
    current = out / "autograder" / lab / f"{lab}.ipynb"
    if _sources(committed) != _sources(current):
        return [f"solutions/{lab}/{lab}.ipynb: cells differ from the master (rebuild)"]
    return []

