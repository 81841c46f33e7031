"""Grade a folder of submissions in parallel, resumably, with any function that grades one.

* :func:`discover` lists the submissions of a folder (``*.ipynb`` and ``*.zip``) with stable,
  unique student ids.
* :func:`run_batch` calls ``grade_one(submission, scratch)`` for each in a process pool (or on a
  Dask cluster: :class:`DaskEngine`) and writes each result, atomically, to
  ``out/results/<student_id>.json`` as soon as it exists. A batch that was killed is resumed by
  running it again: submissions with a result are not graded again (unless ``regrade``). An
  exception in ``grade_one``, or a grading process that dies, gives that submission a
  ``"crashed"`` result and the batch carries on.
* :func:`write_gradebook` writes the CSV gradebook.

A result is a :class:`convlab.grading.results.Result` (stored as JSON). ``run_batch`` sets
``student_id`` and ``file`` and fills in ``status`` (``"ok"`` when absent) and ``duration_s``
(seconds ``grade_one`` took) when ``grade_one`` did not; the gradebook reads ``scores``
(question -> points) and ``total`` (else the sum of ``scores``). A crashed result carries
``error`` (and ``traceback``).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import csv
import hashlib
import io
import multiprocessing
import os
import re
import shutil
import sys
import time
import traceback
import unicodedata
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convlab.grading import files, results

SUFFIXES = (".ipynb", ".zip")
# otter's grader.export() names the zip <notebook>_<YYYY_MM_DDTHH_MM_SS_ffffff>.zip
_EXPORT_STAMP = re.compile(r"_\d{4}_\d{2}_\d{2}T\d{2}_\d{2}_\d{2}(?:_\d{1,6})?$")
_SPACES = re.compile(r"\s+")
_UNSAFE = re.compile(r"[^\w.()+,\-]+")
_LEADING = re.compile(r"^[\W_]+")
MAX_ID_BYTES = 96  #: bytes of an id: ``results/.<id>.json.<random>.tmp`` stays far below 255

GradeOne = Callable[["Submission", Path], dict[str, Any]]  #: its result becomes a Result (results.plain)

#: Grading processes start fresh ("spawn"), never as forks of this process: a fork of a process
#: that has TensorFlow running (its thread pools) can deadlock in the child's first TF call.
_CONTEXT = multiprocessing.get_context("spawn")

#: The Dask scheduler setting of :class:`DaskEngine`'s LocalCluster: a task whose worker dies is
#: not retried on another one (it is a suspect, see :func:`_grade_all_dask`).
DASK_LOCAL_CONFIG = {"distributed.scheduler.allowed-failures": 0}


@dataclass(frozen=True, order=True)
class Submission:
    """One submitted file and the id its results are kept under."""

    student_id: str
    path: Path


def display_name(path: Path | str) -> str:
    """A file name as text that any output can hold: the name's bytes decoded as UTF-8, bytes that
    are not UTF-8 written as ``\\xNN`` (never a lone surrogate, which no UTF-8 file can store)."""
    return os.fsencode(Path(path).name).decode("utf-8", "backslashreplace")


def _readable(raw: bytes) -> tuple[str, bool]:
    """The name's text and whether it was UTF-8 (else the cp1251 reading of an LMS download)."""
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        return raw.decode("cp1251", "replace"), False


def student_id(filename: str | bytes) -> str:
    """The id of a submission file: its stem without otter's export timestamp, whitespace as ``_``.

    The id is safe as a file name and in every output: Unicode word characters (NFC) and
    ``.()+,-`` only, starting with a word character, at most :data:`MAX_ID_BYTES` bytes of UTF-8.
    When the name had to be changed more than that (characters dropped or replaced, cut to the
    limit, bytes that are not UTF-8, decoded as cp1251), ``-<8 hex digits of the SHA-256 of the
    name's bytes>`` is appended, so that two such names never share an id and the same name
    always gets the same one (a rerun resumes).
    """
    raw = filename if isinstance(filename, bytes) else os.fsencode(filename)
    raw = raw.rsplit(b"/", 1)[-1]
    text, utf8 = _readable(raw)
    stem = _EXPORT_STAMP.sub("", unicodedata.normalize("NFC", Path(text).stem if "." in text else text))
    spaced = _SPACES.sub("_", stem)
    sid = _LEADING.sub("", _UNSAFE.sub("_", spaced)).rstrip("_.")
    changed = not utf8 or sid != spaced.strip("_")
    if len(sid.encode()) > MAX_ID_BYTES:
        sid = sid.encode()[:MAX_ID_BYTES].decode("utf-8", "ignore").rstrip("_.")
        changed = True
    if not sid:
        sid, changed = "submission", True
    if changed:
        sid += "-" + hashlib.sha256(raw).hexdigest()[:8]
    return sid


