"""The grading plugin removes a submitted otter log and limits cell time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from convlab import otter_plugin


def test_before_grading_removes_otter_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Is a submitted .OTTER_LOG deleted before otter could unpickle it?"""
    import nbconvert.preprocessors as preprocessors

    monkeypatch.setattr(preprocessors, "ExecutePreprocessor", preprocessors.ExecutePreprocessor)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".OTTER_LOG").write_bytes(b"\x80\x04not really a pickle")
    notebook = tmp_path / "lab.ipynb"
    notebook.write_text("{}")
    plugin = otter_plugin.GradingGuard(str(notebook), {}, {"cell_timeout": 7})
    plugin.before_grading(None)
    assert not (tmp_path / ".OTTER_LOG").exists()
    executor = preprocessors.ExecutePreprocessor()
    assert executor.timeout == 7 and executor.interrupt_on_timeout


def test_limit_cells_is_idempotent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Does applying the limit twice keep one subclass over nbconvert's own class?"""
    import nbconvert.preprocessors as preprocessors

    original = preprocessors.ExecutePreprocessor
    monkeypatch.setattr(preprocessors, "ExecutePreprocessor", original)
    otter_plugin.limit_cells(5)
    otter_plugin.limit_cells(9)
    assert preprocessors.ExecutePreprocessor.__mro__[1] is original
    assert preprocessors.ExecutePreprocessor().timeout == 9


@pytest.mark.parametrize("no_train", [True, False])
def test_no_train_option_disables_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           no_train: bool) -> None:
    """Does ``no_train: true`` (lab6_nin) set CONVLAB_NO_TRAIN for the grading kernel, and only then?"""
    import nbconvert.preprocessors as preprocessors

    from convlab.artifacts import ENV_NO_TRAIN

    monkeypatch.setattr(preprocessors, "ExecutePreprocessor", preprocessors.ExecutePreprocessor)
    monkeypatch.setenv(ENV_NO_TRAIN, "")  # restored by monkeypatch whatever the plugin sets
    monkeypatch.chdir(tmp_path)
    notebook = tmp_path / "lab.ipynb"
    notebook.write_text("{}")
    plugin = otter_plugin.GradingGuard(str(notebook), {}, {"cell_timeout": 7, "no_train": no_train})
    plugin.before_grading(None)
    assert os.environ[ENV_NO_TRAIN] == ("1" if no_train else "")
