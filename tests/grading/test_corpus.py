"""The tiny corpus (``corpus_tiny``) through the batch: faults get a clear status while the batch
carries on, exploits gain nothing and leave the grading machine untouched.

Each test grades a few scenarios of :mod:`corpus_tiny` with ``grade.grade_folder`` (the code of
``convlab grade``) in real kernels and checks each result against the scenario's expected status
and total, then what each scenario must not have done (files outside, bytes on the network,
unbounded outputs).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import socket
import tempfile
import threading
from pathlib import Path

import corpus_tiny as corpus
import nbformat
import pytest

from convlab.grading import batch, execute, grade, sandbox

ROOT = Path(__file__).resolve().parents[2]


def grade_scenarios(subs: Path, autograder: Path, out: Path, expected: dict[str, corpus.Scenario],
                    **settings: float) -> dict[str, dict]:
    """Grade the folder as ``convlab grade`` does; check every status and total; check that no
    working directory is left behind (in a sandbox base of this call's own)."""
    values = {**corpus.SETTINGS, **settings}
    base = Path(tempfile.mkdtemp(prefix="convlab-corpus-", dir="/tmp"))
    base.chmod(0o711)  # passable by the sandbox user, as execute.sandbox_base() is
    try:
        config = grade.Config(lab=corpus.LAB, tests=autograder, settings=execute.Settings(**values),
                              sandbox_base=base)
        results = {r["student_id"]: r for r in grade.grade_folder(config, subs, out, workers=1,
                                                                   progress=False)}
        assert list(base.iterdir()) == [], "working directories were left behind"
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert {k: (r["status"], r["total"]) for k, r in results.items()} == {
        k: (s.status, s.total) for k, s in expected.items()}, {k: r.get("reason") for k, r in results.items()}
    for sid, result in results.items():  # Gradescope's file agrees with the gradebook
        assert json.loads((out / "gradescope" / sid / "results.json").read_text())["score"] == result["total"]
    return results


def tree(folder: Path) -> dict[str, str]:
    """Every path beneath ``folder`` with its content's hash (folders and links marked)."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            found[os.path.relpath(os.path.join(root, name), folder)] = "dir"
        for name in files:
            path = os.path.join(root, name)
            found[os.path.relpath(path, folder)] = ("link" if os.path.islink(path) else
                                                    hashlib.sha256(Path(path).read_bytes()).hexdigest())
    return found


def errors(executed: Path) -> list[str]:
    nb = nbformat.read(executed, as_version=4)
    return [o["ename"] for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if o.get("output_type") == "error"]


def test_faults_get_a_status_and_the_batch_carries_on(tmp_path: Path) -> None:
    """Do cells with syntax errors leave the others running and scoring (the SyntaxError shown in
    the executed notebook); do renamed notebooks, bare or zipped, grade normally; does a 200 MB
    print or an endless print loop neither blow the grader's memory nor make a giant executed
    notebook; are a zip bomb, a zip lying about its sizes and one with too many members refused
    as invalid at once, without unpacking?"""
    names = ["syntax_error", "lab_(1)", "Сдача_final", "huge_output", "print_forever", "zip_bomb",
             "zip_lying_sizes", "zip_too_many"]
    subs, out = tmp_path / "subs", tmp_path / "out"
    expected = corpus.write_corpus(subs, corpus.Context(outside=tmp_path / "unused"), names)
    assert (subs / "zip_bomb.zip").stat().st_size < 10 << 20
    results = grade_scenarios(subs, corpus.write_autograder(tmp_path / "autograder"), out, expected,
                              cell_timeout=5.0, wall_seconds=120.0)

    assert errors(out / "feedback" / "syntax_error.ipynb") == ["SyntaxError", "SyntaxError"]
    for sid in ("huge_output", "print_forever"):
        executed = out / "feedback" / f"{sid}.ipynb"
        assert executed.stat().st_size < execute.MAX_OUTPUT + (1 << 20), executed.stat().st_size
        assert "вывод ячейки обрезан" in executed.read_text()
        # cut in the kernel (exporter.cap_output): about 120 MB; uncut, IPython's output history
        # and the message queues held 0.8 to 1.2 GB
        assert results[sid]["execution"]["peak_rss_mb"] < 400, results[sid]["execution"]
    assert "KeyboardInterrupt" in errors(out / "feedback" / "print_forever.ipynb")
    assert "RuntimeError" in errors(out / "feedback" / "huge_output.ipynb")  # the cells after it ran
    for sid, fragment in (("zip_bomb", "слишком большой объём"), ("zip_too_many", "2002 файлов"),
                          ("zip_lying_sizes", "архив повреждён")):
        assert fragment in results[sid]["reason"], results[sid]["reason"]
        assert results[sid]["duration_s"] < 30
        assert fragment in (out / "feedback" / f"{sid}.md").read_text()


def _listen(server: socket.socket, received: list[bytes], stop: threading.Event) -> None:
    server.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = server.accept()
        except TimeoutError:
            continue
        with conn:
            conn.settimeout(2)
            received.append(b"connection")
            try:
                received.append(conn.recv(65536))
            except OSError:
                pass


def test_exploits_leave_the_grading_machine_untouched(tmp_path: Path) -> None:
    """Graded as root without the user switch when this Python is not reachable by ``nobody``
    (so only Landlock stands between the notebook and the grader's files): does a notebook that
    writes, appends, renames and deletes the autograder's tests (those grading this very batch),
    a copy of the checks and the batch's output folder change none of them; is a zip of pickles
    (.OTTER_LOG, results.pkl, env.dill) never unpickled; does a notebook sending to a server on
    the grader's 127.0.0.1 send nothing; and does each still get its honest answers' score?"""
    if not (sandbox.probe_protections()["filesystem_write_confined"] or execute.sandbox_user_can_run()):
        pytest.skip("neither Landlock nor the user switch here: notebooks can write the grader's files")
    outside = tmp_path / "grader"
    autograder = corpus.write_autograder(outside / "autograder")
    shutil.copytree(ROOT / "src" / "convlab" / "checks", outside / "checks",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for path in [outside, *outside.rglob("*")]:  # writable by anyone: only the sandbox stops it
        path.chmod(0o777 if path.is_dir() else 0o666)
    subs, out = tmp_path / "subs", tmp_path / "out"
    received: list[bytes] = []
    stop = threading.Event()
    with socket.create_server(("127.0.0.1", 0)) as server:
        listener = threading.Thread(target=_listen, args=(server, received, stop), daemon=True)
        listener.start()
        ctx = corpus.Context(outside=outside, port=server.getsockname()[1], targets=(out,))
        expected = corpus.write_corpus(subs, ctx, ["honest", "network", "otter_log_pickle", "write_outside"])
        out.mkdir()
        (out / "keep.txt").write_text("the batch's own file")
        (out / "keep.txt").chmod(0o666)
        before = tree(outside)
        try:
            results = grade_scenarios(subs, autograder, out, expected)
        finally:
            stop.set()
            listener.join()

    assert tree(outside) == before
    assert not list(outside.rglob("PWNED*"))
    assert received == [], received
    assert (out / "keep.txt").read_text() == "the batch's own file"
    assert not [p for p in out.rglob("*") if p.name.startswith("planted") or p.name.endswith(".moved")]
    for sid in ("honest", "network", "otter_log_pickle"):  # graded before write_outside ran
        assert json.loads((out / "results" / f"{sid}.json").read_text())["total"] == 4.0
    executed = (out / "feedback" / "write_outside.ipynb").read_text()
    assert "changed outside: []" in executed
    assert "blocked:" in (out / "feedback" / "network.ipynb").read_text()
    protections = results["write_outside"]["execution"]["protections"]
    assert protections["filesystem_write_confined"] or protections["unprivileged_user"]
    assert protections["network_namespace"]


def test_keras_patched_model_gains_nothing(tmp_path: Path) -> None:
    """Does a notebook whose untrained model reports 100% through patched ``Model.predict`` /
    ``evaluate`` / ``__call__`` fail the hidden accuracy test (computed with ``model.predict`` in
    the trusted process on the exported model), while an honestly trained tiny model passes?"""
    subs, out = tmp_path / "subs", tmp_path / "out"
    expected = corpus.write_corpus(subs, corpus.Context(outside=tmp_path / "unused"),
                                   ["keras_honest", "keras_patched"])
    results = grade_scenarios(subs, corpus.write_autograder(tmp_path / "autograder", "keras"), out, expected,
                              cell_timeout=300.0, wall_seconds=400.0, memory_bytes=3 << 30)
    cases = {c["name"]: c for c in results["keras_patched"]["questions"]["q3"]["cases"]}
    assert cases["q3 - 1"]["passed"] and not cases["q3 - 2"]["passed"]
    assert "точность модели 0." in cases["q3 - 2"]["message"]
    assert "точность: 1.0 1.0" in (out / "feedback" / "keras_patched.ipynb").read_text()  # fooled itself


def test_grading_works_without_any_write_barrier(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where neither the user switch nor Landlock is available, is the honest notebook still
    graded in full, with ``filesystem_write_confined: false`` and a warning in the result?"""
    machine = dataclasses.replace(sandbox._probe(), landlock=False, user=None)
    monkeypatch.setattr(sandbox, "_probe", lambda: machine)
    subs = tmp_path / "subs"
    corpus.write_corpus(subs, corpus.Context(outside=tmp_path / "unused"), ["honest"])
    config = grade.Config(lab=corpus.LAB, tests=corpus.write_autograder(tmp_path / "autograder"),
                          settings=execute.Settings(**corpus.SETTINGS, allow_root=True))  # the opt-in
    (tmp_path / "scratch").mkdir()
    result = grade.grade_one(config, batch.Submission("honest", subs / "honest.ipynb"), tmp_path / "scratch")
    assert (result["status"], result["total"]) == ("ok", 4.0)
    protections = result["execution"]["protections"]
    assert not protections["filesystem_write_confined"] and not protections["unprivileged_user"]
    assert "AS ROOT" in result["warnings"][0]


def test_corpus_is_complete(tmp_path: Path) -> None:
    """Does the corpus write every scenario under the student id it names, each with a known
    status and a total within its autograder's maximum?"""
    written = corpus.write_corpus(tmp_path / "subs", corpus.Context(outside=tmp_path, port=1))
    assert written == corpus.SCENARIOS
    assert sorted(s.student_id for s in batch.discover(tmp_path / "subs")) == sorted(corpus.SCENARIOS)
    for scenario in corpus.SCENARIOS.values():
        assert scenario.kind in ("honest", "exploit", "fault")
        assert scenario.status in ("ok", "timeout", "memory", "crashed", "invalid-notebook",
                                   "wrong-assignment")
        assert 0 <= scenario.total <= {"tiny": 4, "keras": 2}[scenario.autograder]
