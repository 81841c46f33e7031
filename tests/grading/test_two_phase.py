"""The two-phase grader end to end: notebooks run in the sandbox, scored in the trusted process.

Tiny synthetic notebooks (no TensorFlow) and a tiny test file play the lab (their sources are
in :mod:`corpus_tiny`, with the rest of the exploit and fault corpus, tested in
``test_corpus.py``): an honest notebook gets full marks, so each exploit's zero is meaningful;
statuses come from real kernels that hang, die, eat memory or are not notebooks at all; a batch
killed half-way through the command line resumes. One slow test grades the Lab 5 solution.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import numpy as np
import psutil
import pytest
from corpus_tiny import (
    FAKE_RESULTS,
    HONEST,
    PATCH_CHECKS,
    READ_TESTS,
    SETUP,
    make_autograder,
    notebook,
)

from convlab import corpus, labs
from convlab.grading import batch, execute, grade, score_process

ROOT = Path(__file__).resolve().parents[2]
LAB = "lab5_cnn"


@pytest.fixture
def autograder(tmp_path: Path) -> Path:
    """The tiny lab's autograder (:func:`corpus_tiny.make_autograder`)."""
    return make_autograder(tmp_path / "autograder")


def config(autograder: Path, **settings: float) -> grade.Config:
    values = {"wall_seconds": 120.0, "memory_bytes": 2 << 30, "cell_timeout": 60.0, **settings}
    return grade.Config(lab="tiny", tests=autograder, settings=execute.Settings(**values))


def grade_folder(autograder: Path, subs: Path, out: Path, **settings: float) -> dict[str, dict]:
    results = grade.grade_folder(config(autograder, **settings), subs, out, workers=1, progress=False)
    return {r["student_id"]: r for r in results}


# ------------------------------------------------------------------------------------ exploits
def test_exploits_gain_nothing(autograder: Path, tmp_path: Path) -> None:
    """Does an honest notebook get full marks while a notebook that monkeypatches the checks and
    otter's runner, one that forges results.json and the export manifest, and one that hunts for
    the hidden tests each get 0 (no tests in its working directory)?"""
    subs = tmp_path / "subs"
    notebook(subs, "honest.ipynb", SETUP, *HONEST)
    notebook(subs, "patch.ipynb", SETUP, PATCH_CHECKS, "grader.check('q1')")
    notebook(subs, "fake_results.ipynb", SETUP, FAKE_RESULTS)
    notebook(subs, "read_tests.ipynb", SETUP, READ_TESTS, "grader.check('q1')",
             "import os\nassert not os.path.exists('tests')")
    out = tmp_path / "out"
    results = grade_folder(autograder, subs, out)
    assert {k: (r["status"], r["total"]) for k, r in results.items()} == {
        "honest": ("ok", 4.0), "patch": ("ok", 0.0), "fake_results": ("ok", 0.0), "read_tests": ("ok", 0.0)}
    assert "не может быть экспортирована" in results["patch"]["messages"][0]  # Anything() is no data
    for sid in results:
        report = json.loads((out / "gradescope" / sid / "results.json").read_text())
        assert report["score"] == results[sid]["total"]
    executed = nbformat.read(out / "work" / "read_tests" / "executed.ipynb", as_version=4)
    last = [c for c in executed.cells if c.cell_type == "code"][-2]
    assert not any(o.get("output_type") == "error" for o in last.outputs), last.outputs


