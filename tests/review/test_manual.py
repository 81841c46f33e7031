"""Extraction of manual answers, the grade files (concurrent saves), the merge and the LMS exports."""

from __future__ import annotations

import csv
import json
import multiprocessing
from pathlib import Path
from typing import Any

import nbformat
import pytest
from review_batch import (
    HOSTILE,
    PNG64,
    PROMPT_PLOT,
    PROMPT_TEXT,
    make_batch,
    master,
    submission,
    write_auto_outputs,
)

from convlab.grading import manual

ROOT = Path(__file__).resolve().parents[2]


def questions(tmp_path: Path) -> list[manual.Question]:
    path = tmp_path / "master.ipynb"
    nbformat.write(master(), path)
    return manual.manual_questions(path)


def test_master_questions_points_prompts_and_references(tmp_path: Path) -> None:
    qs = questions(tmp_path)
    assert [(q.name, q.points) for q in qs] == [("q_text", 2.0), ("q_plot", 1.0)]
    assert qs[0].prompt == PROMPT_TEXT and qs[1].prompt == PROMPT_PLOT
    assert "выравнивает" in qs[0].reference[0]["source"]


@pytest.mark.parametrize("lab", ["lab5_cnn", "lab6_nin"])
def test_each_lab_rubric_covers_its_manual_questions(lab: str) -> None:
    qs = manual.manual_questions(ROOT / "assignments" / lab / f"{lab}.ipynb")
    rubric = manual.load_rubric(ROOT / "assignments" / lab / "rubric.yml", qs)
    assert qs and set(rubric) >= {q.name for q in qs}
    for q in qs:  # full marks are reachable and no item exceeds the question
        assert sum(i["points"] for i in rubric[q.name] if i["points"] > 0) >= q.points
        assert all(abs(i["points"]) <= q.points for i in rubric[q.name])


def test_rubric_errors_and_stale_entries(tmp_path: Path) -> None:
    qs = questions(tmp_path)
    rubric = tmp_path / "rubric.yml"
    rubric.write_text("q_text:\n  - {text: a, points: 3}\n")
    with pytest.raises(manual.ManualError, match="3 points, the question is worth 2"):
        manual.load_rubric(rubric, qs)
    rubric.write_text("q_text:\n  - {text: a}\n")
    with pytest.raises(manual.ManualError, match="expected a number of points, found None"):
        manual.load_rubric(rubric, qs)
    rubric.write_text("q_gone:\n  - {text: a, points: 1}\nq_text:\n  - {text: b, points: 1}\n")
    with pytest.warns(UserWarning, match="'q_gone' is not a manual question"):
        assert manual.load_rubric(rubric, qs) == {"q_text": [{"id": "r1", "text": "b", "points": 1.0}]}


@pytest.mark.parametrize("lab", ["lab5_cnn", "lab6_nin"])
def test_student_template_answers_are_empty_and_solutions_found(lab: str) -> None:
    qs = manual.manual_questions(ROOT / "assignments" / lab / f"{lab}.ipynb")
    template = ROOT / "student" / lab / f"{lab}.ipynb"
    if not template.is_file():
        pytest.skip("student template not built")
    nb = json.loads(template.read_text(encoding="utf-8"))
    found = manual.extract(nb, qs, manual.template_placeholders(template))
    assert {a["status"] for a in found.values()} == {"empty"}
    # the template with the reference answers typed in: every answer found, none empty
    for q in qs:
        for i, cell in enumerate(nb["cells"]):
            if manual.BEGIN in "".join(cell["source"]) and manual._norm(q.prompt) == manual._norm(
                    "".join(cell["source"])):
                nb["cells"][i + 1]["source"] = q.reference[0]["source"]
    found = manual.extract(nb, qs, manual.template_placeholders(template))
    assert {q: a["status"] for q, a in found.items()} == {q.name: "ok" for q in qs}
    # a student deleted the second question's prompt cell: its answer is still found
    prompt = next(i for i, c in enumerate(nb["cells"])
                  if manual._norm("".join(c["source"])) == manual._norm(qs[1].prompt))
    del nb["cells"][prompt]
    again = manual.extract(nb, qs, manual.template_placeholders(template))
    assert again[qs[1].name]["cells"] == found[qs[1].name]["cells"]
    assert again[qs[1].name]["note"] == manual.DELETED_PROMPT
    assert {q: a["cells"] for q, a in again.items() if q != qs[1].name} == {
        q: a["cells"] for q, a in found.items() if q != qs[1].name}


