"""The two-phase grader: :func:`grade_one` for :func:`convlab.grading.batch.run_batch`, feedback.

``grade_one(config, submission, scratch)`` runs phase 1 (:mod:`convlab.grading.execute`: the
submission's notebook in the sandbox, exporting plain data) then phase 2
(:mod:`convlab.grading.score`: the lab's tests in this trusted process on the loaded data), and
returns the result dict that ``run_batch`` stores. It keeps the executed notebook in
``scratch/executed.ipynb`` and removes the sandbox's working directory. While scoring it records,
for the class report and the feedback (:class:`_Collector`): ``integrity.models[var]`` (weights
fingerprint of each loaded Keras model, with its ``predictions`` signature on the grader's probe:
:func:`convlab.grading.report.prediction_signature`), ``integrity.answers`` (fingerprint of the submitted
answer cells, read as plain JSON), ``histories[var]`` (each model's fit history as plain lists)
and ``figures[var]`` (the values that :data:`FEEDBACK_FIGURES` asks to draw).

:func:`grade_folder` grades a folder (the ``convlab grade`` command): the gradebook CSV,
``results/<id>.json``, ``gradescope/<id>/results.json``, ``feedback/<id>.md`` / ``.html`` /
``.ipynb`` (pictures in ``feedback/<id>/``) and the class report ``report.html`` / ``.md`` /
``.json`` (:mod:`convlab.grading.report`). Every output is safe to open: student text escaped for
its format (:func:`~convlab.grading.report.md_escape`, ``html.escape``, Gradescope ``text``
output, :func:`~convlab.grading.batch.csv_text`), sandbox text redacted
(:func:`~convlab.grading.report.redact`), the feedback notebook rebuilt from the submitted cells
(:func:`feedback_notebook`).
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

from convlab.grading import batch, execute, figures, manual, report, score, score_process

MAX_EXECUTED = 50 << 20
FEEDBACK_CELL_OUTPUT = 100_000  #: characters of outputs per cell of the feedback notebook
FEEDBACK_OUTPUT = 5 << 20  #: characters of outputs in the whole feedback notebook
MAX_FEEDBACK_IMAGE = 2 << 20  #: base64 characters of one PNG output kept in it
FEEDBACK_CUT_NOTE = "\n[вывод ячейки обрезан]\n"
FEEDBACK_NOTEBOOK = "feedback.ipynb"

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
    #: the lab's manual questions (master, rubric): answers extracted and grades merged (manual.py)
    manual: manual.Setup | None = None
    #: phase 2 in a fresh sandboxed process per submission (limits; ``isolated=False``: in this process)
    scoring: score_process.Settings = field(default_factory=score_process.Settings)


def _read_executed(execution: execute.Execution) -> bytes | None:
    """The executed notebook's bytes (written by the submission: no links, bounded size)."""
    if execution.executed is None or execution.workdir is None:
        return None
    try:
        dirfd = os.open(execution.workdir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            fd = os.open(execution.executed.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dirfd)
        finally:
            os.close(dirfd)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as source:
        info = os.fstat(source.fileno())
        if stat.S_ISREG(info.st_mode) and info.st_size <= MAX_EXECUTED:
            return source.read(MAX_EXECUTED)
    return None


def _copy_executed(execution: execute.Execution, dest: Path) -> None:
    """Copy the executed notebook as it came out of the sandbox (for the grader: ``work/<id>``)."""
    data = _read_executed(execution)
    if data is not None:
        dest.write_bytes(data)


def _text(value: Any, limit: int) -> str:
    if isinstance(value, list):
        value = "".join(str(v) for v in value)
    return redact(str(value)[:limit])


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _png(value: Any) -> str | None:
    import base64
    import binascii

    if not isinstance(value, str) or len(value) > MAX_FEEDBACK_IMAGE:
        return None
    try:
        ok = base64.b64decode(value, validate=False)[:8] == b"\x89PNG\r\n\x1a\n"
    except (binascii.Error, ValueError):
        return None
    return value if ok else None


def _outputs(outputs: Any, budget: list[int]) -> list[dict[str, Any]]:
    """A cell's outputs reduced to plain text, errors and PNG images (no HTML, JavaScript, SVG,
    widgets or metadata), secrets redacted, at most :data:`FEEDBACK_CELL_OUTPUT` characters per
    cell and ``budget[0]`` in all (then one note)."""
    kept: list[dict[str, Any]] = []
    used, cut = 0, False
    for out in outputs if isinstance(outputs, list) else []:
        if not isinstance(out, dict):
            continue
        kind = out.get("output_type")
        item: dict[str, Any] | None = None
        if kind == "stream":
            name = out.get("name") if out.get("name") in ("stdout", "stderr") else "stdout"
            text = _text(out.get("text", ""), FEEDBACK_CELL_OUTPUT)
            item = {"output_type": "stream", "name": name, "text": text}
        elif kind == "error":
            trace = out.get("traceback") if isinstance(out.get("traceback"), list) else []
            item = {"output_type": "error", "ename": _text(out.get("ename", ""), 200),
                    "evalue": _text(out.get("evalue", ""), 2000),
                    "traceback": [_text(t, 2000) for t in trace[-30:]]}
        elif kind in ("execute_result", "display_data") and isinstance(out.get("data"), dict):
            data = {}
            if "text/plain" in out["data"]:
                data["text/plain"] = _text(out["data"]["text/plain"], FEEDBACK_CELL_OUTPUT)
            if (picture := _png(out["data"].get("image/png"))) is not None:
                data["image/png"] = picture
            if data:
                item = {"output_type": kind, "data": data, "metadata": {}}
                if kind == "execute_result":
                    count = out.get("execution_count")
                    item["execution_count"] = _count(count)
        if item is None or (cut and kind != "error"):
            continue
        size = _size(item)
        room = min(FEEDBACK_CELL_OUTPUT - used, budget[0])
        if size > room and kind != "error":  # a cell's error is always kept (trimmed above)
            if kind == "stream" and room > 0:
                kept.append({**item, "text": item["text"][:room]})
            kept.append({"output_type": "stream", "name": "stderr", "text": FEEDBACK_CUT_NOTE})
            budget[0] = max(0, budget[0] - max(room, 0))
            cut = True
            continue
        used += size
        budget[0] = max(0, budget[0] - size)
        kept.append(item)
    return kept


def _size(item: dict[str, Any]) -> int:
    """Characters of an output's text and data."""
    parts = [item.get("text", ""), item.get("evalue", ""), *item.get("traceback", []),
             *(item.get("data") or {}).values()]
    return sum(len(p) for p in parts if isinstance(p, str))


def feedback_notebook(submitted: Any, executed: bytes | None) -> dict[str, Any]:
    """The notebook a student gets back: the cells of their own submitted notebook (read by the
    grader, never the sandbox's copy of them), each code cell with the outputs of the graded run
    (see :func:`_outputs`); the grader's cells and seeding lines are not shown."""
    kept = [c for c in submitted.get("cells") or [] if isinstance(c, dict)
            and c.get("cell_type") in ("code", "markdown", "raw") and not execute._ignored(c)]
    ran: list[Any] = []
    with contextlib.suppress(ValueError, TypeError, AttributeError, RecursionError):
        ran = list(json.loads(executed or b"null").get("cells") or [])
    offset = len(ran) - 1 - len(kept)  # [our first cell, (seeding cell), *kept, our last cell]
    aligned = ran[offset:-1] if offset >= 1 else [None] * len(kept)
    budget = [FEEDBACK_OUTPUT]
    cells = []
    for number, (cell, run) in enumerate(zip(kept, aligned, strict=True)):
        source = cell.get("source") or ""
        source = "".join(source) if isinstance(source, list) else str(source)
        new: dict[str, Any] = {"cell_type": cell["cell_type"], "id": f"cell-{number}", "metadata": {},
                               "source": source}
        if cell["cell_type"] == "code":
            run = run if isinstance(run, dict) and run.get("cell_type") == "code" else {}
            count = run.get("execution_count")
            new["execution_count"] = _count(count)
            new["outputs"] = _outputs(run.get("outputs"), budget)
        cells.append(new)
    return {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                        "language": "python"},
                                         "language_info": {"name": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


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
    """``score.score``'s observer: fingerprints, prediction signatures and histories of the loaded
    models, and the values to draw in the feedback. A value seen in several questions keeps its
    last snapshot. Whatever runs the scoring (this process, or a confined scorer process) calls
    :func:`report.weights_fingerprint` and :func:`report.prediction_signature` on each model it
    loaded; both return plain JSON data."""

    def __init__(self, wanted: Mapping[str, str]) -> None:
        self.wanted = dict(wanted)
        self.models: dict[str, Any] = {}
        self.histories: dict[str, Any] = {}
        self.figures: dict[str, Any] = {}
        self._seen: dict[str, dict[str, Any]] = {}  # sha256 -> fingerprint (a model in several questions)
        self._predictions: dict[str, dict[str, Any] | None] = {}  # sha256 -> prediction signature

    def __call__(self, question: str, name: str, value: Any) -> None:
        keras = sys.modules.get("keras")
        if keras is not None and isinstance(value, keras.Model):
            fingerprint = report.weights_fingerprint(value.get_weights(), self._seen)
            if fingerprint["sha256"] not in self._predictions:
                self._predictions[fingerprint["sha256"]] = report.prediction_signature(value)
            if self._predictions[fingerprint["sha256"]] is not None:
                fingerprint["predictions"] = self._predictions[fingerprint["sha256"]]
            self.models[name] = fingerprint
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
    if not protections:
        return []
    warnings = []
    if not protections.get("unprivileged_user"):
        warnings.append("the notebook ran AS ROOT (--allow-root)" + (
            ": only its mount namespace kept it from the grader's files" if protections.get(
                "filesystem_read_confined") else "") + "; see docs/maintainers.md")
    if not protections.get("filesystem_read_confined"):
        warnings.append("the notebook's reads were not confined: it could read the grader's files "
                        "(other submissions, the output folder, the autograder); see docs/maintainers.md")
    if not protections.get("filesystem_write_confined") and not protections.get("filesystem_read_confined"):
        warnings.append("the notebook's writes were not confined: it could write the grader's files")
    return warnings


def _redacted(value: Any) -> Any:
    """``value`` (plain data) with :func:`redact` applied to every string in it."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    return value


def grade_one(config: Config, submission: batch.Submission, scratch: Path) -> dict[str, Any]:
    """Grade one submission in two phases; the submission's code never runs in this process.

    With isolated scoring, the scoring process is started before the notebook runs
    (:func:`score_process.start`) and imports and loads while the notebook runs; this process
    then never imports TensorFlow. ``result["phases"]``: seconds of each phase (``load_tests``,
    ``execution``, ``feedback_notebook``, ``scoring`` and the scoring process's own phases,
    ``total``)."""
    clock = _Clock()
    tests = score.load_tests(Path(config.tests))  # fresh: scoring records results on them
    isolated = config.scoring.isolated
    settings = config.settings
    if settings.seed is None:  # seed as otter does when the autograder says so
        settings = with_otter_seed(settings, Path(config.tests))
    warm = None
    if isolated and config.scoring.warm_enabled():
        with contextlib.suppress(OSError, score_process.sandbox.SandboxError):
            warm = score_process.start(Path(config.tests), settings=config.scoring, execution=settings,
                                       base=config.sandbox_base)
    if not isolated:
        if "tensorflow" not in sys.modules:  # a fresh grading process: scoring gets the kernel's share
            os.environ.update(execute.thread_env(config.settings.threads))
        _preload()
    needed = score.needed_names(tests)
    clock.lap("load_tests")
    collector = _Collector(FEEDBACK_FIGURES.get(config.lab, {}) if config.figures is None else config.figures)
    execution = None
    try:
        execution = execute.execute(submission.path, config.lab, needed, settings, base=config.sandbox_base)
        clock.lap("execution")
        _copy_executed(execution, Path(scratch) / "executed.ipynb")
        if execution.status not in ("invalid-notebook", "wrong-assignment"):
            with contextlib.suppress(execute.SubmissionError, OSError):
                submitted = execute.submitted_notebook(submission.path)
                notebook = feedback_notebook(submitted, _read_executed(execution))
                batch.write_atomic(Path(scratch) / FEEDBACK_NOTEBOOK,
                                   json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
        clock.lap("feedback_notebook")
        exported = execution.status in ("ok", "timeout", "memory", "crashed")
        if exported and isolated:  # nothing of the submission is loaded here
            scored = None
            if warm is not None:
                scored = warm.score(tests, execution.export, status=execution.status,
                                    reason=execution.message, figures=collector.wanted)
            if scored is None:  # no warm process, or one that cannot be used: a fresh one
                scored = score_process.run(tests, Path(config.tests), execution.export,
                                           status=execution.status, reason=execution.message,
                                           settings=config.scoring, execution=settings,
                                           figures=collector.wanted, base=config.sandbox_base)
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
        clock.lap("scoring")
    finally:
        if warm is not None:
            warm.cancel()
        if execution is not None:
            execute.remove_workdir(execution)
        if (keras := sys.modules.get("keras")) is not None:
            with contextlib.suppress(Exception):
                keras.backend.clear_session()
    result = _redacted(result)  # messages quote values, the reason is the sandbox's stderr
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
    clock.lap("integrity")
    result["phases"] = clock.phases()
    return result


class _Clock:
    """Seconds between successive laps, by name (``result["phases"]``)."""

    def __init__(self) -> None:
        import time

        self._now = time.monotonic
        self._start = self._last = self._now()
        self._phases: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = self._now()
        self._phases[name] = round(self._phases.get(name, 0.0) + now - self._last, 3)
        self._last = now

    def phases(self) -> dict[str, float]:
        return {**self._phases, "total": round(self._now() - self._start, 3)}


# ----------------------------------------------------------------------------------- feedback
_STATUS = {
    "ok": "блокнот выполнен",
    "timeout": "выполнение прервано: превышен лимит времени",
    "memory": "выполнение прервано: превышен лимит памяти",
    "crashed": "выполнение завершилось аварийно",
    "invalid-notebook": "файл не является блокнотом Jupyter (или архив пуст / повреждён)",
    "wrong-assignment": "сдан блокнот другого задания",
}


md_escape, redact, REDACTED = report.md_escape, report.redact, report.REDACTED


def _points(value: Any) -> str:
    number = float(value or 0)
    return str(int(number)) if number.is_integer() else f"{number:.2f}".rstrip("0")


def feedback_lines(result: dict[str, Any], *, hide_hidden: bool = False) -> list[tuple[str, Any]]:
    """Structured feedback: (kind, data) items rendered by :func:`feedback_markdown` / ``_html``."""
    items: list[tuple[str, Any]] = [
        ("title", f"Результаты проверки: {result.get('student_id', '')}"),
        ("para", f"Статус: {_STATUS.get(result.get('status', ''), result.get('status', ''))}."),
    ]
    if result.get("file"):
        items.insert(1, ("para", f"Файл: {result['file']}"))
    if result.get("reason") and result.get("status") in ("invalid-notebook", "wrong-assignment"):
        items.append(("para", redact(result["reason"])))
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
                                f"{redact(case['message'])}")
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
    """Feedback for one student as Markdown; ``images``: (caption, relative path of the PNG).
    Every text is escaped (:func:`md_escape`): it renders as written, never as HTML or links."""
    out: list[str] = []
    esc = md_escape
    for kind, data in feedback_lines(result, hide_hidden=hide_hidden):
        if kind == "title":
            out += [f"# {esc(data)}", ""]
        elif kind == "para":
            out += ["  \n".join(esc(line) for line in data.splitlines()), ""]
        elif kind == "table":
            out += ["| задание | баллы | из |", "| --- | --- | --- |"]
            out += [f"| {esc(q)} | {esc(s)} | {esc(p)} |".replace("\n", " ") for q, s, p in data] + [""]
        else:
            question, messages = data
            out += [f"## {esc(question)}", ""]
            out += ["- " + "  \n  ".join(esc(line) for line in m.splitlines() or [""])
                    for m in messages] + [""]
    if images:
        out += ["## Графики", ""]
        out += [f"![{esc(caption)}]({urllib.parse.quote(path)})\n" for caption, path in images]
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


def gradescope_results(result: dict[str, Any], *, show_hidden: bool = False) -> dict[str, Any]:
    """:func:`score.gradescope` made safe to show: every output shown as plain text
    (``output_format`` ``text``: no HTML or Markdown rendering), secrets redacted, and for a run
    the sandbox ended (timeout, memory, crashed) the status only, not the sandbox's stderr."""
    results = score.gradescope(result, show_hidden=show_hidden)
    results["output_format"] = results["test_output_format"] = "text"
    if "output" in results:
        status = str(result.get("status", ""))
        shown = result.get("reason", "") if status in ("invalid-notebook", "wrong-assignment") else ""
        results["output"] = redact(f"Статус оценивания: {status}. {shown}".strip())
    for test in results.get("tests") or []:
        test["output_format"] = "text"
        if "output" in test:
            test["output"] = redact(test["output"])
    return results


def _write_one(result: dict[str, Any], out: Path, *, hide_hidden: bool,
               show_hidden_gradescope: bool) -> None:
    sid = result["student_id"]
    folder = out / "gradescope" / sid
    folder.mkdir(parents=True, exist_ok=True)
    results = gradescope_results(result, show_hidden=show_hidden_gradescope)
    batch.write_atomic(folder / "results.json", json.dumps(results, indent=1, ensure_ascii=False) + "\n")
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
    notebook = out / "work" / sid / FEEDBACK_NOTEBOOK
    if notebook.is_file():  # the student's own notebook with the outputs of the graded run
        shutil.copyfile(notebook, out / "feedback" / f"{sid}.ipynb")
    else:
        with contextlib.suppress(FileNotFoundError):
            (out / "feedback" / f"{sid}.ipynb").unlink()


def write_reports(results: list[dict[str, Any]], out: Path, *, hide_hidden: bool = False,
                  show_hidden_gradescope: bool = False) -> None:
    """Per-student Gradescope results.json and feedback under ``out``: Markdown (its pictures in
    ``feedback/<id>/``), HTML (pictures embedded) and the student's notebook with the outputs of
    the graded run (``feedback/<id>.ipynb``, :func:`feedback_notebook`). A student whose files
    cannot be written gets a warning in the class report; the others are written."""
    (out / "feedback").mkdir(parents=True, exist_ok=True)
    for result in results:
        try:
            _write_one(result, out, hide_hidden=hide_hidden, show_hidden_gradescope=show_hidden_gradescope)
        except Exception as exc:  # one student's feedback: the others are still written
            result.setdefault("warnings", []).append(f"feedback not written: {type(exc).__name__}: {exc}")
            print(f"convlab grade: feedback of {result.get('student_id')} not written: {exc}",
                  file=sys.stderr)


def grade_folder(config: Config, folder: Path, out: Path, *, workers: int = 1, regrade: bool = False,
                 hide_hidden: bool = False, progress: bool = True,
                 engine: batch.DaskEngine | None = None) -> list[dict[str, Any]]:
    """Grade every submission of ``folder``; write the gradebook, results, feedback and the class
    report to ``out``.
    ``engine``: see :func:`convlab.grading.batch.run_batch` (Dask needs ``folder``, ``out`` and
    ``config.tests`` on a filesystem the workers share)."""
    previous = os.umask(0o077)  # nothing the grader writes is readable by other users (the sandbox's)
    try:
        return _grade_folder(config, folder, Path(out), workers=workers, regrade=regrade,
                             hide_hidden=hide_hidden, progress=progress, engine=engine)
    finally:
        os.umask(previous)


def _grade_folder(config: Config, folder: Path, out: Path, *, workers: int, regrade: bool, hide_hidden: bool,
                  progress: bool, engine: batch.DaskEngine | None) -> list[dict[str, Any]]:
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
    if on_this_machine and active >= execute.cores() and config.scoring.warm is None:
        # a scoring process started while the notebook runs only helps where a core would idle;
        # with a worker per core it would only add its memory to each worker's peak
        config = dataclasses.replace(config, scoring=dataclasses.replace(config.scoring, warm=False))
    results = batch.run_batch(submissions, functools.partial(grade_one, config), out, workers=workers,
                              regrade=regrade, progress=progress, engine=engine)
    questions = [t.name for t in score.load_tests(Path(config.tests))]
    batch.write_gradebook(results, out / "gradebook.csv", questions)
    write_reports(results, out, hide_hidden=hide_hidden, show_hidden_gradescope=show_hidden(config.tests))
    report.write_report(results, out, config.report_settings)
    manual.after_grading(config.manual, submissions, out)  # manual answers; merge the grades given
    return results
