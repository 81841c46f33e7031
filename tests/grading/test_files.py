"""The one atomic writer (grading/files.py) and the stored result form (grading/results.py)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from convlab.grading import files, results


def test_atomic_writers_leave_nothing_half_written(tmp_path: Path) -> None:
    """Do text, bytes and JSON land whole (newlines as given, lone surrogates escaped), leave no
    temporary file, and does remove_stale_temps remove a killed writer's leftovers only?"""
    files.write_text(tmp_path / "a.csv", "x\r\ny\udcff\n")
    files.write_bytes(tmp_path / "b.png", b"\x89PNG")
    files.write_json(tmp_path / "c.json", {"ключ": [1, 2]})
    assert (tmp_path / "a.csv").read_bytes() == b"x\r\ny\\udcff\n"
    assert (tmp_path / "b.png").read_bytes() == b"\x89PNG"
    assert (tmp_path / "c.json").read_text(encoding="utf-8") == '{\n "ключ": [\n  1,\n  2\n ]\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.png", "c.json"]
    (tmp_path / ".c.json.abc.tmp").write_text("half")
    files.remove_stale_temps(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.png", "c.json"]


def test_results_round_trip_and_refuse_what_is_not_a_result(tmp_path: Path) -> None:
    """Does a stored result read back equal (tuples as lists), and is a file that is not a JSON
    object, or not JSON, no result?"""
    result: results.Result = {"student_id": "s", "status": "ok", "total": 1.5, "messages": ["ö"]}
    results.write(tmp_path / "s.json", result)
    assert results.load(tmp_path / "s.json") == result
    assert results.plain({"scores": ("a", 1)}) == {"scores": ["a", 1]}
    (tmp_path / "list.json").write_text(json.dumps([1]))
    (tmp_path / "bad.json").write_text("{")
    assert results.load(tmp_path / "list.json") is None and results.load(tmp_path / "bad.json") is None
    assert results.load(tmp_path / "missing.json") is None


def test_only_the_writers_that_cannot_import_it_rename_files_themselves() -> None:
    """Is grading/files.py the one atomic writer: does every other module that renames a file
    into place have a stated reason (the student kit, the grading kernel, the scoring process's
    job file: its go signal, handed to the sandbox user before it appears; the sandbox's workdir
    claim)? The scoring process's ``result.json`` goes through the writer."""
    root = Path(files.__file__).resolve().parents[1]
    renames = {path.relative_to(root).as_posix(): path.read_text(encoding="utf-8").count("os.replace(")
               for path in root.rglob("*.py")}
    assert {name: count for name, count in renames.items() if count} == {
        "artifacts.py": 1, "grading/exporter.py": 3, "grading/files.py": 1,
        "grading/sandbox.py": 1, "grading/score_process.py": 1}


def test_calibration_writes_through_the_one_writer(tmp_path: Path, monkeypatch) -> None:
    """Do the calibration's thresholds and its report section go through grading/files.py (a
    calibration killed mid-write must not leave a half thresholds.json in the package)?"""
    from convlab import calibration, labs

    lab = labs.load(Path(__file__).resolve().parents[2], "lab5_cnn")
    written: list[str] = []
    real = files.write_bytes

    def recording(path: Path, data: bytes) -> None:
        written.append(Path(path).name)
        real(path, data)

    monkeypatch.setattr(files, "write_bytes", recording)
    thresholds = tmp_path / "thresholds.json"
    thresholds.write_text('{"thresholds": {}}')
    model = next(iter(lab.plans))
    runs = [{"model": model, "seed": s, "epochs": 1, "test_accuracy": a} for s, a in ((0, 0.9), (1, 0.92))]
    calibration.write(lab, runs, thresholds, tmp_path / "calibration.md")
    assert sorted(written) == ["calibration.md", "thresholds.json"]
    assert model in json.loads(thresholds.read_text())["thresholds"]["lab5_cnn"]


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_get_the_mode_a_plain_open_gives(tmp_path: Path, umask: int, mode: int) -> None:
    """A file written atomically has 0o666 less the umask, as ``open()`` would give it (not
    mkstemp's 0o600: a thresholds.json written by the calibration must stay readable by the
    sandbox's user), and a private umask keeps the grader's outputs private."""
    previous = os.umask(umask)
    try:
        files.write_text(tmp_path / "thresholds.json", "{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "thresholds.json").stat().st_mode) == mode
