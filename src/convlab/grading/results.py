"""The per-submission result: its type, defined once, and its one JSON form (``results/<id>.json``).

A result is built by :func:`convlab.grading.score.score` (the points), completed by
:func:`convlab.grading.grade.grade_one` (execution, integrity, histories, figures, scoring
process) and :func:`convlab.grading.batch.run_batch` (id, file name, duration; a ``crashed``
result for a submission that could not be graded), stored with :func:`write` and read back by a
resumed batch with :func:`load`. The gradebook, the feedback, the class report and the manual
merge read it. It stays a plain JSON mapping (a :class:`~typing.TypedDict`), because it is stored,
read back from disk by a later run and extended in place (warnings, manual grades); these types
say which keys exist and what they hold, and :func:`load` refuses a file that is not a mapping.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypedDict, cast

from convlab.grading import files

SUFFIX = ".json"
INDENT = 2


class Case(TypedDict):
    """One test case of a question, as scored."""

    name: str
    points: float
    hidden: bool
    passed: bool
    message: str


class Question(TypedDict):
    """One question (an otter test file): its points and its cases."""

    score: float
    possible: float
    all_or_nothing: bool
    cases: list[Case]
    output: str  #: otter's summary of every case (Gradescope)
    public_output: str  #: the same for the public cases only


class Execution(TypedDict):
    """How phase 1 ran (:class:`convlab.grading.execute.Execution`, as plain data)."""

    seconds: float
    peak_rss_mb: int
    protections: dict[str, bool]


class Scoring(TypedDict, total=False):
    """How the scoring process ran (:func:`convlab.grading.score_process.run`)."""

    status: str
    seconds: float
    peak_rss_mb: int
    protections: dict[str, bool]
    stderr_tail: str


class Integrity(TypedDict):
    """Fingerprints compared by :func:`convlab.grading.integrity.integrity`."""

    models: dict[str, dict[str, Any]]  #: variable -> weights fingerprint (+ ``predictions``)
    answers: dict[str, Any] | None  #: the answer cells' fingerprint; None when unreadable


class Result(TypedDict, total=False):
    """One submission's result. ``status``: ``ok``, ``timeout``, ``memory``, ``crashed``,
    ``invalid-notebook`` or ``wrong-assignment``."""

    student_id: str
    file: str  #: the submitted file's name (``\\xNN`` for bytes that are not UTF-8)
    status: str
    reason: str  #: why phase 1 ended as it did (redacted)
    error: str  #: why grading crashed (batch)
    traceback: str
    duration_s: float
    scores: dict[str, float]
    possible: dict[str, float]
    total: float
    max_total: float
    questions: dict[str, Question]
    messages: list[str]
    warnings: list[str]
    execution: Execution
    scoring: Scoring
    integrity: Integrity
    histories: dict[str, dict[str, list[float | None]]]  #: variable -> metric -> values per epoch
    figures: dict[str, dict[str, Any]]  #: variable -> ``{"kind": "confusion", "matrix": ...}``


def dumps(result: Result) -> str:
    """The stored JSON text of a result (UTF-8, non-ASCII kept, a final newline)."""
    return json.dumps(result, indent=INDENT, ensure_ascii=False) + "\n"


def plain(result: Mapping[str, Any]) -> Result:
    """``result`` as it will read back from its file (tuples as lists, keys as strings); raises
    ``TypeError``/``ValueError`` for what JSON cannot hold."""
    return cast(Result, json.loads(json.dumps(result)))


def write(path: Path, result: Result) -> None:
    """Store ``result`` at ``path`` atomically (:mod:`convlab.grading.files`)."""
    files.write_text(path, dumps(result))


def load(path: Path) -> Result | None:
    """A stored result, or None when the file is missing, unreadable or not a JSON object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return cast(Result, data) if isinstance(data, dict) else None