# ---------------------------------------------------------------------------------- statuses
def test_statuses_and_cli(autograder: Path, tmp_path: Path) -> None:
    """Through `convlab grade`: is a hanging notebook a timeout (keeping what it checked), a dying
    kernel crashed, a memory hog memory, a cell past the per-cell limit interrupted while the
    rest runs, corrupt files invalid, another lab's notebook a wrong assignment; and are the
    gradebook, results, Gradescope files and feedback written?"""
    subs = tmp_path / "subs"
    notebook(subs, "hang.ipynb", SETUP, *HONEST[:2],
             "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass")
    notebook(subs, "slow_cell.ipynb", SETUP, "import time\ntime.sleep(600)", *HONEST)
    notebook(subs, "dies.ipynb", SETUP, "import os\nos._exit(3)", *HONEST)
    notebook(subs, "hog.ipynb", SETUP, "hog = []\nwhile True:\n    hog.append(b'x' * (64 << 20))")
    notebook(subs, "other_lab.ipynb", SETUP, *HONEST, lab="lab6_nin")
    (subs / "corrupt.ipynb").write_text("{ not a notebook")
    (subs / "empty.zip").write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    out = tmp_path / "out"
    cli = [sys.executable, "-m", "convlab", "grade", "tiny", str(subs), "-o", str(out),
           "--autograder", str(autograder), "--timeout", "40", "--memory", "1200", "--cell-timeout", "4"]
    # a private temporary folder, so that only this test's sandboxes are looked at (passable by the
    # sandbox user, as the system one is)
    tmp = Path(tempfile.mkdtemp(prefix="convlab-statuses-"))
    tmp.chmod(0o711)
    try:
        proc = subprocess.run(cli, capture_output=True, text=True, timeout=900,
                              env={**os.environ, "TMPDIR": str(tmp)})
        left = list((tmp / "convlab-sandboxes").glob("*/export"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "gradebook.csv", newline="") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f)}
    assert {k: (r["status"], r["q1"], r["q2"]) for k, r in rows.items()} == {
        "hang": ("timeout", "2", "0"), "slow_cell": ("ok", "2", "2"), "dies": ("crashed", "0", "0"),
        "hog": ("memory", "0", "0"), "other_lab": ("wrong-assignment", "0", "0"),
        "corrupt": ("invalid-notebook", "0", "0"), "empty": ("invalid-notebook", "0", "0")}
    hang = json.loads((out / "results" / "hang.json").read_text())
    assert "прервано по времени" in " ".join(hang["messages"])
    feedback = (out / "feedback" / "other_lab.md").read_text()
    assert "сдан блокнот другого задания" in feedback and r"lab6\_nin" in feedback  # Markdown-escaped
    assert (out / "feedback" / "slow_cell.html").read_text().startswith("<!DOCTYPE html>")
    executed = nbformat.read(out / "feedback" / "slow_cell.ipynb", as_version=4)
    assert any("KeyboardInterrupt" in o.get("ename", "") for c in executed.cells if c.cell_type == "code"
               for o in c.outputs), "the slow cell was not interrupted"
    assert json.loads((out / "gradescope" / "slow_cell" / "results.json").read_text())["score"] == 4
    assert not left, "working directories were left behind"


# ---------------------------------------------------------------------------- kill and resume
def sandbox_processes(base: Path) -> list[psutil.Process]:
    """Live processes working in a sandbox under ``base``."""
    found = []
    for proc in psutil.process_iter(["cwd", "status"]):
        cwd = proc.info["cwd"]
        if cwd and Path(cwd).is_relative_to(base) and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


def unclaimed(sandboxes: Path) -> set[Path]:
    """The working directories whose lock no living grader holds."""
    free = set()
    for lock in sandboxes.glob(f"{execute.LOCK_PREFIX}*"):
        fd = execute.try_lock(lock)
        if fd is not None:
            os.close(fd)
            free.add(sandboxes / lock.name[len(execute.LOCK_PREFIX):])
    return free