def discover(folder: Path) -> list[Submission]:
    """Every ``*.ipynb`` and ``*.zip`` directly in ``folder`` (not hidden files), sorted by id.

    Any file name works (not UTF-8, very long, with newlines or leading dashes: see
    :func:`student_id`). Files that give the same id keep it in file-name order: the first
    plain, the next ones with ``-2``, ``-3``... (never an id that another file already has).
    """
    files = sorted((p for p in Path(folder).iterdir()
                    if p.suffix.lower() in SUFFIXES and not p.name.startswith(".") and p.is_file()),
                   key=lambda p: os.fsencode(p.name))
    bases = [student_id(p.name) for p in files]
    taken = set(bases)
    used: set[str] = set()
    submissions = []
    for path, base in zip(files, bases, strict=True):
        sid, n = base, 1
        while sid in used or (sid != base and sid in taken):
            n += 1
            sid = f"{base}-{n}"
        used.add(sid)
        submissions.append(Submission(student_id=sid, path=path))
    return sorted(submissions)


def _crashed(submission: Submission, error: str, trace: str = "") -> results.Result:
    result: results.Result = {"student_id": submission.student_id, "file": display_name(submission.path),
                              "status": "crashed", "error": error}
    if trace:
        result["traceback"] = trace
    return result


def _grade_safely(grade_one: GradeOne, submission: Submission, scratch: Path) -> results.Result:
    """Run in a pool worker: grade one submission; any exception becomes a crashed result."""
    start = time.monotonic()
    try:
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        returned = grade_one(submission, scratch)
        if not isinstance(returned, dict):
            raise TypeError(f"grade_one returned {type(returned).__name__}, not a dict")
        result = results.plain(returned)
    except (Exception, SystemExit) as exc:  # not KeyboardInterrupt: an interrupted batch resumes
        result = _crashed(submission, f"{type(exc).__name__}: {exc}",
                          trace=traceback.format_exc()[-4000:])
    result["student_id"] = submission.student_id
    result["file"] = display_name(submission.path)
    result.setdefault("status", "ok")
    result.setdefault("duration_s", round(time.monotonic() - start, 3))
    return result


