"""End to end in a real browser: Playwright drives Debian's ``chromium`` over the review page.

Grades one question for three students with rubric items and a comment (by keyboard), reloads
and finds them kept, edits a rubric item (every answer graded with it follows), exports, and
finds the grades in the gradebook, the feedback and Gradescope's results.json. The hostile answer
(HTML and JavaScript) must stay inert. ``CONVLAB_REVIEW_SCREENSHOTS=<folder>`` also saves the
screenshots shown in the README.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from review_batch import HOSTILE

from convlab.grading import manual

TOKEN = "test-token-123"


def browser_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    return None


@pytest.fixture
def server(graded: dict[str, Any]) -> Iterator[tuple[str, Path]]:
    from werkzeug.serving import make_server

    from convlab.review import create_app

    app = create_app(graded["out"], token=TOKEN)
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}", graded["out"]
    finally:
        httpd.shutdown()
        thread.join(10)


@pytest.fixture
def page() -> Iterator[Any]:
    executable = browser_path()
    if executable is None:
        pytest.skip("no chromium on this machine: install Debian's package (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 860})
            yield context.new_page()
        finally:
            browser.close()


def shot(page: Any, name: str) -> None:
    folder = os.environ.get("CONVLAB_REVIEW_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def test_grade_a_question_in_the_browser(server: tuple[str, Path], page: Any) -> None:
    base, out = server
    assert page.goto(f"{base}/").status == 403  # no token, no page
    page.goto(f"{base}/?token={TOKEN}")
    assert "q_text" in page.content()
    page.click("text=непроверенные >> nth=0")  # q_text, only ungraded answers
    page.wait_for_selector("#grading")
    assert page.locator("#ungraded").is_checked()
    seen = []
    for n in range(3):
        assert "Ответ №" in page.inner_text("#label")  # anonymized
        seen.append(page.inner_text(".answer"))
        page.keyboard.press("1")
        page.wait_for_selector("#status:text('сохранено')")
        page.keyboard.press("2")
        page.wait_for_selector("#score:text('2')")
        page.keyboard.press("c")
        page.keyboard.type(f"Комментарий {n + 1}: хорошо <b>жирно</b>")
        page.keyboard.press("Escape")
        page.wait_for_selector("#status:text('сохранено')")
        if n < 2:
            page.keyboard.press("j")
            page.wait_for_load_state()
    assert page.evaluate("window.pwned") is None  # the hostile answer stayed inert
    assert any("<script>" in text for text in seen)  # ... and was shown as text
    assert page.locator(".answer script, .answer iframe, .answer img[onerror]").count() == 0

    assert page.inner_text("#graded") == "4"  # progress follows the saves
    page.reload()
    assert page.locator("input.item:checked").count() == 2
    assert page.input_value("#comment").startswith("Комментарий 3")
    page.goto(f"{base}/")
    assert "3/4" not in page.inner_text("table") and "4/4" in page.inner_text("table")

    # a rubric edit applies to every answer graded with the item
    page.goto(f"{base}/q/q_text/1")
    page.locator("#rubric li").nth(1).locator("button.edit").click()
    page.fill("#item-form input[name=points]", "0.5")
    page.click("#item-form button[type=submit]")
    page.wait_for_selector("#rubric li:nth-child(2) .points:text('+0.5')")

    page.goto(f"{base}/")
    page.click("#export")
    page.wait_for_selector("#status:text('обновлены')")

    rows = {r["student_id"]: r for r in csv.DictReader((out / "gradebook.csv").open(encoding="utf-8"))}
    for student in ("ivanov", "petrova", "sidorov"):
        assert rows[student]["q_text"] == "1.5", rows[student]
        assert float(rows[student]["total"]) == float(rows[student]["auto_total"]) + 1.5
        feedback = (out / "feedback" / f"{student}.md").read_text(encoding="utf-8")
        assert "Комментарий" in feedback and "Названа цель нормализации" in feedback
        html = (out / "feedback" / f"{student}.html").read_text(encoding="utf-8")
        assert "&lt;b&gt;жирно&lt;/b&gt;" in html and "<b>жирно" not in html
        results = json.loads((out / "gradescope" / student / "results.json").read_text(encoding="utf-8"))
        test = next(t for t in results["tests"] if t["name"] == "q_text")
        assert test["score"] == 1.5 and "Комментарий" in test["output"]
    assert rows["smirnova"]["q_text"] == "0"  # deleted question: graded 0, said so
    assert "Ответ не найден" in (out / "feedback" / "smirnova.md").read_text(encoding="utf-8")

    grades = manual.GradeStore(out).load("q_text")["grades"]
    assert sorted(grades) == ["ivanov", "petrova", "sidorov"]
    page.goto((out / "feedback" / "petrova.html").as_uri())
    shot(page, "feedback-manual.png")

    # an answer with a pasted picture and a formula (q_plot): the image only as a data: URI
    for n in range(1, 5):
        page.goto(f"{base}/q/q_plot/{n}")
        if page.locator(".answer img").count() and page.locator(".answer .math").count():
            break  # petrova's (the anonymous order is random)
    assert page.get_attribute(".answer img", "src").startswith("data:image/png;base64,")
    assert "\\sigma(x)" in page.inner_text(".answer .math")
    page.keyboard.press("1")
    page.keyboard.press("c")
    page.keyboard.type("Кривая верная; объясните, почему σ(x) насыщается.")
    page.keyboard.press("Escape")
    page.wait_for_selector("#status:text('сохранено')")
    assert HOSTILE not in page.content()
    shot(page, "review-page.png")