@pytest.mark.parametrize("engine", ["processes", pytest.param("dask", marks=pytest.mark.slow)])
def test_killed_cli_batch_resumes(autograder: Path, tmp_path: Path, engine: str) -> None:
    """`convlab grade` (process pool, or `--dask local`) killed with SIGKILL (its whole process
    group) while notebooks run, then run again: is every submission in the gradebook once, with
    the right scores, are the results of the first run kept (not graded again), and are no
    temporary files, sandbox processes or sandbox working directories left behind (the running
    sandboxes killed with the grader, not when they end; a directory of a worker killed while
    unpacking or scoring, outside a sandbox, is unclaimed at once and swept by the next run)?"""
    subs = tmp_path / "subs"
    sleep = "import time\ntime.sleep(4)"
    notebook(subs, "a.ipynb", SETUP, *HONEST)
    notebook(subs, "b.ipynb", SETUP, sleep, *HONEST)
    notebook(subs, "c.ipynb", SETUP, "x = 41\nlst = [1, 2, 3]", "grader.check('q1')", "y = 'конец'")
    notebook(subs, "d.ipynb", SETUP, sleep, "x = 42\nlst = [1, 2, 3]", "y = 'начало'")
    notebook(subs, "e.ipynb", SETUP, sleep, *HONEST)
    notebook(subs, "f.ipynb", SETUP, *HONEST)
    expected = {"a": ("2", "2", "4"), "b": ("2", "2", "4"), "c": ("1", "2", "3"), "d": ("2", "1", "3"),
                "e": ("2", "2", "4"), "f": ("2", "2", "4")}
    out, results = tmp_path / "out", tmp_path / "out" / "results"
    # a private temporary folder, so that only this test's sandboxes are looked at (passable by the
    # sandbox user, as the system one is)
    tmp = Path(tempfile.mkdtemp(prefix="convlab-resume-"))
    tmp.chmod(0o711)
    sandboxes = tmp / "convlab-sandboxes"
    cli = [sys.executable, "-m", "convlab", "grade", "tiny", str(subs), "-o", str(out),
           "--autograder", str(autograder), "--workers", "2", "--timeout", "120", "--memory", "1500",
           "--cell-timeout", "60", *(["--dask", "local"] if engine == "dask" else [])]
    env = {**os.environ, "TMPDIR": str(tmp)}
    try:
        first = subprocess.Popen(cli, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
        deadline = time.monotonic() + 600
        while not (2 <= len(list(results.glob("*.json"))) < 6 and list(sandboxes.glob("sandbox-*"))):
            assert first.poll() is None, "the first run ended before it could be killed: " + (
                first.stderr.read().decode()[-3000:])
            assert time.monotonic() < deadline, "the first run graded too few submissions in time"
            time.sleep(0.05)
        os.killpg(first.pid, signal.SIGKILL)  # the CLI and its workers, not the sandboxes' sessions
        first.wait()
        first.stderr.close()
        killed_at = time.time()
        kept = {p.stem: (p.stat().st_mtime_ns, p.read_text()) for p in results.glob("*.json")}
        assert 2 <= len(kept) < 6
        # the sandboxes go with their grader, not when they end (each init spends up to 5 s killing
        # its tree, then removes its working directory: allow for a loaded machine)
        deadline = time.monotonic() + 30
        while (sandbox_processes(tmp) or not set(sandboxes.glob("sandbox-*")) <= unclaimed(sandboxes)) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sandbox_processes(tmp) == []
        assert set(sandboxes.glob("sandbox-*")) <= unclaimed(sandboxes)

        second = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=600)
        assert second.returncode == 0, second.stderr[-3000:]
        with open(out / "gradebook.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert sorted(r["student_id"] for r in rows) == sorted(expected)  # each once
        assert {r["student_id"]: (r["q1"], r["q2"], r["total"]) for r in rows} == expected
        assert all(r["status"] == "ok" for r in rows)
        for sid, (mtime, text) in kept.items():  # not graded again
            assert (results / f"{sid}.json").stat().st_mtime_ns == mtime
            assert (results / f"{sid}.json").read_text() == text
        for sid in set(expected) - set(kept):
            assert (results / f"{sid}.json").stat().st_mtime >= killed_at
        assert sorted(p.stem for p in results.iterdir()) == sorted(expected)
        assert not [p for p in out.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]
        assert sandbox_processes(tmp) == [] and list(sandboxes.iterdir()) == []
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGKILL)
        for proc in sandbox_processes(tmp):
            with contextlib.suppress(psutil.Error):
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


