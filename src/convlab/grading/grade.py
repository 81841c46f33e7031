"""The two-phase grader: :func:`grade_one` for :func:`convlab.grading.batch.run_batch`, feedback.

``grade_one(config, submission, scratch)`` runs phase 1 (:mod:`convlab.grading.execute`: the
submission's notebook in the sandbox, exporting plain data) then phase 2
(:mod:`convlab.grading.score`: the lab's tests in this trusted process on the loaded data), and
returns the result dict that ``run_batch`` stores. It keeps the executed notebook in
``scratch/executed.ipynb`` and removes the sandbox's working directory. While scoring it records,
for the class report and the feedback (:class:`_Collector`): ``integrity.models[var]`` (weights
fingerprint of each loaded Keras model), ``integrity.answers`` (fingerprint of the submitted
answer cells, read as plain JSON), ``histories[var]`` (each model's fit history as plain lists)
and ``figures[var]`` (the values that :data:`FEEDBACK_FIGURES` asks to draw).

:func:`grade_folder` grades a folder (the ``convlab grade`` command): the gradebook CSV,
``results/<id>.json``, ``gradescope/<id>/results.json``, ``feedback/<id>.md`` / ``.html`` /
``.ipynb`` (pictures in ``feedback/<id>/``) and the class report ``report.html`` / ``.md`` /
``.json`` (:mod:`convlab.grading.report`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import html
import json
import math
import os
import re
import shutil
import stat
import sys
import urllib.parse
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convlab.grading import batch, execute, figures, report, score, score_process

MAX_EXECUTED = 50 << 20

#: Per lab: notebook variable -> picture added to each student's feedback when the scoring
#: environment holds that variable. Kind ``"confusion"``: a square integer matrix drawn as a
#: confusion-matrix heatmap. Only the parameters of the lab's tests reach the scoring
#: environment, so the variable must be one (Lab 6: `confusion`, a parameter of its tests).
FEEDBACK_FIGURES: dict[str, dict[str, str]] = {"lab6_nin": {"confusion": "confusion"}}
GUARD = "convlab.otter_plugin.GradingGuard"
_METRIC = re.compile(r"[A-Za-z0-9_]{1,64}")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,79}")


@dataclass(frozen=True, kw_only=True)
class Config:
    """What grading one submission needs (picklable for the batch's worker processes)."""

    lab: str
    tests: Path  #: the trusted autograder folder, its tests folder or the autograder zip
    settings: execute.Settings = field(default_factory=execute.Settings)
    sandbox_base: Path | None = None
    #: the student template notebook: its unchanged cells are not answers (integrity check)
    template: Path | None = None
    #: variable -> picture kind for the feedback (default :data:`FEEDBACK_FIGURES` of the lab)
    figures: Mapping[str, str] | None = None
    report_settings: report.Settings = field(default_factory=report.Settings)  #: integrity thresholds
    #: phase 2 in a fresh sandboxed process per submission (limits; ``isolated=False``: in this process)
    scoring: score_process.Settings = field(default_factory=score_process.Settings)


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
    the grader's files (only without both the user switch and Landlock) cannot change the code
    that scores it."""
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


def grading_guard(tests: Path) -> dict[str, Any]:
    """The options of the lab's ``GradingGuard`` plugin in its otter config (``{}`` if absent)."""
    for entry in otter_config(tests).get("plugins") or []:
        if isinstance(entry, dict) and isinstance(entry.get(GUARD), dict):
            return entry[GUARD]
    return {}


def with_otter_seed(settings: execute.Settings, tests: Path) -> execute.Settings:
    """``settings`` with the autograder's ``seed`` and ``seed_variable`` (as otter seeds cells)
    and the lab's ``GradingGuard`` option ``no_train`` (as ``otter run`` applies it)."""
    config = otter_config(tests)
    if grading_guard(tests).get("no_train") is True:
        settings = dataclasses.replace(settings, no_train=True)
    seed, variable = config.get("seed"), config.get("seed_variable")
    if not isinstance(seed, int) or isinstance(seed, bool):
        return settings
    return dataclasses.replace(settings, seed=seed,
                               seed_variable=variable if isinstance(variable, str) else None)


def plain_history(history: Any) -> dict[str, list[float | None]]:
    """A fit history as plain bounded lists: metric names of ``[A-Za-z0-9_]``, at most
    :data:`figures.MAX_METRICS` metrics of :data:`figures.MAX_EPOCHS` epochs, non-finite -> None."""
    out: dict[str, list[float | None]] = {}
    if not isinstance(history, Mapping):
        return out
    for key, values in history.items():
        if len(out) >= figures.MAX_METRICS:
            break
        if not isinstance(key, str) or not _METRIC.fullmatch(key) or not isinstance(values, list | tuple):
            continue
        numbers: list[float | None] = []
        for value in list(values)[:figures.MAX_EPOCHS]:
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = math.nan
            numbers.append(float(f"{number:.6g}") if math.isfinite(number) else None)
        out[key] = numbers
    return out


def plain_matrix(value: Any) -> list[list[int]] | None:
    """A square integer matrix (at most :data:`figures.MAX_MATRIX` rows) as lists, else None."""
    import numpy as np

    try:
        array = np.asarray(value)
    except Exception:
        return None
    if array.ndim != 2 or array.shape[0] != array.shape[1] or not 0 < array.shape[0] <= figures.MAX_MATRIX:
        return None
    if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
        array = array.astype(np.int64)
    if array.dtype.kind not in "iu":
        return None
    return array.astype(np.int64).tolist()


class _Collector:
    """``score.score``'s observer: fingerprints and histories of the loaded models, and the values
    to draw in the feedback. A value seen in several questions keeps its last snapshot."""

    def __init__(self, wanted: Mapping[str, str]) -> None:
        self.wanted = dict(wanted)
        self.models: dict[str, Any] = {}
        self.histories: dict[str, Any] = {}
        self.figures: dict[str, Any] = {}
        self._seen: dict[str, dict[str, Any]] = {}  # sha256 -> fingerprint (a model in several questions)

    def __call__(self, question: str, name: str, value: Any) -> None:
        keras = sys.modules.get("keras")
        if keras is not None and isinstance(value, keras.Model):
            self.models[name] = report.weights_fingerprint(value.get_weights(), self._seen)
            history = plain_history(getattr(getattr(value, "history", None), "history", None))
            if history:
                self.histories[name] = history
        if self.wanted.get(name) == "confusion" and (matrix := plain_matrix(value)) is not None:
            self.figures[name] = {"kind": "confusion", "matrix": matrix}


def code_cells(nb: Any) -> list[str]:
    """The sources of a notebook's code cells."""
    return [c.get("source") or "" for c in nb.get("cells") or [] if c.get("cell_type") == "code"
            and isinstance(c.get("source"), str)]


@functools.cache
def _template_cells(template: Path | None) -> tuple[str, ...]:
    if template is None or not Path(template).is_file():
        return ()
    try:
        return tuple(code_cells(execute.submitted_notebook(Path(template))))
    except execute.SubmissionError:
        return ()


def answers_fingerprint(submission: Path, template: Path | None = None) -> dict[str, Any] | None:
    """The integrity fingerprint of a submission's answer cells (None when unreadable)."""
    try:
        nb = execute.submitted_notebook(submission)
    except execute.SubmissionError:
        return None
    return report.answer_fingerprint(code_cells(nb), _template_cells(template))


def protection_warnings(protections: dict[str, bool]) -> list[str]:
    """What the grader's operator should know about the protections a notebook ran without."""
    if not protections or protections.get("unprivileged_user"):
        return []
    if protections.get("filesystem_write_confined"):
        return ["the notebook ran without the unprivileged sandbox user (the grader's Python is not "
                "reachable by it): Landlock kept its writes in its working directory, but it could read "
                "the grader's files; see docs/maintainers.md"]
    return ["the notebook ran without the unprivileged sandbox user (the grader's Python is not reachable "
            "by it) and without Landlock: it could write the grader's files; see docs/maintainers.md"]


def grade_one(config: Config, submission: batch.Submission, scratch: Path) -> dict[str, Any]:
    """Grade one submission in two phases; the submission's code never runs in this process."""
    tests = score.load_tests(Path(config.tests))  # fresh: scoring records results on them
    if "tensorflow" not in sys.modules:  # a fresh grading process: scoring gets the kernel's share
        os.environ.update(execute.thread_env(config.settings.threads))
    _preload()
    needed = score.needed_names(tests)
    settings = config.settings
    if settings.seed is None:  # seed as otter does when the autograder says so
        settings = with_otter_seed(settings, Path(config.tests))
    execution = execute.execute(submission.path, config.lab, needed, settings,
                                base=config.sandbox_base)
    collector = _Collector(FEEDBACK_FIGURES.get(config.lab, {}) if config.figures is None else config.figures)
    try:
        _copy_executed(execution, Path(scratch) / "executed.ipynb")
        exported = execution.status in ("ok", "timeout", "memory", "crashed")
        if exported and config.scoring.isolated:  # nothing of the submission is loaded here
            scored = score_process.run(tests, Path(config.tests), execution.export, status=execution.status,
                                       reason=execution.message, settings=config.scoring,
                                       execution=settings, figures=collector.wanted, base=config.sandbox_base)
            result = scored.result
            collector.models, collector.histories, collector.figures = \
                scored.models, scored.histories, scored.figures
            result["scoring"] = scored.process
        else:
            export = score.load_snapshots(execution.export) if exported else None
            try:
                result = score.score(tests, export, status=execution.status, reason=execution.message,
                                     observe=collector)
            finally:
                if export is not None:
                    export.close()
    finally:
        execute.remove_workdir(execution)
        with contextlib.suppress(Exception):
            import keras

            keras.backend.clear_session()
    result_warnings = protection_warnings(execution.protections)
    if result_warnings:
        result["warnings"] = result_warnings
    result["execution"] = {"seconds": execution.seconds,
                           "peak_rss_mb": round(execution.peak_rss_bytes / 2**20),
                           "protections": execution.protections}
    answers = None
    if execution.status not in ("invalid-notebook", "wrong-assignment"):
        answers = answers_fingerprint(submission.path, config.template)
    result["integrity"] = {"models": collector.models, "answers": answers}
    if collector.histories:
        result["histories"] = collector.histories
    if collector.figures:
        result["figures"] = collector.figures
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


def feedback_figures(result: dict[str, Any]) -> list[tuple[str, str, bytes]]:
    """The pictures of one student's feedback as (file stem, caption, PNG): the learning curves of
    each model with a fit history (``result["histories"]``) and the values of ``result["figures"]``
    (a confusion matrix). A picture that cannot be drawn is left out."""
    out: list[tuple[str, str, bytes]] = []
    histories = result.get("histories") if isinstance(result.get("histories"), dict) else {}
    for var, history in sorted(histories.items()):
        if not _VARIABLE.fullmatch(str(var)):
            continue
        caption = f"Кривые обучения модели {var}"
        with contextlib.suppress(Exception):
            picture = figures.learning_curves(plain_history(history), caption)
            if picture is not None:
                out.append((f"curves_{var}", caption, picture))
    values = result.get("figures") if isinstance(result.get("figures"), dict) else {}
    for var, value in sorted(values.items()):
        wanted = isinstance(value, dict) and value.get("kind") == "confusion"
        if not (wanted and _VARIABLE.fullmatch(str(var))):
            continue
        matrix = plain_matrix(value.get("matrix"))
        if matrix is not None:
            caption = f"Матрица ошибок ({var})"
            with contextlib.suppress(Exception):
                out.append((f"confusion_{var}", caption, figures.confusion_matrix(matrix, caption)))
    return out


def feedback_markdown(result: dict[str, Any], *, hide_hidden: bool = False,
                      images: list[tuple[str, str]] = ()) -> str:
    """Feedback for one student as Markdown; ``images``: (caption, relative path of the PNG)."""
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
    if images:
        out += ["## Графики", ""]
        out += [f"![{caption}]({urllib.parse.quote(path)})\n" for caption, path in images]
    return "\n".join(out)


def feedback_html(result: dict[str, Any], *, hide_hidden: bool = False,
                  images: list[tuple[str, bytes]] | None = None) -> str:
    """Feedback for one student as a standalone HTML page (every student text escaped), with its
    pictures embedded: ``images`` (caption, PNG), by default those of :func:`feedback_figures`."""
    if images is None:
        images = [(caption, picture) for _, caption, picture in feedback_figures(result)]
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
    if images:
        body.append("<h2>Графики</h2>")
        body += [f'<figure><img alt="{esc(caption)}" src="{figures.data_uri(picture)}">'
                 f"<figcaption>{esc(caption)}</figcaption></figure>" for caption, picture in images]
    return (f"<!DOCTYPE html>\n<html lang=\"ru\"><head><meta charset=\"utf-8\"><title>{esc(title)}</title>"
            "</head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_reports(results: list[dict[str, Any]], out: Path, *, hide_hidden: bool = False,
                  show_hidden_gradescope: bool = False) -> None:
    """Per-student Gradescope results.json and feedback under ``out``: Markdown (its pictures in
    ``feedback/<id>/``), HTML (pictures embedded) and the executed notebook
    (``feedback/<id>.ipynb``, when the notebook ran)."""
    for result in results:
        sid = result["student_id"]
        folder = out / "gradescope" / sid
        folder.mkdir(parents=True, exist_ok=True)
        report = score.gradescope(result, show_hidden=show_hidden_gradescope)
        batch.write_atomic(folder / "results.json", json.dumps(report, indent=1, ensure_ascii=False) + "\n")
        (out / "feedback").mkdir(parents=True, exist_ok=True)
        pictures = feedback_figures(result)
        folder = out / "feedback" / sid
        for stale in folder.glob("*.png"):
            stale.unlink()
        links = []
        for stem, caption, picture in pictures:
            folder.mkdir(exist_ok=True)
            (folder / f"{stem}.png").write_bytes(picture)
            links.append((caption, f"{sid}/{stem}.png"))
        batch.write_atomic(out / "feedback" / f"{sid}.md",
                           feedback_markdown(result, hide_hidden=hide_hidden, images=links))
        batch.write_atomic(out / "feedback" / f"{sid}.html",
                           feedback_html(result, hide_hidden=hide_hidden,
                                         images=[(caption, picture) for _, caption, picture in pictures]))
        executed = out / "work" / sid / "executed.ipynb"
        if executed.is_file():  # the student's notebook with the outputs of the graded run
            shutil.copyfile(executed, out / "feedback" / f"{sid}.ipynb")


def grade_folder(config: Config, folder: Path, out: Path, *, workers: int = 1, regrade: bool = False,
                 hide_hidden: bool = False, progress: bool = True,
                 engine: batch.DaskEngine | None = None) -> list[dict[str, Any]]:
    """Grade every submission of ``folder``; write the gradebook, results, feedback and the class
    report to ``out``.
    ``engine``: see :func:`convlab.grading.batch.run_batch` (Dask needs ``folder``, ``out`` and
    ``config.tests`` on a filesystem the workers share)."""
    out = Path(out)
    for written in (out, out / "feedback", *(out / "gradescope").glob("*/")):  # a killed run's leftovers
        batch.remove_stale_temps(written)
    # working directories of a grader killed between two sandbox runs
    execute.sweep_stale_workdirs(Path(config.sandbox_base or execute.sandbox_base()))
    submissions = batch.discover(Path(folder))
    active = min(workers, len(submissions))
    on_this_machine = engine is None or engine.address == "local"
    if on_this_machine and active > 1 and config.settings.threads is None:
        # the workers share this machine's cores: each notebook's TensorFlow gets its share
        threads = max(1, execute.cores() // active)
        config = dataclasses.replace(config, settings=dataclasses.replace(config.settings, threads=threads))
    results = batch.run_batch(submissions, functools.partial(grade_one, config), out, workers=workers,
                              regrade=regrade, progress=progress, engine=engine)
    questions = [t.name for t in score.load_tests(Path(config.tests))]
    batch.write_gradebook(results, out / "gradebook.csv", questions)
    write_reports(results, out, hide_hidden=hide_hidden, show_hidden_gradescope=show_hidden(config.tests))
    report.write_report(results, out, config.report_settings)
    return results