class _Progress:
    """tqdm when it is installed, else a one-line counter on stderr."""

    def __init__(self, total: int, done: int, enabled: bool) -> None:
        self.total, self.done, self.enabled, self.bar = total, done, enabled, None
        if not enabled:
            return
        try:
            from tqdm import tqdm
        except ImportError:
            self._print("")
        else:
            self.bar = tqdm(total=total, initial=done, unit="submission", file=sys.stderr)

    def _print(self, last: str) -> None:
        sys.stderr.write(f"\rgraded {self.done}/{self.total}{'  ' + last if last else ''}\x1b[K")
        sys.stderr.flush()

    def update(self, result: results.Result) -> None:
        self.done += 1
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"{result['student_id']}: {result['status']}")
        else:
            self._print(f"{result['student_id']}: {result['status']}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            sys.stderr.write("\n")


@dataclass(frozen=True)
class DaskEngine:
    """Grade on Dask distributed (the optional ``dask`` extra) instead of a local process pool.

    ``address`` is ``"local"`` (a ``LocalCluster`` of ``workers`` nanny-managed worker processes
    with one thread each, the scheduler setting :data:`DASK_LOCAL_CONFIG`, no Dask memory limit:
    the sandbox limits each notebook) or the address of a running scheduler, such as
    ``tcp://host:8786`` (a cluster started by dask-jobqueue, dask-kubernetes or ``dask
    scheduler`` / ``dask worker``). The workers must run this package, and the submissions and
    the output folder must be on a filesystem that they and this process share, under the same
    paths: the workers read the submissions and write ``out/work``, this process writes the
    results.

    On a cluster of your own, start the workers with ``--nthreads 1`` (a notebook's kernel
    already uses the cores) and the scheduler with ``DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=0``;
    with Dask's default (3) a submission that kills its worker kills three more before it counts
    as crashed.
    """

    address: str = "local"


def run_batch(submissions: Sequence[Submission], grade_one: GradeOne, out: Path, *,
              workers: int | None = os.cpu_count(), regrade: bool = False,
              progress: bool = True, engine: DaskEngine | None = None) -> list[results.Result]:
    """Grade ``submissions`` with ``grade_one`` in ``workers`` processes; return every result.

    ``grade_one(submission, scratch)`` must be a picklable top-level function; ``scratch`` is an
    empty directory for that submission (``out/work/<student_id>``, emptied before each call).
    ``engine``: ``None`` for a local process pool, or a :class:`DaskEngine` (``workers`` is then
    the size of its LocalCluster; a scheduler's address brings its own workers).
    Each result is written to ``out/results/<student_id>.json`` as soon as it is known; those
    already there are kept and their submissions skipped, unless ``regrade``. The results, old
    and new, come back in the order of ``submissions``.
    """
    out = Path(out)
    results_dir = out / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    files.remove_stale_temps(results_dir)  # left by a batch killed while writing
    ids = [s.student_id for s in submissions]
    if len(set(ids)) != len(ids):
        raise ValueError("submissions must have unique student ids")

    graded: dict[str, results.Result] = {}
    todo: list[Submission] = []
    for sub in submissions:
        old = None if regrade else results.load(results_dir / f"{sub.student_id}{results.SUFFIX}")
        if old is not None:
            graded[sub.student_id] = old
        else:
            todo.append(sub)

    bar = _Progress(len(submissions), len(graded), progress)

    def record(result: results.Result) -> None:
        sid = result["student_id"]
        try:
            results.write(results_dir / f"{sid}{results.SUFFIX}", result)
        except (OSError, TypeError, ValueError) as exc:  # this submission's result only: carry on
            result = {"student_id": sid, "file": result.get("file", ""), "status": "crashed",
                      "error": f"the result could not be written: {type(exc).__name__}: {exc}"}
            with contextlib.suppress(OSError, TypeError, ValueError):
                results.write(results_dir / f"{sid}{results.SUFFIX}", result)
        graded[sid] = result
        bar.update(result)

    n = max(1, min(workers or 1, len(todo) or 1))
    try:
        if engine is None:
            _grade_all(todo, grade_one, out / "work", n, record)
        elif todo:
            _grade_all_dask(todo, grade_one, out / "work", n, record, engine.address)
    finally:
        bar.close()
    return [graded[sub.student_id] for sub in submissions]


def _grade_all(todo: Iterable[Submission], grade_one: GradeOne, work: Path, workers: int,
               record: Callable[[results.Result], None]) -> None:
    """Keep at most ``workers`` gradings in flight. When a grading process dies, the pool breaks
    and every grading in flight fails with it: those are graded again one at a time, each in a
    pool of its own, so that only the one that kills its process is recorded as crashed."""
    pending = deque(todo)
    while pending:
        suspects: list[Submission] = []
        broken = False  # once the pool breaks, submit nothing more and collect what is in flight
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=_CONTEXT) as pool:
            inflight: dict[cf.Future, Submission] = {}
            while True:
                while pending and not broken and len(inflight) < workers:
                    sub = pending.popleft()
                    try:
                        future = pool.submit(_grade_safely, grade_one, sub, work / sub.student_id)
                    except BrokenProcessPool:  # broke before we saw it: grade it in the next pool
                        pending.appendleft(sub)
                        broken = True
                        break
                    inflight[future] = sub
                if not inflight:
                    break
                done, _ = cf.wait(inflight, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    sub = inflight.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        suspects.append(sub)
                        broken = True
                    else:
                        record(result)

        def alone(sub: Submission) -> results.Result:
            with cf.ProcessPoolExecutor(max_workers=1, mp_context=_CONTEXT) as pool:
                return pool.submit(_grade_safely, grade_one, sub, work / sub.student_id).result()

        _regrade_alone(suspects, alone, (BrokenProcessPool,), record)


def _regrade_alone(suspects: Iterable[Submission], grade_alone: Callable[[Submission], results.Result],
                   died: tuple[type[BaseException], ...], record: Callable[[results.Result], None]) -> None:
    """Grade each suspect again on its own (both engines): a grading process that dies takes
    every grading it held down with it, so only a submission that kills its process when graded
    alone is recorded as crashed."""
    for sub in suspects:
        try:
            result = grade_alone(sub)
        except died as exc:
            result = _crashed(sub, f"the grading process died: {exc}")
        record(result)


def _grade_all_dask(todo: Sequence[Submission], grade_one: GradeOne, work: Path, workers: int,
                    record: Callable[[results.Result], None], address: str) -> None:
    """Submit every grading to Dask and record each result as it arrives.

    When a worker dies, every task it held fails with Dask's ``KilledWorker`` (after the
    scheduler's allowed failures), not only the one that killed it: the scheduler hands a worker
    more tasks than it has threads. Those suspects are graded again at the end, one at a time,
    so that only a submission that kills its worker when graded alone is recorded as crashed.
    Any other error (the scheduler lost, say) ends the batch, which resumes when run again.
    """
    import logging
    import uuid

    import dask
    from distributed import Client, KilledWorker, LocalCluster, as_completed

    with contextlib.ExitStack() as stack:
        if address == "local":
            stack.enter_context(dask.config.set(DASK_LOCAL_CONFIG))
            cluster = stack.enter_context(LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, memory_limit=None,
                dashboard_address=None, silence_logs=logging.ERROR))
            client = stack.enter_context(Client(cluster))
        else:
            client = stack.enter_context(Client(address))
        batch = uuid.uuid4().hex[:8]

        def submit(sub: Submission, tag: str = "") -> Any:
            return client.submit(_grade_safely, grade_one, sub, work / sub.student_id, pure=False,
                                 retries=0, key=f"grade-{sub.student_id}-{batch}{tag}")

        futures = {submit(sub): sub for sub in todo}
        suspects: list[Submission] = []
        # Results come to this process as soon as their task ends, and each task is released at
        # once: a result left on a worker that dies would be computed (graded) again.
        for future, value in as_completed(list(futures), with_results=True, raise_errors=False):
            sub = futures.pop(future)
            status = future.status
            future.release()
            if status == "error" and isinstance(value, tuple) and isinstance(value[1], KilledWorker):
                suspects.append(sub)
            elif status == "error" and isinstance(value, tuple):
                raise value[1].with_traceback(value[2])
            elif isinstance(value, BaseException):  # cancelled: the scheduler or the client went away
                raise value
            else:
                record(value)
        _regrade_alone(suspects, lambda sub: submit(sub, "-alone").result(), (KilledWorker,), record)


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "" if value is None else csv_text(value)
    return str(int(value)) if float(value).is_integer() else f"{value:.4g}"