# -------------------------------------------------------------------------------------- Lab 5
@pytest.mark.slow
def test_lab5_solution_gets_full_marks(tmp_path: Path, datasets_root: Path) -> None:
    """Does the Lab 5 solution zip (with its trained models: nothing retrains) get full marks on
    every auto-graded question, as the committed expectations for `otter run` say?"""
    fixtures = ROOT / "tests" / "fixtures" / LAB
    scenario = next(s for s in corpus.load(fixtures / "scenarios.yml") if s.name == "solution")
    assert not scenario.expected and not scenario.all_zero  # the expectation: full marks everywhere
    submission = corpus.make_submission(scenario, root=ROOT, lab=LAB, fixtures=fixtures,
                                        dest=tmp_path / "submission")
    plan = labs.load(ROOT, LAB).predict_ahead
    cfg = grade.Config(lab=LAB, tests=ROOT / "autograder" / LAB, settings=execute.Settings(
        wall_seconds=1200, memory_bytes=10 << 30, cell_timeout=600), predict_ahead=plan)
    (tmp_path / "scratch").mkdir()
    result = grade.grade_one(cfg, batch.Submission("solution", submission), tmp_path / "scratch")
    assert result["status"] == "ok", result.get("reason")
    tests = sorted(p.stem for p in (ROOT / "autograder" / LAB / "tests").glob("q*.py"))
    assert sorted(result["scores"]) == tests
    assert result["scores"] == result["possible"], result["messages"]
    assert result["total"] == result["max_total"] == 37
    models = result["integrity"]["models"]  # every trained model has its prediction signature
    assert models and all(fp["predictions"]["probe"].endswith("-test+blends") for fp in models.values())
    # scored by the process started ahead, which predicted with the zip's trained models while
    # the notebook ran (how many before the job came depends on the machine's load) and took
    # what fitted the export: each prediction of the lab's plan made once, ahead or after
    phases = result["scoring"]["phases"]
    assert result["scoring"]["route"] == "warm"
    assert phases["from_ahead"] + phases["predicted"] == sum(len(kinds) for kinds in plan.values()), phases
    assert phases["from_ahead"] <= 2 * phases["ahead_models"], phases


def test_sweep_removes_only_unclaimed_workdirs(tmp_path: Path) -> None:
    """Does the sweep leave a working directory its grader still claims, and remove one whose
    grader died (its lock dropped) together with its lock file?"""
    from convlab.grading import sandbox

    base = tmp_path / "sandboxes"
    live, dead = sandbox.prepare_workdir(base), sandbox.prepare_workdir(base)
    sandbox._claim(live)
    sandbox._claim(dead)
    (dead / "left.txt").write_text("x")
    os.close(sandbox._locks.pop(str(dead)))  # as if its grading process were killed
    try:
        assert sandbox.sweep_stale_workdirs(base) == [dead]
        assert live.is_dir() and not dead.exists()
        assert sorted(p.name for p in base.iterdir()) == sorted([live.name, f".lock-{live.name}"])
    finally:
        sandbox.release_workdir(live)
    assert list(base.iterdir()) == []


# ------------------------------------------------------------------------------ worker poisoning
POISONED_TEST = '''from otter.test_files import test_case

OK_FORMAT = False

name = "q3"
points = 2

@test_case(points=2, hidden=True)
def test_accuracy(model, tag):
    import keras
    import numpy as np
    if tag == "poison":  # stands for a loaded value that changes Keras' global state as it loads
        keras.Model.predict = lambda self, x, *args, **kwargs: np.zeros((len(x), 1), "float32")
    x = np.random.default_rng(123).normal(size=(200, 4)).astype("float32")
    truth = x @ np.array({w!r}) > 0
    accuracy = float(((np.asarray(model.predict(x, verbose=0)).reshape(-1) > 0.5) == truth).mean())
    assert accuracy >= 0.8, f"точность модели {{accuracy:.2f}} меньше 0.8"
'''


