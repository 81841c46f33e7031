"""A small graded batch with manual questions, fabricated without running any notebook.

``make_batch(tmp)`` writes a tiny otter-assign master (one auto question, ``q_auto``, 2 points;
two manual questions, ``q_text`` 2 points and ``q_plot`` 1 point), a rubric, submissions shaped
like otter's student template (``<!-- BEGIN QUESTION -->`` prompt cells, locked, then the answer
cells, then an ``<!-- END QUESTION -->`` cell) and the graded outputs of ``convlab grade``
(results, gradebook, feedback, Gradescope results, class report) for them; then the hook of
``grade_folder`` (``manual.after_grading``) extracts the answers.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import nbformat

from convlab.grading import batch, feedback, manual, report

PROMPT_TEXT = "**Вопрос.** Почему нужна нормализация?"
PROMPT_PLOT = "**Вопрос.** Нарисуйте кривую и объясните $\\sigma(x)$."
PLACEHOLDER = "_Впишите ответ здесь вместо этого текста._"
HOSTILE = ('<script>window.pwned = 1</script><img src=x onerror="window.pwned=2">'
           '[клик](javascript:window.pwned=3) <iframe src="http://example.org"></iframe>')


def png(width: int = 240, height: int = 120) -> bytes:
    """A valid RGB PNG: a sigmoid curve on white."""
    import math

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    curve = {x: round((height - 10) * (1 - 1 / (1 + math.exp(-(x - width / 2) / 20)))) + 5
             for x in range(width)}
    rows = []
    for y in range(height):
        pixels = b"".join(b"\x1f\x4e\xb4" if abs(curve[x] - y) <= 1 else b"\xff\xff\xff"
                          for x in range(width))
        rows.append(b"\x00" + pixels)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))


PNG64 = base64.b64encode(png()).decode()


def _raw(text: str) -> Any:
    return nbformat.v4.new_raw_cell(text)


def master() -> Any:
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    cells = [_raw("# ASSIGNMENT CONFIG\nname: tiny"),
             _raw("# BEGIN QUESTION\nname: q_auto\npoints: 2"), code("x = 42 # SOLUTION"),
             _raw("# END QUESTION"),
             _raw("# BEGIN QUESTION\nname: q_text\nmanual: true\npoints: 2"), md(PROMPT_TEXT),
             _raw("# BEGIN SOLUTION"), md("Эталон: нормализация **выравнивает** распределения."),
             _raw("# END SOLUTION"), _raw("# END QUESTION"),
             md("## Задание 2"),
             _raw("# BEGIN QUESTION\nname: q_plot\nmanual: true\npoints: 1"), md(PROMPT_PLOT),
             _raw("# BEGIN SOLUTION"), md("Эталон: $\\sigma(x) = 1/(1+e^{-x})$."), _raw("# END SOLUTION"),
             _raw("# END QUESTION")]
    return nbformat.v4.new_notebook(cells=cells)


def submission(text: list[Any] | None, plot: list[Any] | None, *, drop_text_prompt: bool = False) -> Any:
    """A notebook shaped like otter's student template; ``None``: the template's placeholder."""
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    locked = {"deletable": False, "editable": False}

    def placeholder() -> list[Any]:
        return [md(PLACEHOLDER, metadata={"tags": ["otter_answer_cell"]})]

    cells = [code("x = 42"), md(f"{manual.BEGIN}\n\n{PROMPT_TEXT}", metadata=locked),
             *(placeholder() if text is None else text),
             md(f"{manual.END}\n\n## Задание 2", metadata=locked),
             md(f"{manual.BEGIN}\n\n{PROMPT_PLOT}", metadata=locked),
             *(placeholder() if plot is None else plot),
             md(f"{manual.END}\n\n", metadata=locked)]
    if drop_text_prompt:
        cells = [c for c in cells if PROMPT_TEXT not in c.source]
    return nbformat.v4.new_notebook(cells=cells)


def figure_cell() -> Any:
    cell = nbformat.v4.new_code_cell("plt.plot(x)")
    figure = {"image/png": PNG64, "text/plain": "<Figure>"}
    cell.outputs = [nbformat.v4.new_output("display_data", data=figure),
                    nbformat.v4.new_output("stream", text="готово\n")]
    return cell


def attachment_cell() -> Any:
    cell = nbformat.v4.new_markdown_cell("Кривая: ![кривая](attachment:curve.png) и $\\sigma(x)$.")
    cell.attachments = {"curve.png": {"image/png": PNG64}}
    return cell


#: student file -> (q_text answer cells, q_plot answer cells, options)
STUDENTS: dict[str, tuple[Any, Any, dict[str, Any]]] = {
    "ivanov": ([nbformat.v4.new_markdown_cell("Нормализация ускоряет сходимость.")], [figure_cell()], {}),
    "petrova": ([nbformat.v4.new_markdown_cell(HOSTILE)], [attachment_cell()], {}),
    "sidorov": ([nbformat.v4.new_markdown_cell("Чтобы *градиенты* были устойчивыми.")], None, {}),
    "smirnova": (None, None, {"drop_text_prompt": True}),
}


def result(sid: str, auto: float) -> dict[str, Any]:
    cases = [{"name": "test_x", "points": 2.0, "hidden": False, "passed": auto == 2.0,
              "message": "" if auto == 2.0 else "x: ожидается: 42; получено: 0"}]
    return {"student_id": sid, "file": f"{sid}.ipynb", "status": "ok", "scores": {"q_auto": auto},
            "possible": {"q_auto": 2.0}, "total": auto, "max_total": 2.0, "duration_s": 1.0,
            "questions": {"q_auto": {"score": auto, "possible": 2.0, "cases": cases, "output": "",
                                     "public_output": ""}}}


def write_auto_outputs(out: Path, results: list[dict[str, Any]]) -> None:
    """What ``grade_folder`` writes before its manual hook."""
    (out / "results").mkdir(parents=True, exist_ok=True)
    for r in results:
        (out / "results" / f"{r['student_id']}.json").write_text(json.dumps(r))
    batch.write_gradebook(results, out / "gradebook.csv", ["q_auto"])
    feedback.write_reports(results, out)
    report.write_report(results, out)


def make_batch(tmp: Path) -> dict[str, Any]:
    tmp.mkdir(parents=True, exist_ok=True)
    lab = tmp / "assignments" / "tiny"
    lab.mkdir(parents=True)
    nbformat.write(master(), lab / "tiny.ipynb")
    (lab / "rubric.yml").write_text(
        "q_text:\n  - {text: 'Названа цель нормализации', points: 1}\n"
        "  - {text: 'Объяснён механизм', points: 1}\n  - {text: 'Неверно', points: 0}\n"
        "q_plot:\n  - {text: 'Кривая и объяснение', points: 1}\n  - {text: 'Нет объяснения', points: -0.5}\n",
        encoding="utf-8")
    subs = tmp / "submissions"
    subs.mkdir()
    for name, (text, plot, options) in STUDENTS.items():
        nbformat.write(submission(text, plot, **options), subs / f"{name}.ipynb")
    out = tmp / "out"
    submissions = batch.discover(subs)
    results = [result(s.student_id, 2.0 if s.student_id != "sidorov" else 0.0) for s in submissions]
    write_auto_outputs(out, results)
    setup = manual.Setup(master=lab / "tiny.ipynb", rubric=lab / "rubric.yml")
    manual.after_grading(setup, submissions, out)
    return {"out": out, "setup": setup, "submissions": submissions, "results": results}
