"""tools/grade_outside.py: grading an outside corpus file and tabulating where the grade disagrees."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("grade_outside", ROOT / "tools" / "grade_outside.py")
grade_outside = importlib.util.module_from_spec(spec)
spec.loader.exec_module(grade_outside)

CASES = """scenarios:
  right:
    about: full marks expected
  wrong:
    about: q2 expected to lose everything
    expected: {q2: 0}
  blank:
    about: every question zero
    all_zero: true
  broken:
    about: grading raises
"""


def fake_results(scores: dict[str, tuple[float, float]], messages: dict[str, str]) -> dict[str, Any]:
    tests = [{"name": q, "score": s, "max_score": m, "output": messages.get(q, "")}
             for q, (s, m) in scores.items()]
    return {"tests": [*tests, {"name": "manual", "score": 0}]}


def test_expected_scores_rows_and_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Unlisted questions expect full marks, `expected` and `all_zero` override; a grading error is a
    row, not a crash; each case is logged; the table shows only lost or expected-to-lose rows."""
    otter_output = ("q2 results:\n    q2 - 1 result:\n        ❌ Test case failed\n" + "x" * 200
                    + "\n        CheckFailed: q2: ожидается: одно; получено: другое\n")
    graded = {
        "right": fake_results({"q1": (2, 2), "q2": (1.5, 3)}, {"q2": otter_output}),
        "wrong": fake_results({"q1": (2, 2), "q2": (3, 3)}, {}),
        "blank": fake_results({"q1": (0, 2), "q2": (0, 3)}, {}),
    }

    def grade(scenario: Any, **_: Any) -> dict[str, Any]:
        if scenario.name == "broken":
            raise RuntimeError("otter run failed")
        return graded[scenario.name]

    monkeypatch.setattr(grade_outside.corpus, "grade", grade)
    lab = tmp_path / "lab_x"
    lab.mkdir()
    (lab / "outside.yml").write_text(CASES)
    log = tmp_path / "log.jsonl"
    assert grade_outside.main([str(lab / "outside.yml"), "--log", str(log)]) == 0
    table = capsys.readouterr().out.splitlines()
    rows = {tuple(line.split()[:2]): line for line in table[1:]}
    assert "NO" in rows[("right", "q2")] and "ожидается: одно" in rows[("right", "q2")]
    assert ("right", "q1") not in rows  # full marks expected and given: not shown
    assert "NO" in rows[("wrong", "q2")]
    assert "yes" in rows[("blank", "q1")] and "yes" in rows[("blank", "q2")]
    assert "ERROR" in rows[("broken", "-")] and "otter run failed" in rows[("broken", "-")]
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert [c["case"] for c in logged] == ["right", "wrong", "blank", "broken"]
    assert {r["question"]: r["expected"] for r in logged[1]["rows"]} == {"q1": 2, "q2": 0}


def test_only_selects_cases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Does --only grade just the named cases?"""
    seen: list[str] = []

    def grade(scenario: Any, **_: Any) -> dict[str, Any]:
        seen.append(scenario.name)
        return fake_results({"q1": (2, 2)}, {})

    monkeypatch.setattr(grade_outside.corpus, "grade", grade)
    lab = tmp_path / "lab_x"
    lab.mkdir()
    (lab / "outside.yml").write_text(CASES)
    grade_outside.main([str(lab / "outside.yml"), "--only", "wrong", "blank"])
    assert seen == ["wrong", "blank"]
