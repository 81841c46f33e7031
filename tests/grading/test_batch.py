"""The batch driver: discovery and ids, parallel grading, crash handling, resuming, the gradebook."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from convlab.grading.batch import DaskEngine, Submission, discover, run_batch, student_id, write_gradebook

ROOT = Path(__file__).resolve().parents[2]


def make_submissions(folder: Path, names: list[str]) -> list[Submission]:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text("{}")
    return discover(folder)


def mark(scratch: Path, submission: Submission) -> None:
    """Leave a marker that ``submission`` was graded (the scratch dir is out/work/<id>)."""
    calls = scratch.parents[1] / "calls"
    calls.mkdir(exist_ok=True)
    (calls / f"{submission.student_id}.{uuid.uuid4().hex}").touch()


def calls(out: Path) -> list[str]:
    return sorted(p.name.rsplit(".", 1)[0] for p in (out / "calls").glob("*"))


def grade_ok(submission: Submission, scratch: Path) -> dict:
    mark(scratch, submission)
    n = len(submission.student_id)
    return {"scores": {"q1": 1.0, "q2": n / 4}, "scratch_is_empty_dir": list(scratch.iterdir()) == []}


def grade_flaky(submission: Submission, scratch: Path) -> dict:
    if submission.student_id == "bob":
        raise ValueError("cannot read bob's notebook")
    return grade_ok(submission, scratch)


def grade_dies(submission: Submission, scratch: Path) -> dict:
    if submission.student_id == "bob":
        os._exit(9)  # the grading process itself dies
    return grade_ok(submission, scratch)


def grade_raises_or_dies(submission: Submission, scratch: Path) -> dict:
    """bob raises, carol's grading process dies (a moment after it starts, as a notebook would:
    the end of the task before it on that worker has reached the scheduler)."""
    if submission.student_id == "bob":
        raise ValueError("cannot read bob's notebook")
    if submission.student_id == "carol":
        time.sleep(0.5)
        os._exit(9)
    return grade_ok(submission, scratch)


def test_student_ids_from_file_names() -> None:
    """Are ids the file stem without otter's export timestamp, with spaces as underscores?"""
    assert student_id("alice.ipynb") == "alice"
    assert student_id("lab5_2026_11_25T10_00_00_123456.zip") == "lab5"
    assert student_id("Иван Петров lab5.ipynb") == "Иван_Петров_lab5"
    assert student_id("lab5 (1).ipynb") == "lab5_(1)"


def test_discover_names_and_deduplicates(tmp_path: Path) -> None:
    """Does discovery take only top-level .ipynb/.zip files and give clashing ids -2, -3 in file
    order, the same way every time?"""
    names = ["alice.ipynb", "alice_2026_11_25T10_00_00_123456.zip",
             "alice_2026_11_26T09_30_00_000001.zip", "bob smith.ipynb", "alice-2.zip",
             "notes.txt", ".hidden.ipynb"]
    subs = make_submissions(tmp_path, names)
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "carol.ipynb").write_text("{}")
    found = {s.student_id: s.path.name for s in discover(tmp_path)}
    assert found == {
        "alice": "alice.ipynb",
        "alice-2": "alice-2.zip",
        "alice-3": "alice_2026_11_25T10_00_00_123456.zip",
        "alice-4": "alice_2026_11_26T09_30_00_000001.zip",
        "bob_smith": "bob smith.ipynb",
    }
    assert [s.student_id for s in subs] == sorted(found)
    assert discover(tmp_path) == discover(tmp_path)


def grade_reports_inherited_state(submission: Submission, scratch: Path) -> dict:
    return {"inherited": "convlab_parent_only_marker" in sys.modules}


def test_grading_processes_start_fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Are grading processes fresh interpreters rather than forks of the grader? A fork of a
    process with TensorFlow's thread pools running can deadlock in its first TF call (it hung the
    Lab 5 corpus when the test process had used TensorFlow); a fresh process has none of the
    parent's modules."""
    monkeypatch.setitem(sys.modules, "convlab_parent_only_marker", type(sys)("convlab_parent_only_marker"))
    subs = make_submissions(tmp_path / "in", ["alice.ipynb", "bob.ipynb"])
    results = run_batch(subs, grade_reports_inherited_state, tmp_path / "out", workers=2, progress=False)
    assert [r["inherited"] for r in results] == [False, False]


