"""Phase 2 in a fresh, limited process per submission.

The grader (:func:`run`) never loads a submission's arrays or models itself. For each submission
it makes a new sandbox working directory (:func:`convlab.grading.sandbox.prepare_workdir`) and
puts there: the lab's trusted test files (``tests/``), the export of phase 1 copied file by file
(only regular files with the export's own names, ``O_NOFOLLOW``, size caps; arrays only when their
header-declared sizes fit :data:`model_policy.MAX_EXPORT_ARRAY_BYTES`, so a sparse file is never
copied out to its full size) and ``job.json``. Then it runs ``python -m
convlab.grading.score_process`` (:func:`main`) there under :func:`convlab.grading.sandbox.run`:
wall-clock and memory limits, no network, the unprivileged user where available, writes only in
that directory. The process loads the values through :mod:`convlab.grading.score` (the model
allow-list of :mod:`convlab.grading.model_policy`), runs the test cases, and writes
``result.json``: each case's pass/fail and messages, and the feedback/integrity data of
:class:`convlab.grading.grade._Collector`. It then exits, so nothing it loaded (Keras global
state, caches, memory) carries over to the next submission.

The grader reads ``result.json`` as hostile data (``O_NOFOLLOW``, size cap, JSON) and
re-assembles the scores from its own copy of the test files (:func:`score.score` with
``replay``): the process can say which cases passed, never how many points they are worth.
A scoring process that ends past its limits fails every case with a Russian message, and the
result's status says ``memory`` / ``timeout`` / ``crashed``.

Pre-started ("warm") route (:func:`start`, then :meth:`Warm.score`): the same process is started
*before* the submission's notebook runs, in a working directory that holds only the trusted test
files. It imports TensorFlow, Keras and the checks and loads the pristine test sets and probe
images that the lab's tests use (:func:`warm_up`), then waits for ``job.json``. The grader
copies the export into a folder it creates itself, writes ``job.json`` last (the go signal) and
gives the process its scoring time limit from that moment (:class:`convlab.grading.sandbox.Deadline`).
While it waits, it predicts with the submission's own trained-model files (``artifacts/*.keras``
of the zip, copied in by the grader before the start: :func:`trained_models`, :func:`predict_ahead`)
on the pristine test split and training probe (those the lab's tests use: ``predict_ahead`` in
its ``lab.yml``); a submitted model that computes the same network with the same weights
(:func:`convlab.checks.performance.function_signature`) is then scored from those predictions
instead of predicting again. So that work overlaps the notebook's run instead of following it.
Each warm process is started for one submission and serves only it: the only student files it
sees before the job are that submission's trained models, loaded through the same allow-list as
its export's, and it exits after the job. A warm process that is gone, or whose folder is not as
the grader left it, is not used: the submission is scored by a fresh (cold) process instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import stat
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convlab import artifacts
from convlab.grading import execute, export_format, files, model_policy, sandbox, score

JOB = "job.json"
RESULT = "result.json"
TESTS = "tests"
EXPORT = "export"
WARM = "warm.json"  #: what a pre-started process loads before its job (datasets)
#: the submission's own trained-model files, given to a pre-started process before its job
#: (:func:`trained_models`): it predicts with them while the notebook runs
AHEAD = "ahead"
MAX_AHEAD_MODELS = 16  #: trained-model files of one submission predicted ahead, at most
MAX_AHEAD_BYTES = 1 << 30  #: their bytes, at most
_AHEAD_MEMBER = re.compile(r"artifacts/(?:[\w.-]{1,120}\.keras|manifest\.json)")
MAX_MANIFEST = 1 << 20  #: bytes of the trained-model cache's manifest (which variable held which model)
WAIT_POLL = 0.05  #: seconds between two looks for ``job.json`` in a pre-started process
#: the environment switch that turns the pre-started route off (``0``): the benchmark's "before"
ENV_WARM = "CONVLAB_WARM_SCORER"
#: room for the exported models in a warm process's disk quota (the cold route's quota counts
#: only what the process writes: its export is there before it starts)
WARM_MODEL_BYTES = 1 << 30
MAX_RESULT = 64 << 20
MAX_MODEL_FILE = export_format.MAX_MODEL
_FILE = export_format.FILE_NAME


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Limits of the scoring process of one submission."""

    isolated: bool = True  #: False: score in the grader's own process (the former route)
    wall_seconds: float = 1200.0
    memory_bytes: int | None = 6 << 30
    #: start the scoring process while the notebook runs (:func:`start`); None: unless
    #: ``CONVLAB_WARM_SCORER=0``
    warm: bool | None = None

    def warm_enabled(self) -> bool:
        if self.warm is not None:
            return self.warm
        return os.environ.get(ENV_WARM, "1") != "0"


