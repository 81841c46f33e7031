"""Manually graded (otter ``manual: true``) questions: extraction, grades, merge and LMS export.

Layout under the output folder of ``convlab grade`` (all plain JSON, written atomically)::

    manual/questions.json        the lab's manual questions: name, points, prompt, reference answer
    manual/answers/<q>.json      every submission's answer to question q (cells as plain data)
    manual/grades/<q>.json       rubric of q and the grades given with it (one file per question;
                                 changed under manual/grades/<q>.lock, so assistants never lose
                                 each other's changes)

* :func:`manual_questions` reads the master: each ``manual: true`` question, its points, its
  prompt and the cells of its ``BEGIN SOLUTION`` block (the reference answer).
* :func:`extract` finds a question in a submission the way otter marks it in the student
  template: the prompt cell starts with ``<!-- BEGIN QUESTION -->``; the answer is the cells after
  it up to the ``<!-- END QUESTION -->`` cell (or the next question, or a locked template cell).
  Cells become plain, bounded data: text, and images only of :data:`IMAGE_TYPES` whose bytes
  match their type. Nothing of a submission is executed or rendered as HTML; :func:`render_cells`
  renders Markdown with raw HTML disabled and every text escaped.
* Grades: a grade is the set of rubric items chosen for an answer plus a free comment. Its
  score is the sum of the chosen items' *current* points, clipped to ``[0, points]``, so editing
  an item's points changes every answer graded with it. An empty or missing answer counts as
  graded with 0 until a person grades it.
* :func:`merge` folds the grades into ``gradebook.csv``, ``feedback/<id>.md``/``.html``,
  ``gradescope/<id>/results.json`` and the class report; it is idempotent and runs after every
  ``convlab grade`` (a regrade of the auto part keeps the manual grades) and on
  ``convlab review --export``.
* :func:`export_lms` writes Moodle's or Canvas' grade-import CSV through a mapping file.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import csv
import fcntl
import hashlib
import html
import io
import json
import math
import re
import secrets
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from convlab.grading import batch, execute, files

BEGIN = "<!-- BEGIN QUESTION -->"
END = "<!-- END QUESTION -->"
#: image types shown to graders (no SVG: it can carry scripts), with their magic bytes
IMAGE_TYPES: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}
MAX_TEXT = 20_000  #: characters kept of a cell's source or of one output
MAX_IMAGE = 2 << 20  #: bytes of one image
MAX_IMAGES = 12  #: images per answer
MAX_CELLS = 30  #: cells per answer
MAX_COMMENT = 5_000
PLACEHOLDERS = ("_Type your answer here, replacing this text._", "_Впишите ответ здесь вместо этого текста._",
                "...", "???")
DELETED_PROMPT = "ячейка с вопросом удалена; ответ взят из ячеек перед концом вопроса"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,79}")


class ManualError(Exception):
    """A user-facing error (bad rubric, mapping, unknown question)."""


@dataclass(frozen=True)
class Question:
    name: str
    points: float
    prompt: str  #: Markdown of the question's first prompt cell (without otter's marker)
    reference: list[dict[str, Any]]  #: the solution's cells (plain data, as answers)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "points": self.points, "prompt": self.prompt, "reference": self.reference}


def _source(cell: Mapping[str, Any]) -> str:
    source = cell.get("source", "")
    if isinstance(source, list):
        source = "".join(s for s in source if isinstance(s, str))
    return source if isinstance(source, str) else ""


def _norm(text: str) -> str:
    return " ".join(text.replace(BEGIN, " ").replace(END, " ").split())


# ------------------------------------------------------------------------------ plain cells
def _image(mime: Any, data: Any) -> dict[str, str] | None:
    """A base64 image of an allowed type whose bytes match it, else None."""
    if not isinstance(mime, str) or mime not in IMAGE_TYPES:
        return None
    if isinstance(data, list):
        data = "".join(d for d in data if isinstance(d, str))
    if not isinstance(data, str) or len(data) > MAX_IMAGE * 4 // 3 + 16:
        return None
    try:
        raw = base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) > MAX_IMAGE or not raw.startswith(IMAGE_TYPES[mime]):
        return None
    if mime == "image/webp" and raw[8:12] != b"WEBP":
        return None
    return {"mime": mime, "data": base64.b64encode(raw).decode("ascii")}


def _text(value: Any) -> str:
    if isinstance(value, list):
        value = "".join(v for v in value if isinstance(v, str))
    if not isinstance(value, str):
        return ""
    value = _ANSI.sub("", value)
    return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + "\n… (обрезано)"


def plain_cell(cell: Mapping[str, Any], budget: list[int]) -> dict[str, Any]:
    """One notebook cell as plain bounded data; ``budget[0]``: images still allowed."""
    kind = cell.get("cell_type") if cell.get("cell_type") in ("markdown", "code", "raw") else "raw"
    out: dict[str, Any] = {"type": kind, "source": _text(_source(cell))}
    if kind == "markdown" and isinstance(cell.get("attachments"), Mapping):
        attachments = {}
        for name, bundle in list(cell["attachments"].items())[:MAX_IMAGES]:
            if not isinstance(name, str) or not isinstance(bundle, Mapping) or budget[0] <= 0:
                continue
            for mime, data in bundle.items():
                if (image := _image(mime, data)) is not None:
                    attachments[name[:200]] = image
                    budget[0] -= 1
                    break
        if attachments:
            out["attachments"] = attachments
    if kind == "code":
        outputs: list[dict[str, Any]] = []
        for output in (cell.get("outputs") or [])[:50]:
            if not isinstance(output, Mapping):
                continue
            otype = output.get("output_type")
            if otype == "stream":
                outputs.append({"text": _text(output.get("text"))})
            elif otype == "error":
                outputs.append({"text": _text(f"{output.get('ename', '')}: {output.get('evalue', '')}")})
            elif otype in ("display_data", "execute_result") and isinstance(output.get("data"), Mapping):
                data = output["data"]
                image = next((i for m in IMAGE_TYPES if (i := _image(m, data.get(m))) is not None), None)
                if image is not None and budget[0] > 0:
                    budget[0] -= 1
                    outputs.append({"image": image})
                elif "text/plain" in data:
                    outputs.append({"text": _text(data.get("text/plain"))})
        if outputs:
            out["outputs"] = outputs
    return out


def _blank(cell: Mapping[str, Any], placeholders: set[str]) -> bool:
    source = _norm(cell.get("source", ""))
    return (not source or source in placeholders) and not cell.get("attachments") and not cell.get("outputs")


# ---------------------------------------------------------------------------------- master
def manual_questions(master: Path) -> list[Question]:
    """The ``manual: true`` questions of an otter-assign master, in order."""
    nb = json.loads(Path(master).read_text(encoding="utf-8"))
    questions: list[Question] = []
    current: dict[str, Any] | None = None
    in_solution = False
    for cell in nb.get("cells") or []:
        source = _source(cell)
        head = source.strip().splitlines()[0].strip() if source.strip() else ""
        if cell.get("cell_type") == "raw" and head == "# BEGIN QUESTION":
            config = yaml.safe_load(source.strip().split("\n", 1)[1] if "\n" in source.strip() else "") or {}
            current = {"config": config, "prompt": None, "reference": []} if config.get("manual") else None
            in_solution = False
            continue
        if current is None:
            continue
        if cell.get("cell_type") == "raw" and head == "# END QUESTION":
            config = current["config"]
            questions.append(Question(name=str(config["name"]), points=float(config.get("points") or 0),
                                      prompt=current["prompt"] or "", reference=current["reference"]))
            current = None
        elif cell.get("cell_type") == "raw" and head in ("# BEGIN SOLUTION", "# END SOLUTION"):
            in_solution = head == "# BEGIN SOLUTION"
        elif in_solution:
            current["reference"].append(plain_cell(cell, [MAX_IMAGES]))
        elif current["prompt"] is None and cell.get("cell_type") == "markdown":
            current["prompt"] = source
    return questions


def template_placeholders(template: Path | None) -> set[str]:
    """Normalized texts of the template's answer cells (an unchanged one is an empty answer)."""
    found = {_norm(p) for p in PLACEHOLDERS}
    if template is not None and Path(template).is_file():
        with contextlib.suppress(Exception):
            nb = json.loads(Path(template).read_text(encoding="utf-8"))
            for cell in nb.get("cells") or []:
                tags = (cell.get("metadata") or {}).get("tags") or []
                if "otter_answer_cell" in tags and cell.get("cell_type") == "markdown":
                    found.add(_norm(_source(cell)))
    return found


