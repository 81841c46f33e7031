"""What each student gets back: feedback pages, the feedback notebook and Gradescope results.

:func:`write_reports` writes, per graded submission, ``gradescope/<id>/results.json``
(:func:`gradescope_results`) and ``feedback/<id>.md`` / ``.html`` / ``.ipynb`` (pictures in
``feedback/<id>/``: :func:`feedback_figures`, learning curves and the values of
:data:`FEEDBACK_FIGURES`). Every output is safe to open: student text escaped for its format
(:func:`~convlab.grading.report.md_escape`, ``html.escape``, Gradescope ``text`` output), sandbox
text redacted (:func:`~convlab.grading.report.redact`), and the feedback notebook rebuilt from the
submitted cells with the graded run's outputs reduced to text and PNGs (:func:`feedback_notebook`).
"""

from __future__ import annotations

import contextlib
import html
import json
import re
import shutil
import sys
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from convlab.grading import execute, figures, files, report, score
from convlab.grading.results import Result

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


_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,79}")


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
            trace = found if isinstance(found := out.get("traceback"), list) else []
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


_STATUS = {
    "ok": "блокнот выполнен",
    "timeout": "выполнение прервано: превышен лимит времени",
    "memory": "выполнение прервано: превышен лимит памяти",
    "crashed": "выполнение завершилось аварийно",
    "invalid-notebook": "файл не является блокнотом Jupyter (или архив пуст / повреждён)",
    "wrong-assignment": "сдан блокнот другого задания",
}


md_escape, redact = report.md_escape, report.redact


def _points(value: Any) -> str:
    number = float(value or 0)
    return str(int(number)) if number.is_integer() else f"{number:.2f}".rstrip("0")


def feedback_lines(result: Result, *, hide_hidden: bool = False) -> list[tuple[str, Any]]:
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


def feedback_figures(result: Result) -> list[tuple[str, str, bytes]]:
    """The pictures of one student's feedback as (file stem, caption, PNG): the learning curves of
    each model with a fit history (``result["histories"]``) and the values of ``result["figures"]``
    (a confusion matrix). A picture that cannot be drawn is left out."""
    out: list[tuple[str, str, bytes]] = []
    histories = found if isinstance(found := result.get("histories"), dict) else {}
    for var, history in sorted(histories.items()):
        if not _VARIABLE.fullmatch(str(var)):
            continue
        caption = f"Кривые обучения модели {var}"
        with contextlib.suppress(Exception):
            picture = figures.learning_curves(figures.plain_history(history), caption)
            if picture is not None:
                out.append((f"curves_{var}", caption, picture))
    values = drawn if isinstance(drawn := result.get("figures"), dict) else {}
    for var, value in sorted(values.items()):
        wanted = isinstance(value, dict) and value.get("kind") == "confusion"
        if not (wanted and _VARIABLE.fullmatch(str(var))):
            continue
        matrix = figures.plain_matrix(value.get("matrix"))
        if matrix is not None:
            caption = f"Матрица ошибок ({var})"
            with contextlib.suppress(Exception):
                out.append((f"confusion_{var}", caption, figures.confusion_matrix(matrix, caption)))
    return out


#: in a submission's ``out/work/<id>`` folder: its feedback pictures, drawn by the worker that
#: graded it (:func:`draw_figures`), and the manifest that says which result they show
FIGURES_FOLDER = "figures"


FIGURES_MANIFEST = "figures.json"


def _figures_source(result: Result) -> str:
    """Digest of what the pictures of ``result`` are drawn from (its fit histories and values)."""
    import hashlib

    drawn = {"histories": result.get("histories"), "figures": result.get("figures")}
    return hashlib.sha256(json.dumps(drawn, sort_keys=True, default=repr).encode()).hexdigest()


def draw_figures(result: Result, scratch: Path) -> None:
    """Draw the pictures of one student's feedback (:func:`feedback_figures`) into ``scratch``
    (the worker's ``out/work/<id>``), so that a batch draws them in its workers, one per
    submission, and :func:`write_reports` in the main process only copies them. The manifest
    names the result they show; it is written last, so a killed worker leaves none."""
    pictures = feedback_figures(result)
    folder = Path(scratch) / FIGURES_FOLDER
    listed = []
    for stem, caption, picture in pictures:
        folder.mkdir(parents=True, exist_ok=True)
        files.write_bytes(folder / f"{stem}.png", picture)
        listed.append([stem, caption])
    files.write_text(Path(scratch) / FIGURES_MANIFEST,
                     json.dumps({"source": _figures_source(result), "pictures": listed}) + "\n")


def drawn_figures(result: Result, scratch: Path) -> list[tuple[str, str, bytes]] | None:
    """The pictures :func:`draw_figures` left in ``scratch`` for this very result (same
    histories and values), as :func:`feedback_figures` gives them; None when there are none
    or they show another result (a stale folder): the caller then draws them."""
    try:
        manifest = json.loads((Path(scratch) / FIGURES_MANIFEST).read_text(encoding="utf-8"))
        if manifest.get("source") != _figures_source(result):
            return None
        out = []
        for stem, caption in manifest["pictures"]:
            if not (isinstance(stem, str) and isinstance(caption, str)
                    and re.fullmatch(r"(curves|confusion)_[A-Za-z0-9_]{1,80}", stem)):
                return None
            out.append((stem, caption, (Path(scratch) / FIGURES_FOLDER / f"{stem}.png").read_bytes()))
        return out
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def feedback_markdown(result: Result, *, hide_hidden: bool = False,
                      images: Sequence[tuple[str, str]] = ()) -> str:
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


def feedback_html(result: Result, *, hide_hidden: bool = False,
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


def gradescope_results(result: Result, *, show_hidden: bool = False) -> dict[str, Any]:
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


def _write_one(result: Result, out: Path, *, hide_hidden: bool,
               show_hidden_gradescope: bool) -> None:
    sid = result["student_id"]
    folder = out / "gradescope" / sid
    folder.mkdir(parents=True, exist_ok=True)
    results = gradescope_results(result, show_hidden=show_hidden_gradescope)
    files.write_text(folder / "results.json", json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    drawn = drawn_figures(result, out / "work" / sid)  # by the worker, for this very result
    pictures = feedback_figures(result) if drawn is None else drawn
    folder = out / "feedback" / sid
    for stale in folder.glob("*.png"):
        stale.unlink()
    links = []
    for stem, caption, picture in pictures:
        folder.mkdir(exist_ok=True)
        files.write_bytes(folder / f"{stem}.png", picture)
        links.append((caption, f"{sid}/{stem}.png"))
    files.write_text(out / "feedback" / f"{sid}.md",
                       feedback_markdown(result, hide_hidden=hide_hidden, images=links))
    files.write_text(out / "feedback" / f"{sid}.html",
                       feedback_html(result, hide_hidden=hide_hidden,
                                     images=[(caption, picture) for _, caption, picture in pictures]))
    notebook = out / "work" / sid / FEEDBACK_NOTEBOOK
    if notebook.is_file():  # the student's own notebook with the outputs of the graded run
        shutil.copyfile(notebook, out / "feedback" / f"{sid}.ipynb")
    else:
        with contextlib.suppress(FileNotFoundError):
            (out / "feedback" / f"{sid}.ipynb").unlink()


def write_reports(results: list[Result], out: Path, *, hide_hidden: bool = False,
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
