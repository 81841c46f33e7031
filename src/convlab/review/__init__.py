"""``convlab review``: a local web page for grading the manual questions, one question at a time.

A Flask app bound to 127.0.0.1 whose pages need a random token (given once in the printed URL,
then kept in a same-site session cookie; every change also carries it in a header, so another site
cannot post grades). Answers are anonymized by default (numbered in a random order fixed per output
folder). Every change is saved at once through :class:`convlab.grading.manual.GradeStore`.
Student text is rendered by :func:`convlab.grading.manual.render_cells` (no raw HTML, images only
as checked data URIs) and the pages forbid scripts other than the app's own (Content-Security-Policy).
"""

from __future__ import annotations

import hmac
import secrets
import signal
from pathlib import Path
from typing import Any

from flask import Flask, abort, jsonify, redirect, render_template, request, session, url_for
from markupsafe import Markup

from convlab.grading import manual

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


def create_app(out: Path, *, token: str | None = None, names: bool = False, grader: str = "") -> Flask:
    """The review app for the output folder ``out`` of ``convlab grade``."""
    out = Path(out)
    app = Flask(__name__)
    app.config.update(SECRET_KEY=secrets.token_bytes(32), SESSION_COOKIE_SAMESITE="Strict",
                      SESSION_COOKIE_HTTPONLY=True, TOKEN=token or secrets.token_urlsafe(24))
    store = manual.GradeStore(out)
    secret = manual.salt(out)

    def questions() -> list[dict[str, Any]]:
        return manual.load_questions(out)

    def question(name: str) -> dict[str, Any]:
        found = next((q for q in questions() if q["name"] == name), None)
        if found is None:
            abort(404)
        return found

    def order(name: str) -> list[str]:
        return manual.anonymous_order(manual.statuses(out).get(name) or {}, secret)

    @app.before_request
    def authenticate() -> Any:
        given = request.args.get("token")
        if given is not None:
            if not hmac.compare_digest(given, app.config["TOKEN"]):
                abort(403)
            session["ok"] = True
            return redirect(request.path)
        if not session.get("ok") and request.endpoint != "static":
            abort(403)
        if request.method == "POST" and not hmac.compare_digest(request.headers.get("X-Token", ""),
                                                                app.config["TOKEN"]):
            abort(403)
        return None

    @app.after_request
    def headers(response: Any) -> Any:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/")
    def index() -> Any:
        return render_template("index.html", rows=manual.progress(out), out=out.name,
                               token=app.config["TOKEN"])

    @app.get("/q/<name>")
    def first(name: str) -> Any:
        question(name)
        if request.args.get("filter") != "ungraded":
            return redirect(url_for("answer", name=name, n=1))
        results = manual.manual_results(out)
        students = order(name)
        n = next((k for k, s in enumerate(students, 1)
                  if not results.get(s, {}).get(name, {}).get("graded")), 1)
        return redirect(url_for("answer", name=name, n=n, filter="ungraded"))

    @app.get("/q/<name>/<int:n>")
    def answer(name: str, n: int) -> Any:
        q = question(name)
        students = order(name)
        if not 1 <= n <= len(students):
            abort(404)
        student = students[n - 1]
        data = store.load(name)
        results = manual.manual_results(out)
        ungraded_only = request.args.get("filter") == "ungraded"
        graded = [results.get(s, {}).get(name, {}).get("graded", False) for s in students]

        def step(direction: int) -> int | None:
            k = n - 1 + direction
            while 0 <= k < len(students):
                if not ungraded_only or not graded[k]:
                    return k + 1
                k += direction
            return None

        record = manual.answers(out, name)[student]
        grade = data["grades"].get(student, {"items": [], "comment": ""})
        label = student if names else f"Ответ №{n}"
        return render_template(
            "question.html", q=q, n=n, count=len(students), label=label, student=student,
            answer=Markup(manual.render_cells(record.get("cells", []))), status=record.get("status"),
            note=record.get("note"),
            reference=Markup(manual.render_cells(q.get("reference", []))),
            prompt=Markup(manual.render_markdown(q.get("prompt", "").replace(manual.BEGIN, ""))),
            rubric=data["rubric"], chosen=set(grade.get("items", [])), comment=grade.get("comment", ""),
            score=manual.grade_score(data, student), graded_count=sum(graded),
            prev=step(-1), next=step(1), ungraded=ungraded_only, token=app.config["TOKEN"],
            questions=[x["name"] for x in questions()])

    def student_at(name: str, n: int) -> str:
        students = order(name)
        if not 1 <= n <= len(students):
            abort(404)
        return students[n - 1]

    @app.post("/api/q/<name>/<int:n>")
    def save(name: str, n: int) -> Any:
        question(name)
        payload = request.get_json(silent=True) or {}
        items, comment = payload.get("items"), payload.get("comment")
        if items is not None and (not isinstance(items, list) or not all(isinstance(i, str) for i in items)):
            abort(400)
        if comment is not None and not isinstance(comment, str):
            abort(400)
        try:
            state = store.set_grade(name, student_at(name, n), items=items, comment=comment, grader=grader)
        except manual.ManualError as error:
            return jsonify(error=str(error)), 400
        results = manual.manual_results(out).values()
        graded = sum(1 for grades in results if grades.get(name, {}).get("graded"))
        return jsonify(items=state["items"], comment=state["comment"], score=state["score"], graded=graded)

    @app.post("/api/q/<name>/rubric")
    def rubric(name: str) -> Any:
        question(name)
        payload = request.get_json(silent=True) or {}
        try:
            item = store.set_item(name, payload.get("id") or None, str(payload.get("text", "")),
                                  payload.get("points"))
        except manual.ManualError as error:
            return jsonify(error=str(error)), 400
        return jsonify(item=item)

    @app.post("/api/export")
    def export() -> Any:
        return jsonify(manual.merge(out))

    return app


def serve(out: Path, *, host: str = "127.0.0.1", port: int = 8765, names: bool = False,
          grader: str = "") -> None:
    """Run the review app until interrupted; prints the URL with its token."""
    from werkzeug.serving import make_server

    app = create_app(out, names=names, grader=grader)
    server = make_server(host, port, app, threaded=True)  # port 0: a free one
    print(f"review page: http://{host}:{server.server_port}/?token={app.config['TOKEN']}", flush=True)
    # Ctrl-C and SIGTERM stop the page even where the shell started it with SIGINT ignored (a
    # background job inherits SIG_IGN, and Python then installs no KeyboardInterrupt handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