# ------------------------------------------------------------------------------ extraction
def _locked(cell: Mapping[str, Any]) -> bool:
    meta = found if isinstance(found := cell.get("metadata"), Mapping) else {}
    return meta.get("editable") is False


def extract(nb: Mapping[str, Any], questions: Sequence[Question],
            placeholders: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """Each question's answer in a submitted notebook: ``{"status": "ok" | "empty" | "missing",
    "cells": [...]}``. A question is found by its prompt cell (otter's ``BEGIN QUESTION`` marker
    and the prompt's text; markers whose text was changed are paired in order). When the student
    deleted the prompt cell but every ``END QUESTION`` marker is there, the answer is the editable
    Markdown cells just before the question's END marker (with a ``note`` saying so); else
    ``missing``."""
    placeholders = set(placeholders) | {_norm(p) for p in PLACEHOLDERS}
    cells = [c for c in nb.get("cells") or [] if isinstance(c, Mapping)]
    markers = [i for i, c in enumerate(cells) if c.get("cell_type") == "markdown" and BEGIN in _source(c)]
    found: dict[str, int] = {}
    free = list(markers)
    for question in questions:
        prompt = _norm(question.prompt)
        match = next((i for i in free if prompt and _norm(_source(cells[i])) == prompt), None)
        if match is not None:
            found[question.name] = match
            free.remove(match)
    unmatched = [q for q in questions if q.name not in found]
    if unmatched and len(unmatched) == len(free):  # prompts edited: pair the rest in order
        found.update({q.name: i for q, i in zip(unmatched, free, strict=True)})
    # the k-th END marker closes the k-th question when only prompt cells were deleted
    ends = [i for i, c in enumerate(cells) if c.get("cell_type") == "markdown" and END in _source(c)]
    closing = {q.name: i for q, i in zip(questions, ends, strict=True)} if len(ends) == len(questions) else {}
    answers: dict[str, dict[str, Any]] = {}
    for k, question in enumerate(questions):
        start = found.get(question.name)
        if start is None:
            end = closing.get(question.name)
            earlier = [at.get(q.name) for q in questions[:k] for at in (found, closing)]
            if end is None or any(i is not None and i > end for i in earlier):
                answers[question.name] = {"status": "missing", "cells": []}
                continue
            # the Markdown answer cells just before the question's END marker (a code cell there may be
            # the previous task's answer)
            span: list[Mapping[str, Any]] = []
            for i in range(end - 1, -1, -1):
                source = _source(cells[i])
                if (END in source or BEGIN in source or _locked(cells[i]) or len(span) >= MAX_CELLS
                        or cells[i].get("cell_type") != "markdown"):
                    break
                span.insert(0, cells[i])
        else:
            span = []
            for cell in cells[start + 1:]:
                source = _source(cell)
                if END in source or BEGIN in source or _locked(cell) or len(span) >= MAX_CELLS:
                    break
                span.append(cell)
        budget = [MAX_IMAGES]
        kept = [c for c in (plain_cell(cell, budget) for cell in span) if not _blank(c, placeholders)]
        if start is None and not kept:
            answers[question.name] = {"status": "missing", "cells": []}
            continue
        answers[question.name] = {"status": "ok" if kept else "empty", "cells": kept}
        if start is None:
            answers[question.name]["note"] = DELETED_PROMPT
    return answers


def _read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def manual_folder(out: Path) -> Path:
    return Path(out) / "manual"


def load_questions(out: Path) -> list[dict[str, Any]]:
    """The manual questions recorded in ``out`` (``[]`` when the lab has none)."""
    data = _read_json(manual_folder(out) / "questions.json", [])
    return data if isinstance(data, list) else []


def prepare(out: Path, submissions: Iterable[batch.Submission], master: Path,
            rubric: Path | None = None, template: Path | None = None) -> list[Question]:
    """Extract every submission's manual answers and the reference answers into ``out/manual``,
    and create the grades file of each question (rubric from ``rubric``) unless it exists."""
    questions = manual_questions(master)
    if not questions:
        return questions
    folder = manual_folder(out)
    for sub in ("answers", "grades"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        files.remove_stale_temps(folder / sub)
    files.write_json(folder / "questions.json", [q.as_dict() for q in questions])
    files.write_text(folder / "lab", Path(master).stem + "\n")
    placeholders = template_placeholders(template)
    per_question: dict[str, dict[str, Any]] = {q.name: {} for q in questions}
    for submission in submissions:
        try:
            nb = execute.submitted_notebook(submission.path)
            answers = extract(nb, questions, placeholders)
        except execute.SubmissionError:
            answers = {q.name: {"status": "missing", "cells": []} for q in questions}
        for name, answer in answers.items():
            per_question[name][submission.student_id] = answer
    rubrics = load_rubric(rubric, questions) if rubric is not None else {}
    files.write_json(folder / "status.json", {q: {sid: a["status"] for sid, a in per.items()}
                                               for q, per in per_question.items()})
    for question in questions:
        files.write_json(folder / "answers" / f"{question.name}.json", per_question[question.name])
        items = rubrics.get(question.name) or default_rubric(question.points)
        with GradeStore(out).change(question.name) as data:
            if not data.get("rubric"):
                data["rubric"] = items
            data["points"] = question.points
    return questions


# ---------------------------------------------------------------------------------- rubric
def default_rubric(points: float) -> list[dict[str, Any]]:
    return [{"id": "r1", "text": "Полный верный ответ", "points": points},
            {"id": "r2", "text": "Ответ частично верен", "points": points / 2},
            {"id": "r3", "text": "Ответ неверен", "points": 0.0}]


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ManualError(f"{what}: expected a number of points, found {value!r}")
    return float(value)


def load_rubric(path: Path, questions: Sequence[Question]) -> dict[str, list[dict[str, Any]]]:
    """``rubric.yml``: ``{question: [{text: ..., points: ...}, ...]}``; items get ids r1, r2…
    A malformed item is an error; a question the master does not have is skipped with a warning."""
    path = Path(path)
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    known = {q.name: q for q in questions}
    if not isinstance(data, dict):
        raise ManualError(f"{path}: expected a mapping question -> list of items")
    out: dict[str, list[dict[str, Any]]] = {}
    for name, items in data.items():
        if name not in known:  # e.g. a question renamed or removed in the master
            warnings.warn(f"{path}: {name!r} is not a manual question of the master (it has "
                          f"{', '.join(known)}): its items are not used", stacklevel=2)
            continue
        if not isinstance(items, list) or not items:
            raise ManualError(f"{path}: {name}: expected a list of items")
        out[name] = []
        for n, item in enumerate(items, 1):
            if not isinstance(item, dict) or not isinstance(item.get("text"), str):
                raise ManualError(f"{path}: {name} item {n}: expected text and points")
            points = _number(item.get("points"), f"{path}: {name} item {n}")
            if abs(points) > known[name].points:
                raise ManualError(f"{path}: {name} item {n}: {points:g} points, the question is worth "
                                  f"{known[name].points:g}")
            out[name].append({"id": f"r{n}", "text": item["text"], "points": points})
    return out


# ---------------------------------------------------------------------------------- grades
class GradeStore:
    """The per-question grade files of an output folder. Every change reads the file, applies the
    change and replaces the file atomically, under an exclusive lock of that question: changes to
    different questions never touch the same file, changes to the same question are serialized."""

    def __init__(self, out: Path) -> None:
        self.folder = manual_folder(out) / "grades"

    def _path(self, question: str) -> Path:
        if not _NAME.fullmatch(question):
            raise ManualError(f"unknown question {question!r}")
        return self.folder / f"{question}.json"

    def load(self, question: str) -> dict[str, Any]:
        data = _read_json(self._path(question), {})
        data = data if isinstance(data, dict) else {}
        data.setdefault("question", question)
        data.setdefault("rubric", [])
        data.setdefault("grades", {})
        return data

    @contextlib.contextmanager
    def change(self, question: str) -> Iterator[dict[str, Any]]:
        path = self._path(question)
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                data = self.load(question)
                yield data
                files.write_json(path, data)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def set_grade(self, question: str, student: str, *, items: Sequence[str] | None = None,
                  comment: str | None = None, grader: str = "") -> dict[str, Any]:
        """Change one answer's grade (only the fields given); returns its new state."""
        with self.change(question) as data:
            ids = {item["id"] for item in data["rubric"]}
            grade = data["grades"].setdefault(student, {"items": [], "comment": ""})
            if items is not None:
                unknown = [i for i in items if i not in ids]
                if unknown:
                    raise ManualError(f"{question}: unknown rubric item(s) {', '.join(map(str, unknown))}")
                grade["items"] = [i for i in dict.fromkeys(items)]
            if comment is not None:
                grade["comment"] = str(comment)[:MAX_COMMENT]
            grade["grader"], grade["updated"] = grader, time.strftime("%Y-%m-%dT%H:%M:%S%z")
            return {**grade, "score": grade_score(data, student)}

    def set_item(self, question: str, item_id: str | None, text: str, points: Any) -> dict[str, Any]:
        """Edit a rubric item (every answer graded with it follows) or add one (``item_id`` None)."""
        text = str(text).strip()[:500]
        with self.change(question) as data:
            possible = float(data.get("points") or 0)
            points = _number(points, "points")
            if not text or abs(points) > possible:
                raise ManualError(f"{question}: an item needs a text and at most {possible:g} points")
            if item_id is None:
                used = {int(i["id"][1:]) for i in data["rubric"] if re.fullmatch(r"r\d+", i["id"])}
                item = {"id": f"r{max(used, default=0) + 1}", "text": text, "points": points}
                data["rubric"].append(item)
                return item
            for item in data["rubric"]:
                if item["id"] == item_id:
                    item.update(text=text, points=points)
                    return item
            raise ManualError(f"{question}: unknown rubric item {item_id}")


def grade_score(data: Mapping[str, Any], student: str) -> float | None:
    """The score of one answer from its chosen items' current points (None: not graded)."""
    grade = data.get("grades", {}).get(student)
    if not grade or not grade.get("items"):
        return None
    points = {item["id"]: float(item["points"]) for item in data.get("rubric", [])}
    total = sum(points.get(i, 0.0) for i in grade["items"])
    return round(min(max(total, 0.0), float(data.get("points") or 0)), 4)


_ANSWERS: dict[Path, tuple[int, dict[str, dict[str, Any]]]] = {}


def answers(out: Path, question: str) -> dict[str, dict[str, Any]]:
    """Every extracted answer to ``question`` (kept in memory while the file is unchanged)."""
    if not _NAME.fullmatch(question):
        return {}
    path = (manual_folder(out) / "answers" / f"{question}.json").resolve()
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return {}
    cached = _ANSWERS.get(path)
    if cached is None or cached[0] != stamp:
        data = _read_json(path, {})
        _ANSWERS[path] = cached = (stamp, data if isinstance(data, dict) else {})
    return cached[1]


def statuses(out: Path) -> dict[str, dict[str, str]]:
    """``{question: {student: "ok" | "empty" | "missing"}}`` of the extracted answers."""
    data = _read_json(manual_folder(out) / "status.json", {})
    return data if isinstance(data, dict) else {}


def _auto_comment(auto_zero: bool, status: Any) -> str:
    if not auto_zero:
        return ""
    return "Ответ не найден в блокноте." if status == "missing" else "Ответ не дан."


def manual_results(out: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """``{student: {question: {score, possible, graded, items: [(text, points)], comment}}}`` for
    every extracted answer; empty and missing answers not graded by a person score 0."""
    store = GradeStore(out)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    status = statuses(out)
    for question in load_questions(out):
        name = question["name"]
        data = store.load(name)
        rubric = {item["id"]: item for item in data["rubric"]}
        for student, state in (status.get(name) or {}).items():
            answer = {"status": state}
            grade = data["grades"].get(student) or {}
            score = grade_score(data, student)
            auto_zero = score is None and answer.get("status") in ("empty", "missing")
            results.setdefault(student, {})[name] = {
                "score": 0.0 if auto_zero else score, "possible": float(question["points"]),
                "graded": score is not None or auto_zero, "status": answer.get("status"),
                "items": [(rubric[i]["text"], float(rubric[i]["points"])) for i in grade.get("items", [])
                          if i in rubric],
                "comment": grade.get("comment", "") or _auto_comment(auto_zero, answer.get("status")),
            }
    return results


# ---------------------------------------------------------------------------------- render
def _markdown() -> Any:
    from markdown_it import MarkdownIt
    from mdit_py_plugins.dollarmath import dollarmath_plugin

    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
    md.use(dollarmath_plugin, allow_space=True, double_inline=True)
    md.add_render_rule("math_inline", lambda self, tokens, idx, options, env:
                       f'<span class="math">${html.escape(tokens[idx].content)}$</span>')
    md.add_render_rule("math_block", lambda self, tokens, idx, options, env:
                       f'<div class="math">$${html.escape(tokens[idx].content)}$$</div>')
    md.add_render_rule("math_inline_double", lambda self, tokens, idx, options, env:
                       f'<div class="math">$${html.escape(tokens[idx].content)}$$</div>')

    def image(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        token = tokens[idx]
        src, alt = str(token.attrGet("src") or ""), html.escape(token.content or "")
        attachments = env.get("attachments") or {}
        picture = attachments.get(src[len("attachment:"):]) if src.startswith("attachment:") else None
        if picture is None:
            return f'<span class="noimage">[изображение не показано: {alt or "без подписи"}]</span>'
        return f'<img alt="{alt}" src="data:{picture["mime"]};base64,{picture["data"]}">'

    md.add_render_rule("image", image)
    return md


_MD: Any = None


def render_markdown(text: str, attachments: Mapping[str, Any] | None = None) -> str:
    """Markdown as HTML with raw HTML disabled (shown as text), formulas kept as TeX and images
    only from the cell's checked attachments."""
    global _MD
    if _MD is None:
        _MD = _markdown()
    return _MD.render(text, {"attachments": dict(attachments or {})})


def render_cells(cells: Iterable[Mapping[str, Any]]) -> str:
    """Plain cells (:func:`plain_cell`) as safe HTML."""
    esc = html.escape
    parts: list[str] = []
    for cell in cells:
        if cell.get("type") == "markdown":
            rendered = render_markdown(cell.get("source", ""), cell.get("attachments"))
            parts.append(f'<div class="cell md">{rendered}</div>')
            continue
        parts.append(f'<div class="cell code"><pre><code>{esc(cell.get("source", ""))}</code></pre>')
        for output in cell.get("outputs") or []:
            picture = output.get("image") if isinstance(output.get("image"), Mapping) else {}
            if picture and (image := _image(picture.get("mime"), picture.get("data"))):
                parts.append(f'<img class="output" alt="" src="data:{image["mime"]};base64,{image["data"]}">')
            elif "text" in output:
                parts.append(f'<pre class="output">{esc(str(output["text"]))}</pre>')
        parts.append("</div>")
    return "\n".join(parts)


# ---------------------------------------------------------------------------------- merge
def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:.4g}"


def merge_gradebook(path: Path, manual: Mapping[str, Mapping[str, Mapping[str, Any]]],
                    questions: Sequence[str]) -> None:
    """Add the manual questions' columns to ``gradebook.csv`` (idempotent): ``<auto questions>,
    <manual questions>, auto_total, manual_total, total, manual_graded, duration_s``. An ungraded
    answer leaves its column empty and counts 0 in the totals."""
    rows = list(csv.DictReader(io.StringIO(Path(path).read_text(encoding="utf-8"))))
    header = next(csv.reader(io.StringIO(Path(path).read_text(encoding="utf-8"))), [])
    ours = {*questions, "auto_total", "manual_total", "manual_graded"}
    merged = "auto_total" in header
    base = [h for h in header if h not in ours]
    auto_key = "auto_total" if merged else "total"
    at = base.index("total") if "total" in base else len(base)
    new_header = [*base[:at], *questions, "auto_total", "manual_total", "total", "manual_graded",
                  *base[at + 1:]]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(new_header)
    for row in rows:
        grades = manual.get(row.get("student_id", ""), {})
        try:
            auto = float(row.get(auto_key) or 0)
        except ValueError:
            auto = 0.0
        scores = {q: grades.get(q, {}).get("score") for q in questions}
        manual_total = sum(s for s in scores.values() if s is not None)
        graded = sum(1 for q in questions if grades.get(q, {}).get("graded"))
        row = {**row, **{q: _fmt(s) for q, s in scores.items()}, "auto_total": _fmt(auto),
               "manual_total": _fmt(manual_total), "total": _fmt(auto + manual_total),
               "manual_graded": f"{graded}/{len(questions)}"}
        writer.writerow([row.get(h, "") for h in new_header])
    files.write_text(Path(path), buffer.getvalue())


_MD_MARK = ("<!-- manual -->", "<!-- /manual -->")


def _splice(text: str, section: str, *before: str) -> str:
    """``text`` with its manual section replaced, else inserted before the first of ``before``
    found (from the end), else appended."""
    start, end = _MD_MARK
    if start in text and end in text:
        head, rest = text.split(start, 1)
        return head + section + rest.split(end, 1)[1].removeprefix("\n")
    for anchor in before:
        if anchor in text:
            head, tail = text.rsplit(anchor, 1)
            return head + section + anchor + tail
    return text + section


def _md_safe(text: str) -> str:
    """Graders' text for the Markdown feedback: no raw HTML (and so no section marker)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def feedback_sections(grades: Mapping[str, Mapping[str, Any]], questions: Sequence[Mapping[str, Any]],
                      auto: float | None) -> tuple[str, str]:
    """The Markdown and HTML feedback sections of one student's manual grades."""
    esc = html.escape
    graded = [q for q in questions if grades.get(q["name"], {}).get("graded")]
    manual_total = sum(grades[q["name"]]["score"] for q in graded)
    possible = sum(float(q["points"]) for q in questions)
    md = [_MD_MARK[0], "", "## Вопросы, проверенные преподавателем", ""]
    body = [_MD_MARK[0], "<h2>Вопросы, проверенные преподавателем</h2>"]
    summary = (f"Проверено {len(graded)} из {len(questions)}: {_fmt(manual_total)} из {_fmt(possible)}."
               + ("" if auto is None else f" Итого с автоматической проверкой: {_fmt(auto + manual_total)}."))
    md += [summary, ""]
    body.append(f"<p>{esc(summary)}</p>")
    for question in questions:
        grade = grades.get(question["name"], {})
        score = (f"{_fmt(grade['score'])} из {_fmt(question['points'])}" if grade.get("graded")
                 else f"ещё не проверено (из {_fmt(question['points'])})")
        md += [f"### {question['name']}: {score}", ""]
        body.append(f"<h3>{esc(question['name'])}: {esc(score)}</h3>")
        items = [f"{_md_safe(text)} ({'+' if points >= 0 else ''}{_fmt(points)})"
                 for text, points in grade.get("items", [])]
        md += [f"- {i}" for i in items] + ([""] if items else [])
        if items:
            body.append("<ul>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>")
        if grade.get("comment"):
            md += ["> " + _md_safe(grade["comment"]).replace("\n", "\n> "), ""]
            body.append(f'<blockquote class="comment">{esc(grade["comment"])}</blockquote>')
    md.append(_MD_MARK[1])
    body.append(_MD_MARK[1])
    return "\n".join(md) + "\n", "\n".join(body) + "\n"


def _gradescope(path: Path, grades: Mapping[str, Mapping[str, Any]], questions: Sequence[Mapping[str, Any]]
                ) -> None:
    data = _read_json(path, None)
    if not isinstance(data, dict):
        return
    names = {q["name"] for q in questions}
    tests = [t for t in data.get("tests", []) if t.get("name") not in names]
    for question in questions:
        grade = grades.get(question["name"], {})
        if not grade.get("graded"):
            continue
        lines = [f"{text} ({_fmt(points)})" for text, points in grade.get("items", [])]
        if grade.get("comment"):
            lines.append(grade["comment"])
        tests.append({"name": question["name"], "score": grade["score"],
                      "max_score": float(question["points"]), "output": "\n".join(lines),
                      "visibility": "visible"})
    data["tests"] = tests
    data["score"] = round(sum(float(t.get("score") or 0) for t in tests), 4)
    files.write_json(path, data)


def report_data(manual: Mapping[str, Mapping[str, Mapping[str, Any]]],
                questions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per manual question: grading progress and the distribution of the scores given."""
    rows = []
    for question in questions:
        values = [g[question["name"]] for g in manual.values() if question["name"] in g]
        scores = [v["score"] for v in values if v["graded"]]
        distribution: dict[str, int] = {}
        for s in sorted(scores):
            distribution[_fmt(s)] = distribution.get(_fmt(s), 0) + 1
        rows.append({"question": question["name"], "points": float(question["points"]),
                     "answers": len(values), "graded": len(scores),
                     "mean": round(sum(scores) / len(scores), 3) if scores else None,
                     "distribution": distribution})
    return rows


def _report(out: Path, rows: list[dict[str, Any]]) -> None:
    esc = html.escape
    path = out / "report.json"
    data = _read_json(path, None)
    if isinstance(data, dict):
        data["manual"] = rows
        files.write_json(path, data)
    md = [_MD_MARK[0], "", "## Вопросы, проверяемые преподавателем", "",
          "| вопрос | баллов | проверено | средний балл | распределение (балл: число ответов) |",
          "| --- | --- | --- | --- | --- |"]
    body = [_MD_MARK[0], "<h2>Вопросы, проверяемые преподавателем</h2>",
            "<table><tr><th>вопрос</th><th>баллов</th><th>проверено</th><th>средний балл</th>"
            "<th>распределение (балл: число ответов)</th></tr>"]
    for r in rows:
        dist = ", ".join(f"{k}: {v}" for k, v in r["distribution"].items()) or "—"
        cells = [r["question"], _fmt(r["points"]), f"{r['graded']}/{r['answers']}",
                 "—" if r["mean"] is None else _fmt(r["mean"]), dist]
        md.append("| " + " | ".join(cells) + " |")
        body.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
    md += ["", _MD_MARK[1]]
    body += ["</table>", _MD_MARK[1]]
    if (out / "report.md").is_file():
        files.write_text(out / "report.md", _splice((out / "report.md").read_text(encoding="utf-8"),
                                                      "\n".join(md) + "\n"))
    if (out / "report.html").is_file():
        files.write_text(out / "report.html", _splice((out / "report.html").read_text(encoding="utf-8"),
                                                        "\n".join(body) + "\n", "</body>"))


def merge(out: Path) -> dict[str, Any]:
    """Fold the manual grades of ``out`` into its gradebook, feedback, Gradescope results and class
    report. Idempotent; a no-op for a lab without manual questions. Returns the report rows."""
    out = Path(out)
    questions = load_questions(out)
    if not questions:
        return {"questions": []}
    manual = manual_results(out)
    names = [q["name"] for q in questions]
    gradebook = out / "gradebook.csv"
    autos: dict[str, float | None] = {}
    if gradebook.is_file():
        merge_gradebook(gradebook, manual, names)
        for row in csv.DictReader(io.StringIO(gradebook.read_text(encoding="utf-8"))):
            with contextlib.suppress(ValueError):
                autos[row["student_id"]] = float(row["auto_total"] or 0)
    for student, grades in manual.items():
        md, body = feedback_sections(grades, questions, autos.get(student))
        feedback = out / "feedback"
        if (feedback / f"{student}.md").is_file():
            text = (feedback / f"{student}.md").read_text(encoding="utf-8")
            files.write_text(feedback / f"{student}.md", _splice(text, md, "## Графики"))
        if (feedback / f"{student}.html").is_file():
            text = (feedback / f"{student}.html").read_text(encoding="utf-8")
            files.write_text(feedback / f"{student}.html",
                               _splice(text, body, "<h2>Графики</h2>", "</body>"))
        results = out / "gradescope" / student / "results.json"
        if results.is_file():
            _gradescope(results, grades, questions)
    rows = report_data(manual, questions)
    _report(out, rows)
    return {"questions": rows}


@dataclass(frozen=True)
class Setup:
    """Where ``convlab grade`` finds a lab's manual questions (see :func:`after_grading`)."""

    master: Path
    rubric: Path | None = None
    template: Path | None = None


def after_grading(setup: Setup | None, submissions: Iterable[batch.Submission], out: Path) -> None:
    """``grade_folder``'s hook: extract the manual answers, then merge the grades given so far."""
    if setup is None or not Path(setup.master).is_file():
        return
    prepare(out, submissions, setup.master, setup.rubric, setup.template)
    merge(out)


# ---------------------------------------------------------------------------------- anonymity
def salt(out: Path) -> str:
    """A random per-output-folder secret that orders and numbers answers anonymously."""
    path = manual_folder(out) / "salt"
    with contextlib.suppress(OSError):
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(16)
    with contextlib.suppress(FileExistsError), open(path, "x") as f:
        f.write(value)
    return path.read_text().strip()


def anonymous_order(students: Iterable[str], secret: str) -> list[str]:
    return sorted(students, key=lambda s: hashlib.sha256(f"{secret}:{s}".encode()).hexdigest())


# ---------------------------------------------------------------------------------- LMS
LMS = ("moodle", "canvas")


def read_mapping(path: Path) -> dict[str, dict[str, str]]:
    """A mapping CSV with a header: ``file`` (the submission's file name or its student id) and
    ``identifier`` (the LMS's: Moodle e-mail/username/ID number, Canvas user ID or SIS id), and
    optionally ``name``, ``sis_user_id``, ``sis_login_id``, ``section`` (Canvas)."""
    rows = list(csv.DictReader(io.StringIO(Path(path).read_text(encoding="utf-8-sig"))))
    if not rows or "file" not in rows[0] or "identifier" not in rows[0]:
        raise ManualError(f"{path}: expected a CSV with the columns file,identifier[,name,...]")
    return {row["file"].strip(): {k: (v or "").strip() for k, v in row.items() if k} for row in rows
            if row.get("file")}


def export_lms(out: Path, system: str, mapping: Path, dest: Path, *, item: str | None = None,
               id_column: str = "Email address", lab: str = "") -> int:
    """Write ``dest``: the gradebook (after :func:`merge`) as Moodle's or Canvas' grade-import CSV;
    the grade item is ``item``, else ``lab``, else the lab whose master the answers came from.
    Every gradebook row must map to an identifier (by file name, else student id): otherwise
    :class:`ManualError` lists the unmapped submissions and nothing is written. Returns the row
    count."""
    if system not in LMS:
        raise ManualError(f"unknown LMS {system!r}: expected one of {', '.join(LMS)}")
    out = Path(out)
    merge(out)
    rows = list(csv.DictReader(io.StringIO((out / "gradebook.csv").read_text(encoding="utf-8"))))
    table = read_mapping(mapping)
    mapped, missing = [], []
    for row in rows:
        entry = table.get(row.get("file", "")) or table.get(row.get("student_id", ""))
        if entry is None or not entry.get("identifier"):
            missing.append(f"{row.get('file') or row.get('student_id')}")
        else:
            mapped.append((row, entry))
    if missing:
        raise ManualError(f"{len(missing)} submission(s) map to no student in {mapping}: "
                          + ", ".join(missing) + " (add them to the mapping file: file,identifier)")
    questions = [q["name"] for q in load_questions(out)]
    possible = _possible(out) + sum(float(q["points"]) for q in load_questions(out))
    with contextlib.suppress(OSError):
        lab = lab or (manual_folder(out) / "lab").read_text(encoding="utf-8").strip()
    name = item or lab or "Lab"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if system == "moodle":
        auto_col = "auto_total" if "auto_total" in (rows[0] if rows else {}) else "total"
        writer.writerow([id_column, f"{name}", f"{name}: auto", f"{name}: manual",
                         *(f"{name}: {q}" for q in questions)])
        for row, entry in mapped:
            writer.writerow([entry["identifier"], row.get("total", ""), row.get(auto_col, ""),
                             row.get("manual_total", ""), *(row.get(q, "") for q in questions)])
    else:
        writer.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section", name])
        writer.writerow(["    Points Possible", "", "", "", "", _fmt(possible)])
        for row, entry in mapped:
            writer.writerow([entry.get("name", ""), entry["identifier"], entry.get("sis_user_id", ""),
                             entry.get("sis_login_id", ""), entry.get("section", ""), row.get("total", "")])
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    files.write_text(Path(dest), buffer.getvalue())
    return len(mapped)


def _possible(out: Path) -> float:
    """The auto-graded maximum, from the stored results (0 when there are none)."""
    for path in sorted((Path(out) / "results").glob("*.json")):
        data = _read_json(path, {})
        if isinstance(data, dict) and isinstance(data.get("max_total"), int | float):
            return float(data["max_total"])
    return 0.0


def progress(out: Path) -> list[dict[str, Any]]:
    """Per question: answers and how many are graded (the review page's overview)."""
    return report_data(manual_results(out), load_questions(out))
