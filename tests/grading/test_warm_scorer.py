"""The pre-started ("warm") scoring process: faster, and exactly as safe as a fresh one.

A warm process is started for one submission before its notebook runs and serves only it; one
that died or whose folder was touched is not used (a cold process scores instead); the scores and
feedback data are those of the cold route. The tiny lab of :mod:`corpus_tiny` plays the lab.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from corpus_tiny import HONEST, SETUP, make_autograder, notebook

from convlab.grading import batch, execute, grade, sandbox, score, score_process

pytestmark = pytest.mark.slow


@pytest.fixture
def autograder(tmp_path: Path) -> Path:
    """The tiny lab's autograder (:func:`corpus_tiny.make_autograder`)."""
    return make_autograder(tmp_path / "autograder")


SETTINGS = execute.Settings(wall_seconds=240.0, memory_bytes=2 << 30, cell_timeout=60.0)


def _config(autograder: Path, base: Path, warm: bool) -> grade.Config:
    return grade.Config(lab="tiny", tests=autograder, settings=SETTINGS, sandbox_base=base,
                        scoring=score_process.Settings(warm=warm, wall_seconds=240.0))


def _export(tmp_path: Path, autograder: Path, base: Path, name: str, *cells: str) -> execute.Execution:
    """Phase 1 of one tiny submission (its export stays in the execution's workdir)."""
    sub = notebook(tmp_path / "subs", f"{name}.ipynb", SETUP, *cells)
    needed = score.needed_names(score.load_tests(autograder))
    return execute.execute(sub, "tiny", needed, SETTINGS, base=base)


def test_deadline_moves_while_the_command_runs(base: Path) -> None:
    """Does a sandboxed command end (status timeout) soon after its movable deadline is set,
    long before its wall-clock limit?"""
    workdir = sandbox.prepare_workdir(base)
    deadline = sandbox.Deadline()
    threading.Timer(1.0, deadline.from_now, args=(0.5,)).start()
    started = time.monotonic()
    outcome = sandbox.run([sys.executable, "-c", "import time; time.sleep(60)"], workdir=workdir,
                          limits=sandbox.Limits(wall_seconds=60, memory_bytes=1 << 30),
                          env={}, deadline=deadline)
    assert outcome.status == "timeout"
    assert time.monotonic() - started < 15


def test_warm_process_serves_one_submission_only(tmp_path: Path, autograder: Path, base: Path) -> None:
    """Is a warm process handed submission A done once A is scored: its folder gone, its process
    ended, and a second hand-over (submission B) refused?"""
    a = _export(tmp_path, autograder, base, "a", *HONEST)
    b = _export(tmp_path, autograder, base, "b", "x = 1\nlst = [1]", "y = 'нет'")
    try:
        warm = score_process.start(autograder, settings=score_process.Settings(), execution=SETTINGS,
                                   base=base)
        tests = score.load_tests(autograder)
        scored = warm.score(tests, a.export, status="ok", reason="", figures={})
        assert scored is not None and scored.process["route"] == "warm"
        assert scored.result["total"] == 4.0, scored.result
        assert not warm.workdir.exists() and not warm.alive()
        with pytest.raises(RuntimeError, match="one submission"):
            warm.score(tests, b.export, status="ok", reason="", figures={})
    finally:
        execute.remove_workdir(a)
        execute.remove_workdir(b)


