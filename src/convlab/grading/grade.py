"""The two-phase grader: :func:`grade_one` for :func:`convlab.grading.batch.run_batch`, and
:func:`grade_folder`, the ``convlab grade`` command.

``grade_one(config, submission, scratch)`` runs phase 1 (:mod:`convlab.grading.execute`: the
submission's notebook in the sandbox, exporting plain data) then phase 2
(:mod:`convlab.grading.score` in a fresh scoring process, :mod:`convlab.grading.score_process`),
and returns the result (:class:`convlab.grading.results.Result`) that ``run_batch`` stores. It
keeps the executed notebook in ``scratch/executed.ipynb`` and removes the sandbox's working
directory. While scoring, :class:`convlab.grading.integrity.Collector` records the integrity
fingerprints of the loaded models, their fit histories and the values to draw in the feedback;
:func:`~convlab.grading.integrity.answers_fingerprint` fingerprints the submitted answer cells.
The autograder's ``otter_config.json`` gives the seeding and the ``GradingGuard`` options
(:func:`otter_config`, :func:`with_otter_seed`).

:func:`grade_folder` grades a folder: the gradebook CSV and ``results/<id>.json``
(:mod:`convlab.grading.batch`), each student's feedback and Gradescope results
(:mod:`convlab.grading.feedback`), the class report (:mod:`convlab.grading.report`) and the manual
questions' files (:mod:`convlab.grading.manual`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import stat
import sys
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convlab.grading import batch, execute, files, integrity, manual, report, score, score_process
from convlab.grading.feedback import (
    FEEDBACK_FIGURES,
    FEEDBACK_NOTEBOOK,
    draw_figures,
    feedback_notebook,
    write_reports,
)
from convlab.grading.integrity import answers_fingerprint
from convlab.grading.results import Result

MAX_EXECUTED = 50 << 20

GUARD = "convlab.otter_plugin.GradingGuard"
#: the scoring observer under the name grade_one and score_process.main use
_Collector = integrity.Collector


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
    report_settings: integrity.Settings = field(default_factory=integrity.Settings)  #: integrity thresholds
    #: the lab's manual questions (master, rubric): answers extracted and grades merged (manual.py)
    manual: manual.Setup | None = None
    #: phase 2 in a fresh sandboxed process per submission (limits; ``isolated=False``: in this process)
    scoring: score_process.Settings = field(default_factory=score_process.Settings)
    #: variable -> the predictions the tests make with its model, made ahead of scoring
    #: (:attr:`convlab.labs.Lab.predict_ahead`; None: no work ahead)
    predict_ahead: Mapping[str, Sequence[str]] | None = None


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
        files.write_bytes(dest, data)


def _preload(*, keras: bool = True) -> None:
    """Import what scoring uses *before* any submission runs, so that a kernel that could write
    the grader's files (only without both the user switch and Landlock) cannot change the code
    that scores it. ``keras=False``: all but Keras (and TensorFlow), which a scoring process that
    starts after its notebook ended imports only to load a model (the import is most of its
    start-up; an export without models needs none)."""
    import importlib

    for module in ("convlab.checks", *(("keras",) if keras else ()), "matplotlib.figure",
                   "matplotlib.gridspec", "otter.test_files.exception_test"):
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
    """``value`` (plain data) with :func:`~convlab.grading.report.redact` applied to every string in it."""
    if isinstance(value, str):
        return report.redact(value)
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
                                       base=config.sandbox_base, submission=submission.path,
                                       ahead=config.predict_ahead)
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
                files.write_text(Path(scratch) / FEEDBACK_NOTEBOOK,
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
    with contextlib.suppress(Exception):  # a picture not drawn here is drawn by write_reports
        draw_figures(result, Path(scratch))
    clock.lap("figures")
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


def grade_folder(config: Config, folder: Path, out: Path, *, workers: int = 1, regrade: bool = False,
                 hide_hidden: bool = False, progress: bool = True,
                 engine: batch.DaskEngine | None = None) -> list[Result]:
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
                  progress: bool, engine: batch.DaskEngine | None) -> list[Result]:
    for written in (out, out / "feedback", *(out / "gradescope").glob("*/")):  # a killed run's leftovers
        files.remove_stale_temps(written)
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