def test_batch_grades_all_and_writes_results(tmp_path: Path) -> None:
    """Does every submission get a result file (status, id, file, duration) and come back in
    submission order, each graded once in a fresh scratch directory?"""
    subs = make_submissions(tmp_path / "in", ["carol.ipynb", "alice.ipynb", "bob.zip"])
    out = tmp_path / "out"
    results = run_batch(subs, grade_ok, out, workers=2, progress=False)
    assert [r["student_id"] for r in results] == [s.student_id for s in subs]
    for sub, result in zip(subs, results, strict=True):
        assert result["status"] == "ok" and result["file"] == sub.path.name
        assert result["scratch_is_empty_dir"] and result["duration_s"] >= 0
        assert json.loads((out / "results" / f"{sub.student_id}.json").read_text()) == result
    assert calls(out) == ["alice", "bob", "carol"]
    assert not list((out / "results").glob(".*"))  # no temporary files left


def test_exception_in_grade_one_is_crashed(tmp_path: Path) -> None:
    """Does an exception while grading one submission give it "crashed" with the message, while
    the others are graded?"""
    subs = make_submissions(tmp_path / "in", ["alice.ipynb", "bob.ipynb", "carol.ipynb"])
    results = {r["student_id"]: r for r in run_batch(subs, grade_flaky, tmp_path / "out", workers=2,
                                                     progress=False)}
    assert results["bob"]["status"] == "crashed"
    assert "ValueError: cannot read bob's notebook" in results["bob"]["error"]
    assert results["alice"]["status"] == results["carol"]["status"] == "ok"


def test_dead_grading_process_is_crashed(tmp_path: Path) -> None:
    """When the process grading one submission dies, is only that one "crashed" and the rest
    (including those graded alongside it) still graded?"""
    subs = make_submissions(tmp_path / "in", [f"{n}.ipynb" for n in ("alice", "bob", "carol", "dave")])
    results = {r["student_id"]: r for r in run_batch(subs, grade_dies, tmp_path / "out", workers=2,
                                                     progress=False)}
    assert results["bob"]["status"] == "crashed" and "died" in results["bob"]["error"]
    assert all(results[n]["status"] == "ok" for n in ("alice", "carol", "dave"))
    assert sorted(p.stem for p in (tmp_path / "out" / "results").glob("*.json")) == sorted(results)


def test_existing_results_are_skipped_unless_regrade(tmp_path: Path) -> None:
    """Are submissions that already have a result not graded again, unless regrade is asked?"""
    subs = make_submissions(tmp_path / "in", ["alice.ipynb", "bob.ipynb"])
    out = tmp_path / "out"
    run_batch(subs[:1], grade_ok, out, workers=1, progress=False)
    (out / "results" / ".bob.json.x.tmp").write_text("{half")  # a write interrupted by a kill
    results = run_batch(subs, grade_ok, out, workers=2, progress=False)
    assert calls(out) == ["alice", "bob"]
    assert [r["status"] for r in results] == ["ok", "ok"]
    assert not list((out / "results").glob(".*"))
    run_batch(subs, grade_ok, out, workers=2, progress=False, regrade=True)
    assert calls(out) == ["alice", "alice", "bob", "bob"]


def test_progress_counter_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Does the batch show its progress on stderr (tqdm, else a one-line counter)?"""
    subs = make_submissions(tmp_path / "in", ["alice.ipynb", "bob.ipynb"])
    run_batch(subs, grade_ok, tmp_path / "out", workers=1, progress=True)
    err = capsys.readouterr().err
    assert "2/2" in err


BATCH_SCRIPT = """
    import sys, time
    from pathlib import Path
    from convlab.grading.batch import discover, run_batch

    def grade(submission, scratch):
        calls = Path(sys.argv[3])
        calls.mkdir(exist_ok=True)
        with (calls / submission.student_id).open("a") as f:
            f.write("x")
        time.sleep(0.4)
        return {"scores": {"q1": 1}}

    if __name__ == "__main__":
        run_batch(discover(Path(sys.argv[1])), grade, Path(sys.argv[2]), workers=2, progress=False)
