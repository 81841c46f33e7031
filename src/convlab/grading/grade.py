"""The two-phase grader: :func:`grade_one` for :func:`convlab.grading.batch.run_batch`, feedback.

``grade_one(config, submission, scratch)`` runs phase 1 (:mod:`convlab.grading.execute`: the
submission's notebook in the sandbox, exporting plain data) then phase 2
(:mod:`convlab.grading.score`: the lab's tests in this trusted process on the loaded data), and
returns the result dict that ``run_batch`` stores. It keeps the executed notebook in
``scratch/executed.ipynb`` and removes the sandbox's working directory.

:func:`grade_folder` grades a folder (the ``convlab grade`` command): the gradebook CSV,
``results/<id>.json``, ``gradescope/<id>/results.json`` and ``feedback/<id>.md`` / ``.html`` / ``.ipynb``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import html
import json
import os
import shutil
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convlab.grading import batch, execute, score

MAX_EXECUTED = 50 << 20


@dataclass(frozen=True, kw_only=True)
class Config:
    """What grading one submission needs (picklable for the batch's worker processes)."""

    lab: str
    tests: Path  #: the trusted autograder folder, its tests folder or the autograder zip
    settings: execute.Settings = field(default_factory=execute.Settings)
    sandbox_base: Path | None = None


def _copy_executed(execution: execute.Execution, dest: Path) -> None:
    """Copy the executed notebook (written by the submission: no links, bounded size)."""
    if execution.executed is None or execution.workdir is None:
        return
    try:
        dirfd = os.open(execution.workdir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            fd = os.open(execution.executed.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dirfd)
        finally:
            os.close(dirfd)
    except OSError:
        return
    with os.fdopen(fd, "rb") as source:
        info = os.fstat(source.fileno())
        if stat.S_ISREG(info.st_mode) and info.st_size <= MAX_EXECUTED:
            dest.write_bytes(source.read(MAX_EXECUTED))


def _preload() -> None:
    """Import what scoring uses *before* any submission runs, so that a kernel that could write
    the grader's files (only without the user switch) cannot change the code that scores it."""
    import importlib

    for module in ("convlab.checks", "keras", "matplotlib.figure", "matplotlib.gridspec",
                   "otter.test_files.exception_test"):
        importlib.import_module(module)


def otter_config(tests: Path) -> dict[str, Any]:
    """The autograder's ``otter_config.json``: in the folder, next to its tests folder, or in the
    autograder zip; ``{}`` when there is none."""
    tests = Path(tests)
    if tests.is_file() and zipfile.is_zipfile(tests):
        with contextlib.suppress(KeyError, ValueError, OSError), zipfile.ZipFile(tests) as zf:
            config = json.loads(zf.read("otter_config.json"))
            return config if isinstance(config, dict) else {}
        return {}
    for folder in (tests, tests.parent):
        with contextlib.suppress(OSError, ValueError):
            config = json.loads((folder / "otter_config.json").read_text())
            return config if isinstance(config, dict) else {}
    return {}


def show_hidden(tests: Path) -> bool:
    """The autograder's ``show_hidden`` setting."""
    return bool(otter_config(tests).get("show_hidden"))


def with_otter_seed(settings: execute.Settings, tests: Path) -> execute.Settings:
    """``settings`` with the autograder's ``seed`` and ``seed_variable`` (as otter seeds cells)."""
    config = otter_config(tests)
    seed, variable = config.get("seed"), config.get("seed_variable")
    if not isinstance(seed, int) or isinstance(seed, bool):
        return settings
    return dataclasses.replace(settings, seed=seed,
                               seed_variable=variable if isinstance(variable, str) else None)


def grade_one(config: Config, submission: batch.Submission, scratch: Path) -> dict[str, Any]:
    """Grade one submission in two phases; the submission's code never runs in this process."""
    tests = score.load_tests(Path(config.tests))  # fresh: scoring records results on them
    _preload()
    needed = score.needed_names(tests)
    settings = config.settings
    if settings.seed is None:  # seed as otter does when the autograder says so
        settings = with_otter_seed(settings, Path(config.tests))
    execution = execute.execute(submission.path, config.lab, needed, settings,
                                base=config.sandbox_base)
    try:
        _copy_executed(execution, Path(scratch) / "executed.ipynb")
        export = None
        if execution.status in ("ok", "timeout", "memory", "crashed"):
            export = score.load_snapshots(execution.export)
        try:
            result = score.score(tests, export, status=execution.status, reason=execution.message)
        finally:
            if export is not None:
                export.close()
    finally:
        execute.remove_workdir(execution)
        with contextlib.suppress(Exception):
            import keras

            keras.backend.clear_session()
    if execution.protections and not execution.protections.get("unprivileged_user"):
        result["warnings"] = ["the notebook ran without the unprivileged sandbox user (the grader's "
                              "Python is not reachable by it): see docs/maintainers.md"]
    result["execution"] = {"seconds": execution.seconds,
                           "peak_rss_mb": round(execution.peak_rss_bytes / 2**20),
                           "protections": execution.protections}
    return result


# ----------------------------------------------------------------------------------- feedback
_STATUS = {
    "ok": "блокнот выполнен",
    "timeout": "выполнение прервано: превышен лимит времени",
    "memory": "выполнение прервано: превышен лимит памяти",
    "crashed": "выполнение завершилось аварийно",
    "invalid-notebook": "файл не является блокнотом Jupyter (или архив пуст / повреждён)",
    "wrong-assignment": "сдан блокнот другого задания",
}


def _points(value: Any) -> str:
    number = float(value or 0)
    return str(int(number)) if number.is_integer() else f"{number:.2f}".rstrip("0")


def feedback_lines(result: dict[str, Any], *, hide_hidden: bool = False) -> list[tuple[str, Any]]:
    """Structured feedback: (kind, data) items rendered by :func:`feedback_markdown` / ``_html``."""
    items: list[tuple[str, Any]] = [
        ("title", f"Результаты проверки: {result.get('student_id', '')}"),
        ("para", f"Статус: {_STATUS.get(result.get('status', ''), result.get('status', ''))}."),
    ]
    if result.get("reason") and result.get("status") in ("invalid-notebook", "wrong-assignment"):
        items.append(("para", str(result["reason"])))
    items.append(("para", f"Итого: {_points(result.get('total'))} из {_points(result.get('max_total'))}."))
    rows = [(q, _points(v["score"]), _points(v["possible"])) for q, v in result.get("questions", {}).items()]
    items.append(("table", rows))
    for question, value in result.get("questions", {}).items():
        failed = [c for c in value["cases"] if not c["passed"]]
        if not failed:
            continue
        messages = []
        for case in failed:
            if case["hidden"] and hide_hidden:
                messages.append(f"{case['name']}: скрытая проверка не пройдена")
            else:
                kind = "скрытая" if case["hidden"] else "открытая"
                messages.append(f"{case['name']} ({kind} проверка, {_points(case['points'])} б.): "
                                f"{case['message']}")
        items.append(("question", (question, messages)))
    return items


def feedback_markdown(result: dict[str, Any], *, hide_hidden: bool = False) -> str:
    """Feedback for one student as Markdown."""
    out: list[str] = []
    for kind, data in feedback_lines(result, hide_hidden=hide_hidden):
        if kind == "title":
            out += [f"# {data}", ""]
        elif kind == "para":
            out += [data, ""]
        elif kind == "table":
            out += ["| задание | баллы | из |", "| --- | --- | --- |"]
            out += [f"| {q} | {s} | {p} |" for q, s, p in data] + [""]
        else:
            question, messages = data
            out += [f"## {question}", ""] + [f"- {m}".replace("\n", "\n  ") for m in messages] + [""]
    return "\n".join(out)


def feedback_html(result: dict[str, Any], *, hide_hidden: bool = False) -> str:
    """Feedback for one student as a standalone HTML page (every student text escaped)."""
    esc = html.escape
    body: list[str] = []
    title = ""
    for kind, data in feedback_lines(result, hide_hidden=hide_hidden):
        if kind == "title":
            title = data
            body.append(f"<h1>{esc(data)}</h1>")
        elif kind == "para":
            body.append(f"<p>{esc(data)}</p>")
        elif kind == "table":
            rows = "".join(f"<tr><td>{esc(q)}</td><td>{esc(s)}</td><td>{esc(p)}</td></tr>"
                           for q, s, p in data)
            body.append(f"<table><tr><th>задание</th><th>баллы</th><th>из</th></tr>{rows}</table>")
        else:
            question, messages = data
            items = "".join(f"<li><pre>{esc(m)}</pre></li>" for m in messages)
            body.append(f"<h2>{esc(question)}</h2><ul>{items}</ul>")
    return (f"<!DOCTYPE html>\n<html lang=\"ru\"><head><meta charset=\"utf-8\"><title>{esc(title)}</title>"
            "</head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_reports(results: list[dict[str, Any]], out: Path, *, hide_hidden: bool = False,
                  show_hidden_gradescope: bool = False) -> None:
    """Per-student Gradescope results.json and feedback under ``out``: Markdown, HTML and the
    executed notebook (``feedback/<id>.ipynb``, when the notebook ran)."""
    for result in results:
        sid = result["student_id"]
        folder = out / "gradescope" / sid
        folder.mkdir(parents=True, exist_ok=True)
        report = score.gradescope(result, show_hidden=show_hidden_gradescope)
        batch.write_atomic(folder / "results.json", json.dumps(report, indent=1, ensure_ascii=False) + "\n")
        (out / "feedback").mkdir(parents=True, exist_ok=True)
        batch.write_atomic(out / "feedback" / f"{sid}.md", feedback_markdown(result, hide_hidden=hide_hidden))
        batch.write_atomic(out / "feedback" / f"{sid}.html", feedback_html(result, hide_hidden=hide_hidden))
        executed = out / "work" / sid / "executed.ipynb"
        if executed.is_file():  # the student's notebook with the outputs of the graded run
            shutil.copyfile(executed, out / "feedback" / f"{sid}.ipynb")


def grade_folder(config: Config, folder: Path, out: Path, *, workers: int = 1, regrade: bool = False,
                 hide_hidden: bool = False, progress: bool = True,
                 engine: batch.DaskEngine | None = None) -> list[dict[str, Any]]:
    """Grade every submission of ``folder``; write the gradebook, results and feedback to ``out``.
    ``engine``: see :func:`convlab.grading.batch.run_batch` (Dask needs ``folder``, ``out`` and
    ``config.tests`` on a filesystem the workers share)."""
    out = Path(out)
    for written in (out, out / "feedback", *(out / "gradescope").glob("*/")):  # a killed run's leftovers
        batch.remove_stale_temps(written)
    submissions = batch.discover(Path(folder))
    results = batch.run_batch(submissions, functools.partial(grade_one, config), out, workers=workers,
                              regrade=regrade, progress=progress, engine=engine)
    questions = [t.name for t in score.load_tests(Path(config.tests))]
    batch.write_gradebook(results, out / "gradebook.csv", questions)
    write_reports(results, out, hide_hidden=hide_hidden, show_hidden_gradescope=show_hidden(config.tests))
    return results