def test_extraction_images_formulas_empty_and_deleted(tmp_path: Path) -> None:
    qs = questions(tmp_path)
    from review_batch import STUDENTS

    def run(name: str) -> dict[str, Any]:
        text, plot, options = STUDENTS[name]
        return manual.extract(submission(text, plot, **options), qs)

    ivanov = run("ivanov")
    figure = ivanov["q_plot"]["cells"][0]
    assert figure["outputs"][0] == {"image": {"mime": "image/png", "data": PNG64}}
    assert figure["outputs"][1] == {"text": "готово\n"}
    petrova = run("petrova")
    cell = petrova["q_plot"]["cells"][0]
    assert cell["attachments"]["curve.png"]["data"] == PNG64
    html = manual.render_cells(petrova["q_plot"]["cells"])
    assert f'src="data:image/png;base64,{PNG64}"' in html and "\\sigma(x)" in html
    sidorov = run("sidorov")
    assert sidorov["q_plot"] == {"status": "empty", "cells": []}  # the template's placeholder
    smirnova = run("smirnova")
    assert smirnova["q_text"] == {"status": "missing", "cells": []}  # deleted the question cell
    assert smirnova["q_plot"]["status"] == "empty"
    # deleted the question cell but answered: the cells before the question's END marker
    answered = submission([nbformat.v4.new_markdown_cell("ответ без вопроса")], None, drop_text_prompt=True)
    found = manual.extract(answered, qs)
    assert found["q_text"]["cells"][0]["source"] == "ответ без вопроса"
    assert found["q_text"]["note"] == manual.DELETED_PROMPT
    # ... and the END marker deleted too: nothing to go by
    answered.cells = [c for c in answered.cells if not c.source.startswith(manual.END + "\n\n## Задание 2")]
    assert manual.extract(answered, qs)["q_text"]["status"] == "missing"


