"""The export format's names and limits: one definition (``grading/export_format.py``) that the
kernel's exporter and the scorer both use, and that agree in practice."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from convlab.grading import export_format as fmt
from convlab.grading import exporter, score, score_process


@pytest.fixture(autouse=True)
def _keep_otter(monkeypatch: pytest.MonkeyPatch) -> None:
    """:func:`exporter.install` replaces the ``otter`` module, as in a kernel: undo it after."""
    import otter

    monkeypatch.setitem(sys.modules, "otter", otter)


def test_both_sides_use_the_one_definition() -> None:
    """Do the exporter, the scorer and the scoring process take their limits and file-name
    pattern from ``export_format`` (not a retyped copy)?"""
    assert (exporter.FORMAT, exporter.MANIFEST) == (fmt.FORMAT, fmt.MANIFEST)
    assert (exporter.MAX_DEPTH, exporter.MAX_ITEMS, exporter.MAX_AXES) == (
        fmt.MAX_DEPTH, fmt.MAX_ITEMS, fmt.MAX_AXES)
    assert score._NAME is fmt.FILE_NAME is score_process._FILE
    assert (score.MAX_DEPTH, score.MAX_AXES, score.MAX_JSON, score.MAX_ARRAY, score.MAX_MODEL) == (
        fmt.MAX_DEPTH, fmt.MAX_AXES, fmt.MAX_JSON, fmt.MAX_ARRAY, fmt.MAX_MODEL)
    assert score_process.MAX_MODEL_FILE == fmt.MAX_MODEL


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def test_depth_limit_is_the_same_on_both_sides(tmp_path: Path) -> None:
    """Is a value nested exactly ``MAX_DEPTH`` deep exported and loaded back, while one level
    more is refused by the exporter and, forged into a manifest, by the scorer?"""
    folder = tmp_path / "export"
    exporter.install({"q": ["deep", "deeper"]}, str(folder))
    exporter.snapshot("q", {"deep": nested(fmt.MAX_DEPTH), "deeper": nested(fmt.MAX_DEPTH + 1)})
    manifest = json.loads((folder / fmt.MANIFEST).read_text())
    assert manifest["format"] == fmt.FORMAT
    values = manifest["snapshots"]["q"]["values"]
    assert values["deeper"]["kind"] == "unexportable"
    assert score.decode(values["deep"]["value"], None, {}) == nested(fmt.MAX_DEPTH)  # type: ignore[arg-type]
    with pytest.raises(score.LoadError):
        score.decode(nested(fmt.MAX_DEPTH + 1), None, {})  # type: ignore[arg-type]


def test_exported_file_names_match_the_scorers_pattern(tmp_path: Path) -> None:
    """Do the exporter's array and model file names fit the pattern the scorer and the scoring
    process accept?"""
    keras = pytest.importorskip("keras")
    folder = tmp_path / "export"
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    exporter.install({"q": ["a", "m"]}, str(folder))
    exporter.snapshot("q", {"a": np.arange(3), "m": model})
    files = sorted(p.name for p in folder.iterdir() if p.name != fmt.MANIFEST)
    assert [name.split("_")[0] for name in files] == ["a", "m"]
    assert all(fmt.FILE_NAME.match(name) for name in files), files