@dataclass
class Scored:
    """What scoring one submission gave: the result dict, the collector's data, the process's run."""

    result: dict[str, Any]
    models: dict[str, Any]
    histories: dict[str, Any]
    figures: dict[str, Any]
    process: dict[str, Any]


# ------------------------------------------------------------------------------ grader side
def _copy_tests(source: Path, dest: Path) -> None:
    dest.mkdir()
    source = Path(source)
    if source.is_file() and source.suffix == ".zip":
        with zipfile.ZipFile(source) as zf:
            for info in zf.infolist():
                parts = info.filename.split("/")
                if len(parts) == 2 and parts[0] == "tests" and re.fullmatch(r"\w+\.py", parts[1]):
                    (dest / parts[1]).write_bytes(zf.read(info))
        return
    folder = source / "tests" if (source / "tests").is_dir() else source
    for path in sorted(folder.glob("*.py")):
        if path.name != "__init__.py":
            shutil.copyfile(path, dest / path.name)


def _copy_export(export: Path | None, dest: Path, owner: int | None = None) -> str:
    """Copy phase 1's export into ``dest``; return why its arrays are refused ("" if they are not).
    Every file is hostile: regular files only, no links, names from the export's pattern, caps.
    ``dest`` is made here and written through its descriptor (so its parent may belong to the
    scoring process's user: a link put in its place is never followed); ``owner``: the uid (and
    gid) the copies are given (a warm process's user)."""
    dest.mkdir(mode=0o700)
    destfd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        if not stat.S_ISDIR(os.fstat(destfd).st_mode) or os.fstat(destfd).st_uid != os.geteuid():
            raise OSError(f"{dest} is not the folder made by the grader")
        refused = _copy_export_into(export, destfd)
        if owner is not None:
            for name in os.listdir(destfd):
                os.chown(name, owner, owner, dir_fd=destfd, follow_symlinks=False)
            os.fchown(destfd, owner, owner)
        return refused
    finally:
        os.close(destfd)