def tags(text: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """The elements of an HTML fragment with their attributes."""
    from html.parser import HTMLParser

    found: list[tuple[str, list[tuple[str, str | None]]]] = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.append((tag, attrs))

    Parser().feed(text)
    return found


def test_hostile_answers_render_inert() -> None:
    html = manual.render_cells([{"type": "markdown", "source": HOSTILE}])
    assert tags(html) == [("div", [("class", "cell md")]), ("p", [])]  # every student tag is text
    assert "&lt;script&gt;" in html and "&lt;iframe" in html
    # images: only checked attachments of allowed types
    svg = "PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+"  # <svg onload=alert(1)>
    cell = manual.plain_cell({"cell_type": "markdown", "source": "![a](attachment:x.svg) ![b](http://e.org/t.png)",
                              "attachments": {"x.svg": {"image/svg+xml": svg}}}, [5])
    assert "attachments" not in cell
    html = manual.render_cells([cell])
    assert "<img" not in html and "e.org" not in html
    fake = manual.plain_cell({"cell_type": "code", "source": "", "outputs": [
        {"output_type": "display_data", "data": {"image/png": svg, "text/html": "<script>x</script>"}}]}, [5])
    assert fake.get("outputs") in (None, [{"text": ""}])  # bytes not a PNG: no image, no HTML
    code = manual.render_cells([{"type": "code", "source": "</code><script>x</script>",
                                 "outputs": [{"text": "<b>out</b>"}]}])
    assert [t for t, _ in tags(code)] == ["div", "pre", "code", "pre"] and "&lt;b&gt;out&lt;/b&gt;" in code
    link = manual.render_cells([{"type": "markdown", "source": "[x](javascript:alert(1)) [y](vbscript:z)"}])
    assert [t for t, _ in tags(link)] == ["div", "p"]  # no link with a script URL


def test_questions_found_by_prompt_even_when_reordered(tmp_path: Path) -> None:
    qs = questions(tmp_path)
    nb = submission([nbformat.v4.new_markdown_cell("первый")], [nbformat.v4.new_markdown_cell("второй")])
    # move the q_plot block before the q_text block
    cells = nb.cells
    nb.cells = cells[4:7] + cells[:4]
    found = manual.extract(nb, qs)
    assert found["q_text"]["cells"][0]["source"] == "первый"
    assert found["q_plot"]["cells"][0]["source"] == "второй"


def _hammer(args: tuple[str, str, str, int]) -> None:
    out, question, student, rounds = args
    store = manual.GradeStore(Path(out))
    for k in range(rounds):
        store.set_grade(question, student, items=["r1"], comment=f"{student} {k}")


def test_concurrent_saves_lose_nothing(tmp_path: Path) -> None:
    """Four processes change two questions at once (two per question, different answers): every
    last change is in the files, and every file is always whole JSON."""
    out = tmp_path / "out"
    store = manual.GradeStore(out)
    for q in ("qa", "qb"):
        with store.change(q) as data:
            data["points"] = 1.0
            data["rubric"] = manual.default_rubric(1.0)
    jobs = [(str(out), q, s, 40) for q in ("qa", "qb") for s in ("s1", "s2")]
    with multiprocessing.get_context("fork").Pool(4) as pool:
        pending = pool.map_async(_hammer, jobs)
        while not pending.ready():
            for q in ("qa", "qb"):  # a reader never sees a torn file
                assert isinstance(json.loads((out / "manual" / "grades" / f"{q}.json").read_text()), dict)
        pending.get(60)
    for q in ("qa", "qb"):
        grades = store.load(q)["grades"]
        assert {s: g["comment"] for s, g in grades.items()} == {"s1": "s1 39", "s2": "s2 39"}
    assert not list((out / "manual" / "grades").glob(".*.tmp"))


def test_rubric_edit_applies_to_graded_answers_and_clips(graded: dict[str, Any]) -> None:
    out = graded["out"]
    store = manual.GradeStore(out)
    store.set_grade("q_text", "ivanov", items=["r1", "r2"])
    store.set_grade("q_text", "petrova", items=["r2"])
    store.set_grade("q_plot", "ivanov", items=["r1", "r2"])  # 1 - 0.5
    assert manual.manual_results(out)["ivanov"]["q_plot"]["score"] == 0.5
    store.set_item("q_text", "r2", "Объяснён механизм (подробно)", 1.5)
    results = manual.manual_results(out)
    assert results["ivanov"]["q_text"]["score"] == 2.0  # 1 + 1.5 clipped to the question's 2
    assert results["petrova"]["q_text"]["score"] == 1.5
    assert results["petrova"]["q_text"]["items"] == [("Объяснён механизм (подробно)", 1.5)]
    with pytest.raises(manual.ManualError, match="at most 2"):
        store.set_item("q_text", None, "слишком много", 3)
    with pytest.raises(manual.ManualError, match="unknown rubric item"):
        store.set_grade("q_text", "ivanov", items=["r9"])
    added = store.set_item("q_text", None, "Бонус за рисунок", 0.5)
    assert added["id"] == "r4"


def test_merge_then_regrade_keeps_manual_scores(graded: dict[str, Any]) -> None:
    out = graded["out"]
    store = manual.GradeStore(out)
    store.set_grade("q_text", "ivanov", items=["r1"], comment="Механизм не объяснён. <!-- /manual --> <b>")
    store.set_grade("q_plot", "ivanov", items=["r1"])
    manual.merge(out)
    manual.merge(out)  # idempotent, even with a comment holding the section's end marker
    rows = {r["student_id"]: r for r in csv.DictReader((out / "gradebook.csv").open(encoding="utf-8"))}
    header = next(csv.reader((out / "gradebook.csv").open(encoding="utf-8")))
    assert header == ["student_id", "file", "status", "q_auto", "q_text", "q_plot", "auto_total",
                      "manual_total", "total", "manual_graded", "duration_s"]
    assert (rows["ivanov"]["q_text"], rows["ivanov"]["q_plot"], rows["ivanov"]["total"]) == ("1", "1", "4")
    assert rows["petrova"]["q_text"] == "" and rows["petrova"]["manual_graded"] == "0/2"
    feedback = (out / "feedback" / "ivanov.md").read_text(encoding="utf-8")
    assert feedback.count("Вопросы, проверенные преподавателем") == 1 and "Механизм не объяснён." in feedback
    page = (out / "feedback" / "ivanov.html").read_text(encoding="utf-8")
    assert page.count("Механизм не объяснён.") == 1 and page.index("Механизм") < page.index("</body>")
    assert "&lt;b&gt;" in feedback and "&lt;b&gt;" in page and "<b>" not in feedback + page
    gs = json.loads((out / "gradescope" / "ivanov" / "results.json").read_text())
    assert gs["score"] == 4.0 and [t["name"] for t in gs["tests"]][-2:] == ["q_text", "q_plot"]
    report = json.loads((out / "report.json").read_text())
    assert report["manual"][0] == {"question": "q_text", "points": 2.0, "answers": 4, "graded": 2,
                                   "mean": 0.5, "distribution": {"0": 1, "1": 1}}
    assert "Вопросы, проверяемые преподавателем" in (out / "report.html").read_text(encoding="utf-8")

    # a regrade of the auto part (ivanov now loses q_auto) rewrites the auto outputs, then the hook
    results = [dict(r) for r in graded["results"]]
    results[0] = {**results[0], "scores": {"q_auto": 0.0}, "total": 0.0}
    write_auto_outputs(out, results)
    manual.after_grading(graded["setup"], graded["submissions"], out)
    rows = {r["student_id"]: r for r in csv.DictReader((out / "gradebook.csv").open(encoding="utf-8"))}
    assert (rows["ivanov"]["q_auto"], rows["ivanov"]["q_text"], rows["ivanov"]["total"]) == ("0", "1", "2")
    assert "Механизм не объяснён." in (out / "feedback" / "ivanov.html").read_text(encoding="utf-8")
    assert store.load("q_text")["rubric"][0]["text"] == "Названа цель нормализации"


def _mapping(path: Path, rows: list[tuple[str, ...]], header: str = "file,identifier,name") -> Path:
    path.write_text(header + "\n" + "".join(",".join(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_lms_exports(graded: dict[str, Any], tmp_path: Path) -> None:
    out = graded["out"]
    manual.GradeStore(out).set_grade("q_text", "ivanov", items=["r1", "r2"])
    mapping = _mapping(tmp_path / "map.csv", [("ivanov.ipynb", "ivanov@uni.ru", "Иванов Иван"),
                                              ("petrova.ipynb", "petrova@uni.ru", "Петрова Анна"),
                                              ("sidorov", "sidorov@uni.ru", "Сидоров Пётр"),
                                              ("smirnova.ipynb", "smirnova@uni.ru", "Смирнова Ольга")])
    moodle = tmp_path / "moodle.csv"
    assert manual.export_lms(out, "moodle", mapping, moodle, item="ЛР5") == 4
    rows = list(csv.reader(moodle.open(encoding="utf-8")))
    assert rows[0] == ["Email address", "ЛР5", "ЛР5: auto", "ЛР5: manual", "ЛР5: q_text", "ЛР5: q_plot"]
    assert rows[1] == ["ivanov@uni.ru", "4", "2", "2", "2", ""]
    assert rows[3][:2] == ["sidorov@uni.ru", "0"]  # mapped by student id

    canvas = tmp_path / "canvas.csv"
    manual.export_lms(out, "canvas", mapping, canvas, item="Лабораторная 5 (1234)")
    rows = list(csv.reader(canvas.open(encoding="utf-8")))
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Лабораторная 5 (1234)"]
    assert rows[1] == ["    Points Possible", "", "", "", "", "5"]  # 2 auto + 3 manual
    assert rows[2] == ["Иванов Иван", "ivanov@uni.ru", "", "", "", "4"]

    partial = _mapping(tmp_path / "partial.csv", [("ivanov.ipynb", "ivanov@uni.ru", "И")])
    with pytest.raises(manual.ManualError, match=r"3 submission\(s\) map to no student.*petrova.ipynb"):
        manual.export_lms(out, "canvas", partial, tmp_path / "never.csv")
    assert not (tmp_path / "never.csv").exists()
    with pytest.raises(manual.ManualError, match="file,identifier"):
        manual.export_lms(out, "moodle", _mapping(tmp_path / "bad.csv", [("a", "b")], "who,what"), moodle)


def test_cli_export_and_review_export(graded: dict[str, Any], tmp_path: Path, capsys: Any) -> None:
    from convlab.cli import main

    out = graded["out"]
    mapping = _mapping(tmp_path / "map.csv", [("ivanov.ipynb", "1", "И")])
    assert main(["export", str(out), "--lms", "moodle", "--mapping", str(mapping)]) == 2
    assert "map to no student" in capsys.readouterr().err
    full = _mapping(tmp_path / "full.csv", [(f"{s}.ipynb", s, s) for s in ("ivanov", "petrova", "sidorov",
                                                                           "smirnova")])
    assert main(["export", str(out), "--lms", "canvas", "--mapping", str(full)]) == 0
    assert next(csv.reader((out / "canvas.csv").open(encoding="utf-8")))[-1] == "tiny"  # the lab
    assert "5 manual answer(s) not graded yet" in capsys.readouterr().err  # 3 q_text + 2 q_plot
    assert main(["review", str(out), "--export"]) == 0
    assert "q_text: 1/4 graded" in capsys.readouterr().out  # smirnova's deleted question counts as 0


def test_grade_folder_extracts_and_merges(tmp_path: Path, monkeypatch: Any) -> None:
    """``grade_folder`` (``convlab grade``) extracts the answers and merges the grades given so far;
    the notebooks' grading (``run_batch``) is replaced by fabricated results here."""
    from review_batch import result

    from convlab.grading import batch, grade, score

    batch_ = make_batch(tmp_path / "first")
    out, subs = tmp_path / "out", batch_["submissions"][0].path.parent

    class Test:
        name = "q_auto"

    monkeypatch.setattr(score, "load_tests", lambda tests: [Test()])
    out.mkdir()  # (run_batch makes it)
    monkeypatch.setattr(batch, "run_batch", lambda submissions, *a, **k: [
        result(s.student_id, 2.0) for s in submissions])
    config = grade.Config(lab="tiny", tests=tmp_path, manual=batch_["setup"], sandbox_base=tmp_path / "sb")
    grade.grade_folder(config, subs, out, progress=False)
    assert manual.answers(out, "q_text")["smirnova"]["status"] == "missing"
    manual.GradeStore(out).set_grade("q_text", "ivanov", items=["r1"], comment="Кратко.")
    grade.grade_folder(config, subs, out, progress=False, regrade=True)  # a regrade keeps it
    rows = {r["student_id"]: r for r in csv.DictReader((out / "gradebook.csv").open(encoding="utf-8"))}
    assert (rows["ivanov"]["q_text"], rows["ivanov"]["total"]) == ("1", "3")
    assert "Кратко." in (out / "feedback" / "ivanov.md").read_text(encoding="utf-8")


def test_make_batch_is_reproducible(tmp_path: Path) -> None:
    first = make_batch(tmp_path / "a")["out"]
    second = make_batch(tmp_path / "b")["out"]
    for q in ("q_text", "q_plot"):
        assert manual.answers(first, q) == manual.answers(second, q)


def test_review_command_serves_the_page_with_its_token(graded: dict[str, Any]) -> None:
    """``convlab review <out>``: one command, prints the URL with the token; without it, 403;
    SIGINT stops it even when it was started with SIGINT ignored."""
    import os
    import signal
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    # started with SIGINT ignored, as a shell's background job is: Ctrl-C must stop it all the same
    process = subprocess.Popen([sys.executable, "-m", "convlab", "review", str(graded["out"]), "--port", "0"],
                               stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        line = process.stdout.readline()
        assert line.startswith("review page: http://127.0.0.1:"), line
        url = line.split(": ", 1)[1].strip()
        import http.cookiejar

        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        with browser.open(url, timeout=20) as response:  # the token, then the session cookie
            page = response.read().decode()
        assert "q_text" in page and "q_plot" in page
        with pytest.raises(urllib.error.HTTPError, match="403"):
            urllib.request.urlopen(url.split("?")[0], timeout=20)
        with pytest.raises(urllib.error.HTTPError, match="403"):
            urllib.request.urlopen(url.split("?")[0] + "?token=wrong", timeout=20)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(20)


def test_grade_command_refuses_a_broken_rubric_before_grading(graded: dict[str, Any], tmp_path: Path,
                                                              capsys: Any) -> None:
    from convlab.cli import main

    root = graded["setup"].master.parents[2]
    graded["setup"].rubric.write_text("q_text:\n  - {text: слишком много, points: 5}\n", encoding="utf-8")
    subs = graded["submissions"][0].path.parent
    assert main(["--root", str(root), "grade", "tiny", str(subs), "-o", str(tmp_path / "never")]) == 2
    assert "5 points, the question is worth 2" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


def test_review_app_restart_keeps_grades_and_posts_need_the_token(graded: dict[str, Any]) -> None:
    from convlab.review import create_app

    out = graded["out"]
    first = create_app(out, token="one").test_client()
    assert first.get("/q/q_text/1").status_code == 403
    assert first.get("/?token=one").status_code == 302
    assert first.post("/api/q/q_text/1", json={"items": ["r1"]}).status_code == 403  # no header
    saved = first.post("/api/q/q_text/1", json={"items": ["r1"], "comment": "после перезапуска"},
                       headers={"X-Token": "one"})
    assert saved.status_code == 200 and saved.json["score"] == 1.0
    assert first.post("/api/q/q_text/1", json={"items": "r1"}, headers={"X-Token": "one"}).status_code == 400
    assert first.post("/api/q/q_text/99", json={"items": []}, headers={"X-Token": "one"}).status_code == 404
    page = first.get("/q/q_text/1")
    assert "Content-Security-Policy" in page.headers and "script-src 'self'" in page.headers[
        "Content-Security-Policy"]

    second = create_app(out, token="two").test_client()  # a restarted server: a new token
    assert second.get("/?token=one").status_code == 403
    second.get("/?token=two")
    html = second.get("/q/q_text/1").get_data(as_text=True)
    assert "после перезапуска" in html and 'value="r1" checked' in html
