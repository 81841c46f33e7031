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
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convlab.grading import execute, export_format, model_policy, sandbox, score

JOB = "job.json"
RESULT = "result.json"
TESTS = "tests"
EXPORT = "export"
MAX_RESULT = 64 << 20
MAX_MODEL_FILE = export_format.MAX_MODEL
_FILE = export_format.FILE_NAME


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Limits of the scoring process of one submission."""

    isolated: bool = True  #: False: score in the grader's own process (the former route)
    wall_seconds: float = 1200.0
    memory_bytes: int | None = 6 << 30


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


def _copy_export(export: Path | None, dest: Path) -> str:
    """Copy phase 1's export into ``dest``; return why its arrays are refused ("" if they are not).
    Every file is hostile: regular files only, no links, names from the export's pattern, caps."""
    dest.mkdir()
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
        (dest / "manifest.json").write_bytes(manifest)
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
            with contextlib.suppress(score.LoadError, OSError), \
                    score._open_file(dirfd, name, limit) as source, open(dest / name, "xb") as sink:
                copied = 0
                while chunk := source.read(1 << 20):
                    copied += len(chunk)
                    if copied > limit:
                        break
                    sink.write(chunk)
        return refused
    finally:
        os.close(dirfd)


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


def run(tests: list[Any], tests_source: Path, export: Path | None, *, status: str, reason: str,
        settings: Settings, execution: execute.Settings, figures: Mapping[str, str],
        base: Path | None = None) -> Scored:
    """Score one submission's export in a fresh sandboxed process; ``tests`` are the grader's own
    parsed test files (they give the points)."""
    workdir = sandbox.prepare_workdir(base or execute.sandbox_base())
    try:
        _copy_tests(tests_source, workdir / TESTS)
        refused = _copy_export(export, workdir / EXPORT)
        job = {"status": status, "reason": reason, "arrays_refused": refused,
               "export": export is not None, "figures": dict(figures)}
        (workdir / JOB).write_text(json.dumps(job), encoding="utf-8")
        # the notebook's confinement, with the scorer's own time and memory limits
        limits = sandbox.Limits(wall_seconds=settings.wall_seconds, memory_bytes=settings.memory_bytes,
                                allow_user_switch=execution.allow_user_switch, confine_writes=True,
                                confine_reads=execution.confine_reads, allow_root=execution.allow_root,
                                max_processes=execution.max_processes, disk_bytes=execution.disk_bytes,
                                shm_bytes=execution.shm_bytes)
        outcome = sandbox.run([sys.executable, "-m", "convlab.grading.score_process"], workdir=workdir,
                              limits=limits, env=execute.kernel_env(execution, workdir))
        data = _read_result(workdir) if outcome.status == "ok" else None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    process = {"status": outcome.status, "seconds": outcome.seconds,
               "peak_rss_mb": round(outcome.peak_rss_bytes / 2**20), "protections": outcome.protections}
    if not isinstance(data, dict) or not isinstance(data.get("cases"), dict):
        why = _FAILED.get(outcome.status, "процесс оценивания не вернул результат")
        result = score.score(tests, None, status=status if status != "ok" else
                             (outcome.status if outcome.status in _FAILED else "crashed"),
                             reason=reason or why, replay={}, replay_missing=why)
        process["stderr_tail"] = outcome.stderr_tail[-1500:]
        return Scored(result=result, models={}, histories={}, figures={}, process=process)
    result = score.score(tests, None, status=status, reason=reason, replay=data["cases"],
                         replay_missing="проверка не выполнена процессом оценивания")
    collected = data.get("collector") if isinstance(data.get("collector"), dict) else {}
    parts = {k: v if isinstance(v := _plain(collected.get(k)), dict) else {}
             for k in ("models", "histories", "figures")}
    return Scored(result=result, process=process, **parts)


# ---------------------------------------------------------------------------- process side
def main() -> int:
    """The scoring process: read ``job.json``, score, write ``result.json`` (in the current
    directory, the sandbox's working directory)."""
    from convlab.grading import grade

    job = json.loads(Path(JOB).read_text(encoding="utf-8"))
    tests = score.load_tests(Path(TESTS))
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
    out = {"cases": score.outcomes(tests, result),
           "collector": {"models": collector.models, "histories": collector.histories,
                         "figures": collector.figures}}
    fd, tmp = tempfile.mkstemp(dir=".", prefix=".result-")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(out, handle, ensure_ascii=False, default=_jsonable)
    os.replace(tmp, RESULT)
    return 0


def _jsonable(value: Any) -> Any:
    with contextlib.suppress(Exception):
        return value.item()
    return repr(value)[:200]


if __name__ == "__main__":
    sys.exit(main())