def _copy_export_into(export: Path | None, destfd: int) -> str:
    if export is None:
        return ""
    try:
        dirfd = score._open_dir(Path(export))
    except OSError:
        return ""
    try:
        try:
            with score._open_file(dirfd, "manifest.json", score.MAX_JSON) as handle:
                manifest = handle.read(score.MAX_JSON + 1)
            snapshots = json.loads(manifest.decode("utf-8")).get("snapshots")
        except (score.LoadError, ValueError, AttributeError, UnicodeDecodeError):
            return ""
        with os.fdopen(os.open("manifest.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                               0o600, dir_fd=destfd), "wb") as sink:
            sink.write(manifest)
        names: set[str] = set()
        score._array_files(snapshots, names)
        models: set[str] = set()
        _model_files(snapshots, models)
        sizes: dict[str, int] = {}
        for name in sorted(names):
            with contextlib.suppress(score.LoadError, model_policy.PolicyError, OSError), \
                    score._open_file(dirfd, name, score.HEADER_ONLY) as handle:
                sizes[name] = model_policy.npy_declared_bytes(handle)
        try:
            model_policy.array_budget(sizes.values())
            refused = ""
        except model_policy.PolicyError as error:
            refused = str(error)
        wanted = {n: score.MAX_ARRAY for n in sizes if not refused and sizes[n] <= score.MAX_ARRAY}
        wanted.update({n: MAX_MODEL_FILE for n in models})
        for name, limit in sorted(wanted.items()):
            if not _FILE.match(name):
                continue
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            with contextlib.suppress(score.LoadError, OSError), \
                    score._open_file(dirfd, name, limit) as source, \
                    os.fdopen(os.open(name, flags, 0o600, dir_fd=destfd), "wb") as sink:
                _copy_bounded(source, sink, limit)
        return refused
    finally:
        os.close(dirfd)


def _copy_bounded(source: Any, sink: Any, limit: int) -> None:
    """Copy at most ``limit`` bytes (a file that grows past it is cut there) in the kernel
    (``copy_file_range``: no trip through this process's memory; hundreds of MB per submission),
    else through a buffer."""
    copied = 0
    try:
        while copied < limit:
            step = os.copy_file_range(source.fileno(), sink.fileno(), min(64 << 20, limit - copied))
            if step == 0:
                return
            copied += step
        return
    except (AttributeError, OSError):
        if copied:
            raise
    while chunk := source.read(min(1 << 20, limit - copied + 1)):
        copied += len(chunk)
        if copied > limit:
            break
        sink.write(chunk)


def _model_files(node: Any, found: set[str], depth: int = 0) -> None:
    if depth > 64:
        return
    if isinstance(node, dict):
        if node.get("$t") == "model" and isinstance(node.get("file"), str):
            found.add(node["file"])
        for value in node.values():
            _model_files(value, found, depth + 1)
    elif isinstance(node, list):
        for value in node:
            _model_files(value, found, depth + 1)


def _read_result(workdir: Path) -> Any:
    try:
        dirfd = score._open_dir(workdir)
    except OSError:
        return None
    try:
        fd = os.open(RESULT, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dirfd)
    except OSError:
        return None
    finally:
        os.close(dirfd)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return None
        data = handle.read(MAX_RESULT + 1)
    if len(data) > MAX_RESULT:
        return None
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None


def _plain(value: Any, depth: int = 0) -> Any:
    """``value`` if it is plain JSON data of bounded depth, else None."""
    if depth > 8:
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return [_plain(v, depth + 1) for v in value[:100_000]]
    if isinstance(value, dict):
        return {str(k)[:80]: _plain(v, depth + 1) for k, v in list(value.items())[:1000]}
    return None


_FAILED = {
    "memory": "проверка прервана: превышен лимит памяти процесса оценивания",
    "timeout": "проверка прервана: превышен лимит времени процесса оценивания",
    "crashed": "процесс оценивания завершился аварийно",
}


def _limits(settings: Settings, execution: execute.Settings, wall_seconds: float) -> sandbox.Limits:
    """The notebook's confinement, with the scorer's own time and memory limits."""
    return sandbox.Limits(wall_seconds=wall_seconds, memory_bytes=settings.memory_bytes,
                          allow_user_switch=execution.allow_user_switch, confine_writes=True,
                          confine_reads=execution.confine_reads, allow_root=execution.allow_root,
                          max_processes=execution.max_processes, disk_bytes=execution.disk_bytes,
                          shm_bytes=execution.shm_bytes)


def _job(status: str, reason: str, refused: str, export: Path | None,
         figures: Mapping[str, str]) -> str:
    return json.dumps({"status": status, "reason": reason, "arrays_refused": refused,
                       "export": export is not None, "figures": dict(figures)})


def _scored(tests: list[Any], outcome: sandbox.Outcome, data: Any, *, status: str, reason: str,
            route: str) -> Scored:
    """The result of one scoring process's run: scores re-assembled from the grader's ``tests``."""
    process: dict[str, Any] = {"status": outcome.status, "seconds": outcome.seconds, "route": route,
                               "peak_rss_mb": round(outcome.peak_rss_bytes / 2**20),
                               "protections": outcome.protections}
    if isinstance(data, dict) and isinstance(data.get("phases"), dict):
        process["phases"] = {str(k)[:40]: v for k, v in list(data["phases"].items())[:20]
                             if isinstance(v, int | float) and not isinstance(v, bool)}
    if not isinstance(data, dict) or not isinstance(data.get("cases"), dict):
        why = _FAILED.get(outcome.status, "процесс оценивания не вернул результат")
        result = score.score(tests, None, status=status if status != "ok" else
                             (outcome.status if outcome.status in _FAILED else "crashed"),
                             reason=reason or why, replay={}, replay_missing=why)
        process["stderr_tail"] = outcome.stderr_tail[-1500:]
        return Scored(result=result, models={}, histories={}, figures={}, process=process)
    result = score.score(tests, None, status=status, reason=reason, replay=data["cases"],
                         replay_missing="проверка не выполнена процессом оценивания")
    collected = data.get("collector")
    if not isinstance(collected, dict):
        collected = {}
    parts = {k: v if isinstance(v := _plain(collected.get(k)), dict) else {}
             for k in ("models", "histories", "figures")}
    return Scored(result=result, process=process, **parts)


def run(tests: list[Any], tests_source: Path, export: Path | None, *, status: str, reason: str,
        settings: Settings, execution: execute.Settings, figures: Mapping[str, str],
        base: Path | None = None) -> Scored:
    """Score one submission's export in a fresh sandboxed process started now (the cold route);
    ``tests`` are the grader's own parsed test files (they give the points)."""
    workdir = sandbox.claim_workdir(base or sandbox.default_base())
    try:
        _copy_tests(tests_source, workdir / TESTS)
        refused = _copy_export(export, workdir / EXPORT)
        (workdir / JOB).write_text(_job(status, reason, refused, export, figures), encoding="utf-8")
        outcome = sandbox.run([sys.executable, "-m", "convlab.grading.score_process"], workdir=workdir,
                              limits=_limits(settings, execution, settings.wall_seconds),
                              env=execute.kernel_env(execution, workdir))
        data = _read_result(workdir) if outcome.status == "ok" else None
    finally:
        sandbox.release_workdir(workdir)
    return _scored(tests, outcome, data, status=status, reason=reason, route="cold")


def lab_datasets(tests_folder: Path) -> list[str]:
    """The datasets the lab's tests name (quoted, e.g. ``'cifar10'``): what a warm process loads."""
    from convlab import datasets

    text = "".join(p.read_text(encoding="utf-8", errors="replace") for p in sorted(tests_folder.glob("*.py")))
    return [name for name in datasets.LOADERS if f"'{name}'" in text or f'"{name}"' in text]


def trained_models(submission: Path | None, dest: Path) -> int:
    """Copy the trained-model files of a zip submission (``artifacts/*.keras`` and the cache's
    ``manifest.json``, what the lab's trained-model cache writes and ``grader.export()`` packs)
    into ``dest`` (made here); return how many models. The zip is hostile: only regular members
    with those names, sizes taken from their headers and then as read (:data:`MAX_MODEL_FILE`
    each, :data:`MAX_AHEAD_MODELS` files and :data:`MAX_AHEAD_BYTES` in all, the manifest
    :data:`MAX_MANIFEST`); a file over its limit or unreadable is left out (predicting ahead is
    an optimisation: a model left out is predicted when it is scored)."""
    dest.mkdir(mode=0o700)
    if submission is None or Path(submission).suffix.lower() != ".zip":
        return 0
    copied, budget = 0, MAX_AHEAD_BYTES
    try:
        with zipfile.ZipFile(submission) as zf:
            for info in zf.infolist()[:execute.MAX_MEMBERS]:
                mode = info.external_attr >> 16
                name = info.filename.split("/", 1)[-1]
                limit = MAX_MANIFEST if name == "manifest.json" else MAX_MODEL_FILE
                if info.is_dir() or (stat.S_IFMT(mode) and not stat.S_ISREG(mode)) \
                        or not _AHEAD_MEMBER.fullmatch(info.filename) \
                        or not 0 < info.file_size <= min(limit, budget) \
                        or (name != "manifest.json" and copied >= MAX_AHEAD_MODELS):
                    continue
                with contextlib.suppress(OSError, zipfile.BadZipFile, EOFError, RuntimeError, ValueError):
                    with zf.open(info) as source:
                        data = source.read(info.file_size + 1)
                    if len(data) != info.file_size:
                        continue
                    with open(dest / name, "xb") as sink:
                        sink.write(data)
                    with contextlib.suppress(OSError, ValueError, OverflowError):  # newest first
                        when = time.mktime((*info.date_time, 0, 0, -1))
                        os.utime(dest / name, (when, when))
                    copied += name != "manifest.json"
                    budget -= len(data)
    except (OSError, zipfile.BadZipFile, EOFError, RuntimeError, ValueError):
        pass
    return copied


class Warm:
    """A scoring process started ahead of its submission's export (see the module docstring).

    Used once: :meth:`score` hands it one submission's export and waits for its result;
    :meth:`cancel` stops it unused. Either way its working directory is removed.
    """

    def __init__(self, workdir: Path, settings: Settings, thread: threading.Thread,
                 deadline: sandbox.Deadline, box: dict[str, Any]) -> None:
        self.workdir, self.settings, self._thread, self._deadline = workdir, settings, thread, deadline
        self._box = box  # the thread's outcome or exception
        self.used = False

    def alive(self) -> bool:
        """Whether the process is still waiting for its job (not ended, not used)."""
        return self._thread.is_alive() and not self.used

    def _untouched(self) -> bool:
        """The working directory is as the grader left it: a private folder of the sandbox user,
        without an export, a job or a result (a process that wrote them is not trusted)."""
        try:
            info = self.workdir.lstat()
        except OSError:
            return False
        owner_ok = info.st_uid == os.geteuid() or \
            sandbox.UID_BASE <= info.st_uid < sandbox.UID_BASE + sandbox.UID_SLOTS
        if not stat.S_ISDIR(info.st_mode) or not owner_ok or info.st_mode & 0o077:
            return False
        return not any(os.path.lexists(self.workdir / name) for name in (EXPORT, JOB, RESULT))

    def score(self, tests: list[Any], export: Path | None, *, status: str, reason: str,
              figures: Mapping[str, str]) -> Scored | None:
        """Hand over one submission's export and wait for the result; None (and the process is
        stopped) when this warm process cannot be used: the caller scores with :func:`run`."""
        if self.used:
            raise RuntimeError("a warm scoring process serves one submission only")
        self.used = True
        try:
            # the sandbox hands the folder over to its user when it starts the process: anything
            # put there before would change hands with it (and a process not yet started has
            # loaded nothing), so wait for the start
            while not self._deadline.launched.wait(WAIT_POLL):
                if not self._thread.is_alive():
                    return None
            if not self._thread.is_alive() or not self._untouched():
                return None
            owner = self.workdir.lstat().st_uid
            switched = os.geteuid() == 0 and owner != 0  # the sandbox user's, as the cold route's files
            # mkdir: fails if something made it meanwhile
            refused = _copy_export(export, self.workdir / EXPORT, owner if switched else None)
            # its own writer, not files.write_text: the job file is handed to the sandbox user
            # before it appears, and its appearance (the rename) is the process's go signal
            fd, tmp = tempfile.mkstemp(dir=self.workdir, prefix=".job-")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                if switched:
                    os.fchown(handle.fileno(), owner, owner)
                handle.write(_job(status, reason, refused, export, figures))
            self._deadline.from_now(self.settings.wall_seconds)  # its own limit, from the go
            os.replace(tmp, self.workdir / JOB)  # the go signal
            self._thread.join()
            outcome = self._box.get("outcome")
            if not isinstance(outcome, sandbox.Outcome):
                return None
            data = _read_result(self.workdir) if outcome.status == "ok" else None
            return _scored(tests, outcome, data, status=status, reason=reason, route="warm")
        except (OSError, sandbox.SandboxError):
            return None
        finally:
            self.cancel()

    def cancel(self) -> None:
        """Stop the process (if it still runs) and remove its working directory."""
        self.used = True
        self._deadline.from_now(0)
        self._thread.join()
        sandbox.release_workdir(self.workdir)


def start(tests_source: Path, *, settings: Settings, execution: execute.Settings,
          base: Path | None = None, submission: Path | None = None,
          ahead: Mapping[str, Sequence[str]] | None = None) -> Warm:
    """Start a scoring process that loads what scoring needs and waits for its job (:class:`Warm`).
    Its working directory holds the trusted tests, ``warm.json`` and the trained-model files of
    ``submission`` (:func:`trained_models`), which it predicts with while it waits (``ahead``:
    variable -> kinds of prediction, :attr:`convlab.labs.Lab.predict_ahead`). Until the
    job comes, it may wait as long as a notebook may run; from the job on,
    ``settings.wall_seconds``."""
    workdir = sandbox.claim_workdir(base or sandbox.default_base())
    try:
        _copy_tests(tests_source, workdir / TESTS)
        plan = None if ahead is None else {str(k): [str(x) for x in v] for k, v in ahead.items()}
        (workdir / WARM).write_text(json.dumps({"datasets": lab_datasets(workdir / TESTS), "ahead": plan}),
                                    encoding="utf-8")
        if plan:
            trained_models(submission, workdir / AHEAD)
    except BaseException:
        sandbox.release_workdir(workdir)
        raise
    deadline = sandbox.Deadline()
    box: dict[str, Any] = {}
    waiting = execution.wall_seconds + execute.INTERRUPT_GRACE + settings.wall_seconds
    limits = _limits(settings, execution, waiting)
    if limits.disk_bytes is not None:  # the export arrives after the start: it counts here
        room = model_policy.MAX_EXPORT_ARRAY_BYTES + WARM_MODEL_BYTES
        limits = dataclasses.replace(limits, disk_bytes=limits.disk_bytes + room)
    env = execute.kernel_env(execution, workdir)

    def supervise() -> None:
        try:
            box["outcome"] = sandbox.run([sys.executable, "-m", "convlab.grading.score_process", "--wait"],
                                         workdir=workdir, limits=limits, env=env, deadline=deadline)
        except BaseException as error:  # reported by Warm.score as "not usable"
            box["error"] = error

    thread = threading.Thread(target=supervise, name="warm-scorer", daemon=True)
    thread.start()
    return Warm(workdir, settings, thread, deadline, box)


# ---------------------------------------------------------------------------- process side
def warm_up(spec: Mapping[str, Any]) -> None:
    """Load what the tests will use before any submission data is here: the checks' pristine
    test sets and the integrity probes of the datasets in ``spec["datasets"]``."""
    from convlab import datasets
    from convlab.checks import data
    from convlab.grading import integrity

    shapes = {"mnist": (28, 28, 1), "cifar10": (32, 32, 3)}
    for name in spec.get("datasets") or []:
        if name in datasets.LOADERS:
            data.pristine(name)
            if name in shapes:
                integrity.probe_images(shapes[name])


def _ahead_work(folder: Path, plan: Any) -> list[tuple[Path, tuple[str, ...]]]:
    """The model files of ``folder`` to predict with, in order, with the kinds of prediction
    for each: with a ``plan`` (variable -> kinds), the files the cache's manifest says held
    those variables: the newest file of each variable (the plan's order), then the next newest
    of each, and so on (a student's cache may hold several trainings of one model; the notebook
    most likely uses the last); without a plan, nothing. The manifest and the files' times are
    the student's (hostile): wrong ones only make the work ahead useless."""
    if not isinstance(plan, dict) or not folder.is_dir():
        return []
    paths = sorted(folder.glob("*.keras"))
    manifest = artifacts.read_manifest(folder, max_bytes=MAX_MANIFEST)
    candidates: dict[str, list[tuple[float, int, Path]]] = {name: [] for name in plan}
    for position, entry in enumerate(manifest.values()):
        if not isinstance(entry, dict) or not isinstance(entry.get("variables"), list):
            continue
        path = folder / str(entry.get("file"))
        if path not in paths:
            continue
        for name in entry["variables"]:
            if isinstance(name, str) and name in candidates:
                with contextlib.suppress(OSError):
                    candidates[name].append((-path.stat().st_mtime, -position, path))
    ranked = {name: [path for *_, path in sorted(found)] for name, found in candidates.items()}
    work: dict[Path, set[str]] = {}
    for rank in range(max((len(found) for found in ranked.values()), default=0)):
        for name, found in ranked.items():
            if rank < len(found):
                work.setdefault(found[rank], set()).update(plan[name])
    return [(path, tuple(k for k in ("test", "train") if k in kinds)) for path, kinds in work.items()]


def predict_ahead(folder: Path, spec: Mapping[str, Any], stop: Path) -> int:
    """Predict with the trained-model files in ``folder`` (the submission's own, hostile: the
    same allow-list as its export's models) on the pristine test split and/or training probe of
    the dataset its input fits (:func:`convlab.checks.performance.predict_ahead`; which files
    and kinds: ``spec["ahead"]``, see :func:`_ahead_work`), until the job file ``stop``
    appears; return how many models were predicted. A file that is refused or fails is passed
    over."""
    import keras

    from convlab.checks import data, performance

    done = 0
    names = [name for name in spec.get("datasets") or [] if isinstance(name, str)]
    for path, kinds in _ahead_work(folder, spec.get("ahead")):
        if stop.exists():
            break
        try:
            model_policy.check_keras_archive(path)
            model = keras.saving.load_model(path, compile=False, safe_mode=True)
            shape = tuple(model.inputs[0].shape[1:])
            for name in names:
                if shape == tuple(data.pristine(name)[0].shape[1:]) and not stop.exists():
                    performance.predict_ahead(model, name, kinds)
                    done += 1
        except Exception:  # a hostile file: its model is predicted when it is scored
            continue
    return done


def main(argv: list[str] | None = None) -> int:
    """The scoring process: read ``job.json``, score, write ``result.json`` (in the current
    directory, the sandbox's working directory). With ``--wait`` (a pre-started process), first
    import and load what scoring needs (:func:`warm_up`), then wait for ``job.json``."""
    argv = sys.argv[1:] if argv is None else argv
    started = time.monotonic()
    phases: dict[str, float] = {}
    from convlab.grading import grade

    # a pre-started process imports everything while the notebook runs; a process started after
    # it imports Keras only when a model is loaded (nothing it imports is the notebook's to touch)
    grade._preload(keras="--wait" in argv)
    tests = score.load_tests(Path(TESTS))
    phases["imports"] = round(time.monotonic() - started, 3)
    if "--wait" in argv:
        spec: Any = {}
        with contextlib.suppress(OSError, ValueError):
            spec = json.loads(Path(WARM).read_text(encoding="utf-8"))
            warm_up(spec)
        phases["warm_up"] = round(time.monotonic() - started - phases["imports"], 3)
        ahead = time.monotonic()
        phases["ahead_models"] = predict_ahead(Path(AHEAD), spec if isinstance(spec, dict) else {},
                                               Path(JOB))
        phases["ahead"] = round(time.monotonic() - ahead, 3)
        ready = time.monotonic()
        while not Path(JOB).exists():
            time.sleep(WAIT_POLL)
        phases["waited"] = round(time.monotonic() - ready, 3)
    go = time.monotonic()
    from convlab.checks import performance

    before = dict(performance.counts)
    job = json.loads(Path(JOB).read_text(encoding="utf-8"))
    export = score.load_snapshots(Path(EXPORT)) if job.get("export") else None
    if export is not None and job.get("arrays_refused"):
        export.arrays_refused = str(job["arrays_refused"])
    collector = grade._Collector(job.get("figures") or {})
    try:
        result = score.score(tests, export, status=str(job.get("status", "ok")),
                             reason=str(job.get("reason", "")), observe=collector)
    finally:
        if export is not None:
            export.close()
    phases["scoring"] = round(time.monotonic() - go, 3)
    # predictions the scoring made, and those it took from the work ahead
    phases["predicted"] = performance.counts["predicted"] - before["predicted"]
    phases["from_ahead"] = performance.counts["from_ahead"] - before["from_ahead"]
    phases["keras"] = int("keras" in sys.modules)  # 0: scored without importing it (no model)
    out = {"cases": score.outcomes(tests, result), "phases": phases,
           "collector": {"models": collector.models, "histories": collector.histories,
                         "figures": collector.figures}}
    files.write_json(Path(RESULT), artifacts.jsonable(out), indent=None)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # result.json is written (and renamed into place): skip the interpreter's teardown, which
    # for TensorFlow and Keras takes seconds that the grader would wait for
    os._exit(code)
