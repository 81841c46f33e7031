"""Phase 2 of the two-phase grader: score the exported values in the trusted process.

Nothing of the submission runs here. :func:`load_tests` reads the lab's exception-format test
files from the trusted autograder (a folder or the autograder zip) with otter's own parser, so
points per test case, question totals and ``all_or_nothing`` follow otter's rules.
:func:`load_snapshots` reads what phase 1 exported, treating every byte as hostile:

* files are opened relative to the export folder with ``O_NOFOLLOW`` (no links, regular files
  only, names from a fixed pattern, size caps), so a submission cannot make the grader read its
  own files;
* arrays: ``numpy.load(..., allow_pickle=False)``; JSON: :mod:`json`; Keras models: copied to a
  private folder, their ``config.json`` checked (only ``keras`` modules, bounded size), then
  ``keras.saving.load_model(..., safe_mode=True)`` (no Lambda bytecode, no custom classes);
* figures are rebuilt from their description (grid geometry and image arrays) as new
  matplotlib figures; a model's fit history is re-attached as a ``History``.

No pickle is ever loaded. A value that is missing, could not be exported or cannot be loaded
makes each test case that reads it fail with a Russian message naming the variable.
:func:`score` runs every test case and returns the result dict of :mod:`convlab.grading.batch`;
:func:`gradescope` turns it into a Gradescope ``results.json``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from otter.test_files.abstract_test import TestCaseResult
from otter.test_files.exception_test import ExceptionTestFile

from convlab.grading import model_policy, probes
from convlab.grading.export_format import FILE_NAME as _NAME
from convlab.grading.export_format import MAX_ARRAY, MAX_AXES, MAX_DEPTH, MAX_JSON, MAX_MODEL
from convlab.grading.results import Result

HEADER_ONLY = 1 << 62  #: size cap when only a header is read


class LoadError(Exception):
    """An exported value that cannot be turned back into an object (message in Russian)."""


# ------------------------------------------------------------------------------------- tests
def load_tests(source: Path) -> list[ExceptionTestFile]:
    """The lab's test files, sorted by name: ``source`` is an autograder folder (``tests/*.py``
    inside it, or the tests folder itself) or an autograder zip (its ``tests/*.py``)."""
    source = Path(source)
    if source.is_file() and source.suffix == ".zip":
        with tempfile.TemporaryDirectory(prefix="convlab-tests-") as tmp, zipfile.ZipFile(source) as zf:
            for info in zf.infolist():
                parts = info.filename.split("/")
                if len(parts) == 2 and parts[0] == "tests" and re.fullmatch(r"\w+\.py", parts[1]):
                    (Path(tmp) / parts[1]).write_bytes(zf.read(info))
            return load_tests(Path(tmp))
    folder = source / "tests" if (source / "tests").is_dir() else source
    files = sorted(p for p in folder.glob("*.py") if p.name != "__init__.py")
    if not files:
        raise FileNotFoundError(f"no test files in {folder}")
    return [ExceptionTestFile.from_file(str(p)) for p in files]


def parameters(test_file: ExceptionTestFile) -> list[str]:
    """The notebook names a question's test cases read (their parameters), in order."""
    names: dict[str, None] = {}
    for case in test_file.test_cases:
        for name in case.body._get_func_params():
            names[name] = None
    return list(names)


def needed_names(tests: list[ExceptionTestFile]) -> dict[str, list[str]]:
    """Question -> the notebook names to export for it (``env`` is not supported)."""
    return {t.name: [n for n in parameters(t) if n != "env"] for t in tests}


# --------------------------------------------------------------------------- untrusted files
def _open_dir(path: Path) -> int:
    parent = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return os.open(path.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
    finally:
        os.close(parent)


def _open_file(dirfd: int, name: str, limit: int) -> Any:
    """A binary file object for the regular file ``name`` of the folder ``dirfd``, not a link."""
    if name != "manifest.json" and not _NAME.match(name):
        raise LoadError(f"недопустимое имя файла {name!r}")
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dirfd)
    except OSError as error:
        raise LoadError(f"файл {name} не найден") from error
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise LoadError(f"{name} не обычный файл")
    if info.st_size > limit:
        os.close(fd)
        raise LoadError(f"файл {name} слишком большой ({info.st_size} байт)")
    return os.fdopen(fd, "rb")


@dataclass
class Export:
    """The validated view of one export folder (opened once, links refused)."""

    dirfd: int
    snapshots: dict[str, Any]
    staging: Path
    #: why every array of this export is refused (their declared sizes together are over budget)
    arrays_refused: str = ""

    def close(self) -> None:
        os.close(self.dirfd)
        shutil.rmtree(self.staging, ignore_errors=True)


def load_snapshots(export: Path | None) -> Export | None:
    """Open an export folder and read its manifest; None when there is none or it is unreadable."""
    if export is None:
        return None
    try:
        dirfd = _open_dir(Path(export))
    except OSError:
        return None
    try:
        with _open_file(dirfd, "manifest.json", MAX_JSON) as handle:
            manifest = json.loads(handle.read().decode("utf-8"))
        snapshots = manifest["snapshots"]
        if not isinstance(snapshots, dict):
            raise ValueError("snapshots")
    except (LoadError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        os.close(dirfd)
        return None
    loaded = Export(dirfd=dirfd, snapshots=snapshots,
                    staging=Path(tempfile.mkdtemp(prefix="convlab-models-")))
    loaded.arrays_refused = _array_budget(loaded)
    return loaded


def _array_files(node: Any, found: set[str], depth: int = 0) -> None:
    if depth > 64:
        return
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("file", "images") and isinstance(value, str) and value.endswith(".npy"):
                found.add(value)
            elif key == "images" and isinstance(value, list):
                found.update(v for v in value if isinstance(v, str) and v.endswith(".npy"))
            else:
                _array_files(value, found, depth + 1)
    elif isinstance(node, list):
        for value in node:
            _array_files(value, found, depth + 1)


def _array_budget(export: Export) -> str:
    """Why the export's arrays are refused ("" when they are not): every array the manifest
    names counts by the size its header declares (a sparse file counts in full)."""
    names: set[str] = set()
    _array_files(export.snapshots, names)
    sizes = []
    for name in sorted(names):
        try:
            with _open_file(export.dirfd, name, HEADER_ONLY) as handle:  # reads the header only
                sizes.append(model_policy.npy_declared_bytes(handle))
        except (LoadError, model_policy.PolicyError):
            continue  # refused again, with its own message, when a test reads it
    try:
        model_policy.array_budget(sizes)
    except model_policy.PolicyError as error:
        return str(error)
    return ""


def _load_array(export: Export, name: Any, cache: dict[str, Any]) -> Any:
    import numpy as np

    if not isinstance(name, str):
        raise LoadError("повреждённое описание массива")
    if name in cache:
        return cache[name]
    if not name.endswith(".npy"):
        raise LoadError(f"недопустимое имя файла {name!r}")
    if export.arrays_refused:
        raise LoadError(export.arrays_refused)
    with _open_file(export.dirfd, name, MAX_ARRAY) as handle:
        try:
            declared = model_policy.npy_declared_bytes(handle)
        except model_policy.PolicyError as error:
            raise LoadError(f"массив {name}: {error}") from error
        if declared > MAX_ARRAY:
            raise LoadError(f"массив {name} объявляет {declared} байт, допустимо не больше {MAX_ARRAY}")
        try:
            array = np.load(handle, allow_pickle=False)
        except Exception as error:
            raise LoadError(f"массив {name} не читается ({type(error).__name__})") from error
    if not isinstance(array, np.ndarray) or array.dtype.hasobject:
        raise LoadError(f"массив {name} не читается")
    cache[name] = array
    return array


def _check_model_config(path: Path) -> None:
    """Refuse a .keras archive outside :mod:`convlab.grading.model_policy` (classes, keys and
    values allow-listed, parameters and shapes bounded from the configuration, declared weight
    bytes bounded); nothing is built or called before it accepted the file."""
    try:
        model_policy.check_keras_archive(path)
    except model_policy.PolicyError as error:
        raise LoadError(f"модель не принята: {error}") from error


def _load_model(export: Export, node: dict, cache: dict[str, Any]) -> Any:
    import keras

    name = node.get("file")
    if not isinstance(name, str) or not name.endswith(".keras") or not _NAME.match(name):
        raise LoadError("повреждённое описание модели")
    key = "model:" + name
    if key in cache:
        return cache[key]
    target = export.staging / name
    if not target.exists():
        with _open_file(export.dirfd, name, MAX_MODEL) as source, open(target, "xb") as sink:
            shutil.copyfileobj(source, sink)
    _check_model_config(target)
    try:
        model = keras.saving.load_model(target, compile=True, safe_mode=True)
    except Exception as error:
        raise LoadError(f"модель не загружается безопасно ({type(error).__name__}: "
                        f"{str(error)[:300]})") from error
    epochs = node.get("epoch")
    history = node.get("history")
    if isinstance(epochs, list) and isinstance(history, dict):
        record = keras.callbacks.History()
        record.set_model(model)
        record.epoch = [int(e) for e in epochs if isinstance(e, int)]
        record.history = {str(k): v for k, v in history.items() if isinstance(v, list)}
        model.history = record
    cache[key] = model
    return model


def _load_figure(export: Export, node: dict, cache: dict[str, Any]) -> Any:
    from matplotlib.figure import Figure
    from matplotlib.gridspec import GridSpec, SubplotSpec

    size = node.get("size")
    fig = Figure(figsize=tuple(size) if _numbers(size, 2) and all(0 < s < 1000 for s in size) else None)
    grids: dict[tuple[int, int], GridSpec] = {}
    axes = node.get("axes")
    if not isinstance(axes, list) or len(axes) > MAX_AXES:
        raise LoadError("повреждённое описание фигуры")
    for entry in axes:
        if not isinstance(entry, dict):
            raise LoadError("повреждённое описание фигуры")
        geometry = entry.get("geometry")
        if _numbers(geometry, 4) and all(isinstance(v, int) for v in geometry) \
                and 0 < geometry[0] <= 100 and 0 < geometry[1] <= 100 \
                and 0 <= geometry[2] <= geometry[3] < geometry[0] * geometry[1]:
            rows, cols, start, stop = geometry
            grid = grids.setdefault((rows, cols), GridSpec(rows, cols, figure=fig))
            ax = fig.add_subplot(SubplotSpec(grid, start, stop))
        else:
            position = entry.get("position")
            left, bottom, width, height = position if _numbers(position, 4) else (0, 0, 1, 1)
            ax = fig.add_axes((left, bottom, width, height))
        for name in entry.get("images") or []:
            ax.imshow(_load_array(export, name, cache))
    return fig


def _numbers(value: Any, count: int) -> TypeGuard[list[Any]]:
    return (isinstance(value, list) and len(value) == count
            and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                    for v in value))


def decode(node: Any, export: Export, cache: dict[str, Any], depth: int = 0) -> Any:
    """The object of a tagged-JSON node (see :func:`convlab.grading.exporter.encode`)."""
    import numpy as np

    if depth > MAX_DEPTH:
        raise LoadError("слишком глубокая вложенность")
    if node is None or isinstance(node, bool | int | float | str):
        return node
    if isinstance(node, list):
        return [decode(v, export, cache, depth + 1) for v in node]
    if not isinstance(node, dict):
        raise LoadError("повреждённое значение")
    tag = node.get("$t")
    items = node.get("items")
    if tag in ("tuple", "set", "frozenset") and isinstance(items, list):
        values = [decode(v, export, cache, depth + 1) for v in items]
        try:
            return {"tuple": tuple, "set": set, "frozenset": frozenset}[tag](values)
        except TypeError as error:
            raise LoadError("повреждённое множество") from error
    if tag == "dict" and isinstance(items, list):
        try:
            return {decode(k, export, cache, depth + 1): decode(v, export, cache, depth + 1)
                    for k, v in items}
        except (TypeError, ValueError) as error:
            raise LoadError("повреждённый словарь") from error
    if tag == "float" and node.get("v") in ("nan", "inf", "-inf"):
        return float(node["v"])
    if tag == "int" and isinstance(node.get("v"), str) and re.fullmatch(r"-?\d{1,400}", node["v"]):
        return int(node["v"])
    if tag == "np":
        try:
            dtype = np.dtype(str(node.get("dtype")))
            if dtype.hasobject or dtype.kind not in "biuf":
                raise TypeError(dtype)
            return dtype.type(node.get("v"))
        except (TypeError, ValueError, OverflowError) as error:
            raise LoadError("повреждённое число numpy") from error
    if tag == "ndarray":
        return _load_array(export, node.get("file"), cache)
    if tag == "model":
        return _load_model(export, node, cache)
    if tag == "figure":
        return _load_figure(export, node, cache)
    raise LoadError("повреждённое значение")


# --------------------------------------------------------------------------------------- scoring
MISSING = "переменная {name} не найдена / не может быть экспортирована: {why}"


Observer = Callable[[str, str, Any], None]


def _environment(export: Export | None, question: str, names: list[str], fallback: str,
                 observe: Observer | None = None, models: dict[str, Any] | None = None,
                 ) -> tuple[dict[str, Any], dict[str, str]]:
    """The loaded values of ``question``'s snapshot and, per name, why it is absent;
    ``observe(question, name, value)`` sees each loaded value (an error in it is ignored).

    ``models`` (file name -> loaded model) is shared by the questions of one submission: a model
    exported once for several questions (same object, same weights: same file) is loaded once,
    so the checks' predictions, cached per model object, are computed once too. Arrays are loaded
    per question and dropped after it (they can be large)."""
    env: dict[str, Any] = {}
    problems: dict[str, str] = {}
    snap = export.snapshots.get(question) if export is not None else None
    values = snap.get("values") if isinstance(snap, dict) else None
    if export is None or not isinstance(values, dict):
        return env, {name: fallback for name in names}
    cache: dict[str, Any] = dict(models or {})
    for name in names:
        entry = found if isinstance(found := values.get(name), dict) else {}
        kind = entry.get("kind")
        if kind == "value":
            try:
                env[name] = decode(entry.get("value"), export, cache)
            except LoadError as error:
                problems[name] = f"значение не загружается ({error})"
            except Exception as error:
                problems[name] = f"значение не загружается ({type(error).__name__})"
            else:
                if observe is not None:
                    with contextlib.suppress(Exception):
                        observe(question, name, env[name])
        elif kind == "unexportable" and isinstance(entry.get("why"), str):
            problems[name] = f"модель не принимается на проверку: {entry['why'][:400]}"
        elif kind == "probed":  # a function's answers on the grader's probes (grading.probes)
            try:
                env[name] = probes.restore(name, decode(entry.get("value"), export, cache))
            except Exception as error:
                problems[name] = f"ответы функции не загружаются ({type(error).__name__})"
        elif kind == "unexportable":
            problems[name] = f"значение типа {str(entry.get('type'))[:200]} не является данными"
        else:
            problems[name] = "в блокноте нет такой переменной"
    if models is not None:
        models.update((key, value) for key, value in cache.items() if key.startswith("model:"))
    return env, problems


def _run_file(test_file: ExceptionTestFile, env: dict[str, Any], problems: dict[str, str]
              ) -> list[dict[str, Any]]:
    test_file.test_case_results = []
    cases = []
    for tc in test_file.test_cases:
        params = tc.body._get_func_params()
        absent = [n for n in params if n in problems]
        if absent:
            message = "; ".join(MISSING.format(name=n, why=problems[n]) for n in absent)
            passed, output = False, "❌ Test case failed\n" + message
        elif "env" in params:
            passed, message = False, "параметр env не поддерживается двухфазным оцениванием"
            output = "❌ Test case failed\n" + message
        else:
            passed, message, output = True, "", "✅ Test case passed"
            try:
                tc.body.call_func(env)
            except Exception as error:
                passed = False
                message = f"{error}".strip() or type(error).__name__
                try:
                    output = "❌ Test case failed\n" + test_file._generate_error_message(error)
                except Exception:
                    output = f"❌ Test case failed\n{type(error).__name__}: {message}"
        test_file.test_case_results.append(TestCaseResult(test_case=tc, message=output, passed=passed))
        cases.append({"name": tc.name, "points": float(tc.points), "hidden": bool(tc.hidden),
                      "passed": passed, "message": "" if passed else message})
    return cases


def _text(value: Any, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _replay_file(test_file: ExceptionTestFile, outcomes: Any, missing: str) -> list[dict[str, Any]]:
    """Record on ``test_file`` the outcomes its cases had in the scoring process: pass/fail and
    messages only; points, totals and ``all_or_nothing`` come from the trusted test file."""
    by_name: dict[str, dict] = {}
    for outcome in outcomes if isinstance(outcomes, list) else []:
        if isinstance(outcome, dict) and isinstance(outcome.get("name"), str):
            by_name.setdefault(outcome["name"], outcome)
    test_file.test_case_results = []
    cases = []
    for tc in test_file.test_cases:
        outcome = by_name.get(tc.name)
        passed = outcome is not None and outcome.get("passed") is True
        if outcome is None:
            message, output = missing, "❌ Test case failed\n" + missing
        else:
            message = "" if passed else _text(outcome.get("message"), MAX_MESSAGE) or "проверка не пройдена"
            output = _text(outcome.get("output"), 4 * MAX_MESSAGE) or (
                "✅ Test case passed" if passed else "❌ Test case failed\n" + message)
        test_file.test_case_results.append(TestCaseResult(test_case=tc, message=output, passed=passed))
        cases.append({"name": tc.name, "points": float(tc.points), "hidden": bool(tc.hidden),
                      "passed": passed, "message": message})
    return cases


MAX_MESSAGE = 4000  #: characters of one case's message taken from the scoring process


def outcomes(tests: list[ExceptionTestFile], result: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Per question, each case's name, pass/fail, message and output, as :func:`score` recorded
    them on ``tests`` and in ``result`` (what the scoring process hands back, see
    :func:`_replay_file`)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for test_file in tests:
        cases = result["questions"][test_file.name]["cases"]
        out[test_file.name] = [
            {"name": case["name"], "passed": bool(case["passed"]), "message": case["message"][:MAX_MESSAGE],
             "output": str(recorded.message)[:4 * MAX_MESSAGE]}
            for case, recorded in zip(cases, test_file.test_case_results, strict=True)]
    return out


def score(tests: list[ExceptionTestFile], export: Export | None, *, status: str = "ok",
          reason: str = "", observe: Observer | None = None,
          replay: dict[str, Any] | None = None, replay_missing: str = "") -> dict[str, Any]:
    """Run every test case on the exported values; the result dict of :mod:`batch` (``status``,
    ``scores``, ``possible``, ``total``, ``max_total``, ``questions`` with each case's outcome).

    ``observe(question, name, value)`` is called with every value loaded for a question, before
    its tests run (the grader fingerprints the loaded models there).

    ``replay``: the case outcomes of a scoring process (:func:`outcomes`, as
    :mod:`convlab.grading.score_process` returns them); nothing is loaded or run, the trusted
    ``tests`` give the points; a case without an outcome fails with ``replay_missing``."""
    fallback = {
        "ok": "блокнот выполнен, но значения не были сохранены",
        "timeout": "выполнение блокнота прервано по времени до проверки этого задания",
        "memory": "выполнение блокнота прервано: превышен лимит памяти",
        "crashed": "выполнение блокнота завершилось аварийно",
    }.get(status, reason or "блокнот не выполнялся")
    questions: dict[str, Any] = {}
    loaded: dict[str, Any] = {}
    for test_file in tests:
        if replay is not None:
            cases = _replay_file(test_file, replay.get(test_file.name), replay_missing or fallback)
        else:
            names = [n for n in parameters(test_file) if n != "env"]
            env, problems = _environment(export, test_file.name, names, fallback, observe, loaded)
            cases = _run_file(test_file, env, problems)
            del env
        questions[test_file.name] = {
            "score": float(test_file.score), "possible": float(test_file.possible),
            "all_or_nothing": bool(test_file.all_or_nothing), "cases": cases,
            "output": test_file.summary(), "public_output": test_file.summary(public_only=True),
        }
    scores = {q: v["score"] for q, v in questions.items()}
    result = {"status": status, "scores": scores,
              "possible": {q: v["possible"] for q, v in questions.items()},
              "total": round(sum(scores.values()), 6),
              "max_total": round(sum(v["possible"] for v in questions.values()), 6),
              "questions": questions,
              "messages": [f"{q}: {c['name']}: {c['message']}" for q, v in questions.items()
                           for c in v["cases"] if not c["passed"]]}
    if reason:
        result["reason"] = reason
    with contextlib.suppress(Exception):
        import matplotlib.pyplot as plt

        plt.close("all")
    return result


def gradescope(result: Result, *, show_hidden: bool = False) -> dict[str, Any]:
    """A Gradescope ``results.json`` (otter's layout) for one result dict."""
    visibility = "after_published" if show_hidden else "hidden"
    public = "\n\n".join(v.get("public_output", "") for v in result.get("questions", {}).values())
    tests: list[dict[str, Any]] = [{"name": "Public Tests", "visibility": "visible", "output": public,
                                     "status": "passed" if all(
                                         c["passed"] for v in result.get("questions", {}).values()
                                         for c in v["cases"] if not c["hidden"]) else "failed"}]
    for question, value in result.get("questions", {}).items():
        tests.append({"name": question, "score": value["score"], "max_score": value["possible"],
                      "output": value["output"], "visibility": visibility})
    out: dict[str, Any] = {"tests": tests, "score": result.get("total", 0.0)}
    if result.get("status") not in (None, "ok"):
        out["output"] = f"Статус оценивания: {result['status']}. {result.get('reason', '')}".strip()
    return out