@pytest.mark.slow
@pytest.mark.parametrize("isolated", [True, False], ids=["fresh-scorer", "shared-scorer-control"])
def test_worker_poisoning_does_not_reach_the_next_student(tmp_path: Path, isolated: bool) -> None:
    """Does an honest submission graded right after one whose scoring poisons Keras' global
    state in the same worker keep its full marks, because each submission is scored in a fresh
    process? The control (scoring in the worker itself, the former route) shows the poison does
    take the honest student's points there."""
    from corpus_tiny import KERAS_DATA, KERAS_TRAIN, SETUP, W

    folder = tmp_path / "autograder"
    (folder / "tests").mkdir(parents=True)
    (folder / "tests" / "q3.py").write_text(POISONED_TEST.format(w=list(W)))
    subs = tmp_path / "subs"
    for name, tag in (("a_poison", "poison"), ("b_honest", "honest")):
        notebook(subs, f"{name}.ipynb", SETUP, KERAS_DATA, KERAS_TRAIN, f"tag = {tag!r}",
                 "grader.check('q3')")
    cfg = grade.Config(lab="tiny", tests=folder, settings=execute.Settings(
        wall_seconds=300.0, memory_bytes=4 << 30, cell_timeout=120.0),
        scoring=score_process.Settings(isolated=isolated))
    results = {r["student_id"]: r for r in grade.grade_folder(cfg, subs, tmp_path / "out", workers=1,
                                                              progress=False)}
    assert results["a_poison"]["status"] == "ok"
    assert results["a_poison"]["total"] == 0.0  # its own predictions are poisoned too
    if isolated:
        assert results["b_honest"]["total"] == 2.0, results["b_honest"]["messages"]
        assert results["b_honest"]["scoring"]["status"] == "ok"
        assert results["b_honest"]["scoring"]["protections"]["network_namespace"] in (True, False)
    else:
        assert results["b_honest"]["total"] == 0.0, "control: the poison should reach a shared scorer"


@pytest.mark.slow
@pytest.mark.parametrize("spelling", ["tf.nn.sigmoid", "keras.ops.sigmoid", "'sigmoid'"])
def test_activation_spellings_grade_the_same_by_both_routes(tmp_path: Path, spelling: str) -> None:
    """Is a model built with ``activation=tf.nn.sigmoid`` (or another spelling of it) graded the
    same by the in-kernel route (``otter run``: the tests on the live model) and by the two-phase
    route (exported by the kernel side, scored in a fresh sandboxed process)?"""
    import keras
    import tensorflow as tf
    from corpus_tiny import MODEL_TEST, W

    from convlab.grading import exporter, score

    monkey_otter = sys.modules.get("otter")
    folder = tmp_path / "autograder"
    (folder / "tests").mkdir(parents=True)
    (folder / "tests" / "q3.py").write_text(MODEL_TEST)
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = (x @ np.array(W) > 0).astype("float32")
    activation = eval(spelling, {"tf": tf, "keras": keras})  # the fixed list above
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation=activation)])
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=30, verbose=0)

    tests = score.load_tests(folder)
    in_kernel = {}
    for test_file in tests:  # what otter run does: the test functions on the live namespace
        in_kernel[test_file.name] = [_passes(case, {"model": model}) for case in test_file.test_cases]
    try:
        exporter.install({"q3": ["model"]}, str(tmp_path / "export"))
        exporter.snapshot("q3", {"model": model})
    finally:
        sys.modules["otter"] = monkey_otter
    scored = score_process.run(score.load_tests(folder), folder, tmp_path / "export", status="ok",
                               reason="", settings=score_process.Settings(), execution=execute.Settings(),
                               figures={})
    two_phase = [c["passed"] for c in scored.result["questions"]["q3"]["cases"]]
    assert scored.process["status"] == "ok", scored.process
    assert scored.process["phases"]["keras"] == 1  # imported to load the model
    assert in_kernel["q3"] == two_phase == [True, True], scored.result["messages"]


def _passes(case: object, env: dict) -> bool:
    try:
        case.body.call_func(env)  # type: ignore[attr-defined]
    except Exception:
        return False
    return True