_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value: Any) -> str:
    """A text cell a spreadsheet will not run (OWASP CSV injection): text that starts with ``=``,
    ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``. Only for text cells:
    the grader's numbers are written as numbers."""
    text = "" if value is None else str(value).encode("utf-8", "backslashreplace").decode("utf-8")
    return "'" + text if text.startswith(_FORMULA) else text


def write_gradebook(graded: Iterable[results.Result], path: Path, questions: list[str]) -> None:
    """Write the CSV gradebook atomically: one row per result, columns ``student_id, file, status,
    <question>... , total, duration_s``. A question without a score is left empty; ``total`` is
    the result's ``total``, else the sum of its scores."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")  # RFC 4180: a CR or LF in a cell is quoted
    header = ("student_id", "file", "status", *questions, "total", "duration_s")
    writer.writerow([csv_text(h) for h in header])
    for result in graded:
        scores = result.get("scores") or {}
        total = result.get("total")
        if total is None:
            total = sum(v for v in scores.values() if isinstance(v, int | float))
        duration = result.get("duration_s")
        writer.writerow([csv_text(result.get("student_id", "")), csv_text(result.get("file", "")),
                         csv_text(result.get("status", "")),
                         *(_number(scores.get(q)) for q in questions), _number(total),
                         "" if duration is None else f"{float(duration):.1f}"])
    files.write_text(Path(path), buffer.getvalue())