def test_submission_handed_over_before_the_process_started_waits_for_it(
        tmp_path: Path, autograder: Path, base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Is an export handed to a warm process that the sandbox has not started yet (its folder not
    yet given to the sandbox user: a loaded machine, a notebook that failed at once) scored by
    it, and not left unreadable to it (a crash, 0 points)?"""
    real_hand_over, real_copy = sandbox._hand_over, score_process._copy_export

    def slow_hand_over(*args: Any, **kwargs: Any) -> None:  # the sandbox starts late...
        time.sleep(1)
        real_hand_over(*args, **kwargs)

    def slow_copy(*args: Any, **kwargs: Any) -> str:  # ...while the grader copies the export
        time.sleep(2)
        return real_copy(*args, **kwargs)

    monkeypatch.setattr(sandbox, "_hand_over", slow_hand_over)
    monkeypatch.setattr(score_process, "_copy_export", slow_copy)
    a = _export(tmp_path, autograder, base, "a", *HONEST)
    try:
        warm = score_process.start(autograder, settings=score_process.Settings(), execution=SETTINGS,
                                   base=base)
        scored = warm.score(score.load_tests(autograder), a.export, status="ok", reason="", figures={})
        assert scored is not None and scored.process["route"] == "warm", scored
        assert scored.result["total"] == 4.0, scored.result
    finally:
        execute.remove_workdir(a)


def test_trained_models_copied_from_the_zip_only_by_name_and_size(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Does the grader hand a warm process only the zip's ``artifacts/*.keras`` regular files
    within the size limits (not a link, a nested or foreign path, an oversized file, more than
    the count limit), and nothing for a bare notebook?"""
    import stat
    import zipfile

    monkeypatch.setattr(score_process, "MAX_MODEL_FILE", 100)
    monkeypatch.setattr(score_process, "MAX_AHEAD_MODELS", 3)
    sub = tmp_path / "sub.zip"
    with zipfile.ZipFile(sub, "w") as zf:
        zf.writestr("lab.ipynb", "{}")
        zf.writestr("artifacts/manifest.json", "{}")
        zf.writestr("artifacts/a1.keras", b"a" * 10)
        zf.writestr("artifacts/a2.keras", b"b" * 100)
        zf.writestr("artifacts/big.keras", b"c" * 101)
        zf.writestr("artifacts/nested/a3.keras", b"d")
        zf.writestr("other/a4.keras", b"e")
        zf.writestr("artifacts/a5.txt", b"f")
        link = zipfile.ZipInfo("artifacts/link.keras")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
        for n in range(6, 10):
            zf.writestr(f"artifacts/a{n}.keras", b"g")
    assert score_process.trained_models(sub, tmp_path / "ahead") == 3
    assert sorted(p.name for p in (tmp_path / "ahead").iterdir()) == ["a1.keras", "a2.keras", "a6.keras",
                                                                      "manifest.json"]
    with zipfile.ZipFile(sub) as zf:  # the member's time: the newest training is predicted first
        stamp = time.mktime((*zf.getinfo("artifacts/a1.keras").date_time, 0, 0, -1))
    assert (tmp_path / "ahead" / "a1.keras").stat().st_mtime == stamp
    assert (tmp_path / "ahead" / "a2.keras").read_bytes() == b"b" * 100
    bare = tmp_path / "bare.ipynb"
    bare.write_text("{}")
    assert score_process.trained_models(bare, tmp_path / "none") == 0
    assert list((tmp_path / "none").iterdir()) == []
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 not a zip")
    assert score_process.trained_models(broken, tmp_path / "broken") == 0


def test_work_ahead_follows_the_lab_plan_and_the_manifest(tmp_path: Path) -> None:
    """Does a warm process predict ahead, with a lab's plan, only the files the cache's manifest
    says held a planned variable, in the plan's order and with the planned kinds; and with no
    plan, or a plan but no readable manifest (or a hostile one), nothing?"""
    import json

    folder = tmp_path / "ahead"
    folder.mkdir()
    for name in ("a.keras", "b.keras", "c.keras", "d.keras"):
        (folder / name).write_bytes(b"x")
    plan = {"nin": ["test"], "model1": ["test", "train"]}
    assert score_process._ahead_work(folder, plan) == []  # no manifest
    assert score_process._ahead_work(folder, None) == []
    (folder / "manifest.json").write_text(json.dumps({
        "k1": {"file": "a.keras", "variables": ["model1", "other"]},
        "k2": {"file": "b.keras", "variables": ["ablation"]},
        "k3": {"file": "c.keras", "variables": ["nin"]},
        "k4": {"file": "../../etc/passwd", "variables": ["nin"]},
        "k5": {"file": "d.keras", "variables": "nin"},
        "k6": ["not", "an", "entry"]}))
    assert score_process._ahead_work(folder, plan) == [(folder / "c.keras", ("test",)),
                                                       (folder / "a.keras", ("test", "train"))]
    # several trainings of model1: the newest first, then nin's, then the older model1
    (folder / "manifest.json").write_text(json.dumps({
        "k1": {"file": "a.keras", "variables": ["model1"]},
        "k2": {"file": "b.keras", "variables": ["model1"]},
        "k3": {"file": "c.keras", "variables": ["nin"]}}))
    os.utime(folder / "a.keras", (1000, 1000))
    os.utime(folder / "b.keras", (2000, 2000))
    assert score_process._ahead_work(folder, plan) == [(folder / "c.keras", ("test",)),
                                                       (folder / "b.keras", ("test", "train")),
                                                       (folder / "a.keras", ("test", "train"))]
    assert score_process._ahead_work(folder, None) == []  # no plan: nothing, manifest or not
    (folder / "manifest.json").write_text("[not json")
    assert score_process._ahead_work(folder, plan) == []
    (folder / "manifest.json").write_text(json.dumps({"k3": {"file": "c.keras", "variables": ["nin"]},
                                                      "padding": "x" * score_process.MAX_MANIFEST}))
    assert score_process._ahead_work(folder, plan) == []  # over the size limit


@pytest.mark.parametrize("harm", ["died", "export-made", "job-made"])
def test_dead_or_touched_warm_process_is_replaced(tmp_path: Path, autograder: Path, base: Path,
                                                   harm: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Does a warm process that died before its job, or whose folder already holds an export or a
    job, go unused, the submission being scored by a fresh process with the same marks?"""
    started: list[score_process.Warm] = []
    real_start = score_process.start

    def harmed(*args: object, **kwargs: object) -> score_process.Warm:
        warm = real_start(*args, **kwargs)
        started.append(warm)
        deadline = time.monotonic() + 60
        while not any(warm.workdir.glob("*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        if harm == "died":
            warm._deadline.from_now(0)
            warm._thread.join()
        else:  # as the process (its user) could do before its job
            target = warm.workdir / (score_process.EXPORT if harm == "export-made" else score_process.JOB)
            target.mkdir() if harm == "export-made" else target.write_text("{}")
            os.chown(target, warm.workdir.stat().st_uid, warm.workdir.stat().st_gid)
        return warm

    monkeypatch.setattr(score_process, "start", harmed)
    sub = notebook(tmp_path / "subs", "honest.ipynb", SETUP, *HONEST)
    result = _grade(_config(autograder, base, warm=True), sub, tmp_path / "scratch")
    assert len(started) == 1 and not started[0].workdir.exists()
    assert result["scoring"]["route"] == "cold"
    assert result["total"] == 4.0, result


def _grade(config: grade.Config, path: Path, scratch: Path) -> dict:
    scratch.mkdir(parents=True)
    return grade.grade_one(config, batch.Submission(path=path, student_id=path.stem), scratch)


def test_warm_and_cold_routes_grade_identically(tmp_path: Path, autograder: Path, base: Path) -> None:
    """Do the warm and the cold route give the same scores, cases and messages, for an honest
    submission and a wrong one (the cold one without importing Keras, which only a model needs)?"""
    subs = {"honest": HONEST, "wrong": ("x = 1\nlst = [1, 'a']", "grader.check('q1')", "y = 'нет'")}
    graded = {}
    for warm in (True, False):
        for name, cells in subs.items():
            sub = notebook(tmp_path / "subs", f"{name}.ipynb", SETUP, *cells)
            result = _grade(_config(autograder, base, warm), sub, tmp_path / f"scratch-{name}-{warm}")
            assert result["scoring"]["route"] == ("warm" if warm else "cold")
            assert set(result["phases"]) >= {"execution", "scoring", "total"}
            # the tiny lab has no model: a process started after the notebook never imports Keras
            assert result["scoring"]["phases"]["keras"] == int(warm)
            graded[name, warm] = {k: result[k] for k in ("total", "questions", "status")}
    for name in subs:
        assert graded[name, True] == graded[name, False]
    assert graded["honest", True]["total"] == 4.0
    assert graded["wrong", True]["total"] < 4.0


def test_warm_route_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """``CONVLAB_WARM_SCORER=0`` (the benchmark's "before" column) turns the warm route off;
    an explicit setting wins over the variable."""
    monkeypatch.setenv(score_process.ENV_WARM, "0")
    assert not score_process.Settings().warm_enabled()
    assert dataclasses.replace(score_process.Settings(), warm=True).warm_enabled()
    monkeypatch.delenv(score_process.ENV_WARM)
    assert score_process.Settings().warm_enabled()


@pytest.mark.parametrize(("workers", "cores", "warm"),
                         [(1, 2, None), (2, 2, False), (4, 2, False), (2, 4, None)])
def test_warm_only_where_a_core_would_idle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int,
                                           cores: int, warm: bool | None) -> None:
    """Does a batch with a worker per core (or more) grade with cold scoring processes (a warm one
    would only add memory there), and one with fewer workers than cores keep the default (warm)?"""
    seen: list[bool | None] = []

    class Stop(Exception):
        pass

    def fake_run_batch(submissions, grade_one, out, **kwargs):
        seen.append(grade_one.args[0].scoring.warm)
        raise Stop

    monkeypatch.setattr(batch, "run_batch", fake_run_batch)
    monkeypatch.setattr(batch, "discover", lambda folder: [object()] * 8)
    monkeypatch.setattr(execute, "cores", lambda: cores)
    monkeypatch.setattr(execute, "sweep_stale_workdirs", lambda base: None)
    with pytest.raises(Stop):
        grade.grade_folder(grade.Config(lab="lab5_cnn", tests=tmp_path), tmp_path, tmp_path / "out",
                           workers=workers)
    assert seen == [warm]


def test_export_copy_is_bounded_and_exact(tmp_path: Path) -> None:
    """Does the scorer's copy of an export file (in the kernel) give the same bytes, and stop at
    the cap for a file that grew past it after it was opened?"""
    data = os.urandom(3 << 20)
    (tmp_path / "src").write_bytes(data)
    for limit, expected in ((8 << 20, data), (1 << 20, data[:1 << 20])):
        with open(tmp_path / "src", "rb") as source, open(tmp_path / "dst", "wb") as sink:
            score_process._copy_bounded(source, sink, limit)
        assert (tmp_path / "dst").read_bytes() == expected


def test_warm_up_loads_each_named_dataset_and_its_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """Does a pre-started process load the pristine test set and the integrity probe images of
    each dataset its lab names (and nothing for an unknown name), rather than dying in its
    warm-up (a warm process that died is never used)?"""
    from convlab.checks import data
    from convlab.grading import integrity

    loaded: list[object] = []
    monkeypatch.setattr(data, "pristine", lambda name: loaded.append(name))
    monkeypatch.setattr(integrity, "probe_images", lambda shape: loaded.append(shape))
    score_process.warm_up({"datasets": ["mnist", "cifar10", "imagenet"]})
    assert loaded == ["mnist", (28, 28, 1), "cifar10", (32, 32, 3)]