"""


def test_killed_batch_resumes_where_it_stopped(tmp_path: Path) -> None:
    """After a batch is killed (SIGKILL) half-way, does running it again grade only the
    submissions without a result, leaving exactly one result per submission?"""
    names = [f"student{i}" for i in range(8)]
    make_submissions(tmp_path / "in", [f"{n}.ipynb" for n in names])
    script = tmp_path / "batch.py"
    script.write_text(textwrap.dedent(BATCH_SCRIPT))
    out, results = tmp_path / "out", tmp_path / "out" / "results"

    def start(calls: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(script), str(tmp_path / "in"), str(out),
                                 str(tmp_path / calls)], cwd=ROOT, start_new_session=True)

    first = start("calls1")
    deadline = time.monotonic() + 30
    while len(list(results.glob("*.json"))) < 2 and time.monotonic() < deadline:
        assert first.poll() is None, "the first batch ended before it could be killed"
        time.sleep(0.02)
    os.killpg(first.pid, signal.SIGKILL)  # the batch and its workers
    first.wait()
    done_first = {p.stem for p in results.glob("*.json")}
    assert 2 <= len(done_first) < len(names)

    second = start("calls2")
    assert second.wait(timeout=60) == 0
    graded_again = sorted(p.name for p in (tmp_path / "calls2").iterdir())
    assert graded_again == sorted(set(names) - done_first)
    assert all((tmp_path / "calls2" / n).read_text() == "x" for n in graded_again)  # once each
    assert sorted(p.stem for p in results.glob("*.json")) == names
    assert not list(results.glob(".*"))


# ------------------------------------------------------------------------------------- Dask
def comparable(results: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "duration_s"} for r in results]


def test_dask_results_equal_the_process_pool(tmp_path: Path) -> None:
    """On a LocalCluster and on a running cluster given by its scheduler's address, are the
    results (and result files) those of the process pool, in submission order, each graded once?"""
    from distributed import LocalCluster

    subs = make_submissions(tmp_path / "in", ["carol.ipynb", "alice.ipynb", "bob.zip", "dave.ipynb"])
    pool = run_batch(subs, grade_ok, tmp_path / "pool", workers=2, progress=False)
    local = run_batch(subs, grade_ok, tmp_path / "local", workers=2, progress=False,
                      engine=DaskEngine("local"))
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        remote = run_batch(subs, grade_ok, tmp_path / "remote", workers=1, progress=False,
                           engine=DaskEngine(cluster.scheduler_address))
    assert comparable(local) == comparable(remote) == comparable(pool)
    assert [r["status"] for r in local] == ["ok"] * 4 and all(r["scratch_is_empty_dir"] for r in local)
    for out, results in ((tmp_path / "local", local), (tmp_path / "remote", remote)):
        assert calls(out) == ["alice", "bob", "carol", "dave"]
        assert [json.loads((out / "results" / f"{s.student_id}.json").read_text()) for s in subs] == results
        assert not list((out / "results").glob(".*"))


def test_dask_exception_and_dead_worker_are_crashed(tmp_path: Path) -> None:
    """On Dask, does an exception in grade_one, and a worker that dies grading a submission, each
    give only that submission "crashed" while the others (some on the dying worker's queue) are
    graded, each result written?"""
    names = ["alice", "bob", "carol", "dave", "eve", "frank"]
    subs = make_submissions(tmp_path / "in", [f"{n}.ipynb" for n in names])
    out = tmp_path / "out"
    results = {r["student_id"]: r for r in run_batch(subs, grade_raises_or_dies, out, workers=2,
                                                     progress=False, engine=DaskEngine("local"))}
    assert results["bob"]["status"] == "crashed"
    assert "ValueError: cannot read bob's notebook" in results["bob"]["error"]
    assert results["carol"]["status"] == "crashed" and "died" in results["carol"]["error"]
    assert {n: results[n]["status"] for n in names if n not in ("bob", "carol")} == dict.fromkeys(
        ["alice", "dave", "eve", "frank"], "ok")
    assert sorted(p.stem for p in (out / "results").glob("*.json")) == names
    assert calls(out) == ["alice", "dave", "eve", "frank"]  # graded once each


def test_dask_resume_skips_done_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """On Dask, are submissions with a result skipped (a half-written temporary file removed),
    graded again with regrade, and is the progress shown?"""
    subs = make_submissions(tmp_path / "in", ["alice.ipynb", "bob.ipynb", "carol.ipynb"])
    out = tmp_path / "out"
    run_batch(subs[:1], grade_ok, out, workers=1, progress=False)
    before = (out / "results" / "alice.json").stat().st_mtime_ns
    (out / "results" / ".bob.json.x.tmp").write_text("{half")
    results = run_batch(subs, grade_ok, out, workers=2, progress=True, engine=DaskEngine("local"))
    assert calls(out) == ["alice", "bob", "carol"]
    assert (out / "results" / "alice.json").stat().st_mtime_ns == before
    assert [r["status"] for r in results] == ["ok"] * 3
    assert not list((out / "results").glob(".*"))
    assert "3/3" in capsys.readouterr().err
    run_batch(subs, grade_ok, out, workers=2, progress=False, regrade=True, engine=DaskEngine("local"))
    assert calls(out) == ["alice", "alice", "bob", "bob", "carol", "carol"]


def test_gradebook_columns_and_rows(tmp_path: Path) -> None:
    """Does the gradebook have one row per result with the questions' points, the total and the
    duration, blanks for missing scores?"""
    results = [
        {"student_id": "alice", "file": "alice.ipynb", "status": "ok",
         "scores": {"q1": 1.0, "q2": 0.5, "q3": 2}, "duration_s": 12.34},
        {"student_id": "bob", "file": "bob.zip", "status": "timeout", "scores": {"q1": 1},
         "total": 1.0, "duration_s": 600.0},
        {"student_id": "carol", "file": "carol.ipynb", "status": "crashed", "error": "boom"},
    ]
    path = tmp_path / "gradebook.csv"
    write_gradebook(results, path, ["q1", "q2", "q3"])
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows == [
        ["student_id", "file", "status", "q1", "q2", "q3", "total", "duration_s"],
        ["alice", "alice.ipynb", "ok", "1", "0.5", "2", "3.5", "12.3"],
        ["bob", "bob.zip", "timeout", "1", "", "", "1", "600.0"],
        ["carol", "carol.ipynb", "crashed", "", "", "", "0", ""],
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["gradebook.csv"]


# ------------------------------------------------------------------------------- hostile names
CP1251 = "Иванов_lab5.ipynb".encode("cp1251")  # an LMS download: bytes that are not UTF-8
HOSTILE = [CP1251, ("д" * 120 + ".ipynb").encode(), b"x" * 240 + b".ipynb", b"line\nbreak.ipynb",
           b"--regrade.ipynb", b"-o=..ipynb", b"x..zip", b"=HYPERLINK(1).ipynb", b"a\xff\xfe.zip",
           "\u202eevil.ipynb".encode()]


def hostile_folder(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in HOSTILE:
        with open(os.path.join(os.fsencode(folder), name), "wb") as f:
            f.write(b"{}")


def test_student_ids_of_hostile_names_are_safe_unique_and_stable(tmp_path: Path) -> None:
    """Does every file name (not UTF-8, 246 and 256 bytes, newlines, leading dashes, dots, a
    formula, a right-to-left override) give an id of word characters and ``.()+,-`` that starts
    with a word character, fits a file name, differs from the others, and is the same on the next
    discovery; and do ids that had to change carry a hash of the name (two names never clash)?"""
    hostile_folder(tmp_path / "subs")
    subs = discover(tmp_path / "subs")
    ids = [s.student_id for s in subs]
    assert len(subs) == len(HOSTILE) and len(set(ids)) == len(ids)
    for sid in ids:
        assert re.fullmatch(r"\w[\w.()+,\-]*", sid) and len(sid.encode()) <= 96 + 9, sid
    assert ids == [s.student_id for s in discover(tmp_path / "subs")]
    assert student_id(CP1251).startswith("Иванов_lab5-")  # read as cp1251, marked by the hash
    assert student_id(b"a" * 100 + b"1.ipynb") != student_id(b"a" * 100 + b"2.ipynb")
    assert student_id("alice.ipynb") == "alice"  # plain names stay plain


def grade_hostile(submission: Submission, scratch: Path) -> dict:
    if b"break" in os.fsencode(submission.path.name):
        raise OSError("cannot read this one")
    return {"scores": {"q1": 1.0}, "name_bytes": len(os.fsencode(submission.path.name))}


def test_batch_of_hostile_names_completes_and_resumes(tmp_path: Path) -> None:
    """Does a batch of hostile names grade every file (one failing alone as crashed), keep the
    original name in the results (not UTF-8 bytes as \\xNN), write a gradebook, and does the rerun
    skip them all?"""
    hostile_folder(tmp_path / "subs")
    subs = discover(tmp_path / "subs")
    out = tmp_path / "out"
    results = run_batch(subs, grade_hostile, out, workers=1, progress=False)
    statuses = sorted(r["status"] for r in results)
    assert statuses == ["crashed"] + ["ok"] * (len(HOSTILE) - 1)
    files = {r["file"] for r in results}
    assert "\\xc8\\xe2\\xe0\\xed\\xee\\xe2_lab5.ipynb" in files and "line\nbreak.ipynb" in files
    assert all(json.loads((out / "results" / f"{s.student_id}.json").read_text(encoding="utf-8"))["status"]
               for s in subs)
    write_gradebook(results, out / "gradebook.csv", ["q1"])
    assert run_batch(discover(tmp_path / "subs"), grade_hostile, out, workers=1, progress=False) == results


def test_gradebook_neutralizes_formulas(tmp_path: Path) -> None:
    """Are text cells that a spreadsheet would run (=, +, -, @, tab, CR first) prefixed with ',
    while the grader's numbers stay numbers?"""
    results = [{"student_id": "a", "file": f"{start}cmd|' /C calc'!A0.ipynb", "status": "ok",
                "scores": {"q1": 1.0}, "duration_s": 1.0} for start in ("=", "+", "-", "@", "\t", "\r")]
    results.append({"student_id": "b", "file": "b.ipynb", "status": "ok", "scores": {"q1": -1.5},
                    "total": -1.5})
    write_gradebook(results, tmp_path / "gradebook.csv", ["q1"])
    with (tmp_path / "gradebook.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))[1:]
    assert all(row[1].startswith("'") for row in rows[:6]) and rows[6][1] == "b.ipynb"
    assert rows[6][3:5] == ["-1.5", "-1.5"]
