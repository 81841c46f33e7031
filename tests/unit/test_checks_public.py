"""The public checks (student kit): self-contained, format-only, re-exported by the hidden vocabulary."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from convlab import checks, public

SOURCE = Path(public.__file__)
FORBIDDEN = ("convlab.checks", "convlab.grading", "convlab.build", "convlab.calibration",
             "convlab.corpus", "convlab.cli")


def test_public_imports_nothing_hidden() -> None:
    tree = ast.parse(SOURCE.read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(node.module or "")
    assert not [n for n in names if n.startswith(FORBIDDEN)], names
    assert "thresholds.json" not in SOURCE.read_text() and "threshold(" not in SOURCE.read_text()


def test_public_loads_alone() -> None:
    code = ("import sys, convlab.public; "
            "print(sorted(m for m in sys.modules if m.startswith('convlab')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['convlab', 'convlab.public']"


@pytest.mark.parametrize("name", public.__all__)
def test_hidden_vocabulary_reexports(name: str) -> None:
    if name in ("is_trained", "output_layer"):  # the hidden versions check more
        assert hasattr(checks, name)
    else:
        assert getattr(checks, name) is getattr(public, name)
    from convlab.checks import base
    assert base.CheckFailed is public.CheckFailed


def test_format_checks_message() -> None:
    public.is_integer(3, "n")
    with pytest.raises(public.CheckFailed, match=r"ожидается: целое число; получено: 3\.5"):
        public.is_integer(3.5, "n")
    public.image_format(np.zeros((2, 4, 4, 1), np.float32), "x", (4, 4, 1))
    with pytest.raises(public.CheckFailed, match="ожидается: float32"):
        public.image_format(np.zeros((2, 4, 4, 1)), "x", (4, 4, 1))


def test_message_helpers() -> None:
    assert str(public.fail("n", 1, 2)) == "n: ожидается: 1; получено: 2."
    public.require(True, "n", 1, 1)
    with pytest.raises(public.CheckFailed, match=r"n: ожидается: 1; получено: 2\."):
        public.require(False, "n", 1, 2)
    assert public.show(None) == "None (переменная не задана)"
    assert public.show(np.zeros((2, 3), np.float32)) == "массив float32 формы (2, 3)"


@pytest.mark.parametrize(("expected", "found"), [
    ("модель Keras (keras.Model)", "None"),  # feminine: "ожидалось модель" was wrong
    ("слои «Conv2D 8 3x3 same relu»", "«Dense 10 softmax»"),  # plural
    ("один из 4 каналов", "изображение"),  # masculine
])
def test_mismatch_reads_for_any_noun(expected: str, found: str) -> None:
    """Does one template serve every gender and number: the expected and found parts stand after
    colons, so no past-tense verb has to agree with them?"""
    assert checks.mismatch("x", expected, found) == f"x: ожидается: {expected}; получено: {found}."
    assert str(public.fail("x", expected, found)) == public.mismatch("x", expected, found)


def test_no_agreeing_verb_in_student_messages() -> None:
    """Do the checks, the public kit, the grader's probes and the masters avoid the past-tense
    "ожидалось/ожидался/ожидались/ожидалась" that breaks for nouns of another gender or number?"""
    import re

    root = Path(__file__).resolve().parents[2]
    sources = [*(root / "src" / "convlab").rglob("*.py"), *(root / "assignments").glob("*/*.ipynb")]
    offending = [f"{path.relative_to(root)}: {line.strip()[:80]}" for path in sources
                 for line in path.read_text().splitlines() if re.search(r"ожидал(ось|ся|ись|ась)", line)]
    assert offending == []


def test_image_count_any_layout() -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2)
    for ax in axes.flat:
        ax.imshow(np.zeros((3, 3)))
    public.image_count(fig, 4, "fig4")
    with pytest.raises(public.CheckFailed,
                       match=r"fig4: число панелей с изображениями: ожидается: 3; получено: 4\."):
        public.image_count(fig, 3, "fig4")
    plt.close(fig)
